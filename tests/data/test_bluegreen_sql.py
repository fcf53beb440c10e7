"""The blue/green SQL checks against a real PostgreSQL server: each bad case is created for real
(a table without a primary key, an open transaction, a logical slot, a read-only default) and
each refusal and each pass is asserted."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dbplatform.database import checks
from dbplatform.database.checks import Limits
from tests.postgres import PgServer


def factory(server: PgServer, only: str) -> checks.Connect:
    """Connect to `only` when asked for any user database, so a test sees its own tables; the
    server-wide checks still run in `postgres`."""

    @contextlib.contextmanager
    def connect(dbname: str) -> Iterator[psycopg.Connection[Any]]:
        with server.connect(dbname if dbname == "postgres" else only) as conn:
            yield conn

    return connect


def db_problems(server: PgServer, db: str, *, logical: bool = True) -> list[str]:
    with server.connect(db) as conn:
        return checks.database_problems(conn, db, logical=logical)


def test_a_clean_database_passes(postgres: PgServer, pg_database: str) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY, total numeric)")
        conn.execute("CREATE TABLE events (a int NOT NULL, b int)")
        conn.execute("CREATE UNIQUE INDEX events_a ON events (a)")
        conn.execute("ALTER TABLE events REPLICA IDENTITY USING INDEX events_a")
        conn.execute("CREATE TABLE audit (x int)")
        conn.execute("ALTER TABLE audit REPLICA IDENTITY FULL")
    assert db_problems(postgres, pg_database) == []


def test_table_without_primary_key_is_refused_for_logical_only(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE TABLE orders (id bigint PRIMARY KEY)")
        conn.execute("CREATE TABLE loose (note text)")
    problems = db_problems(postgres, pg_database)
    assert len(problems) == 1
    assert "public.loose" in problems[0] and "primary key" in problems[0]
    assert "orders" not in problems[0]
    # A physical (same major) deployment replicates blocks, not rows: no such limit.
    assert db_problems(postgres, pg_database, logical=False) == []


def test_unlogged_tables_and_large_objects_are_listed_together(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE UNLOGGED TABLE cache (id int PRIMARY KEY)")
        conn.execute("SELECT lo_from_bytea(0, 'blob')")
        conn.execute("CREATE TABLE loose (note text)")
    problems = db_problems(postgres, pg_database)
    assert len(problems) == 3  # all at once
    text = "\n".join(problems)
    assert "public.cache" in text and "unlogged" in text
    assert "1 large object" in text
    assert "public.loose" in text


def test_logical_slot_is_refused_and_its_lag_measured(postgres: PgServer, pg_database: str) -> None:
    slot = f"s_{pg_database}"
    with postgres.connect(pg_database) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", (slot,))
    try:
        with postgres.connect(pg_database) as conn:
            # Committed and flushed first: pg_current_wal_lsn() is the WAL *write* position, and
            # the test server runs with synchronous_commit off, so uncommitted or unflushed
            # writes could still sit in WAL buffers and measure 0 (seen once in a full run).
            conn.execute("SET synchronous_commit = on")
            conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
            conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        with postgres.connect(pg_database) as conn:
            lags = {s.slot: s for s in checks.slot_lags(conn)}
        assert lags[slot].lag_bytes > 0  # the slot's consumer has not read those writes
        assert lags[slot].database == pg_database
        with postgres.connect() as conn:
            problems = checks.server_problems(conn, logical=True, limits=Limits())
            assert any(slot in p and "logical replication slot" in p for p in problems)
            physical = checks.server_problems(conn, logical=False, limits=Limits())
            assert not any(slot in p for p in physical)
    finally:
        with postgres.connect() as conn:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


def test_open_transaction_is_refused_then_passes_once_closed(
    postgres: PgServer, pg_database: str
) -> None:
    limits = Limits(long_transaction=0, idle_in_transaction=0)
    holder = postgres.connect(pg_database)
    holder.autocommit = False
    try:
        holder.execute("SELECT 1")  # BEGIN ... and then nothing: idle in transaction
        with postgres.connect() as conn:
            problems = checks.server_problems(conn, logical=False, limits=limits)
        pid = holder.info.backend_pid
        assert any("idle in a transaction" in p and str(pid) in p for p in problems)
        holder.rollback()
        with postgres.connect() as conn:
            problems = checks.server_problems(conn, logical=False, limits=limits)
        assert not any(str(pid) in p for p in problems)
    finally:
        holder.close()


def test_preflight_lists_server_and_database_problems_at_once(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE TABLE loose (note text)")
    # The test server runs with the default max_logical_replication_workers (4) and
    # max_worker_processes (8); with many databases on the server the sizing rule may also
    # fire. Whatever else is listed, the table is, in the same answer.
    problems = checks.preflight(factory(postgres, pg_database), logical=True)
    assert any("public.loose" in p for p in problems)
    with postgres.connect(pg_database) as conn:
        conn.execute("ALTER TABLE loose REPLICA IDENTITY FULL")
    assert not any(
        "loose" in p for p in checks.preflight(factory(postgres, pg_database), logical=True)
    )


def test_replication_settings_against_the_number_of_databases(
    postgres: PgServer,
) -> None:
    with postgres.connect() as conn:
        dbs = len(checks.databases(conn))
        slots = conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone()
        problems = checks.server_problems(conn, logical=True, limits=Limits())
    assert slots is not None
    # max_replication_slots is 10 on the test server (tests/postgres.py).
    needs_more = dbs + int(slots[0]) > 10
    assert any(p.startswith("max_replication_slots is 10") for p in problems) == needs_more


def test_writability_is_proven_by_a_write_and_leaves_nothing(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        seen = checks.prove_writable(conn)
        assert seen.state == checks.WRITABLE
        assert seen.default_read_only is False
        left = conn.execute("SELECT to_regclass(%s)", (checks.WRITE_CHECK_TABLE,)).fetchone()
        assert left == (None,)


def test_read_only_default_is_reported_read_only(postgres: PgServer, pg_database: str) -> None:
    with postgres.connect() as conn:
        conn.execute(f'ALTER DATABASE "{pg_database}" SET default_transaction_read_only = on')
    with postgres.connect(pg_database) as conn:
        seen = checks.prove_writable(conn)
    assert seen.state == checks.READ_ONLY
    assert seen.default_read_only is True
    with postgres.connect() as conn:
        conn.execute(f'ALTER DATABASE "{pg_database}" RESET default_transaction_read_only')
    with postgres.connect(pg_database) as conn:
        assert checks.prove_writable(conn).state == checks.WRITABLE


def test_a_failed_write_of_another_kind_is_unknown_not_writable(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE ROLE weak_user LOGIN PASSWORD 'x'")
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    try:
        with postgres.connect(pg_database, user="weak_user", password="x") as conn:
            seen = checks.prove_writable(conn)
        assert seen.state == checks.UNKNOWN
        assert "permission denied" in seen.detail
    finally:
        with postgres.connect(pg_database) as conn:
            conn.execute("DROP ROLE weak_user")


@pytest.mark.parametrize("logical", [True, False])
def test_extension_behind_its_package_is_listed(
    postgres: PgServer, pg_database: str, logical: bool
) -> None:
    # plpgsql is always current; no contrib package is guaranteed on the machine, so a stale
    # extension is made by hand: an extension at an older version than the package's default
    # can only be created when the package ships that version.
    with postgres.connect(pg_database) as conn:
        old = conn.execute(
            "SELECT name, version FROM pg_available_extension_versions v"
            " JOIN pg_available_extensions a USING (name)"
            " WHERE v.version <> a.default_version AND NOT v.superuser IS NULL"
            " AND v.requires IS NULL AND name IN ('hstore', 'pg_trgm', 'citext', 'cube')"
            " ORDER BY name, version LIMIT 1"
        ).fetchone()
        if old is None:
            pytest.skip("no contrib extension with an older version installed on this machine")
        conn.execute(f"CREATE EXTENSION {old[0]} VERSION '{old[1]}'")
    problems = db_problems(postgres, pg_database, logical=logical)
    assert any(old[0] in p and "ALTER EXTENSION" in p for p in problems)


def test_write_fence_ends_sessions_and_leaves_every_database_read_only(
    postgres: PgServer, pg_database: str
) -> None:
    app = postgres.connect(pg_database)  # the application, connected before the fence
    app.execute("CREATE TABLE orders (id int PRIMARY KEY)")
    try:
        with postgres.connect() as conn:
            ended = checks.fence_writes(conn)
        assert app.info.backend_pid in ended
        with pytest.raises(psycopg.OperationalError):
            app.execute("INSERT INTO orders VALUES (1)")  # its session is gone
        with postgres.connect(pg_database) as again:  # and a new one cannot write
            assert checks.prove_writable(again).state == checks.READ_ONLY
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                again.execute("INSERT INTO orders VALUES (2)")
    finally:
        app.close()
        with postgres.connect() as conn:  # the server is shared by this process's tests
            conn.execute("SET default_transaction_read_only = off")
            for name in checks.databases(conn):
                conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')


@contextlib.contextmanager
def app_role(server: PgServer, db: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """A non-master login role that owns a table in `db` (the application); dropped after."""
    import secrets

    name, password = f"app_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with server.connect() as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    with server.connect(db) as conn:
        conn.execute(f"GRANT CREATE, USAGE ON SCHEMA public TO {name}")
        conn.execute(f"CREATE TABLE {name}_orders (id int PRIMARY KEY)")
        conn.execute(f"GRANT ALL ON {name}_orders TO {name}")
    try:
        yield name, {**server.conninfo(db), "user": name, "password": password}
    finally:
        with server.connect() as conn:
            conn.execute("SET default_transaction_read_only = off")  # a fence may be on
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE usename = %s", (name,))  # fmt: skip
            conn.execute(f"ALTER ROLE {name} RESET ALL")
            conn.execute(f'ALTER ROLE {name} IN DATABASE "{db}" RESET ALL')
            for dbname in checks.databases(conn):
                conn.execute(f'ALTER DATABASE "{dbname}" RESET default_transaction_read_only')
        with server.connect(db, options="-c default_transaction_read_only=off") as conn:
            conn.execute(f"DROP OWNED BY {name}")
        with server.connect() as conn:
            conn.execute(f"DROP ROLE {name}")


def test_a_role_level_setting_bypasses_the_fence_and_is_reported(
    postgres: PgServer, pg_database: str
) -> None:
    with app_role(postgres, pg_database) as (role, login):
        with postgres.connect() as conn:
            assert checks.fence_bypasses(conn) == []
            conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = off")
            conn.execute(
                f'ALTER ROLE {role} IN DATABASE "{pg_database}" SET default_transaction_read_only'
                " = false"
            )
            found = checks.fence_bypasses(conn)
            assert found == sorted(
                [
                    f"{role}: default_transaction_read_only=off",
                    f"{role} in {pg_database}: default_transaction_read_only=false",
                ]
            )
            checks.fence_writes(conn)
        # Why rollback refuses on it: that role writes straight through the database fence.
        with psycopg.connect(**login, autocommit=True) as app:
            app.execute(f"INSERT INTO {role}_orders VALUES (1)")  # noqa: S608 - test's own name
        with postgres.connect() as conn:  # a role-level "on" is no bypass
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(f"ALTER ROLE {role} RESET ALL")
            conn.execute(f'ALTER ROLE {role} IN DATABASE "{pg_database}" RESET ALL')
            conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = on")
            assert checks.fence_bypasses(conn) == []


def test_the_fence_stops_a_non_master_roles_default_session_only(
    postgres: PgServer, pg_database: str
) -> None:
    """What rollback's message claims, proven as the application's own role: a default session
    is refused; a session that asks for BEGIN READ WRITE is not (hence: stop the application)."""
    with app_role(postgres, pg_database) as (role, login):
        app = psycopg.connect(**login, autocommit=True)
        with postgres.connect() as conn:
            ended = checks.fence_writes(conn)
            assert app.info.backend_pid in ended
        app.close()
        with psycopg.connect(**login, autocommit=True) as app:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                app.execute(f"INSERT INTO {role}_orders VALUES (1)")  # noqa: S608
            with postgres.connect() as conn:
                assert any(f"({role} on {pg_database})" in s for s in checks.other_sessions(conn))
            with app.transaction():
                app.execute("SET TRANSACTION READ WRITE")
                app.execute(f"INSERT INTO {role}_orders VALUES (2)")  # noqa: S608


def test_session_checks_without_pg_read_all_stats_are_reported_impossible(
    postgres: PgServer, pg_database: str
) -> None:
    limits = Limits(long_transaction=0, idle_in_transaction=0)
    with app_role(postgres, pg_database) as (role, login):
        holder = postgres.connect(pg_database)
        holder.autocommit = False
        try:
            holder.execute("SELECT 1")  # the master's session idles in a transaction
            with psycopg.connect(**login, autocommit=True) as checker:
                problems = checks.server_problems(checker, logical=False, limits=limits)
            assert any(p.startswith("session checks impossible") for p in problems)
            with postgres.connect() as conn:
                conn.execute(f"GRANT pg_read_all_stats TO {role}")
            with psycopg.connect(**login, autocommit=True) as checker:
                problems = checks.server_problems(checker, logical=False, limits=limits)
            assert not any("impossible" in p for p in problems)
            assert any(str(holder.info.backend_pid) in p for p in problems)
        finally:
            holder.close()


def test_an_aborted_idle_transaction_is_counted_once(postgres: PgServer, pg_database: str) -> None:
    limits = Limits(long_transaction=0, idle_in_transaction=0)
    holder = postgres.connect(pg_database)
    holder.autocommit = False
    try:
        with pytest.raises(psycopg.errors.DivisionByZero):
            holder.execute("SELECT 1 / 0")  # idle in transaction (aborted)
        with postgres.connect() as conn:
            problems = checks.server_problems(conn, logical=False, limits=limits)
        pid = str(holder.info.backend_pid)
        mine = [p for p in problems if pid in p]
        assert len(mine) == 1 and "idle in a transaction" in mine[0], problems
    finally:
        holder.close()


def test_writability_is_proven_in_every_database(postgres: PgServer, pg_database: str) -> None:
    other = postgres.create_database()
    try:
        with postgres.connect() as conn:
            conn.execute(f'ALTER DATABASE "{other}" SET default_transaction_read_only = on')

        @contextlib.contextmanager
        def connect(dbname: str) -> Iterator[psycopg.Connection[Any]]:
            with postgres.connect(dbname) as conn:
                yield conn

        seen = checks.prove_writable_everywhere(connect)
        assert seen["postgres"].state == checks.WRITABLE
        assert seen[pg_database].state == checks.WRITABLE
        assert checks.weakest(seen) == (other, seen[other])
        assert seen[other].state == checks.READ_ONLY
    finally:
        with postgres.connect() as conn:
            conn.execute(f'DROP DATABASE "{other}"')
