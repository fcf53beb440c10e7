"""In-region point-in-time restore (`dbplatform dr pitr`): the "bad migration at 03:10" case.

Restores the stack's database as of T into a NEW instance beside the primary, with the stack's
own subnet group, security group and parameter group. RDS uses the defaults for any of them not
passed (botocore's RDS model, RestoreDBInstanceToPointInTimeMessage: DBSubnetGroupName,
VpcSecurityGroupIds "Default: The default EC2 VPC security group for the DB subnet group's
VPC", DBParameterGroupName "If you do not specify a value ... the default DBParameterGroup for
the specified DB engine is used"), so all three are passed. Then it sets the copy's master
password to the stack's current master secret (the copy otherwise keeps the password of time
T, which the secret may no longer hold), verifies the instance and the data, measures the RPO
from the heartbeat and prints the cut-over steps. It never modifies the running primary, and
never restores past T (refused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr.discover import local_points
from dbplatform.dr.points import BadRequest, NoRestorePoint, choose, human, iso, parse_time
from dbplatform.dr.restore import (
    TAG_PURPOSE,
    TAG_RUN,
    TAG_SOURCE,
    Deadline,
    Placement,
    restore_call,
    set_master_password,
    stack_groups,
    start,
    wait_available,
)
from dbplatform.dr.sql import (
    DEFAULT_QUERIES,
    Connect,
    Endpoint,
    QueryFileError,
    data_checks,
    default_connect,
    endpoint_for,
    load_queries,
    pause_heartbeat,
    read_heartbeat,
)
from dbplatform.dr.verify import Check, Expected, error_text, instance_checks
from dbplatform.ops import BadUsage, Context, Failed, Refused, Result, error_code
from dbplatform.ops.rds import describe_instance
from infra.config import StackConfig
from infra.naming import PROJECT, Names, rds_identifier

TAG_DATA_TIME = "dbplatform:data-time"
TAG_RESTORED_FROM = "dbplatform:restored-from"
PURPOSE = "pitr"
DEFAULT_TIMEOUT_MINUTES = 240
INTERRUPT = (
    "A pitr run does not resume: a restore it already asked for goes on in AWS, and a re-run "
    "refuses while that copy exists. Check the copy, or delete it (it is billed like the "
    "primary) or name a new one with --as NEW_ID and re-run"
)
"""What the operator reads after Ctrl-C (Operation.on_interrupt)."""


def default_identifier(prefix: str, when: Any) -> str:
    """`<prefix>-pitr-<yyyymmddhhmm>`: the copy's name says which time it holds."""
    return rds_identifier(prefix, "pitr", f"{when:%Y%m%d%H%M}")


@dataclass(frozen=True)
class Replica:
    """A read replica of the stack's primary, as the program declares it."""

    identifier: str
    """its DB instance identifier"""
    region: str
    """where it runs (the cross-region replica: the DR region)"""
    urn: str
    """its Pulumi URN, for `--target-replace`"""


# The program's component tree above a replica (infra/environment.py: Environment, then
# Replicas; infra/components/replicas.py names each `replicas-<name>`, the DR one `replicas-dr`).
# A URN's type is the parent's qualified type, `$`, the resource's type (pulumi/pulumi
# sdk/go/common/resource/urn.go NewURN, called with the parent URN's QualifiedType); the test
# `test_pitr_names_each_replica_by_the_urn_the_program_gives_it` checks it against the program.
_REPLICA_TYPE = "dbplatform:index:Environment$dbplatform:index:Replicas$aws:rds/instance:Instance"


def replicas_of(cfg: StackConfig) -> list[Replica]:
    """Every read replica the program keeps of the stack's primary: the same-region ones in
    config order, then the cross-region one (`dr.crossRegionReplica` with a `dr.region`)."""
    names = Names(cfg.stack)
    urn = f"urn:pulumi:{cfg.stack}::{PROJECT}::{_REPLICA_TYPE}::replicas-"
    out = [Replica(names.replica(r.name), cfg.region, urn + r.name) for r in cfg.replicas]
    if cfg.dr.region and cfg.dr.cross_region_replica:
        out.append(Replica(names.cross_region_replica, cfg.dr.region, urn + "dr"))
    return out


def replica_warning(primary: str, replicas: list[Replica], when: str) -> str:
    """What the readers of the replicas get between the rename and their re-creation: "All read
    replicas associated with a DB instance remain associated with that instance after it is
    renamed" (AWS RDS User Guide, "Renaming a DB instance")."""
    idents = ", ".join(f"{r.identifier} ({r.region})" for r in replicas)
    return (
        f"the read replicas {idents} replicate the instance, not its name: once {primary} is "
        f"renamed aside they follow it, so their reader endpoints serve data from after {when} "
        "(the data this restore escapes) until they are re-created from the new primary"
    )


def cutover_steps(
    primary: str,
    copy: str,
    region: str,
    stack: str,
    when: str,
    *,
    replicas: list[Replica] | None = None,
) -> list[str]:
    """What the operator does once the copy is verified (nothing here is run by the command)."""
    aside = rds_identifier(primary, "before", when.replace(":", "").replace("-", "")[:13].lower())
    replicas = replicas or []
    idents = ", ".join(r.identifier for r in replicas)
    steps = [
        "stop the application's writes to the primary (maintenance mode): whatever is written "
        f"to {primary} after {when} is not in {copy}; export what must be kept",
    ]
    if replicas:
        steps.append(
            f"take the readers off the read replicas {idents} (send reads to the primary's "
            "endpoint, or stop them): from the rename on they replicate the renamed-aside "
            f"instance and serve data from after {when} until re-created below"
        )
    steps += [
        f"rename the primary aside (its endpoint goes away, ~10 min): aws rds modify-db-instance "
        f"--db-instance-identifier {primary} --new-db-instance-identifier {aside} "
        f"--apply-immediately --region {region}",
        f"give the copy the primary's name, and so its endpoint (~10 min): aws rds "
        f"modify-db-instance --db-instance-identifier {copy} --new-db-instance-identifier "
        f"{primary} --apply-immediately --region {region}",
    ]
    if replicas:
        # A plain `pulumi up` does not re-create them: the state still says they replicate
        # the primary's identifier, as the program does, so nothing differs; and the provider
        # refuses to change a replica's source ("cannot elect new source database for
        # replication", terraform-provider-aws internal/service/rds/instance.go, update).
        # Replacing them (delete first: replicas.py sets delete_before_replace) creates each
        # anew from the instance that now holds the primary's identifier, the copy.
        targets = " ".join(f"--target-replace '{r.urn}'" for r in replicas)
        steps.append(
            f"re-create the read replicas {idents} from the new primary (a plain pulumi up "
            "leaves them on the renamed-aside instance): pulumi preview --stack "
            f"{stack} {targets}   # expect each replica deleted, then created; then the same "
            f"with pulumi up. Each is deleted first (it holds no data of its own), and a new "
            "replica copies the whole database before it serves reads (minutes to hours, "
            "billed like the old one); send the readers back once each is available"
        )
    steps += [
        f"pulumi preview --stack {stack}   # review what else differs before any pulumi up",
        f"resume the heartbeat in the new primary (the check paused the copy's job so its "
        f"beats could not pass for the source's): dbplatform heartbeat install --stack {stack}"
        "   # re-schedules job dbplatform-heartbeat (active) in cron.job",
        f"keep {aside} until the application is verified; it holds the writes after {when}",
    ]
    return steps


def pitr(ctx: Context) -> Result:
    """The `pitr` operation."""
    args, cfg, names = ctx.args, ctx.stack.config, ctx.stack.names
    region = ctx.stack.region
    try:
        when = parse_time(args.restore_time)
    except BadRequest as exc:
        raise BadUsage(f"--restore-time: {exc}") from None
    if when > ctx.clock.now():
        raise BadUsage(f"--restore-time {iso(when)} is in the future")
    if args.max_gap is not None and args.max_gap < 0:
        raise BadUsage(f"--max-gap {args.max_gap}: a number of minutes, 0 or more")
    queries = None
    if not args.skip_sql_checks:
        try:
            queries = load_queries(args.queries or ctx.stack.root / DEFAULT_QUERIES)
        except QueryFileError as exc:
            raise BadUsage(str(exc)) from None
    ident = args.as_instance or default_identifier(names.prefix, when)
    if ident == names.primary:
        raise BadUsage(f"--as {ident} is the primary itself; the copy needs a new identifier")
    rds = ctx.client("rds")
    budget = Deadline(float(args.timeout) * 60, ctx.clock.monotonic)  # one deadline for the run

    with ctx.out.phase("choose the restore point"):
        found, primary = local_points(
            rds=rds,
            backup=ctx.client("backup"),
            names=names,
            region=region,
            major=cfg.engine_major,
        )
        max_gap = timedelta(minutes=args.max_gap if args.max_gap is not None else 0)
        try:
            choice = choose(
                found.points,
                now=ctx.clock.now(),
                restore_time=when,
                max_gap=max_gap,
                region=region,
                latest_flag=False,  # pitr restores to a named time only
                stack=ctx.stack.name,
                home=True,  # pitr restores in the stack's own region
            )
        except NoRestorePoint as exc:
            raise Refused(f"{exc}. Nothing was created", data={"notes": found.notes}) from None
        if choice.past_reference:  # choose() never does this; the promise is checked anyway
            raise Refused(f"{choice.point.id} would restore past {iso(when)}. Nothing was created")
    if describe_instance(rds, ident) is not None:
        raise Refused(
            f"{ident} already exists in {region}; name the copy with --as NEW_ID. Nothing was "
            "created"
        )
    groups = stack_groups(ctx, region, "the copy")
    placement = Placement(
        identifier=ident,
        groups=groups,
        instance_class=args.instance_class or cfg.database.instance_class,
        multi_az=cfg.database.multi_az,
        port=cfg.database.port,
        deletion_protection=cfg.database.deletion_protection,
        iam_auth=cfg.database.iam_auth,
        tags={
            **cfg.base_tags(),
            "Name": ident,
            TAG_RUN: ctx.run_id,
            TAG_PURPOSE: PURPOSE,
            TAG_SOURCE: cfg.stack,
            TAG_RESTORED_FROM: choice.point.id[:256],
            TAG_DATA_TIME: iso(choice.data_time) or "",
        },
    )
    call = restore_call(choice, placement, backup_role_arn=args.backup_role_arn)
    replicas = replicas_of(cfg)
    steps = cutover_steps(
        names.primary, ident, region, cfg.stack, iso(when) or "", replicas=replicas
    )
    warning = replica_warning(names.primary, replicas, iso(when) or "") if replicas else None
    summary = (
        f"{choice.point.kind} {choice.point.id}, data as of {iso(choice.data_time)} "
        f"({human(choice.rpo)} before the requested {iso(when)})"
    )
    if ctx.dry_run:
        start(ctx, call, region, ident)
        return Result(
            f"dry run: would restore {summary} into {ident} beside {names.primary} (untouched)"
            + (f". At the cut-over: {warning}" if warning else ""),
            data={
                "restore": choice.to_json(timedelta(minutes=cfg.dr.rpo_minutes)),
                "steps": steps,
                "replicas": [r.identifier for r in replicas],
                "replica_warning": warning,
            },
        )
    ctx.confirm(
        f"restore {summary} into a new instance {ident} (billed like the primary until you "
        "delete it; the primary is not changed)"
    )
    t0 = ctx.clock.monotonic()
    with ctx.out.phase(f"restore into {ident}"):
        start(ctx, call, region, ident)
    with ctx.out.phase(f"wait until {ident} is available"):
        db = wait_available(ctx, region, ident, timeout=budget.left())
    restored_in = timedelta(seconds=ctx.clock.monotonic() - t0)
    expected = Expected(
        engine_version=choice.point.engine_version or (primary or {}).get("EngineVersion"),
        encrypted=cfg.database.storage_encrypted,
        min_storage_gib=choice.point.allocated_storage or cfg.database.allocated_storage,
        subnet_group=groups.subnet_group,
        security_group_ids=groups.security_group_ids,
        parameter_group=groups.parameter_group,
        multi_az=cfg.database.multi_az,
        deletion_protection=cfg.database.deletion_protection,
    )
    checks = instance_checks(db, expected)
    measured: dict[str, Any] = {"heartbeat": None, "rpo_from_data_seconds": None}
    if queries is not None:
        with ctx.out.phase("verify the data"):
            endpoint = _align_password(ctx, ident, db, budget.left())
            connect: Connect = getattr(args, "_connect", None) or default_connect
            try:
                conn = connect(endpoint)
            except Exception as exc:  # psycopg.OperationalError: reach, TLS, authentication
                checks.append(
                    Check(
                        name="sql: connect",
                        ok=False,
                        expected=f"a verified TLS connection to {endpoint.host}:{endpoint.port}",
                        actual=error_text(exc),  # the cause, not only its type
                    )
                )
            else:
                try:
                    # the copy's pg_cron beats on as the source: paused before reading; the
                    # cut-over steps say to resume it
                    paused = pause_heartbeat(conn)
                    checks += data_checks(conn, queries, data_time=choice.data_time)
                    beat = read_heartbeat(conn, data_time=choice.data_time)
                finally:
                    conn.close()
                rpo = beat.rpo(when)
                measured = {
                    "heartbeat_job": paused,
                    "heartbeat": beat.describe(),
                    "rpo_from_data_seconds": None if rpo is None else int(rpo.total_seconds()),
                }
    bad = [c for c in checks if not c.ok]
    data = {
        "instance": ident,
        "restore": choice.to_json(timedelta(minutes=cfg.dr.rpo_minutes)),
        "restored_seconds": int(restored_in.total_seconds()),
        "checks": [c.to_json() for c in checks],
        "data_verified": queries is not None and not bad,
        "cutover": steps,
        "replicas": [r.identifier for r in replicas],
        "replica_warning": warning,
        **measured,
    }
    if bad:
        raise Failed(
            f"{ident} restored ({summary}) but failed verification: "
            + "; ".join(f"{c.name}: expected {c.expected}, got {c.actual}" for c in bad)
            + f". It is kept for inspection; the primary {names.primary} was not touched",
            data=data,
        )
    beat_line = (
        f"RPO measured from the data: newest heartbeat {measured['heartbeat']}"
        if measured["heartbeat"]
        else "the data was NOT read (--skip-sql-checks): metadata checks only"
    )
    lines = [
        f"{ident} holds {cfg.stack}'s data as of {iso(choice.data_time)} (restored in "
        f"{human(restored_in)}, {len(checks)} checks passed); {beat_line}.",
        f"The primary {names.primary} was not touched. Cut over when ready:",
        *(f"  {i}. {s}" for i, s in enumerate(steps, 1)),
    ]
    if warning:
        lines.append(f"WARNING: {warning}.")
    return Result("\n".join(lines), data=data)


def _align_password(ctx: Context, ident: str, db: dict[str, Any], timeout: float) -> Endpoint:
    """Set the copy's master password to the stack's current master secret's: SQL can log in,
    and after the cut-over the secret, rotation and the instance agree."""
    cfg, names = ctx.stack.config, ctx.stack.names
    try:
        raw = ctx.client("secretsmanager").get_secret_value(SecretId=names.master_secret)
    except ClientError as exc:
        raise Failed(
            f"cannot read {names.master_secret} ({error_code(exc)}) to log in to {ident}"
        ) from None
    secret = json.loads(raw.get("SecretString") or "{}")
    password = str(secret.get("password") or "")
    db = set_master_password(ctx, ctx.stack.region, ident, password, timeout=timeout) or db
    endpoint = db.get("Endpoint") or {}
    return endpoint_for(
        ctx.args,
        address=str(endpoint.get("Address")),
        port=int(endpoint.get("Port") or cfg.database.port),
        user=str(db.get("MasterUsername") or cfg.database.master_username),
        password=password,
        dbname=str(db.get("DBName") or cfg.database.db_name),
    )
