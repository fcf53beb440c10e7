"""`dbplatform heartbeat`: install the heartbeat in a stack's database and read it.

`install` creates `dbplatform.heartbeat` and `dbplatform.beat()` (idempotent SQL,
dbplatform/dr/sql.py), creates the pg_cron extension and schedules the beat every minute.
pg_cron must be loaded (the program's parameter group sets shared_preload_libraries and
cron.database_name; a reboot applies them): without it the command refuses before changing
anything. `--no-schedule` installs the table and function only (a database whose beat another
scheduler writes). `status` prints the newest beat and its age.

The connection is made by a factory (`connect`, an `Endpoint` in, a psycopg Connection out)
from the stack's master secret: the commands share one connection module with verified TLS.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr.points import human, iso
from dbplatform.dr.sql import (
    INTERVAL,
    JOB,
    SCHEDULE,
    Connect,
    Endpoint,
    default_connect,
    endpoint_for,
    install,
    read_heartbeat,
    resume_heartbeat,
    schedule_sql,
)
from dbplatform.ops import Context, Failed, Refused, Result, error_code
from dbplatform.ops.rds import describe_instance

COMMAND = "heartbeat"
STALE_AFTER = timedelta(minutes=5)
"""`status` fails (exit 1) when the newest beat is older than this"""


def _endpoint(ctx: Context) -> Endpoint:
    """The stack's primary, as its master secret describes it (--sql-host/--sql-port override)."""
    cfg, names, args = ctx.stack.config, ctx.stack.names, ctx.args
    try:
        raw = ctx.client("secretsmanager").get_secret_value(SecretId=names.master_secret)
    except ClientError as exc:
        raise Refused(
            f"cannot read the master secret {names.master_secret} ({error_code(exc)}); the "
            "heartbeat is installed as the master user. Nothing was changed"
        ) from None
    secret = json.loads(raw.get("SecretString") or "{}")
    host = secret.get("host")
    if not host:
        db = describe_instance(ctx.client("rds"), names.primary)
        host = ((db or {}).get("Endpoint") or {}).get("Address")
    if not host and not args.sql_host:
        raise Refused(f"{names.primary} has no endpoint yet. Nothing was changed")
    return endpoint_for(
        args,
        address=str(host or args.sql_host),
        port=int(secret.get("port") or cfg.database.port),
        user=str(secret.get("username") or cfg.database.master_username),
        password=str(secret.get("password") or ""),
        dbname=str(secret.get("dbname") or cfg.database.db_name),
    )


def _connect(ctx: Context) -> Any:
    factory: Connect = getattr(ctx.args, "_connect", None) or default_connect
    endpoint = _endpoint(ctx)
    try:
        return factory(endpoint)
    except Exception as exc:  # psycopg.OperationalError: reach, TLS, authentication
        raise Failed(
            f"could not connect to {endpoint.host}:{endpoint.port}/{endpoint.dbname} "
            f"({type(exc).__name__}); nothing was changed"
        ) from None


def pg_cron_problem(conn: Any) -> str | None:
    """Why pg_cron cannot be used in this database (None: it can).

    `shared_preload_libraries` is readable only by superusers and members of
    pg_read_all_settings (PostgreSQL docs, "pg_read_all_settings"; the GUC is
    GUC_SUPERUSER_ONLY), so it is the last resort: pg_cron created in this database
    (pg_extension) or its `cron` schema prove the library is loaded."""
    import psycopg.errors

    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_cron'")
        available = cur.fetchone() is not None
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')"
            " OR to_regnamespace('cron') IS NOT NULL"
        )
        created = bool((cur.fetchone() or [False])[0])
        cur.execute("SELECT current_setting('cron.database_name', true), current_database()")
        names = cur.fetchone()
    conn.rollback()
    if not available:
        return "the pg_cron extension is not available on this server"
    if not created:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT current_setting('shared_preload_libraries')")
                row = cur.fetchone()
        except psycopg.errors.InsufficientPrivilege:
            conn.rollback()
            return (
                "pg_cron is not created in this database and this user may not read "
                "shared_preload_libraries (needs pg_read_all_settings): run as the master user, "
                "or GRANT pg_read_all_settings to it"
            )
        conn.rollback()
        if "pg_cron" not in [p.strip() for p in str((row or [""])[0] or "").split(",")]:
            return (
                "pg_cron is not in shared_preload_libraries (the program's parameter group sets "
                "it; reboot the instance to apply it)"
            )
    if names and names[0] and names[0] != names[1]:
        return (
            f"cron.database_name is {names[0]}, not this database ({names[1]}); the program's "
            "parameter group sets it to database.dbName"
        )
    return None


def install_op(ctx: Context) -> Result:
    """The `install` operation."""
    source = ctx.stack.name
    conn = _connect(ctx)
    try:
        schedule = not ctx.args.no_schedule
        if schedule:
            problem = pg_cron_problem(conn)
            if problem:
                raise Refused(
                    f"cannot schedule the heartbeat: {problem}. Nothing was changed; pass "
                    "--no-schedule to install the table and function only"
                )
        if ctx.dry_run:
            return Result(
                f"dry run: would install {JOB} (table, function"
                + (f", pg_cron job every minute '{SCHEDULE}'" if schedule else "")
                + f") in {ctx.stack.names.primary}",
                data={"schedule": schedule},
            )
        ran = install(conn, source)
        if schedule:
            with conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
                cur.execute(*schedule_sql(source))
            resume_heartbeat(conn)  # a copy's job a restore check or pitr paused
            conn.commit()
        beat = read_heartbeat(conn, source)
    finally:
        conn.close()
    return Result(
        f"heartbeat installed in {ctx.stack.names.primary}: "
        + (f"pg_cron job {JOB} beats every minute" if schedule else "no schedule (--no-schedule)")
        + f"; first beat {beat.describe()}",
        data={"statements": ran, "scheduled": schedule, "heartbeat": beat.describe()},
    )


def status_op(ctx: Context) -> Result:
    """The `status` operation (read-only)."""
    conn = _connect(ctx)
    try:
        beat = read_heartbeat(conn, ctx.stack.name)
    finally:
        conn.close()
    now = ctx.clock.now()
    age = None if beat.at is None else now - beat.at
    data = {
        "heartbeat": iso(beat.at),
        "age_seconds": None if age is None else int(age.total_seconds()),
        "interval_seconds": int(INTERVAL.total_seconds()),
    }
    if age is None:
        raise Failed(f"no heartbeat in {ctx.stack.names.primary}: {beat.why}", data=data)
    line = f"newest heartbeat of {ctx.stack.name}: {beat.describe()} ({human(age)} ago)"
    if age > STALE_AFTER:
        raise Failed(f"{line}: STALE (pg_cron job {JOB} not running?)", data=data)
    return Result(line, data=data)
