"""SRE review F2/F3: after a restore, the copy's own pg_cron beats on (the stack's parameter
group preloads pg_cron and `cron.job` comes with the data). Against the suite's real server:
the copy is `CREATE DATABASE ... TEMPLATE` of the source, and the beats of a server that started
after the data time are written as `dbplatform.beat()` would write them there (this server's
postmaster started before the test, so a real restart cannot be had here). pg_cron is not
installed on the test server: its `cron.job` table is a table of the same shape in a `cron`
schema (pg_cron's columns jobid, jobname, active; pg_cron README "cron.job")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dbplatform.dr.sql import (
    INTERVAL,
    JOB,
    Heartbeat,
    Queries,
    data_checks,
    install,
    pause_heartbeat,
    read_heartbeat,
    resume_heartbeat,
)
from tests.postgres import PgServer

CHECK = Queries(heartbeat_max_lag=timedelta(minutes=5), queries=())


def _restore(postgres: PgServer, source: str) -> str:
    """A copy of `source` (the data as of now), as a restore makes it."""
    copy = f"{source}_copy"
    with postgres.connect("postgres") as admin:
        admin.autocommit = True
        admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{source}"')
    return copy


def _copy_beat(conn: object, at: datetime) -> None:
    """A beat by the restored server's scheduler: its postmaster started after the data time."""
    conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO dbplatform.heartbeat (source, beat_at, server_started) "
        "VALUES ('prod', %s, %s)",
        (at, at - timedelta(seconds=30)),
    )
    conn.commit()  # type: ignore[attr-defined]


def test_the_copys_own_beats_never_pass_for_the_source(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as src:
        install(src, "prod")
        src.execute("UPDATE dbplatform.heartbeat SET beat_at = now() - interval '30 seconds'")
        src.commit()
        last = read_heartbeat(src).at
    data_time = datetime.now(UTC)
    copy = _restore(postgres, pg_database)
    with postgres.connect(copy) as restored:
        _copy_beat(restored, data_time + timedelta(minutes=10))
        (check,) = data_checks(restored, CHECK, data_time=data_time)
        beat = read_heartbeat(restored, data_time=data_time)
        # what the copy itself wrote is counted and said, never read as the source's
        assert beat.at == last and beat.copy_beats == 1
        assert check.ok, check
        assert "1 beat(s) by the copy's own scheduler left out" in check.actual
        # stale data the metadata claims is 2 h newer than it is: fails, whatever the copy beat
        stale = data_time + timedelta(hours=2)
        (late,) = data_checks(restored, CHECK, data_time=stale)
        assert not late.ok and "before" in late.actual


def test_a_beat_after_the_data_time_fails_and_is_no_rpo(
    postgres: PgServer, pg_database: str
) -> None:
    """The reviewer's case: the data reaches past the time the restore claims (or a scheduler
    in a server started before it kept beating): never 'fresh', never a negative RPO met."""
    with postgres.connect(pg_database) as conn:
        install(conn, "prod")
        row = conn.execute("SELECT pg_postmaster_start_time()").fetchone()
        assert row is not None
        claimed = row[0] + timedelta(seconds=1)  # the server had started: its beats are read
        conn.execute(
            "UPDATE dbplatform.heartbeat SET beat_at = %s", (claimed + timedelta(minutes=10),)
        )
        conn.commit()
        (check,) = data_checks(conn, CHECK, data_time=claimed)
        assert not check.ok
        assert "AFTER the data time" in check.actual and "scheduler ran in the copy" in check.actual
        assert read_heartbeat(conn).rpo(claimed) is None
    now = datetime.now(UTC)
    assert Heartbeat(at=now + INTERVAL / 2).rpo(now) == timedelta(0)  # clock skew within a beat


def test_the_copys_job_is_paused_and_install_resumes_it(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        assert "no active" in pause_heartbeat(conn)  # no cron schema: nothing to do
        conn.execute("CREATE SCHEMA cron")
        conn.execute(
            "CREATE TABLE cron.job (jobid bigserial PRIMARY KEY, jobname text, "
            "command text, active boolean NOT NULL DEFAULT true)"
        )
        conn.execute(
            "INSERT INTO cron.job (jobname, command) VALUES (%s, 'x'), ('other', 'y')", (JOB,)
        )
        conn.commit()
        said = pause_heartbeat(conn)
        rows = dict(conn.execute("SELECT jobname, active FROM cron.job").fetchall())
        assert rows == {JOB: False, "other": True} and f"paused {JOB}" in said
        assert resume_heartbeat(conn) == [1]
        conn.commit()
        assert conn.execute("SELECT active FROM cron.job WHERE jobid = 1").fetchone() == (True,)


def test_an_earlier_one_row_per_source_table_is_upgraded_in_place(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        conn.execute("CREATE SCHEMA dbplatform")
        conn.execute(
            "CREATE TABLE dbplatform.heartbeat (source text PRIMARY KEY, "
            "beat_at timestamptz NOT NULL, beats bigint NOT NULL DEFAULT 1)"
        )
        conn.execute("INSERT INTO dbplatform.heartbeat VALUES ('prod', now() - interval '1 h', 7)")
        conn.commit()
        install(conn, "prod")
        install(conn, "prod")
        rows = conn.execute(
            "SELECT beats, server_started = pg_postmaster_start_time() "
            "FROM dbplatform.heartbeat ORDER BY beats"
        ).fetchall()
    # the old row kept (server unknown: -infinity, i.e. before any data time); new beats beside
    assert rows == [(2, True), (7, False)]
