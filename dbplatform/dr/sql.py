"""What a restore proves about the data, read with SQL (psycopg 3): the heartbeat that measures
the RPO from inside the database, and the committed verification queries.

The heartbeat is one row per source in `dbplatform.heartbeat`, set to `now()` every minute by
`pg_cron` (RDS supports it: `shared_preload_libraries` holds `pg_cron`, its jobs run in the
database named by `cron.database_name`; AWS RDS User Guide, "Scheduling maintenance with the
PostgreSQL pg_cron extension"). A restore holds the heartbeat as of its data: the newest beat in
a restored database says, to within one interval, up to when the data really reaches, whatever
a snapshot's metadata claims.

Nothing here opens a connection: callers pass a psycopg `Connection` (or a factory making one),
so the commands connect through the project's connection module (verified TLS) and the tests
through the suite's PostgreSQL server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from dbplatform.dr.verify import Check

SCHEMA = "dbplatform"
TABLE = f"{SCHEMA}.heartbeat"
JOB = "dbplatform-heartbeat"
INTERVAL = timedelta(minutes=1)
"""how often pg_cron beats (the schedule below)"""
SCHEDULE = "* * * * *"
DEFAULT_QUERIES = "restore-checks.yaml"
"""the committed verification file, at the project root"""

# Idempotent: every statement can run again on an installed database (a re-install, a restore,
# an install of the earlier one-row-per-source table, which the ALTERs bring up to date).
# One row per (source, server start): a restored copy's postmaster starts after its data time,
# so the beats its own pg_cron writes land in a row of their own and never overwrite the last
# beat the source wrote (see `read_heartbeat`).
INSTALL_SQL: tuple[str, ...] = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        source text NOT NULL,
        beat_at timestamptz NOT NULL,
        beats bigint NOT NULL DEFAULT 1
    )""",
    f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS server_started timestamptz NOT NULL "
    "DEFAULT '-infinity'",
    f"ALTER TABLE {TABLE} DROP CONSTRAINT IF EXISTS heartbeat_pkey",
    f"CREATE UNIQUE INDEX IF NOT EXISTS heartbeat_source_server ON {TABLE} "
    "(source, server_started)",
    """CREATE OR REPLACE FUNCTION dbplatform.beat(p_source text)
    RETURNS timestamptz LANGUAGE sql AS $$
        INSERT INTO dbplatform.heartbeat AS h (source, beat_at, server_started)
        VALUES (p_source, now(), pg_postmaster_start_time())
        ON CONFLICT (source, server_started)
        DO UPDATE SET beat_at = excluded.beat_at, beats = h.beats + 1
        RETURNING beat_at
    $$""",
    f"COMMENT ON TABLE {TABLE} IS 'written every minute by pg_cron (job {JOB}); "
    "read after a restore to measure the RPO from the data (dbplatform heartbeat)'",
)


def schedule_sql(source: str) -> tuple[str, tuple[Any, ...]]:
    """The pg_cron call that schedules the beat, run in the `cron.database_name` database (the
    program sets it to the stack's database, where the table lives). A named job is replaced,
    not duplicated (pg_cron >= 1.3 `cron.schedule(job_name, schedule, command)`), so re-running
    it is idempotent."""
    return (
        "SELECT cron.schedule(%s, %s, %s)",
        (JOB, SCHEDULE, f"SELECT {SCHEMA}.beat({_literal(source)})"),
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def install(conn: Any, source: str) -> list[str]:
    """Create the heartbeat table and function (idempotent) and write a first beat; returns what
    it ran. Commits."""
    done = []
    with conn.cursor() as cur:
        for statement in INSTALL_SQL:
            cur.execute(statement)
            done.append(statement.split("\n")[0].strip())
        cur.execute(f"SELECT {SCHEMA}.beat(%s)", (source,))
    conn.commit()
    return done


def has_pg_cron(conn: Any) -> bool:
    """Is the pg_cron extension created in this database?"""
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_cron'")
        return cur.fetchone() is not None


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    """The newest committed beat in a database, or why there is none."""

    at: datetime | None
    """the newest beat (UTC); None when the table is missing or empty"""
    why: str = ""
    """when `at` is None: what is missing"""
    copy_beats: int = 0
    """beats written by a server started after the data time (a restored copy's scheduler)"""

    def rpo(self, reference: datetime) -> timedelta | None:
        """Data lost relative to `reference`, measured from the data (to within INTERVAL).
        Never negative: a beat after the reference is not "no loss" but data (or a
        scheduler) past it, which `data_checks` fails; None then."""
        if self.at is None or self.at > reference + INTERVAL:
            return None
        return max(reference - self.at, timedelta(0))

    def describe(self) -> str:
        return (
            self.why if self.at is None else self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )


def read_heartbeat(
    conn: Any, source: str | None = None, *, data_time: datetime | None = None
) -> Heartbeat:
    """The newest committed beat (of `source`, or of any source). Read-only.

    With `data_time` (a restored copy's): only beats of a server that started at or before it.
    The copy's own server starts after its data time, so beats its pg_cron wrote are left out
    (`copy_beats` counts them), whatever the clocks say about the beats themselves."""
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,))
        row = cur.fetchone()
        if not row or not row[0]:
            conn.rollback()
            return Heartbeat(
                at=None, why=f"no {TABLE} table: install it with `dbplatform heartbeat install`"
            )
        cur.execute(
            "SELECT max(beat_at) FILTER (WHERE server_started <= %s),"
            " coalesce(sum(beats) FILTER (WHERE server_started > %s), 0)"
            " FROM dbplatform.heartbeat WHERE %s::text IS NULL OR source = %s",
            (data_time or _FAR, data_time or _FAR, source, source),
        )
        row = cur.fetchone()
    conn.rollback()  # end the read-only transaction psycopg opened
    at = row[0] if row else None
    copy = int(row[1]) if row else 0
    if at is None:
        return Heartbeat(
            at=None,
            why=f"{TABLE} holds no beat"
            + (f" of {source}" if source else "")
            + (" written before the data time" if data_time else ""),
            copy_beats=copy,
        )
    return Heartbeat(at=at.astimezone(UTC), copy_beats=copy)


_FAR = datetime(9999, 1, 1, tzinfo=UTC)


def _set_active(cur: Any, active: bool) -> list[int]:
    """Set the heartbeat job's `active` flag; the job ids changed. `cron.alter_job(job_id,
    active => ...)` is pg_cron's API (pg_cron >= 1.4, README "cron.alter_job"); where it is
    missing, the `cron.job` row is updated directly."""
    cur.execute("SELECT to_regclass('cron.job') IS NOT NULL")
    row = cur.fetchone()
    if not row or not row[0]:
        return []
    cur.execute(
        "SELECT to_regprocedure('cron.alter_job(bigint,text,text,text,text,boolean)') IS NOT NULL"
    )
    alter = bool((cur.fetchone() or [False])[0])
    cur.execute("SELECT jobid FROM cron.job WHERE jobname = %s AND active <> %s", (JOB, active))
    jobs = [int(r[0]) for r in cur.fetchall()]
    for job in jobs:
        if alter:
            cur.execute("SELECT cron.alter_job(%s, active => %s)", (job, active))
        else:
            cur.execute("UPDATE cron.job SET active = %s WHERE jobid = %s", (active, job))
    return jobs


def resume_heartbeat(conn: Any) -> list[int]:
    """Re-activate a paused heartbeat job (install, after a cut-over); the caller commits."""
    with conn.cursor() as cur:
        return _set_active(cur, True)


def pause_heartbeat(conn: Any) -> str:
    """Stop the heartbeat job in a restored copy (its parameter group preloads pg_cron and
    `cron.job` came with the data, so it beats on as if it were the source). Returns what was
    done, for the report; commits."""
    with conn.cursor() as cur:
        jobs = _set_active(cur, False)
    conn.commit()
    if not jobs:
        return f"no active {JOB} job in the copy"
    return f"paused {JOB} in the copy (cron.job {', '.join(map(str, jobs))})"


# ---------------------------------------------------------------------------------------------
# verification queries
# ---------------------------------------------------------------------------------------------


class QueryFileError(ValueError):
    """The queries file is unreadable or malformed; the message names the key and the rule."""


@dataclass(frozen=True, kw_only=True)
class Query:
    """A query run against restored data: it must return one whole number, >= `min`."""

    name: str
    sql: str
    min: int = 0


@dataclass(frozen=True, kw_only=True)
class Queries:
    """The committed verification: heartbeat freshness and key tables' row counts."""

    heartbeat_max_lag: timedelta | None
    """the newest beat may be this much older than the restored data time; None: not checked"""
    queries: tuple[Query, ...]


def load_queries(path: Path) -> Queries:
    """`heartbeat: {maxLagMinutes: N}` (or `heartbeat: null`) and `tables: [{name, min}]` and
    `queries: [{name, sql, min}]`, in YAML."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise QueryFileError(f"--queries {path}: cannot read it ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise QueryFileError(f"--queries {path}: {exc}") from None
    if not isinstance(data, dict):
        raise QueryFileError(f"--queries {path}: expected a mapping (heartbeat, tables, queries)")
    unknown = set(data) - {"heartbeat", "tables", "queries"}
    if unknown:
        raise QueryFileError(
            f"--queries {path}: unknown key(s) {', '.join(sorted(unknown))}; "
            "allowed: heartbeat, tables, queries"
        )
    lag: timedelta | None = None
    hb = data.get("heartbeat", {"maxLagMinutes": 5})
    if hb is not None:
        minutes = hb.get("maxLagMinutes") if isinstance(hb, dict) else None
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
            raise QueryFileError(
                f"--queries {path}: heartbeat.maxLagMinutes {minutes!r} must be a whole number "
                ">= 1 (the heartbeat beats every minute)"
            )
        lag = timedelta(minutes=minutes)
    out: list[Query] = []
    for i, item in enumerate(data.get("tables") or []):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not _is_table_name(name):
            raise QueryFileError(
                f"--queries {path}: tables[{i}].name {name!r} must be a table name "
                "(schema.table, letters, digits, _)"
            )
        out.append(
            Query(
                name=f"rows in {name}",
                sql=f"SELECT count(*) FROM {name}",  # noqa: S608 - an identifier (checked above)
                min=_minimum(path, f"tables[{i}].min", item.get("min", 1)),
            )
        )
    for i, item in enumerate(data.get("queries") or []):
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
            raise QueryFileError(f"--queries {path}: queries[{i}].sql must be a string")
        out.append(
            Query(
                name=str(item.get("name") or item["sql"]),
                sql=item["sql"],
                min=_minimum(path, f"queries[{i}].min", item.get("min", 0)),
            )
        )
    return Queries(heartbeat_max_lag=lag, queries=tuple(out))


def _is_table_name(name: str) -> bool:
    parts = name.split(".")
    return 1 <= len(parts) <= 2 and all(
        p and (p[0].isalpha() or p[0] == "_") and all(c.isalnum() or c == "_" for c in p)
        for p in parts
    )


def _minimum(path: Path, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise QueryFileError(f"--queries {path}: {key} {value!r} must be a whole number >= 0")
    return value


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """Where and as whom to connect; the password is never printed or recorded."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    server_name: str | None = None
    """The RDS endpoint the certificate names when `host` is a tunnel (--sql-host)."""
    ca_bundle: str | None = None


Connect = Callable[[Endpoint], Any]
"""Opens a psycopg Connection to an endpoint (the project's connection module, TLS verified)."""


def endpoint_for(
    args: Any, *, address: str, port: int, user: str, password: str, dbname: str
) -> Endpoint:
    """Where to connect: the RDS endpoint, or the --sql-host/--sql-port tunnel to it (the
    certificate is still checked against the endpoint's name)."""
    tunnel = getattr(args, "sql_host", None)
    return Endpoint(
        host=str(tunnel or address),
        port=int(getattr(args, "sql_port", None) or port),
        user=user,
        password=password,
        dbname=dbname,
        server_name=str(address) if tunnel else None,
        ca_bundle=getattr(args, "sql_ca_bundle", None),
    )


def sql_ready(ctx: Any) -> None:
    """Operation.validate: before any AWS call, the RDS CA bundle the SQL checks need (exit 2
    naming what to download), unless they are skipped or the caller brings its own connection
    (and with it its own TLS)."""
    from dbplatform.database.connect import ca_bundle

    args = ctx.args
    if not getattr(args, "skip_sql_checks", False) and getattr(args, "_connect", None) is None:
        args.sql_ca_bundle = ca_bundle(args)


def default_connect(endpoint: Endpoint) -> Any:
    """The project's connection (dbplatform.database): TLS verify-full against the RDS CA
    bundle, a tunnel checked against the endpoint's name, Refused (exit 3) with what to do when
    the database cannot be reached. Not autocommit: the checks run in a read-only transaction."""
    from dbplatform.database import SqlTarget, connect

    target = SqlTarget(
        server_name=endpoint.server_name or endpoint.host,
        port=endpoint.port,
        dbname=endpoint.dbname,
        user=endpoint.user,
        password=endpoint.password,
        tunnel_host=endpoint.host if endpoint.server_name else None,
        ca_bundle=endpoint.ca_bundle,
    )
    return connect(target, autocommit=False)


def heartbeat_check(conn: Any, max_lag: timedelta, *, data_time: datetime | None) -> Check:
    """The newest beat the source wrote must lie within [data time - max_lag, data time + one
    interval]. Later means the data reaches past the data time the restore claims (or a
    scheduler kept beating in a server that started before it): it fails, never "RPO met"."""
    name = "heartbeat fresh"
    if data_time is None:
        return Check(name=name, ok=False, expected="a data time", actual="no data time")
    beat = read_heartbeat(conn, data_time=data_time)
    copy = f"; {beat.copy_beats} beat(s) by the copy's own scheduler left out" * bool(
        beat.copy_beats
    )
    if beat.at is None:
        return Check(
            name=name, ok=False, expected="a beat within the restored data", actual=beat.why + copy
        )
    lag = data_time - beat.at
    expected = f"data time - {_minutes(max_lag)} <= newest beat <= data time + {_minutes(INTERVAL)}"
    if beat.at > data_time + INTERVAL:
        return Check(
            name=name,
            ok=False,
            expected=expected,
            actual=f"newest beat {beat.describe()}, {int(-lag.total_seconds())}s AFTER the data "
            "time: the data reaches past it, or a scheduler ran in the copy" + copy,
        )
    return Check(
        name=name,
        ok=lag <= max_lag,
        expected=expected,
        actual=f"newest beat {beat.describe()}, {max(int(lag.total_seconds()), 0)}s before" + copy,
    )


def _minutes(delta: timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


def data_checks(conn: Any, queries: Queries, *, data_time: datetime | None) -> list[Check]:
    """Run the verification on a restored database, read-only. A check records pass/fail and a
    number only, never row contents (the results go to CI artifacts and the audit record)."""
    checks: list[Check] = []
    conn.read_only = True
    if queries.heartbeat_max_lag is not None:
        checks.append(heartbeat_check(conn, queries.heartbeat_max_lag, data_time=data_time))
    for q in queries.queries:
        expected = f">= {q.min}"
        try:
            with conn.cursor() as cur:
                cur.execute(q.sql)
                row = cur.fetchone()
            conn.rollback()
        except Exception as exc:  # psycopg.Error and its many subclasses
            conn.rollback()
            checks.append(
                Check(
                    name=f"sql: {q.name}",
                    ok=False,
                    expected=expected,
                    actual=f"error: {type(exc).__name__}",
                )
            )
            continue
        value = row[0] if row else None
        if isinstance(value, bool) or not isinstance(value, int):
            checks.append(
                Check(
                    name=f"sql: {q.name}",
                    ok=False,
                    expected=expected,
                    actual="not one whole number (result not recorded)",
                )
            )
            continue
        checks.append(
            Check(name=f"sql: {q.name}", ok=value >= q.min, expected=expected, actual=str(value))
        )
    return checks
