"""`bluegreen finalize`: after the soak, final snapshots of the retired instances, then delete
them and the deployment object. The pre-switchover and pre-rollback snapshots are kept.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dbplatform.bluegreen.common import (
    INSTANCE_TIMEOUT,
    locate,
    refuse_half_done_rollback,
    require_primary,
)
from dbplatform.bluegreen.model import (
    CANCELLED,
    FINALIZED,
    PROMOTED,
    ROLLED_BACK,
    SWITCHOVER_COMPLETED,
    BgState,
    describe_snapshot,
    short_id,
    write_state,
)
from dbplatform.ops import Context, Refused, Result, parse_iso
from dbplatform.ops.rds import describe_instance, wait_instance_gone
from infra.naming import rds_identifier


def run(ctx: Context) -> Result:
    rds = ctx.client("rds")
    s = ctx.stack.name
    with ctx.out.phase("look up the cycle"):
        require_primary(ctx)
        cycle = locate(ctx)
    state, dep = cycle.state, cycle.deployment
    if state is None or state.phase in (FINALIZED, CANCELLED):
        phase = state.phase if state else "none"
        return Result(
            f"nothing to do: no promoted or rolled-back blue/green cycle to finalize "
            f"(last: {phase})",
            data={"phase": phase},
            nothing_to_do=True,
        )
    refuse_half_done_rollback(ctx, state)
    if state.phase not in (PROMOTED, ROLLED_BACK):
        raise Refused(
            f"the blue/green cycle {state.deployment_name} is '{state.phase}', not promoted or "
            f"rolled back: finish it with `dbplatform bluegreen promote --stack {s}` or "
            f"`dbplatform bluegreen rollback --stack {s}`, then finalize after the soak"
        )
    now = ctx.clock.now()
    if state.soak_until and parse_iso(state.soak_until) > now and not ctx.args.ignore_soak:
        left = parse_iso(state.soak_until) - now
        raise Refused(
            f"the soak period of {', '.join(state.retired)} ends at {state.soak_until} "
            f"({left.days}d {left.seconds // 3600}h left); re-run then, or pass --ignore-soak "
            "to delete it now (a final snapshot is still taken)",
            data={"soak_until": state.soak_until},
        )
    infos = {r: describe_instance(rds, r) for r in state.retired}
    present = [r for r, info in infos.items() if info is not None]
    forged = _not_retired(ctx, state, {r: i for r, i in infos.items() if i is not None})
    if forged:
        raise Refused(
            "the blue/green record lists instances finalize must not delete:\n"
            + "\n".join(f"  - {f}" for f in forged)
            + f"\nNothing was changed. Check who wrote {ctx.stack.names.bluegreen_state_parameter}"
            " (CloudTrail ssm:PutParameter); delete retired instances by hand if they really are",
            data={"refused": forged},
        )
    deployment = (
        " and the deployment object"
        if dep is not None and dep.id == state.deployment_id and dep.status == SWITCHOVER_COMPLETED
        else ""
    )
    ctx.confirm(
        f"delete {', '.join(present) or 'nothing'} (final snapshot first){deployment}. "
        + _no_way_back(state)
    )
    if dep is not None and dep.id == state.deployment_id and dep.status == SWITCHOVER_COMPLETED:
        with ctx.out.phase("delete the deployment object"):
            ctx.mutate(
                rds, "delete_blue_green_deployment", {"BlueGreenDeploymentIdentifier": dep.id}
            )
    finals = list(state.final_snapshots)
    suffix = short_id(state.deployment_id or "manual")
    for gone in (r for r in state.retired if infos[r] is None):
        # Deleted by a finalize interrupted before it wrote the record: name its final snapshot.
        snap = rds_identifier(gone, "final", suffix)
        if snap not in finals and describe_snapshot(rds, snap) is not None:
            finals.append(snap)
    # Replicas before their source: RDS would otherwise promote them to standalone instances.
    ordered = sorted(
        present, key=lambda r: not (infos[r] or {}).get("ReadReplicaSourceDBInstanceIdentifier")
    )
    for ident in ordered:
        snap = rds_identifier(ident, "final", suffix)
        with ctx.out.phase(f"delete {ident} (final snapshot {snap})"):
            inst = describe_instance(rds, ident)
            if inst is None:  # gone since it was listed
                continue
            replica = bool(inst.get("ReadReplicaSourceDBInstanceIdentifier"))
            if not replica and snap not in finals:
                finals.append(snap)
            # After an interrupted finalize RDS may be deleting it already: only wait.
            if inst.get("DBInstanceStatus") != "deleting":
                _delete(ctx, inst, None if replica else snap)
            if not ctx.dry_run:
                wait_instance_gone(ctx, ident, timeout=INSTANCE_TIMEOUT)
    if ctx.dry_run:
        return Result(
            f"dry run: would delete {', '.join(present) or 'nothing'} with final snapshots",
            data={"retired": present},
        )
    write_state(ctx, replace(state, final_snapshots=tuple(finals)), FINALIZED)
    return Result(
        f"finalized: deleted {', '.join(present) or 'nothing (already gone)'}; final snapshots "
        f"{', '.join(finals) or 'none'}; automated backups kept for their retention. The "
        f"pre-switchover snapshot {state.pre_switchover_snapshot} is kept: delete it when no "
        "longer needed",
        data={"deleted": present, "final_snapshots": finals},
    )


def _no_way_back(state: BgState) -> str:
    """What finalize ends, said before it asks: the deletion cost alone hides that this is the
    step after which the cycle cannot be undone by a command (UX review)."""
    if state.phase == PROMOTED:
        return (
            "After this, rollback is no longer possible: `dbplatform bluegreen rollback` has no "
            f"old blue (PostgreSQL {state.source_version}) to return to; going back then means "
            "restoring its final snapshot into a new instance, without the writes made since "
            f"the switchover ({state.switchover_at or 'unknown'})"
        )
    start, end = state.data_window or ("the switchover", "the rollback")
    return (
        f"After this the rolled-back green (PostgreSQL {state.target_version}) is gone: the "
        f"writes it took between {start} and {end} are then only in snapshots (its final "
        f"snapshot, and the pre-rollback snapshot {state.rollback_snapshot or '(none recorded)'}),"
        " and nothing returns to it but a restore into a new instance"
    )


def _delete(ctx: Context, inst: dict[str, Any], final_snapshot: str | None) -> None:
    """Delete a retired instance, with a final snapshot unless it is a read replica."""
    rds = ctx.client("rds")
    ident = inst["DBInstanceIdentifier"]
    if inst.get("DeletionProtection"):
        ctx.mutate(
            rds,
            "modify_db_instance",
            {"DBInstanceIdentifier": ident, "DeletionProtection": False, "ApplyImmediately": True},
        )
    params: dict[str, object] = {
        "DBInstanceIdentifier": ident,
        # RDS cannot snapshot a read replica on delete; its data is its source's.
        "SkipFinalSnapshot": final_snapshot is None,
        "DeleteAutomatedBackups": False,
    }
    if final_snapshot is not None:
        params["FinalDBSnapshotIdentifier"] = final_snapshot
    ctx.mutate(rds, "delete_db_instance", params)


def _not_retired(ctx: Context, state: BgState, infos: dict[str, dict[str, Any]]) -> list[str]:
    """Entries of the record that are not this cycle's retired instances (security review M-3).

    The record is an SSM String anyone with ssm:PutParameter on the path can write: an entry is
    deleted only if it is not the stack's primary or a replica name, and RDS tags it as retired
    (`dbplatform:role` retired-blue by promote, retired-green by rollback) by THIS deployment."""
    names = ctx.stack.names
    live = {names.primary, *(names.replica(r.name) for r in ctx.stack.config.replicas)}
    wanted_role = "retired-green" if state.phase == ROLLED_BACK else "retired-blue"
    rds = ctx.client("rds")
    bad: list[str] = []
    for ident, inst in infos.items():
        if ident in live:
            bad.append(f"{ident} is a live instance name of stack {ctx.stack.name}")
            continue
        tags = {
            t["Key"]: t["Value"]
            for t in rds.list_tags_for_resource(ResourceName=inst["DBInstanceArn"]).get(
                "TagList", []
            )
        }
        if tags.get("dbplatform:role") != wanted_role or (
            tags.get("dbplatform:deployment") != state.deployment_id
        ):
            bad.append(
                f"{ident} is not tagged dbplatform:role={wanted_role} and dbplatform:deployment="
                f"{state.deployment_id} (tags: role={tags.get('dbplatform:role')}, "
                f"deployment={tags.get('dbplatform:deployment')})"
            )
    return bad
