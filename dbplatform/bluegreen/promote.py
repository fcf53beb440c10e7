"""`bluegreen promote`: gates, snapshot of blue, switchover, post-checks, soak record.

Resumable: the state record and the deployment's status say which step is next, so a re-run
after an interruption continues (waits for a switchover in progress, redoes post-checks), and a
re-run after success reports nothing to do.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from dbplatform.bluegreen import checks, sql
from dbplatform.bluegreen.common import (
    SWITCHED,
    UNSWITCHED,
    blue_ids,
    config_advice,
    deployment_ready,
    layout_without_deployment,
    locate,
    refuse_half_done_rollback,
    require_primary,
    state_from_deployment,
    take_snapshot_seen,
)
from dbplatform.bluegreen.model import (
    AVAILABLE,
    OLD_SUFFIX,
    PROMOTED,
    ROLLED_BACK,
    ROLLING_BACK,
    SWITCHED_OVER,
    SWITCHING,
    SWITCHOVER_COMPLETED,
    SWITCHOVER_FAILED,
    SWITCHOVER_IN_PROGRESS,
    BgState,
    Deployment,
    describe_snapshot,
    get_deployment,
    short_id,
    write_state,
)
from dbplatform.ops import Context, Failed, Poll, Refused, Result, iso
from dbplatform.ops.rds import describe_instance
from infra.naming import rds_identifier

# After its own timeout RDS rolls a switchover back; allow it this long to report so.
SWITCHOVER_GRACE = 900.0
MIB = 1024 * 1024  # --max-slot-lag-mb is in MB of WAL; the metric and the SQL give bytes


def run(ctx: Context) -> Result:
    with ctx.out.phase("look up the deployment"):
        cycle = locate(ctx)
    state, dep = cycle.state, cycle.deployment
    s = ctx.stack.name
    require_primary(ctx)
    refuse_half_done_rollback(ctx, state)
    if (
        state is not None
        and state.phase in (ROLLING_BACK, ROLLED_BACK)
        and (dep is None or dep.id == state.deployment_id)
    ):
        raise Refused(
            f"the last blue/green cycle of {s} was rolled back ({state.phase}); finalize it, "
            f"then start a new one with `dbplatform bluegreen start --stack {s}`"
        )
    if dep is None:
        if state is not None and state.phase == PROMOTED:
            return _done(ctx, state, nothing=True)
        if state is not None and state.phase == SWITCHED_OVER:
            return _after_switchover(ctx, state, None)
        if state is not None and state.phase == SWITCHING:
            # interrupted after the switchover was asked for, and the deployment deleted since
            where = layout_without_deployment(ctx, state)
            primary = ctx.stack.names.primary
            if where == SWITCHED:
                ctx.out.info(
                    f"deployment {state.deployment_id} is gone, but the instances stand "
                    "switched over: going on from the switchover"
                )
                return _after_switchover(ctx, state, None)
            if where == UNSWITCHED:
                raise Refused(
                    f"the switchover of deployment {state.deployment_id} was asked for, but the "
                    f"deployment is gone and {primary} was never switched over (the blue still "
                    "holds its name): there is nothing to promote. Close the cycle with "
                    f"`dbplatform bluegreen rollback --stack {s}` (it changes no instance), "
                    "then start a new one",
                    data={"phase": state.phase, "deployment": state.deployment_id},
                )
            raise Refused(
                f"deployment {state.deployment_id} is gone and the instances stand neither "
                f"switched over nor as before: {where}. Nothing was changed; inspect them "
                f"(`dbplatform bluegreen status --stack {s}`, the RDS console) before any step",
                data={"phase": state.phase, "layout": where},
            )
        raise Refused(
            f"no blue/green deployment for {ctx.stack.names.primary}: run "
            f"`dbplatform bluegreen start --stack {s}` first"
        )
    if state is None or state.deployment_id != dep.id:
        state = state_from_deployment(ctx, dep)
    if dep.status == SWITCHOVER_COMPLETED:
        if state.phase == PROMOTED:
            return _done(ctx, state, nothing=True)
        return _after_switchover(ctx, state, dep)
    if dep.status == SWITCHOVER_IN_PROGRESS:
        return _after_switchover(ctx, state, _wait_switchover(ctx, state, dep))
    if dep.status == SWITCHOVER_FAILED:
        raise _switchover_failed(ctx, state, dep)
    if dep.status != AVAILABLE:
        raise Refused(
            f"green is not ready: {dep.describe()}. Wait for `dbplatform bluegreen "
            f"status --stack {s}` to show AVAILABLE (or re-run start to wait), then promote",
            data={"deployment": dep.summary()},
        )
    return _switch(ctx, state, dep)


def _gates(ctx: Context, state: BgState, dep: Deployment) -> list[str]:
    problems: list[str] = []
    ready, text = deployment_ready(ctx, dep)
    if not ready:
        problems.append(f"green is not ready: {text}")
    if ctx.args.ignore_lag:
        ctx.out.warn("replication lag not checked (--ignore-lag; recorded in the audit log)")
    elif checks.major(state.source_version) != checks.major(state.target_version):
        problems += _logical_lag(ctx, dep)
    else:
        problems += _physical_lag(ctx, dep)
    firing = checks.alarms_firing(ctx)
    if firing:
        problems.append(
            f"alarms of {ctx.stack.names.prefix} in ALARM: {', '.join(firing)}; resolve them first"
        )
    if ctx.args.health_url:
        problem = checks.http_ready(ctx.args.health_url)
        if problem:
            problems.append(f"application not ready before switchover: {problem}")
    return problems


def _physical_lag(ctx: Context, dep: Deployment) -> list[str]:
    """Same major version: green is a physical replica and publishes ReplicaLag (seconds)."""
    problems: list[str] = []
    max_lag = ctx.args.max_lag
    for m in dep.members:
        lag = checks.replica_lag(ctx, m.target)
        if lag is None:
            problems.append(
                f"no ReplicaLag datapoint for {m.target} in the last 5 minutes: replication "
                "health is unknown; check the green instance in CloudWatch and retry (or "
                "--ignore-lag)"
            )
        elif lag > max_lag:
            problems.append(f"{m.target} lags {lag:.0f}s behind blue (limit --max-lag {max_lag}s)")
    return problems


def _logical_lag(ctx: Context, dep: Deployment) -> list[str]:
    """A major upgrade replicates logically: green may publish no ReplicaLag. AWS "Monitoring
    replica lag prior to switchover": watch OldestReplicationSlotLag on BLUE, or the LSN
    distance of blue's replication slots in SQL; both are used when available, in MB (MiB).

    RDS sends OldestReplicationSlotLag to CloudWatch in bytes, though the console labels it
    "(MB)" (Amazon RDS User Guide, "Amazon CloudWatch metrics for Amazon RDS": unit Bytes; the
    program's alarms read it so too, infra/aws_rules.py RDS_METRIC_UNITS)."""
    problems: list[str] = []
    limit = float(ctx.args.max_slot_lag_mb)
    rds = ctx.client("rds")
    for m in dep.members:
        blue = m.source
        seen: list[float] = []
        metric = checks.latest_metric(ctx, "OldestReplicationSlotLag", blue)
        if metric is not None:
            seen.append(metric / MIB)
        if not sql.skipped(ctx, f"the slot lag of {blue}"):
            from dbplatform.database import checks as database_checks  # with a connection only

            inst = describe_instance(rds, blue)  # its endpoint
            if inst is not None:
                with sql.connector(ctx, inst)("postgres") as conn:
                    slots = database_checks.slot_lags(conn)
                if slots:
                    seen.append(max(s.lag_bytes for s in slots) / MIB)
        if not seen:
            problems.append(
                f"no OldestReplicationSlotLag datapoint for blue {blue} in the last 5 minutes and "
                "no slot measured in SQL: logical replication health is unknown; retry, or "
                "--ignore-lag"
            )
        elif max(seen) > limit:
            problems.append(
                f"green's logical replication is {max(seen):.1f} MB behind blue {blue} "
                f"(limit --max-slot-lag-mb {limit:g})"
            )
    return problems


def _switch(ctx: Context, state: BgState, dep: Deployment) -> Result:
    rds = ctx.client("rds")
    primary = ctx.stack.names.primary
    # Each check phase raises its verdict inside itself, so its end line says `refused after`
    # (a gate that refused must not read `gates: done` just above the refusal).
    with ctx.out.phase("gates"):
        problems = _gates(ctx, state, dep)
        if problems:
            raise Refused(
                f"promote of {primary} refused; nothing was changed:\n"
                + "\n".join(f"  - {p}" for p in problems),
                data={"problems": problems, "deployment": dep.summary()},
            )
    ctx.confirm(
        f"switch {primary} over to green (PostgreSQL {state.target_version}); writes pause "
        f"for up to {ctx.args.switchover_timeout}s"
    )
    snapshot = state.pre_switchover_snapshot or rds_identifier(
        primary, "pre-switchover", short_id(dep.id)
    )
    earlier = describe_snapshot(rds, snapshot)
    if earlier is not None and earlier.get("SnapshotCreateTime"):
        made = earlier["SnapshotCreateTime"]
        age = ctx.clock.now() - made
        ctx.out.info(
            f"reusing pre-switchover snapshot {snapshot} taken {iso(made)} "
            f"({age.total_seconds() / 3600:.1f} h ago): writes since then are only on blue"
        )
    with ctx.out.phase(f"snapshot blue ({snapshot})"):
        take_snapshot_seen(ctx, primary, snapshot, "pre-switchover", earlier)
    if not ctx.dry_run:
        # The snapshot may take long: the gates are checked again right before the switchover.
        with ctx.out.phase("gates again"):
            again = _gates(ctx, state, dep if (now := get_deployment(rds, dep.id)) is None else now)
            if again:
                raise Refused(
                    f"promote of {primary} refused after the pre-switchover snapshot {snapshot} "
                    "(kept); nothing was switched:\n" + "\n".join(f"  - {p}" for p in again),
                    data={"problems": again, "snapshot": snapshot},
                )
    state = write_state(
        ctx,
        replace(
            state,
            pre_switchover_snapshot=snapshot,
            switchover_requested_at=iso(ctx.clock.now()),
            run_id=ctx.run_id,
            # who blue is, by resource id, for a re-run that finds the deployment gone: the
            # members from the live deployment (a start cut short recorded none)
            members=dep.pairs,
            blue_ids=state.blue_ids or blue_ids(rds, dep.pairs),
        ),
        SWITCHING,
    )
    with ctx.out.phase("switchover"):
        ctx.mutate(
            rds,
            "switchover_blue_green_deployment",
            {
                "BlueGreenDeploymentIdentifier": dep.id,
                "SwitchoverTimeout": ctx.args.switchover_timeout,
            },
        )
        if ctx.dry_run:
            return Result(
                f"dry run: would snapshot {primary} as {snapshot}, switch over {dep.id} "
                f"(timeout {ctx.args.switchover_timeout}s), run post-checks and keep "
                f"{primary}{OLD_SUFFIX} for {ctx.args.soak_days} days",
                data={"deployment": dep.summary(), "snapshot": snapshot},
            )
        done = _wait_switchover(ctx, state, dep)
    return _after_switchover(ctx, state, done)


def _wait_switchover(ctx: Context, state: BgState, dep: Deployment) -> Deployment:
    rds = ctx.client("rds")

    def poll() -> Poll[Deployment]:
        now = get_deployment(rds, dep.id)
        if now is None:
            raise Failed(f"deployment {dep.id} disappeared during the switchover")
        if now.status == SWITCHOVER_FAILED:
            raise _switchover_failed(ctx, state, now)
        if now.status == AVAILABLE:
            raise _switchover_failed(ctx, state, now, rolled_back=True)
        return Poll(now.status == SWITCHOVER_COMPLETED, now.status, now)

    timeout = float(ctx.args.switchover_timeout) + SWITCHOVER_GRACE
    result = ctx.wait_for(
        f"switchover of {dep.id}",
        poll,
        timeout=timeout,
        on_timeout="RDS has not finished it; re-run promote to keep waiting, or see status",
    )
    assert result is not None
    return result


def _switchover_failed(
    ctx: Context, state: BgState, dep: Deployment, *, rolled_back: bool = False
) -> Failed:
    inst = describe_instance(ctx.client("rds"), ctx.stack.names.primary) or {}
    serving = (
        f"{ctx.stack.names.primary} still serves on PostgreSQL {inst.get('EngineVersion')} "
        f"({inst.get('DBInstanceStatus')})"
    )
    what = "was rolled back by RDS (timeout or guardrail)" if rolled_back else "failed"
    return Failed(
        f"switchover {what}: {dep.describe()}. Blue is untouched: {serving}. Fix the cause "
        f"(see `dbplatform bluegreen status --stack {ctx.stack.name}`), then re-run promote "
        "or rollback",
        data={"deployment": dep.summary(), "serving_version": inst.get("EngineVersion")},
    )


def _after_switchover(ctx: Context, state: BgState, dep: Deployment | None) -> Result:
    """Record the switchover, keep and tag the old blue, then run the post-checks."""
    rds = ctx.client("rds")
    if state.phase != SWITCHED_OVER:
        switched_at = state.switchover_requested_at or iso(ctx.clock.now())
        soak = ctx.clock.now() + timedelta(days=ctx.args.soak_days)
        retired = tuple(blue + OLD_SUFFIX for blue, _ in state.members) or (
            ctx.stack.names.primary + OLD_SUFFIX,
        )
        state = write_state(
            ctx,
            replace(state, switchover_at=switched_at, soak_until=iso(soak), retired=retired),
            SWITCHED_OVER,
        )
        with ctx.out.phase("keep the old blue"):
            for old in retired:
                inst = describe_instance(rds, old)
                if inst is None:
                    ctx.out.warn(f"expected old blue {old} not found")
                    continue
                ctx.mutate(
                    rds,
                    "add_tags_to_resource",
                    {
                        "ResourceName": inst["DBInstanceArn"],
                        "Tags": [
                            {"Key": "dbplatform:role", "Value": "retired-blue"},
                            {"Key": "dbplatform:soak-until", "Value": state.soak_until or ""},
                            {"Key": "dbplatform:deployment", "Value": state.deployment_id},
                            {"Key": "dbplatform:run-id", "Value": ctx.run_id},
                        ],
                    },
                )
    with ctx.out.phase("post-checks"):
        problems = _post_checks(ctx, state)
        if problems:  # inside the phase: its end line says FAILED
            raise Failed(
                "switchover done, but post-checks failed:\n"
                + "\n".join(f"  - {p}" for p in problems)
                + f"\nThe old blue is kept ({', '.join(state.retired)}). Re-run promote to check "
                f"again, or roll back: dbplatform bluegreen rollback --stack {ctx.stack.name}",
                data={"problems": problems, "state": _state_data(state)},
            )
    state = write_state(ctx, state, PROMOTED)
    return _done(ctx, state, nothing=False)


def _post_checks(ctx: Context, state: BgState) -> list[str]:
    problems: list[str] = []
    primary = ctx.stack.names.primary
    inst = describe_instance(ctx.client("rds"), primary)
    if inst is None:
        return [f"{primary} not found after switchover"]
    if inst.get("EngineVersion") != state.target_version:
        problems.append(
            f"{primary} runs {inst.get('EngineVersion')}, expected {state.target_version}"
        )
    if inst.get("DBInstanceStatus") != "available":
        problems.append(f"{primary} is '{inst.get('DBInstanceStatus')}', not available")
    if ctx.args.check_endpoint:
        endpoint = inst.get("Endpoint") or {}
        problem = checks.tcp_answers(endpoint.get("Address", ""), int(endpoint.get("Port", 0)))
        if problem:
            problems.append(f"endpoint: {problem}")
    firing = checks.alarms_firing(ctx)
    if firing:
        problems.append(f"alarms in ALARM after switchover: {', '.join(firing)}")
    if ctx.args.health_url:
        problem = checks.http_ready(ctx.args.health_url)
        if problem:
            problems.append(f"application not ready after switchover: {problem}")
    return problems


def _state_data(state: BgState) -> dict[str, Any]:
    return {
        "phase": state.phase,
        "deployment_id": state.deployment_id,
        "source_version": state.source_version,
        "target_version": state.target_version,
        "switchover_at": state.switchover_at,
        "pre_switchover_snapshot": state.pre_switchover_snapshot,
        "retired": list(state.retired),
        "soak_until": state.soak_until,
    }


def _done(ctx: Context, state: BgState, *, nothing: bool) -> Result:
    lines, changes = config_advice(
        ctx,
        state.target_version,
        state.target_class if state.target_class != state.source_class else None,
        ctx.args.update_config,
    )
    s = ctx.stack.name
    head = (
        f"{ctx.stack.names.primary} runs PostgreSQL {state.target_version} since "
        f"{state.switchover_at}; old blue {', '.join(state.retired)} kept until "
        f"{state.soak_until} (snapshot {state.pre_switchover_snapshot}). Next: "
        f"`dbplatform bluegreen finalize --stack {s}` after the soak, or rollback"
    )
    if nothing:
        head = f"nothing to do: {head}"
    return Result(
        "\n".join([head, *lines]),
        data={
            "state": _state_data(state),
            "config_changes": [c.__dict__ for c in changes],
            "next": lines,
        },
        nothing_to_do=nothing,
    )
