"""The daily restore test: restore the stack's newest recovery point into a temporary instance
placed with the stack's own groups, verify it, always delete it, and publish the result.

Usage: dbplatform restore-check --stack S [--queries FILE | --skip-sql-checks]
The data is verified with SQL by default (restore-checks.yaml: heartbeat freshness, key tables'
row counts); `--skip-sql-checks` checks metadata only and says so, and publishes
RestoreDataVerified 0.
Exit codes: 0 restored and verified; 1 restore or verification failed (the temporary instance
is deleted all the same); 2 bad usage/config; 3 refused (no recovery point, the stack's groups
missing: nothing created); 130 interrupted (the temporary instance is deleted before exiting).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr import metrics
from dbplatform.dr.discover import local_points
from dbplatform.dr.points import Choice, Kind, NoRestorePoint, choose, human, iso
from dbplatform.dr.restore import (
    FAILED_RESTORE_NOTE,
    TAG_PURPOSE,
    TAG_RUN,
    TAG_SOURCE,
    Call,
    Deadline,
    Placement,
    backup_role_arn,
    delete_command,
    delete_run_instance,
    final_snapshot_name,
    restore_call,
    set_master_password,
    stack_groups,
    start,
    tag_list,
    wait_available,
    wait_restore_job,
)
from dbplatform.dr.sql import (
    DEFAULT_QUERIES,
    Connect,
    Queries,
    QueryFileError,
    data_checks,
    default_connect,
    endpoint_for,
    load_queries,
    pause_heartbeat,
    read_heartbeat,
)
from dbplatform.dr.verify import Check, Expected, error_text, instance_checks
from dbplatform.ops import (
    BadUsage,
    Context,
    Failed,
    Refused,
    Result,
    error_code,
)

COMMAND = "restore_check"
"""The audit record's and the lock's name of the command (operators type `restore-check`)."""
DEFAULT_TIMEOUT_MINUTES = 240
INTERRUPT = (
    "A restore check has nothing to resume: a re-run starts a new one. The deletion of its "
    "temporary instance, if it had one, was asked for before exiting (a warning above says "
    "so when it could not be); `dbplatform dr janitor` removes what an interrupted check left"
)
"""What the operator reads after Ctrl-C (Operation.on_interrupt)."""
CLEANUP_RESERVE_SECONDS = 15 * 60.0
"""of --timeout, kept for deleting the temporary instance (retried while it is being created)"""


def cleanup(
    ctx: Context, identifier: str, region: str, *, untagged_ok: bool, retry_seconds: float
) -> str:
    """Delete this run's temporary instance (the call is sent; its deletion is not waited
    for); says how to finish by hand if it cannot."""
    # unprotected by construction (its Placement), so no step turns protection off
    by_hand = (
        delete_command(
            identifier,
            region,
            final_snapshot=final_snapshot_name(identifier, ctx.run_id),
            protected=False,
        )
        + f"; {FAILED_RESTORE_NOTE}"
    )
    with ctx.out.phase(f"delete temporary instance {identifier}"):
        try:
            return delete_run_instance(
                ctx, region, identifier, untagged_ok=untagged_ok, retry_seconds=retry_seconds
            )
        except KeyboardInterrupt:
            ctx.out.warn(
                f"deletion of the temporary instance {identifier} was interrupted; delete it "
                f"with: {by_hand}"
            )
            raise
        except ClientError as exc:
            raise Failed(
                f"could not delete the temporary instance {identifier} ({error_code(exc)}); "
                f"delete it with: {by_hand}",
                data={"temporary_instance": identifier, "cleanup": "failed"},
            ) from exc


def _sql(
    ctx: Context,
    *,
    db: dict[str, Any],
    queries: Queries,
    choice: Choice,
    budget: Deadline,
) -> tuple[list[Check], dict[str, Any]]:
    """Connect to the temporary instance and verify its data; the RPO measured from the data."""
    import secrets

    args = ctx.args
    password = secrets.token_urlsafe(24)
    # The restored master password is whatever it was at backup time; a fresh one set on the
    # temporary instance (never stored) lets the check connect without reading any secret.
    db = set_master_password(
        ctx, ctx.stack.region, db["DBInstanceIdentifier"], password, timeout=budget.left()
    )
    endpoint = db.get("Endpoint") or {}
    target = endpoint_for(
        args,
        address=str(endpoint.get("Address")),
        port=int(endpoint.get("Port") or ctx.stack.config.database.port),
        user=str(db.get("MasterUsername") or ctx.stack.config.database.master_username),
        password=password,
        dbname=str(db.get("DBName") or ctx.stack.config.database.db_name),
    )
    connect: Connect = getattr(args, "_connect", None) or default_connect
    try:
        conn = connect(target)
    except Exception as exc:  # psycopg.OperationalError and the like: no reach, TLS, auth
        check = Check(
            name="sql: connect",
            ok=False,
            expected=f"a verified TLS connection to {target.host}:{target.port}",
            actual=error_text(exc),
        )
        return [check], {"heartbeat": None, "rpo_from_data_seconds": None}
    try:
        # the copy's pg_cron would beat on as the source: stopped before anything is read
        paused = pause_heartbeat(conn)
        checks = data_checks(conn, queries, data_time=choice.data_time)
        beat = read_heartbeat(conn, data_time=choice.data_time)
    finally:
        conn.close()
    rpo = beat.rpo(choice.reference)
    return checks, {
        "heartbeat_job": paused,
        "heartbeat": beat.describe(),
        "rpo_from_data_seconds": None if rpo is None else int(rpo.total_seconds()),
    }


def failed_checks(bad: list[Check]) -> str:
    """What failed verification, as the result line says it."""
    return "; ".join(f"{c.name}: expected {c.expected}, got {c.actual}" for c in bad)


def _plan(ctx: Context, choice: Choice, call: Call, identifier: str) -> Result:
    region = ctx.stack.region
    start(ctx, call, region, identifier)
    ctx.mutate(
        ctx.client("rds"),
        "delete_db_instance",
        {
            "DBInstanceIdentifier": identifier,
            "SkipFinalSnapshot": True,
            "DeleteAutomatedBackups": True,
        },
    )
    ctx.mutate(
        ctx.client("cloudwatch"),
        "put_metric_data",
        metrics.metric_data(
            ctx.stack.name,
            success=True,
            duration_seconds=0.0,
            at=ctx.clock.now(),
            data_verified=not ctx.args.skip_sql_checks,
        ),
    )
    return Result(
        f"dry run: would restore {choice.point.kind} {choice.point.id} (data as of "
        f"{iso(choice.data_time)}) into {identifier}, verify it, delete it and publish "
        f"{metrics.NAMESPACE}",
        data={"restore": choice.to_json(_objective(ctx)), "temporary_instance": identifier},
    )


def _objective(ctx: Context) -> timedelta:
    return timedelta(minutes=ctx.stack.config.dr.rpo_minutes)


def queries_of(ctx: Context) -> Queries | None:
    """The data checks (`--queries`, else the project's file), None with --skip-sql-checks;
    a file that cannot be read or parsed is BadUsage (exit 2). Checked by the command's
    validation, before any AWS call, and read again by the check itself."""
    if ctx.args.skip_sql_checks:
        return None
    try:
        return load_queries(ctx.args.queries or ctx.stack.root / DEFAULT_QUERIES)
    except QueryFileError as exc:
        raise BadUsage(str(exc)) from None


def check(ctx: Context) -> Result:
    """The `restore-check` operation."""
    args = ctx.args
    cfg, names, region = ctx.stack.config, ctx.stack.names, ctx.stack.region
    queries = queries_of(ctx)
    rds = ctx.client("rds")

    with ctx.out.phase("find recovery points"):
        found, primary = local_points(
            rds=rds,
            backup=ctx.client("backup"),
            names=names,
            region=region,
            major=cfg.engine_major,
        )
        for note in found.notes:
            ctx.out.info(f"note: {note}")
        try:
            choice = choose(
                found.points,
                now=ctx.clock.now(),
                max_gap=timedelta(0),
                region=region,
                stack=ctx.stack.name,
                home=True,  # the check restores in the stack's own region
            )
        except NoRestorePoint as exc:
            raise Refused(f"{exc}; nothing was created", data={"notes": found.notes}) from None

    groups = stack_groups(ctx, region, "the temporary instance", advice="; deploy the stack first")

    identifier = names.restore_check_instance(ctx.run_id.lower())
    placement = Placement(
        identifier=identifier,
        groups=groups,
        instance_class=args.instance_class or cfg.database.instance_class,
        multi_az=False,
        port=cfg.database.port,
        deletion_protection=False,
        iam_auth=cfg.database.iam_auth,
        tags={
            **cfg.base_tags(),
            "Name": identifier,
            TAG_RUN: ctx.run_id,
            TAG_PURPOSE: "restore-check",
            TAG_SOURCE: cfg.stack,
        },
    )
    role = args.backup_role_arn
    if role is None and choice.point.kind is Kind.RECOVERY_POINT:
        role = backup_role_arn(ctx)
    call = restore_call(choice, placement, backup_role_arn=role)
    ctx.out.info(
        f"restoring {choice.point.kind} {choice.point.id} (data as of {iso(choice.data_time)}, "
        f"{human(choice.rpo)} old) into {identifier}"
    )
    if ctx.dry_run:
        return _plan(ctx, choice, call, identifier)

    expected = Expected(
        engine_version=choice.point.engine_version
        or (primary or {}).get("EngineVersion")
        or cfg.database.engine_version,
        encrypted=cfg.database.storage_encrypted,
        min_storage_gib=choice.point.allocated_storage or cfg.database.allocated_storage,
        subnet_group=groups.subnet_group,
        security_group_ids=groups.security_group_ids,
        parameter_group=groups.parameter_group,
    )
    checks: list[Check] = []
    data_checked: list[Check] = []
    measured: dict[str, Any] = {"heartbeat": None, "rpo_from_data_seconds": None}
    failure: str | None = None
    restore_seconds: float | None = None
    via_backup = call.service == "backup"
    t0 = ctx.clock.monotonic()
    budget = Deadline(
        float(args.timeout) * 60, ctx.clock.monotonic, reserve=CLEANUP_RESERVE_SECONDS
    )
    interrupted = False
    try:
        with ctx.out.phase(f"restore into {identifier}"):
            response = start(ctx, call, region, identifier)
            if via_backup:
                arn = wait_restore_job(ctx, region, response["RestoreJobId"], timeout=budget.left())
                ctx.mutate(
                    rds,
                    "add_tags_to_resource",
                    {"ResourceName": arn, "Tags": tag_list(placement.tags)},
                )
        with ctx.out.phase(f"wait until {identifier} is available"):
            db = wait_available(ctx, region, identifier, timeout=budget.left())
        restore_seconds = ctx.clock.monotonic() - t0
        with ctx.out.phase("verify"):
            checks = instance_checks(db, expected)
            if queries is not None:
                data_checked, measured = _sql(
                    ctx, db=db, queries=queries, choice=choice, budget=budget
                )
                checks += data_checked
            if any(not c.ok for c in checks):  # the phase ends FAILED, as the result says
                raise Failed(failed_checks([c for c in checks if not c.ok]))
    except ClientError as exc:
        failure = f"AWS {exc.operation_name} failed: {error_code(exc)}"
    except Failed as exc:
        failure = exc.message
    except KeyboardInterrupt:
        interrupted = True
        ctx.out.warn(f"interrupted: deleting the temporary instance {identifier} first")
        raise
    finally:
        # An AWS Backup restore is tagged only once its job ends: the run-unique name suffices.
        # Interrupted: GitHub kills the process 10 s after its SIGINT, so the delete call is
        # sent once and not retried (the janitor finds what it could not delete).
        cleaned = cleanup(
            ctx,
            identifier,
            region,
            untagged_ok=via_backup,
            retry_seconds=0 if interrupted else budget.cleanup(),
        )

    bad = [c for c in checks if not c.ok]
    ok = failure is None and not bad
    data_verified = ok and bool(data_checked)
    try:
        ctx.mutate(
            ctx.client("cloudwatch"),
            "put_metric_data",
            metrics.metric_data(
                cfg.stack,
                success=ok,
                duration_seconds=restore_seconds,
                at=ctx.clock.now(),
                data_verified=data_verified,
            ),
        )
        published = True
    except ClientError as exc:
        published = False
        ctx.out.warn(f"could not publish {metrics.NAMESPACE} ({error_code(exc)})")
    data = {
        "ok": ok,
        "restore": choice.to_json(_objective(ctx)),
        "temporary_instance": identifier,
        "restore_seconds": None if restore_seconds is None else round(restore_seconds, 1),
        "checks": [c.to_json() for c in checks],
        "data_verified": data_verified,
        "verified": "metadata and data" if data_verified else "metadata only",
        "rpo_seconds": int(choice.rpo.total_seconds()),
        **measured,
        "failure": failure,
        "cleanup": cleaned,
        "metric": {"namespace": metrics.NAMESPACE, "published": published},
    }
    if cleaned == "not-ours":
        ctx.out.warn(f"{identifier} exists without this run's tag; it was left alone")
    if not ok:
        reason = failure or failed_checks(bad)
        raise Failed(
            f"restore check of {cfg.stack} FAILED: {reason}. The temporary instance "
            f"{identifier} was {cleaned}",
            data=data,
        )
    took = human(timedelta(seconds=restore_seconds or 0))
    if data_verified:
        rpo_data = measured.get("rpo_from_data_seconds")
        what = (
            f"verified: metadata ({len(checks) - len(data_checked)} checks) and data "
            f"({len(data_checked)} SQL checks); RPO {human(choice.rpo)} by the restore point's "
            f"metadata, "
            + (
                f"{human(timedelta(seconds=rpo_data))} measured from the data (newest heartbeat "
                f"{measured.get('heartbeat')})"
                if rpo_data is not None
                else f"unknown from the data ({measured.get('heartbeat')})"
            )
        )
    else:
        what = (
            f"checked METADATA ONLY ({len(checks)} checks; --skip-sql-checks): the data was "
            f"NOT read, {metrics.DATA_VERIFIED} 0 published"
        )
    return Result(
        f"restore check of {cfg.stack} passed: {choice.point.kind} {choice.point.id} restored "
        f"in {took}, {what}; temporary instance {identifier} {cleaned}",
        data=data,
    )
