"""`bluegreen start`: preflight, create the deployment, wait until green is available."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dbplatform.bluegreen import sql
from dbplatform.bluegreen.checks import (
    Target,
    major,
    parameter_group_family,
    preflight,
    subscriber_problems,
    uncovered_replicas,
)
from dbplatform.bluegreen.common import (
    blue_ids,
    locate,
    refuse_half_done_rollback,
    state_from_deployment,
    wait_ready,
)
from dbplatform.bluegreen.model import (
    AVAILABLE,
    OPEN_PHASES,
    PROMOTED,
    PROVISIONING,
    ROLLED_BACK,
    STARTED,
    BgState,
    Deployment,
    deployment_name,
    write_state,
)
from dbplatform.database import checks as database_checks
from dbplatform.ops import Context, Refused, Result, iso
from dbplatform.ops.rds import describe_instance


def _target(ctx: Context, primary: dict[str, Any]) -> Target:
    args = ctx.args
    version = args.engine_version or primary.get("EngineVersion", "")
    groups = [g["DBParameterGroupName"] for g in primary.get("DBParameterGroups", [])]
    current_group = groups[0] if groups else ""
    if args.parameter_group:
        group = args.parameter_group
    elif major(version) != major(primary.get("EngineVersion", "")):
        group = ctx.stack.names.parameter_group(f"postgres{major(version)}")
    else:
        group = current_group
    return Target(version, group, args.instance_class)


def _next_after(ctx: Context, state: BgState) -> str:
    s = ctx.stack.name
    if state.phase in (PROMOTED, ROLLED_BACK):
        return (
            f"the previous blue/green cycle ({state.deployment_name}, {state.phase}) is not "
            f"finalized: run `dbplatform bluegreen finalize --stack {s}` after its soak "
            f"(until {state.soak_until})"
        )
    return (
        f"the previous blue/green cycle ({state.deployment_name}) is '{state.phase}': finish it "
        f"with `dbplatform bluegreen promote --stack {s}` or "
        f"`dbplatform bluegreen rollback --stack {s}`"
    )


def run(ctx: Context) -> Result:
    rds = ctx.client("rds")
    names = ctx.stack.names
    with ctx.out.phase("look up the stack"):
        cycle = locate(ctx)
        primary = describe_instance(rds, names.primary)
    state, dep = cycle.state, cycle.deployment
    refuse_half_done_rollback(ctx, state)
    if state is not None and state.phase in OPEN_PHASES:
        raise Refused(_next_after(ctx, state), data={"state": state.__dict__})
    if primary is None:
        raise Refused(
            f"no primary {names.primary} in {ctx.stack.region}: deploy the stack first "
            f"(pulumi up --stack {ctx.stack.name})"
        )
    target = _target(ctx, primary)
    if dep is not None:
        return _resume(ctx, state, dep, target)

    changes_nothing = (
        target.engine_version == primary.get("EngineVersion")
        and target.parameter_group
        in [g["DBParameterGroupName"] for g in primary["DBParameterGroups"]]
        and target.instance_class in (None, primary.get("DBInstanceClass"))
    )
    if changes_nothing:
        raise Refused(
            "a green copy would change nothing: pass --engine-version, --parameter-group or "
            "--instance-class"
        )
    with ctx.out.phase("preflight"):
        problems = preflight(ctx, primary, target)
        # Logical replication for a major upgrade, physical otherwise (AWS "Overview of
        # Amazon RDS blue/green deployments"): the SQL limits differ.
        logical = major(target.engine_version) != major(primary.get("EngineVersion", ""))
        if not sql.skipped(ctx, "tables, slots, sessions and replication settings"):
            connect = sql.connector(ctx, primary)
            problems += database_checks.preflight(connect, logical=logical)
            family = f"postgres{major(target.engine_version)}"
            green_group = parameter_group_family(ctx.client("rds"), target.parameter_group)
            if logical and green_group == family:  # else preflight said what is wrong with it
                with connect("postgres") as conn:
                    count = len(database_checks.databases(conn))
                problems += subscriber_problems(ctx, target.parameter_group, family, count)
        if problems:  # inside the phase: its end line says `refused after`, not `done in`
            raise Refused(
                f"blue/green cannot start on {names.primary}; nothing was changed:\n"
                + "\n".join(f"  - {p}" for p in problems),
                data={"problems": problems},
            )

    name = deployment_name(names, target.engine_version)
    params: dict[str, object] = {
        "BlueGreenDeploymentName": name,
        "Source": primary["DBInstanceArn"],
        "TargetEngineVersion": target.engine_version,
        "TargetDBParameterGroupName": target.parameter_group,
        "Tags": [
            *({"Key": k, "Value": v} for k, v in sorted(ctx.stack.config.base_tags().items())),
            {"Key": "dbplatform:run-id", "Value": ctx.run_id},
        ],
    }
    if target.instance_class:
        params["TargetDBInstanceClass"] = target.instance_class
    with ctx.out.phase("create the deployment"):
        created = ctx.mutate(rds, "create_blue_green_deployment", dict(params))
    new_id = created.get("BlueGreenDeployment", {}).get("BlueGreenDeploymentIdentifier", "")
    record = BgState(
        phase=STARTED,
        deployment_id=new_id,
        deployment_name=name,
        source_version=primary.get("EngineVersion", ""),
        target_version=target.engine_version,
        source_class=primary.get("DBInstanceClass", ""),
        target_class=target.instance_class or primary.get("DBInstanceClass", ""),
        source_parameter_group=primary["DBParameterGroups"][0]["DBParameterGroupName"],
        target_parameter_group=target.parameter_group,
        started_at=iso(ctx.clock.now()),
        run_id=ctx.run_id,
    )
    record = write_state(ctx, record, STARTED)
    if ctx.dry_run:
        return Result(
            f"dry run: would create {name} ({record.source_version} -> {record.target_version}) "
            f"and wait up to {ctx.args.timeout} min for green",
            data={"deployment_name": name, "target": target.__dict__},
        )
    return _wait_and_report(ctx, record, primary, already=False)


def _resume(ctx: Context, state: BgState | None, dep: Deployment, target: Target) -> Result:
    rds = ctx.client("rds")
    names = ctx.stack.names
    recorded = state if state is not None and state.deployment_id == dep.id else None
    state = recorded or state_from_deployment(ctx, dep)
    green = describe_instance(rds, dep.target) or {}
    asked = ctx.args.engine_version or ctx.args.instance_class or ctx.args.parameter_group
    differs = (ctx.args.engine_version and green.get("EngineVersion") != target.engine_version) or (
        ctx.args.instance_class and green.get("DBInstanceClass") != target.instance_class
    )
    if dep.status not in (PROVISIONING, AVAILABLE) or (asked and differs):
        raise Refused(
            f"another blue/green deployment exists for {names.primary}: {dep.describe()}. "
            f"Promote it, or delete it with `dbplatform bluegreen rollback --stack "
            f"{ctx.stack.name}`, before starting another",
            data={"deployment": dep.summary()},
        )
    primary = describe_instance(rds, names.primary) or {}
    if ctx.dry_run:
        return Result(
            f"dry run: deployment {dep.id} exists ({dep.status}); would wait for green",
            data={"deployment": dep.summary()},
            nothing_to_do=True,
        )
    if recorded is None:  # created by an interrupted run (or outside this tool): record it
        state = write_state(ctx, state, STARTED)
    return _wait_and_report(ctx, state, primary, already=dep.status == AVAILABLE)


def _wait_and_report(
    ctx: Context, state: BgState, primary: dict[str, Any], *, already: bool
) -> Result:
    with ctx.out.phase("wait for green"):
        dep = wait_ready(ctx, state.deployment_id, ctx.args.timeout * 60.0)
    members = dep.pairs
    fresh = state.members != members
    if fresh or not state.blue_ids:
        rds = ctx.client("rds")
        state = write_state(ctx, replace(state, members=members, blue_ids=blue_ids(rds, members)))
    missing = uncovered_replicas(primary, dep)
    if missing:
        ctx.out.warn(
            f"blue replicas without a green member: {', '.join(missing)}; they will keep "
            "following the old blue after switchover"
        )
    green = ", ".join(m.target for m in dep.members)
    s = ctx.stack.name
    message = (
        f"green environment ready: {green} runs PostgreSQL {state.target_version} "
        f"(blue {state.source_version}). Test it, then: dbplatform bluegreen promote "
        f"--stack {s}"
    )
    if already and not fresh:
        message = f"nothing to do: {message}"
    return Result(
        message,
        data={"deployment": dep.summary(), "uncovered_replicas": missing},
        nothing_to_do=already and not fresh,
    )
