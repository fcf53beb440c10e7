"""The suite's own PostgreSQL server: real, on 127.0.0.1, isolated per test, stopped by pid."""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.postgres import HOST, PgServer, running


def test_the_server_is_real_and_local(postgres: PgServer, pg_database: str) -> None:
    assert postgres.host == HOST == "127.0.0.1"
    with postgres.connect(pg_database) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 130000
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_each_test_gets_its_own_database(postgres: PgServer, pg_database: str) -> None:
    with postgres.connect(pg_database) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_a_wrong_password_is_refused(postgres: PgServer) -> None:
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**postgres.conninfo(password="not-it"))


def test_stopping_by_pid_ends_the_server_and_removes_its_cluster() -> None:
    with running() as server:
        with server.connect() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        pid, cluster = server.pid, server.datadir.parent
        assert (server.datadir / "PG_VERSION").is_file()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not cluster.parent.exists()


def test_a_small_dev_shm_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container's /dev/shm is often 64 MB: the clusters would fill it halfway through a run,
    so they go to the temporary directory unless it has room (review)."""
    from tests import postgres

    monkeypatch.setattr(postgres, "SHM_NEEDED_BYTES", 0)
    writable = os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK | os.X_OK)
    assert postgres._scratch_parent() == ("/dev/shm" if writable else None)
    monkeypatch.setattr(postgres, "SHM_NEEDED_BYTES", 1 << 62)  # more than any machine has
    assert postgres._scratch_parent() is None
