"""`bluegreen status`: the deployment, its tasks and members, versions, lag, and the record."""

from __future__ import annotations

from typing import Any

from dbplatform.bluegreen import checks
from dbplatform.bluegreen.common import locate
from dbplatform.bluegreen.model import (
    AVAILABLE,
    CANCELLED,
    FINALIZED,
    NEW_SUFFIX,
    OLD_SUFFIX,
    PROMOTED,
    ROLLED_BACK,
    ROLLING_BACK,
    SWITCHED_OVER,
    SWITCHING,
    SWITCHOVER_COMPLETED,
    BgState,
    Deployment,
)
from dbplatform.ops import Context, Result
from dbplatform.ops.rds import describe_instances


def _instance(seen: dict[str, dict[str, Any]], identifier: str) -> dict[str, Any] | None:
    inst = seen.get(identifier)
    if inst is None:
        return None
    return {
        "identifier": identifier,
        "engine_version": inst.get("EngineVersion"),
        "status": inst.get("DBInstanceStatus"),
        "class": inst.get("DBInstanceClass"),
        "replica_of": inst.get("ReadReplicaSourceDBInstanceIdentifier"),
    }


def _next(
    ctx: Context, state: BgState | None, dep: Deployment | None, *, primary_found: bool
) -> str:
    cmd = f"dbplatform bluegreen {{}} --stack {ctx.stack.name}"
    phase = state.phase if state else None
    # A half-done rollback or switchover first: the deployment's status no longer tells it.
    if phase == ROLLING_BACK:
        return (
            f"a rollback is half done ({ctx.stack.names.primary} may have no instance right "
            f"now): re-run `{cmd.format('rollback')}` to finish it"
        )
    if phase == SWITCHING:
        return f"a switchover was requested: re-run `{cmd.format('promote')}` to follow it"
    if dep is not None and dep.status == AVAILABLE:
        return f"test green, then `{cmd.format('promote')}` (or `{cmd.format('rollback')}`)"
    if dep is not None and dep.status not in (AVAILABLE, SWITCHOVER_COMPLETED):
        return f"wait (`{cmd.format('start')}` waits for green) or `{cmd.format('rollback')}`"
    if phase == PROMOTED:
        return (
            f"after the soak ({state.soak_until if state else ''}): `{cmd.format('finalize')}`; "
            f"until then `{cmd.format('rollback')}` returns to the old version"
        )
    if phase == ROLLED_BACK:
        return f"after the soak ({state.soak_until if state else ''}): `{cmd.format('finalize')}`"
    if phase in (SWITCHED_OVER,) or (dep is not None and dep.status == SWITCHOVER_COMPLETED):
        return f"`{cmd.format('promote')}` finishes the post-checks"
    if phase in (None, FINALIZED, CANCELLED) and dep is None and not primary_found:
        # No database and no cycle under way: most often credentials for another account or
        # the wrong region, not a stack ready for a new cycle.
        account = ctx.known_whoami().get("account") or "unknown"
        return (
            f"no database {ctx.stack.names.primary} in {ctx.stack.region} (account {account}): "
            f"check that the credentials are for the stack's account and that aws:region in "
            f"Pulumi.{ctx.stack.name}.yaml is right; a stack never deployed gets it from "
            "`pulumi up`"
        )
    if phase in (None, FINALIZED, CANCELLED):
        return f"`{cmd.format('start')} --engine-version X.Y` to begin a cycle"
    return f"re-run `{cmd.format('promote')}` or `{cmd.format('rollback')}` to resume"


def run(ctx: Context) -> Result:
    rds = ctx.client("rds")
    names = ctx.stack.names
    with ctx.out.phase("read the state"):
        cycle = locate(ctx)
        state, dep = cycle.state, cycle.deployment
        # Also an -old1/-new1 the record does not name (a cycle run outside this tool).
        kept_ids = [
            *(state.retired if state else ()),
            *(names.primary + suffix for suffix in (OLD_SUFFIX, NEW_SUFFIX)),
        ]
        member_ids = [i for m in (dep.members if dep else ()) for i in (m.source, m.target)]
        seen = describe_instances(rds, [names.primary, *member_ids, *kept_ids])
        primary = _instance(seen, names.primary)
        members: list[dict[str, Any]] = []
        if dep is not None:
            for m in dep.members:
                blue, green = _instance(seen, m.source), _instance(seen, m.target)
                lag = (
                    checks.replica_lag(ctx, m.target)
                    if dep.status != SWITCHOVER_COMPLETED
                    else None
                )
                members.append(
                    {
                        "blue": blue or m.source,
                        "green": green or m.target,
                        "status": m.status,
                        "replica_lag_s": lag,
                    }
                )
        kept = [_instance(seen, r) for r in kept_ids]
        retired: list[dict[str, Any]] = []
        for inst in kept:
            if inst and all(r["identifier"] != inst["identifier"] for r in retired):
                retired.append(inst)
    lines = []
    config_version = ctx.stack.config.database.engine_version
    if primary:
        lines.append(
            f"{names.primary}: PostgreSQL {primary['engine_version']} ({primary['status']}); "
            f"Pulumi.{ctx.stack.name}.yaml says {config_version}"
        )
    else:
        lines.append(f"{names.primary}: not found in {ctx.stack.region}")
    if dep is not None:
        lines.append(dep.describe())
        lines.append("  tasks: " + (", ".join(f"{n} {s}" for n, s in dep.tasks) or "none"))
        for row in members:
            b, g = row["blue"], row["green"]
            bv = b["engine_version"] if isinstance(b, dict) else "?"
            gv = g["engine_version"] if isinstance(g, dict) else "?"
            bid = b["identifier"] if isinstance(b, dict) else b
            gid = g["identifier"] if isinstance(g, dict) else g
            lag = row["replica_lag_s"]
            lag_text = (
                ""
                if lag is None and dep.status == SWITCHOVER_COMPLETED
                else (f", replica lag {lag:.0f}s" if lag is not None else ", replica lag unknown")
            )
            lines.append(f"  {bid} ({bv}) -> {gid} ({gv}): {row['status']}{lag_text}")
    else:
        lines.append("no blue/green deployment")
    if state is not None:
        lines.append(
            f"record: {state.phase} ({state.deployment_name}, {state.source_version} -> "
            f"{state.target_version})"
            + (f", switched over {state.switchover_at}" if state.switchover_at else "")
            + (f", soak until {state.soak_until}" if state.soak_until else "")
        )
    for r in retired:
        lines.append(f"  kept: {r['identifier']} ({r['engine_version']}, {r['status']})")
    nxt = _next(ctx, state, dep, primary_found=primary is not None)
    lines.append(f"next: {nxt}")
    return Result(
        "\n".join(lines),
        data={
            "primary": primary,
            "config_engine_version": config_version,
            "deployment": dep.summary() if dep else None,
            "members": members,
            "state": state.__dict__ if state else None,
            "phase": state.phase if state else None,
            "retired": retired,
            "next": nxt,
        },
    )
