"""Disaster recovery: list restore points, rebuild a stack's environment in another region, and
drill that rebuild end to end with measured RTO and RPO.

Usage:
  dbplatform dr restore-points --stack S [--region R]
  dbplatform dr rebuild --stack S [--region R] [--restore-time T | --latest] [--as NEW]
  dbplatform dr drill --stack S [--region R]
Nothing here calls the source region or needs the Pulumi backend before the database is back:
restore points, networking, the lock and the restore all live in the target region.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr import continuity, pulumi_auto
from dbplatform.dr.discover import Found, dr_points, local_points
from dbplatform.dr.points import (
    BadRequest,
    Choice,
    Kind,
    NoRestorePoint,
    RestorePoint,
    choose,
    human,
    iso,
    parse_time,
    rank,
)
from dbplatform.dr.report import DrReport, Objectives, Timeline, write_report
from dbplatform.dr.restore import (
    DELETE_COST,
    FAILED_RESTORE_NOTE,
    TAG_PURPOSE,
    TAG_RUN,
    TAG_SOURCE,
    Call,
    Deadline,
    Groups,
    Placement,
    backup_role_arn,
    delete_command,
    delete_run_instance,
    delete_steps,
    final_snapshot_name,
    find_groups,
    parameter_group_exists,
    parameter_status,
    restore_call,
    start,
    tag_list,
    tags_of,
    wait_available,
    wait_restore_job,
)
from dbplatform.dr.stackfile import (
    Provenance,
    StackFileError,
    TargetNetwork,
    check_target_name,
    default_target_stack,
    derive_values,
    existing_source,
    header_for,
    render,
    write,
)
from dbplatform.dr.verify import Check, Expected, instance_checks
from dbplatform.ops import (
    BadUsage,
    Context,
    Failed,
    Refused,
    Result,
    error_code,
)
from dbplatform.ops.rds import describe_instance, wait_instance_gone
from infra.config import ConfigError, StackConfig, load_config, read_stack_values
from infra.naming import Names, drill_stack

COMMAND = "dr"
TAG_RESTORED_FROM = "dbplatform:restored-from"
TAG_DATA_TIME = "dbplatform:data-time"
TAG_KIND = "dbplatform:restored-kind"
DEFAULT_TIMEOUT_MINUTES = 360
TEARDOWN_SECONDS = 60 * 60.0
"""of a drill's --timeout, kept for its teardown (the instance's deletion, then its groups)"""
DRILL_INTERRUPT = (
    "A drill has nothing to resume: before exiting it asked AWS to delete what it had created, "
    "without waiting (its report says what was left); a re-run starts a new drill, and "
    "`dbplatform dr janitor` removes what an interrupted one left"
)
"""What the operator reads after Ctrl-C in a drill (Operation.on_interrupt); a rebuild resumes."""


# ---------------------------------------------------------------------------------------------
# restore-points
# ---------------------------------------------------------------------------------------------


def dr_region(ctx: Context) -> str | None:
    """Where a DR command works: `--region`, else the stack's `dr.region` (None: neither). STS
    is asked there too, not in the source region, which may be the one that is down."""
    return getattr(ctx.args, "region", None) or ctx.stack.config.dr.region


def _target_region(ctx: Context, *, allow_own: bool) -> str:
    cfg = ctx.stack.config
    region = dr_region(ctx)
    if region is None:
        raise BadUsage(
            f"stack {cfg.stack} has no DR region (dr.region in Pulumi.{cfg.stack}.yaml): "
            "pass --region"
        )
    if region == cfg.region and not allow_own:
        raise BadUsage(
            f"--region {region} is the stack's own region; a rebuild goes to another region "
            "(for an in-region restore test use `dbplatform restore-check`)"
        )
    return str(region)


def _find(ctx: Context, region: str) -> Found:
    cfg, names = ctx.stack.config, ctx.stack.names
    if region == cfg.region:
        found, _ = local_points(
            rds=ctx.client("rds", region),
            backup=ctx.client("backup", region),
            names=names,
            region=region,
            major=cfg.engine_major,
        )
        return found
    return dr_points(
        rds=ctx.client("rds", region),
        backup=ctx.client("backup", region),
        cloudwatch=ctx.client("cloudwatch", region),
        names=names,
        source_region=cfg.region,
        region=region,
        now=ctx.clock.now(),
        major=cfg.engine_major,
    )


def _table(points: list[RestorePoint], now: datetime, objective: timedelta) -> list[str]:
    rows = [("KIND", "ID", "DATA AS OF", "AGE=RPO", "OBJECTIVE", "DETAIL")]
    for p in points:
        age = p.age(now)
        verdict = "unknown" if age is None else ("met" if age <= objective else "MISSED")
        window = f" (from {iso(p.earliest)})" if p.is_window else ""
        rows.append(
            (
                str(p.kind),
                p.id,
                f"{iso(p.latest) or 'unknown'}{window}",
                human(age),
                verdict if p.restorable or p.kind is Kind.READ_REPLICA else "excluded",
                p.detail + (f"; {p.excluded}" if p.excluded else ""),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return [
        "  " + "  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
        for r in rows
    ]


def restore_points(ctx: Context) -> Result:
    """The `restore-points` operation."""
    cfg = ctx.stack.config
    region = _target_region(ctx, allow_own=True)
    objective = timedelta(minutes=cfg.dr.rpo_minutes)
    with ctx.out.phase(f"list restore points in {region}"):
        found = _find(ctx, region)
    now = ctx.clock.now()
    points = rank(found.points)
    restorable = [p for p in points if p.restorable and p.latest is not None]
    best = restorable[0] if restorable else None
    best_age = best.age(now) if best else None
    met = best_age is not None and best_age <= objective
    data = {
        "region": region,
        "rpo_objective_seconds": int(objective.total_seconds()),
        "points": [p.to_json(now, objective) for p in points],
        "notes": found.notes,
        "best": None if best is None else best.to_json(now, objective),
    }
    head = (
        f"Restore points of {cfg.stack} in {region}, freshest first "
        f"(RPO objective {human(objective)}):"
    )
    lines = [head, *(_table(points, now, objective) if points else ["  none found"])]
    lines += [f"note: {n}" for n in found.notes]
    if best is None:
        lines.append("No restorable point: a rebuild into this region would be refused.")
    else:
        lines.append(
            f"A rebuild now would restore {best.kind} {best.id}: RPO {human(best_age)} "
            f"({'meets' if met else 'MISSES'} the objective)."
        )
    if ctx.args.require_objective and not met:
        raise Failed("\n".join(lines), data=data)
    return Result("\n".join(lines), data=data)


# ---------------------------------------------------------------------------------------------
# rebuild and drill
# ---------------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What one rebuild or drill has done so far (for the report, and for a drill's teardown)."""

    kind: str
    target: str
    region: str
    timeline: Timeline
    choice: Choice | None = None
    points: list[RestorePoint] = field(default_factory=list)
    """every restore point found in the target region"""
    newer: Choice | None = None
    """a resumed rebuild: the newest point now, which the resumed instance does not hold"""
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    """what an earlier run left and this one resumes (listed in a failure message)"""
    removed: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    instance: str | None = None
    instance_ours: bool = False
    parameter_group_created: str | None = None
    config_path: Path | None = None
    pulumi_up: bool = False
    rto: timedelta | None = None
    database_restored: timedelta | None = None
    incomplete: list[str] = field(default_factory=list)
    estimate_remaining: timedelta | None = None
    rpo_from_data: timedelta | None = None
    heartbeat: str | None = None


@contextmanager
def _phase(ctx: Context, run: _Run, name: str) -> Iterator[list[str]]:
    with ctx.out.phase(name), run.timeline.phase(name) as detail:
        yield detail


def _restore_time(ctx: Context) -> datetime | None:
    """--restore-time, checked before the lock is taken or AWS is asked anything."""
    if not ctx.args.restore_time:
        return None
    try:
        when = parse_time(ctx.args.restore_time)
    except BadRequest as exc:
        raise BadUsage(str(exc)) from None
    if when > ctx.clock.now():
        raise BadUsage(f"--restore-time {iso(when)} is in the future")
    return when


def _choose(ctx: Context, run: _Run, when: datetime | None) -> Choice:
    cfg = ctx.stack.config
    args = ctx.args
    max_gap = timedelta(minutes=args.max_gap if args.max_gap is not None else cfg.dr.rpo_minutes)
    with _phase(ctx, run, "choose restore point") as detail:
        found = _find(ctx, run.region)
        run.notes += found.notes
        run.points = list(found.points)
        try:
            choice = choose(
                found.points,
                now=ctx.clock.now(),
                restore_time=when,
                max_gap=max_gap,
                region=run.region,
                stack=ctx.stack.name,
                home=run.region == cfg.region,
            )
        except NoRestorePoint as exc:
            raise Refused(f"{exc}. Nothing was created", data={"notes": found.notes}) from None
        detail.append(
            f"{choice.point.kind} {choice.point.id}, data as of {iso(choice.data_time)}, "
            f"RPO {human(choice.rpo)}"
        )
    run.choice = choice
    return choice


def _check_target(ctx: Context, run: _Run, names: Names) -> dict[str, Any] | None:
    """Refuse a target whose stack file or identifiers belong to something else; returns the
    instance of an interrupted rebuild of this same source into this target (resume)."""
    src = ctx.stack.name
    rds = ctx.client("rds", run.region)
    if run.kind == "rebuild":
        owner = existing_source(ctx.stack.root, run.target)
        if owner is not None and owner != src:
            raise Refused(
                f"Pulumi.{run.target}.yaml already exists and is not a DR stack of {src}; "
                "choose another name with --as NEW. Nothing was created"
            )
    resume = None
    taken = []
    for ident in [names.primary, *(names.replica(r.name) for r in ctx.stack.config.replicas)]:
        db = describe_instance(rds, ident)
        if db is None:
            continue
        tags = tags_of(rds, db)
        if (
            ident == names.primary
            and run.kind == "rebuild"
            and tags.get(TAG_PURPOSE) == "dr-rebuild"
            and tags.get(TAG_SOURCE) == src
        ):
            resume = db
            continue
        taken.append(ident)
    if taken:
        # a drill has no --as: its stack is named after its run, so a re-run picks a new name
        way_on = (
            "rebuild under a new stack name with --as NEW"
            if run.kind == "rebuild"
            else "re-run (a drill's stack is named after its run, so it gets a new name); if "
            "they are an interrupted drill's, `dbplatform dr janitor --stack "
            f"{src} --region {run.region}` removes them"
        )
        raise Refused(
            f"{run.region} already holds DB instance(s) {', '.join(taken)}, the identifiers of "
            f"stack {run.target}; {way_on} (nothing was created)",
            data={"taken": taken},
        )
    return resume


def _resume_or_refuse(
    ctx: Context, run: _Run, resume: dict[str, Any], choice: Choice, when: datetime | None
) -> None:
    """Resume an earlier rebuild's instance only when it holds exactly the data now asked for.

    An instance restored for another time (or another, older point) would hand back other data
    than asked for (newer than T when escaping a bad change): refuse, naming it and the ways on.
    """
    tags = tags_of(ctx.client("rds", run.region), resume)
    ident = str(resume["DBInstanceIdentifier"])
    theirs_point = tags.get(TAG_RESTORED_FROM, "")
    theirs_time = tags.get(TAG_DATA_TIME, "")
    same = theirs_point == choice.point.id[:256] and theirs_time == (iso(choice.data_time) or "")
    latest_close = when is None and _within_gap(ctx, theirs_time, choice.data_time)
    if latest_close:
        # --latest asks for the newest data; the newest point moves on between runs (PITR's
        # latest restorable time every few minutes), so a re-run would otherwise never resume.
        run.notes.append(
            f"--latest: resumed {ident} (data as of {theirs_time}) rather than the newest point "
            f"now ({iso(choice.data_time)}): within --max-gap of it, the RPO is measured from "
            "its data"
        )
    if same or latest_close:
        run.existing.append(
            f"DB instance {ident} ({run.region}), data as of {theirs_time}, restored by run "
            f"{tags.get(TAG_RUN, 'unknown')}"
        )
        path = ctx.stack.root / f"Pulumi.{run.target}.yaml"
        if path.exists():
            run.existing.append(f"stack config {path}")
        return
    asked = f"--restore-time {iso(when)}" if when is not None else "--latest"
    protected = bool(resume.get("DeletionProtection"))
    steps = delete_steps(
        ident,
        run.region,
        final_snapshot=final_snapshot_name(ident, ctx.run_id),
        protected=protected,
    )
    options = [
        f"rebuild under another stack name: --as NEW (e.g. --as {run.target}b)",
        f"or delete {ident} and re-run, keeping its data in a final snapshot and its automated "
        "backups: "
        + "; then ".join(f"({i}) {s}" for i, s in enumerate(steps, 1))
        + f" ({DELETE_COST}; the instance's endpoint goes away)",
    ]
    if theirs_time:
        options.append(f"or resume it as it is: --restore-time {theirs_time}")
    raise Refused(
        f"{run.region} holds {ident}, restored by an earlier rebuild (run "
        f"{tags.get(TAG_RUN, 'unknown')}) from {theirs_point or 'an unknown point'} with data as "
        f"of {theirs_time or 'an unknown time'}; {asked} now chooses {choice.point.kind} "
        f"{choice.point.id}, data as of {iso(choice.data_time)}. A rebuild resumes only the "
        "same data. " + "; ".join(options) + ". Nothing was created",
        data={
            "instance": ident,
            "instance_data_time": theirs_time or None,
            "instance_restored_from": theirs_point or None,
            "instance_deletion_protection": protected,
            "delete_steps": steps,
            "requested": choice.to_json(timedelta(minutes=ctx.stack.config.dr.rpo_minutes)),
        },
    )


def _resumed_choice(ctx: Context, run: _Run, resume: dict[str, Any], newest: Choice) -> Choice:
    """The restore point the instance a rebuild resumes holds, from the tags the restore left
    on it (`dbplatform:restored-from`, `dbplatform:data-time`, `dbplatform:restored-kind`).

    `_resume_or_refuse` resumes only an instance whose data time parses and is the newest
    point's or within --max-gap before it; its RPO is measured from its own data time against
    the same reference (now, for --latest). When the newest point is another one, `run.newer`
    keeps it for the report and the output."""
    tags = tags_of(ctx.client("rds", run.region), resume)
    held_id = tags.get(TAG_RESTORED_FROM, "")
    held_time = parse_time(tags.get(TAG_DATA_TIME, ""))
    if held_id == newest.point.id[:256] and held_time == newest.data_time:
        return newest
    known = next((p for p in run.points if p.id[:256] == held_id), None)
    try:
        kind = Kind(tags.get(TAG_KIND, ""))
    except ValueError:
        kind = known.kind if known is not None else Kind.SNAPSHOT
    ident = str(resume["DBInstanceIdentifier"])
    point = RestorePoint(
        kind=kind,
        id=known.id if known is not None else held_id,
        region=run.region,
        latest=held_time,
        detail=f"restored into {ident} by run {tags.get(TAG_RUN, 'unknown')}",
        encrypted=known.encrypted if known is not None else None,
        engine_version=known.engine_version if known is not None else None,
        allocated_storage=known.allocated_storage if known is not None else None,
    )
    run.newer = newest
    resumed = Choice(
        point=point, restore_time=None, data_time=held_time, reference=newest.reference
    )
    run.choice = resumed
    return resumed


def _resumed_lines(ctx: Context, run: _Run) -> list[str]:
    """What the output says of a resumed rebuild whose instance holds an older point than the
    newest one now, and how to rebuild from that newer point instead without deleting it."""
    newer, held = run.newer, run.choice
    if newer is None or held is None:
        return []
    objective = timedelta(minutes=ctx.stack.config.dr.rpo_minutes)
    other = f"{run.target}b"
    return [
        f"Resumed the existing restore {run.instance}: {held.point.kind} {held.point.id}, data "
        f"as of {iso(held.data_time)}; the RPO ({human(held.rpo)}, "
        f"{'met' if held.rpo <= objective else 'MISSED'}) is measured from that data.",
        f"A newer point exists: {newer.point.kind} {newer.point.id}, data as of "
        f"{iso(newer.data_time)} (RPO {human(newer.rpo)}); it was NOT restored.",
        "To rebuild from it instead, keeping this restore: dbplatform dr rebuild --stack "
        f"{ctx.stack.name} --region {run.region} --latest --as {other}",
    ]


def _within_gap(ctx: Context, theirs: str, newest: datetime) -> bool:
    """An earlier --latest rebuild's data time, no later than the newest point now and at most
    --max-gap (default dr.rpoMinutes) before it."""
    args, cfg = ctx.args, ctx.stack.config
    try:
        at = parse_time(theirs)
    except BadRequest:
        return False
    gap = timedelta(minutes=args.max_gap if args.max_gap is not None else cfg.dr.rpo_minutes)
    return at <= newest and newest - at <= gap


def _groups(ctx: Context, run: _Run, target: Names) -> tuple[Groups, bool]:
    """The target region's groups for the restore; True when the parameter group must be made.

    The networking is the source's DR pilot light (`<source prefix>-db-dr`); the parameter group
    is the DR stack's own (`<target prefix>-postgres<major>`), the one its `pulumi up` declares,
    so the instance never changes group (a reboot for static parameters) and no group is left
    shared between drills."""
    args, cfg, names = ctx.args, ctx.stack.config, ctx.stack.names
    subnet_group = args.subnet_group or names.dr_subnet_group
    security_group = args.security_group or names.dr_security_group
    parameter_group = args.parameter_group or target.parameter_group(cfg.parameter_family)
    rds, ec2 = ctx.client("rds", run.region), ctx.client("ec2", run.region)
    with _phase(ctx, run, "find networking in the target region") as detail:
        groups, missing = find_groups(
            rds,
            ec2,
            region=run.region,
            subnet_group=subnet_group,
            security_group=security_group,
            parameter_group=None,
        )
        if groups is None:
            raise Refused(
                f"{', '.join(missing)} not found in {run.region}. The restored database needs "
                "a subnet group and a security group there: pass --subnet-group and "
                f"--security-group, or set dr.region to {run.region} and run pulumi up "
                f"beforehand (the program then keeps {subnet_group} and {security_group} "
                "there, its DR pilot light). Nothing was created",
                data={"missing": missing},
            )
        create = not parameter_group_exists(rds, parameter_group)
        if create and args.parameter_group:
            raise Refused(
                f"DB parameter group {parameter_group} not found in {run.region}: create it "
                "there, or leave out --parameter-group to have the program's parameters "
                "copied into a new one. Nothing was created"
            )
        detail.append(
            f"subnet group {subnet_group} (VPC {groups.vpc_id}), security group "
            f"{','.join(groups.security_group_ids)}, parameter group {parameter_group}"
            + (" (to create)" if create else "")
        )
    return dataclasses.replace(groups, parameter_group=parameter_group), create


def _create_parameter_group(ctx: Context, run: _Run, name: str, tags: dict[str, str]) -> None:
    # The program's own parameters (the single source of truth), imported lazily: pulumi_aws
    # is only needed here.
    from infra.components.database import parameters

    cfg = ctx.stack.config
    rds = ctx.client("rds", run.region)
    settings = parameters(cfg.database)
    with _phase(ctx, run, f"create parameter group {name}") as detail:
        ctx.mutate(
            rds,
            "create_db_parameter_group",
            {
                "DBParameterGroupName": name,
                "DBParameterGroupFamily": cfg.parameter_family,
                "Description": f"dbplatform {cfg.stack} {cfg.parameter_family} (DR {run.region})",
                "Tags": tag_list({**tags, "Name": name}),
            },
        )
        if not ctx.dry_run:
            ctx.touch(f"rds:{name}")
            run.parameter_group_created = name
            run.created.append(f"DB parameter group {name} ({run.region})")
        ctx.mutate(
            rds,
            "modify_db_parameter_group",
            {
                "DBParameterGroupName": name,
                "Parameters": [
                    {"ParameterName": k, "ParameterValue": v, "ApplyMethod": m}
                    for k, (v, m) in sorted(settings.items())
                ],
            },
        )
        detail.append(f"{len(settings)} parameters of the program")


def _derive(
    ctx: Context,
    run: _Run,
    groups: Groups,
    *,
    adopt: str,
    restored_from: str,
    data_time: datetime,
) -> tuple[dict[str, Any], list[str], StackConfig]:
    """The DR stack's values, its file header and its validated config."""
    src = ctx.stack
    values, _ = read_stack_values(src.name, src.root)
    provenance = Provenance(
        source_stack=src.name,
        source_region=src.region,
        adopt_identifier=adopt,
        restored_from=restored_from,
        restore_time=data_time,
    )
    try:
        derived, notes = derive_values(
            values,
            provenance=provenance,
            network=TargetNetwork(vpc_id=groups.vpc_id, subnet_ids=groups.subnet_ids),
            throwaway=run.kind == "drill",
        )
        target_cfg = load_config(run.target, derived, run.region, root=src.root)
    except StackFileError as exc:
        raise BadUsage(str(exc)) from None
    except ConfigError as exc:
        raise BadUsage(
            f"the DR config derived from {src.name} is invalid; fix Pulumi.{src.name}.yaml:\n"
            + "\n".join(f"  - {p}" for p in exc.problems)
        ) from None
    run.notes += notes
    header = header_for(provenance, f"dbplatform dr {run.kind}", notes)
    return derived, header, target_cfg


def _synthesize(ctx: Context, run: _Run, values: dict[str, Any], adopt: str) -> None:
    from infra.offline import run_program

    with _phase(ctx, run, "synthesize the DR stack offline") as detail:
        recording = run_program(run.target, root=ctx.stack.root, values=values, region=run.region)
        primary = [
            r
            for r in recording.resources
            if r.type == "aws:rds/instance:Instance" and r.inputs.get("identifier") == adopt
        ]
        ok = len(primary) == 1 and primary[0].import_id == adopt
        run.checks.append(
            Check(
                name="program adopts the restored instance",
                ok=ok,
                expected=f"import {adopt}",
                actual=f"import {primary[0].import_id}" if primary else "not declared",
            )
        )
        detail.append(f"{len(recording.resources)} resources; database imports {adopt}")
        if not ok:
            raise Failed(f"the DR stack's program does not adopt {adopt}")
        run.estimate_remaining = _pulumi_up_estimate(recording)


def _pulumi_up_estimate(recording: Any) -> timedelta | None:
    """Typical minutes of the DR stack's `pulumi up` after the restore: its critical path in the
    dr-rebuild scenario (dbplatform.manifest.timing) without the restore, which is done."""
    from dbplatform.manifest.timing import RESTORE_MINUTES, critical_path
    from infra.offline import from_recording

    try:
        path = critical_path(from_recording(recording), "dr-rebuild")
    except ValueError:
        return None
    restored = sum(RESTORE_MINUTES for s in path.steps if s.basis.startswith("RDS restore"))
    return timedelta(minutes=max(path.minutes - restored, 0.0))


def _verify(ctx: Context, run: _Run, db: dict[str, Any], groups: Groups, choice: Choice) -> None:
    cfg = ctx.stack.config
    with _phase(ctx, run, "verify the restored database") as detail:
        expected = Expected(
            engine_version=choice.point.engine_version or cfg.database.engine_version,
            encrypted=cfg.database.storage_encrypted,
            min_storage_gib=choice.point.allocated_storage or cfg.database.allocated_storage,
            subnet_group=groups.subnet_group,
            security_group_ids=groups.security_group_ids,
            parameter_group=groups.parameter_group,
            multi_az=cfg.database.multi_az,
            deletion_protection=cfg.database.deletion_protection if run.kind == "rebuild" else None,
        )
        checks = instance_checks(db, expected)
        run.checks += checks
        bad = [c for c in checks if not c.ok]
        detail.append(f"{len(checks) - len(bad)}/{len(checks)} checks passed")
        if bad:
            raise Failed(
                "the restored database failed verification: "
                + "; ".join(f"{c.name}: expected {c.expected}, got {c.actual}" for c in bad)
            )


def _restore(
    ctx: Context,
    run: _Run,
    *,
    call: Call | None,
    placement: Placement,
    resume: dict[str, Any] | None,
    budget: Deadline,
) -> dict[str, Any]:
    """Send `call` (None: resume the instance an earlier run restored) and wait for it."""
    region = run.region
    ident = placement.identifier
    run.instance = ident
    if call is None:
        earlier = tags_of(ctx.client("rds", region), resume).get(TAG_RUN) if resume else None
        run.timeline.skip("restore database", f"{ident} already restored by an earlier run")
        run.notes.append(f"resumed: {ident} was restored by run {earlier}")
    else:
        with _phase(ctx, run, "restore database") as detail:
            run.instance_ours = True
            response = start(ctx, call, region, ident)
            if call.service == "backup":
                arn = wait_restore_job(ctx, region, response["RestoreJobId"], timeout=budget.left())
                ctx.mutate(
                    ctx.client("rds", region),
                    "add_tags_to_resource",
                    {"ResourceName": arn, "Tags": tag_list(placement.tags)},
                )
            run.created.append(f"DB instance {ident} ({region})")
            detail.append(f"{call.service}:{call.method} into {ident}")
    with _phase(ctx, run, "wait until the database is available") as detail:
        db = wait_available(ctx, region, ident, timeout=budget.left())
        detail.append(str((db.get("Endpoint") or {}).get("Address", "")))
    return _apply_parameters(ctx, run, db, budget)


def _apply_parameters(
    ctx: Context, run: _Run, db: dict[str, Any], budget: Deadline
) -> dict[str, Any]:
    """Reboot the instance this run restored when its parameter group is `pending-reboot`.

    The group a run creates is modified just before the restore, and RDS asks for five minutes
    between modifying a group and creating an instance with it (botocore rds/2014-10-31
    ModifyDBParameterGroup); static parameters (shared_preload_libraries: pg_cron, which the
    heartbeat check needs) apply only at a reboot (DBParameterGroupStatus.ParameterApplyStatus
    `pending-reboot`; `wait_available` has waited out `applying`). The instance this run restored
    serves nobody yet: a reboot costs a minute or two, where waiting before every restore would add
    five to the recovery time. An instance an earlier run restored (resumed) may be in use: it
    is never rebooted, the report says how to."""
    ident = str(db["DBInstanceIdentifier"])
    pending = sorted(g for g, status in parameter_status(db).items() if status == "pending-reboot")
    if not pending:
        return db
    if not run.instance_ours:
        note = (
            f"{ident}: parameter group {', '.join(pending)} is pending-reboot; restored by an "
            "earlier run, it may be in use, so it was not rebooted: reboot it when it can be "
            f"(aws rds reboot-db-instance --db-instance-identifier {ident} --region {run.region})"
        )
        run.notes.append(note)
        ctx.out.warn(note)
        return db
    with _phase(ctx, run, "reboot to apply the parameter group") as detail:
        rds = ctx.client("rds", run.region)
        ctx.mutate(rds, "reboot_db_instance", {"DBInstanceIdentifier": ident})
        db = wait_available(ctx, run.region, ident, timeout=budget.left(), in_sync=True)
        detail.append(f"{', '.join(pending)} was pending-reboot; in-sync after the reboot")
    return db


def _teardown(ctx: Context, run: _Run, *, wait: float) -> None:
    """Remove everything a drill created, newest first; each step independent of the others.
    `wait`: how long the instance's deletion may be waited for (0 when interrupted: the delete
    call is sent, the parameter group it uses is left to the janitor)."""
    region = run.region
    rds = ctx.client("rds", region)
    with _phase(ctx, run, "tear down the drill") as detail:
        problems = []
        in_use = False
        if run.pulumi_up:
            try:
                pulumi_auto.destroy(ctx.stack.root, run.target, ctx.out.debug)
                run.removed.append(f"Pulumi stack {run.target}")
            except Exception as exc:  # the CLI's errors are many; report and go on
                problems.append(f"pulumi destroy {run.target}: {exc}")
        if run.instance and run.instance_ours:
            try:
                outcome = delete_run_instance(
                    ctx, region, run.instance, untagged_ok=True, retry_seconds=wait
                )
                if outcome == "not-ours":
                    problems.append(f"{run.instance} is not tagged as this drill's; left alone")
                elif outcome == "deleted":
                    run.removed.append(f"DB instance {run.instance} ({region})")
                    # A parameter group in use cannot be deleted: wait for the instance to go.
                    if wait > 0:
                        wait_instance_gone(ctx, run.instance, timeout=wait, region=region)
                    else:
                        in_use = True
            except (ClientError, Failed) as exc:
                why = error_code(exc) if isinstance(exc, ClientError) else exc.message
                problems.append(
                    f"DB instance {run.instance}: {why}; delete it with: "
                    + delete_command(
                        run.instance,
                        region,
                        final_snapshot=final_snapshot_name(run.instance, ctx.run_id),
                        # made unprotected (Placement), but a failed pulumi destroy after an
                        # up may leave it protected: the step is printed as conditional
                        protected=None,
                    )
                    + f"; {FAILED_RESTORE_NOTE}"
                )
        if run.parameter_group_created:
            try:
                ctx.mutate(
                    rds,
                    "delete_db_parameter_group",
                    {"DBParameterGroupName": run.parameter_group_created},
                )
                run.removed.append(f"DB parameter group {run.parameter_group_created} ({region})")
            except ClientError as exc:
                later = " (still in use: `dbplatform dr janitor` removes it later)" * in_use
                problems.append(
                    f"parameter group {run.parameter_group_created}: {error_code(exc)}{later}"
                )
        if run.config_path is not None and run.config_path.parent == ctx.stack.root:
            run.config_path.unlink(missing_ok=True)
            run.removed.append(f"{run.config_path.name}")
        detail.append(f"{len(run.removed)} removed")
        if problems:
            raise Failed("drill teardown incomplete: " + "; ".join(problems))


def _report_dir(ctx: Context) -> Path:
    """Where the report (and a drill's stack file) goes."""
    if ctx.args.report_dir:
        return Path(ctx.args.report_dir)
    return ctx.stack.root / ".dbplatform" / "dr" / ctx.run_id


def _report(ctx: Context, run: _Run, outcome: str) -> tuple[DrReport, Path]:
    cfg = ctx.stack.config
    choice = run.choice
    report = DrReport(
        kind=run.kind,
        outcome=outcome,
        source_stack=cfg.stack,
        source_region=cfg.region,
        target_stack=run.target,
        target_region=run.region,
        started=run.timeline.started,
        ended=run.timeline.now(),
        phases=tuple(run.timeline.phases),
        objectives=Objectives(
            rpo=timedelta(minutes=cfg.dr.rpo_minutes), rto=timedelta(minutes=cfg.dr.rto_minutes)
        ),
        rto=None if run.incomplete else run.rto,
        database_restored=run.database_restored,
        incomplete=tuple(run.incomplete),
        estimate_remaining=run.estimate_remaining if run.incomplete else None,
        rpo_from_data=run.rpo_from_data,
        heartbeat=run.heartbeat,
        rpo=choice.rpo if choice else None,
        restore=_restore_json(run, timedelta(minutes=cfg.dr.rpo_minutes)),
        created=tuple(run.created),
        removed=tuple(run.removed),
        checks=tuple(c.to_json() for c in run.checks),
        commands=tuple(run.commands),
        todo=tuple(run.todo),
        notes=tuple(run.notes),
    )
    written = write_report(report, _report_dir(ctx), f"{run.kind}-{cfg.stack}-{run.region}")
    return report, written.markdown


def _restore_json(run: _Run, objective: timedelta) -> dict[str, Any]:
    """The restore point of the report (what the instance holds) and, for a resumed rebuild
    with a newer point now, that point under `newer_point` (not restored)."""
    if run.choice is None:
        return {}
    data = run.choice.to_json(objective)
    if run.newer is not None:
        data["resumed_instance"] = run.instance
        data["newer_point"] = run.newer.to_json(objective)
    return data


def check_drill_flags(ctx: Context) -> None:
    """Before any AWS call: a drill of the newest point has no use for --max-gap (a rebuild
    uses it to resume an earlier restore), so it is refused rather than ignored."""
    if ctx.args.max_gap is not None and ctx.args.restore_time is None:
        raise BadUsage(
            "--max-gap applies with --restore-time: a drill with --latest restores the newest "
            "point, so it would do nothing"
        )


def _operate(ctx: Context, kind: str) -> Result:
    args, cfg, src = ctx.args, ctx.stack.config, ctx.stack
    region = _target_region(ctx, allow_own=False)
    if kind == "drill":
        target = drill_stack(src.name, ctx.run_id.rsplit("-", 1)[-1])
    else:
        target = args.as_stack or default_target_stack(src.name, region)
    try:
        check_target_name(src.name, target)
    except StackFileError as exc:
        raise BadUsage(str(exc)) from None
    when = _restore_time(ctx)
    if args.max_gap is not None and args.max_gap < 0:
        raise BadUsage(f"--max-gap {args.max_gap}: a number of minutes, 0 or more")
    # one deadline for the whole run; a drill keeps TEARDOWN_SECONDS of it for its teardown
    budget = Deadline(
        float(args.timeout) * 60,
        ctx.clock.monotonic,
        reserve=TEARDOWN_SECONDS if kind == "drill" else 0.0,
    )
    run = _Run(kind=kind, target=target, region=region, timeline=Timeline(clock=ctx.clock.now))
    tnames = Names(target)
    ctx.out.info(f"{kind}: {src.name} ({src.region}) -> stack {target} in {region}")

    # The DR lock lives in the target region: a DR operation must not depend on the source
    # region, where the stack's usual lock parameter lives.
    with ctx.lock(region):
        choice = _choose(ctx, run, when)
        with _phase(ctx, run, "check the target identifiers"):
            resume = _check_target(ctx, run, tnames)
        groups, create_pg = _groups(ctx, run, tnames)
        adopt = tnames.primary
        if resume is not None:
            _resume_or_refuse(ctx, run, resume, choice, when)
            # From here on the restore point is the one the resumed instance holds: the RPO,
            # the report, the JSON and the stack file speak of its data, never of a newer point.
            choice = _resumed_choice(ctx, run, resume, choice)
        restored_from = choice.point.id
        data_time = choice.data_time
        if when is not None and choice.past_reference:
            raise Refused(
                f"the chosen point {choice.point.id} holds data as of {iso(choice.data_time)}, "
                f"after the requested {iso(when)}: a rebuild never restores past T. Nothing "
                "was created"
            )
        values, header, target_cfg = _derive(
            ctx, run, groups, adopt=adopt, restored_from=restored_from, data_time=data_time
        )
        placement = Placement(
            identifier=adopt,
            groups=groups,
            instance_class=args.instance_class or cfg.database.instance_class,
            multi_az=cfg.database.multi_az,
            port=cfg.database.port,
            deletion_protection=cfg.database.deletion_protection and kind == "rebuild",
            iam_auth=cfg.database.iam_auth,
            tags={
                **target_cfg.base_tags(),
                "Name": adopt,
                TAG_RUN: ctx.run_id,
                TAG_PURPOSE: f"dr-{kind}",
                TAG_SOURCE: src.name,
                TAG_RESTORED_FROM: restored_from[:256],
                TAG_DATA_TIME: iso(data_time) or "",
                TAG_KIND: str(choice.point.kind),
            },
        )
        # Whatever can still refuse (an AWS Backup restore without a role) is settled here,
        # before the parameter group or anything else is created.
        call = None
        if resume is None:
            role = args.backup_role_arn
            if role is None and choice.point.kind is Kind.RECOVERY_POINT:
                role = backup_role_arn(ctx)
            call = restore_call(choice, placement, backup_role_arn=role)
        if ctx.dry_run:
            return _dry_run(
                ctx, run, choice=choice, placement=placement, call=call, create_pg=create_pg
            )
        try:
            return _execute(
                ctx,
                run,
                choice=choice,
                placement=placement,
                call=call,
                create_pg=create_pg,
                resume=resume,
                values=values,
                header=header,
                budget=budget,
            )
        except KeyboardInterrupt:
            # A drill has torn itself down by now (see _execute); the report says what exists.
            _, path = _report(ctx, run, "interrupted")
            ctx.out.warn(f"interrupted; report: {path}")
            raise


def _dry_run(
    ctx: Context,
    run: _Run,
    *,
    choice: Choice,
    placement: Placement,
    call: Call | None,
    create_pg: bool,
) -> Result:
    if create_pg:
        _create_parameter_group(ctx, run, placement.groups.parameter_group, placement.tags)
    if call is not None:
        start(ctx, call, run.region, placement.identifier)
    if run.kind == "drill":
        rds = ctx.client("rds", run.region)
        ctx.mutate(
            rds,
            "delete_db_instance",
            {
                "DBInstanceIdentifier": placement.identifier,
                "SkipFinalSnapshot": True,
                "DeleteAutomatedBackups": True,
            },
        )
        if create_pg:
            ctx.mutate(
                rds,
                "delete_db_parameter_group",
                {"DBParameterGroupName": placement.groups.parameter_group},
            )
    what = "restore" if call is not None else "resume from the earlier restore of"
    return Result(
        f"dry run: would {what} {choice.point.kind} {choice.point.id} (data as of "
        f"{iso(choice.data_time)}, RPO {human(choice.rpo)}) into {placement.identifier} in "
        f"{run.region}, write Pulumi.{run.target}.yaml"
        + (" and tear it all down again" if run.kind == "drill" else ""),
        data={
            "target": {"stack": run.target, "region": run.region},
            "restore": choice.to_json(timedelta(minutes=ctx.stack.config.dr.rpo_minutes)),
        },
    )


def _execute(
    ctx: Context,
    run: _Run,
    *,
    choice: Choice,
    placement: Placement,
    call: Call | None,
    create_pg: bool,
    resume: dict[str, Any] | None,
    values: dict[str, Any],
    header: list[str],
    budget: Deadline,
) -> Result:
    src, cfg = ctx.stack, ctx.stack.config
    interrupted = False
    adopt = placement.identifier
    failure: str | None = None
    use_pulumi = pulumi_auto.cli_path() is not None and not ctx.args.no_pulumi
    no_pulumi_why = "--no-pulumi" if ctx.args.no_pulumi else pulumi_auto.CLI_MISSING
    try:
        if create_pg:
            _create_parameter_group(ctx, run, placement.groups.parameter_group, placement.tags)
        db = _restore(ctx, run, call=call, placement=placement, resume=resume, budget=budget)
        _verify(ctx, run, db, placement.groups, choice)
        run.database_restored = run.timeline.now() - run.timeline.started
        with _phase(ctx, run, f"write Pulumi.{run.target}.yaml") as detail:
            text = render(values, run.region, header=header)
            if run.kind == "rebuild" or use_pulumi:
                run.config_path = write(src.root, run.target, text)
            else:
                # A drill without Pulumi keeps its config with the report, not in the repo.
                directory = _report_dir(ctx)
                directory.mkdir(parents=True, exist_ok=True)
                run.config_path = directory / f"Pulumi.{run.target}.yaml"
                run.config_path.write_text(text, encoding="utf-8")
            if run.kind == "rebuild":
                run.created.append(f"stack config {run.config_path}")
            detail.append(str(run.config_path))
        _synthesize(ctx, run, values, adopt)
        if use_pulumi:
            with _phase(ctx, run, f"pulumi up {run.target} (Automation API)") as detail:
                run.pulumi_up = True
                outputs = pulumi_auto.up(src.root, run.target, ctx.out.debug)
                detail.append(f"{len(outputs)} outputs")
                run.created.append(f"Pulumi stack {run.target}")
            if run.kind == "rebuild":
                try:
                    with _phase(ctx, run, "carry the source's secrets over") as detail:
                        carried = continuity.carry(
                            ctx, cfg, run.target, run.region, adopt, timeout=budget.left()
                        )
                        detail.append(
                            f"{len(carried.app_secrets)} application secret(s) set from the "
                            "source's replicas; master password set from the new master secret"
                        )
                    run.notes += continuity.retired_lines(carried)
                    for warning in carried.warnings:
                        run.notes.append(warning)
                        ctx.out.warn(warning)
                except (Refused, Failed) as exc:  # no replica in R; a retired key not held
                    run.incomplete.append("secrets carried over (dr secrets)")
                    run.todo.append(
                        f"{exc.message}; then: "
                        + continuity.command(src.name, run.target, run.region)
                    )
        else:
            run.timeline.skip("pulumi up", no_pulumi_why)
            if run.kind == "rebuild":
                run.commands = [
                    *pulumi_auto.remaining_commands(
                        root=src.root,
                        stack=run.target,
                        source_region=src.region,
                        target_region=run.region,
                        adopt=adopt,
                    ),
                    "# then: the source's application secrets and a master password that "
                    "matches the restored instance",
                    continuity.command(src.name, run.target, run.region),
                ]
        run.rto = run.timeline.now() - run.timeline.started
        if not run.pulumi_up:
            run.incomplete.append(f"pulumi up ({no_pulumi_why})")
            if run.kind == "rebuild":
                run.incomplete.append("secrets carried over (dr secrets)")
        endpoint = (db.get("Endpoint") or {}).get("Address", adopt)
        if run.kind == "rebuild":
            run.incomplete.append("cut-over")
            run.todo += [
                f"cut over: point the application (DNS, connection strings) at {endpoint}, "
                f"with the secrets of {run.target} (they hold the source's values)",
                f"choose a DR region for {run.target} (dr.region) once it serves traffic",
                # the restored cron.job still beats as the source: the check of a later restore
                # would read the new stack's beats as the source's
                f"dbplatform heartbeat install --stack {run.target}   # the restored pg_cron job "
                f"beats as {src.name}; this re-schedules it as {run.target}",
            ]
    except Failed as exc:
        failure = exc.message
    except ClientError as exc:
        failure = f"AWS {exc.operation_name} failed: {error_code(exc)}"
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if run.kind == "drill":
            try:
                # interrupted: the delete calls are sent and not waited for (GitHub kills the
                # process 10 s after its SIGINT); otherwise what is left of --timeout
                _teardown(ctx, run, wait=0 if interrupted else budget.cleanup())
            except Failed as exc:
                failure = f"{failure}; {exc.message}" if failure else exc.message
    outcome = "failed" if failure else "succeeded"
    report, path = _report(ctx, run, outcome)
    payload = report.to_json() | {"report": str(path)}
    rto = (
        f"database restored in {human(run.database_restored)}; "
        f"total RTO {report.rto_line(plain=True)}"
    )
    rpo = f"RPO {human(report.rpo)} (objective {human(report.objectives.rpo)})"
    if failure:
        left = ""
        if run.kind != "drill":
            left = f" Created by this run: {', '.join(run.created) or 'nothing'}."
            if run.existing:
                left += f" Existing before this run: {', '.join(run.existing)}."
        raise Failed(
            f"{run.kind} of {cfg.stack} into {run.region} failed: {failure}.{left} Report: {path}",
            data=payload,
        )
    lines = [
        f"{run.kind} of {cfg.stack} into {run.target} ({run.region}) succeeded: {rto}, {rpo}.",
        *_resumed_lines(ctx, run),
        f"Report: {path}",
    ]
    if run.commands:
        lines += [
            f"Finish the environment (replicas, vault, backups, alarms; {no_pulumi_why} here):",
            *(f"  {c}" for c in run.commands),
        ]
    if run.todo:
        lines += ["Then:", *(f"  - {t}" for t in run.todo)]
    return Result("\n".join(lines), data=payload)


def rebuild(ctx: Context) -> Result:
    """The `rebuild` operation."""
    return _operate(ctx, "rebuild")


def drill(ctx: Context) -> Result:
    """The `drill` operation."""
    return _operate(ctx, "drill")
