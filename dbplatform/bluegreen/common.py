"""Steps shared by the blue/green subcommands: locating the cycle, bounded waits, snapshots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.client import BaseClient

from dbplatform.bluegreen.model import (
    AVAILABLE,
    DELETING,
    INVALID_CONFIGURATION,
    NEW_SUFFIX,
    OLD_SUFFIX,
    PROVISIONING,
    ROLLING_BACK,
    STARTED,
    BgState,
    Deployment,
    describe_snapshot,
    find_deployments,
    get_deployment,
    read_state,
)
from dbplatform.ops import Context, Failed, Poll, Refused, iso
from dbplatform.ops.rds import describe_instance
from infra.config import ConfigError

if TYPE_CHECKING:  # the stack file edit after a switchover: imported where it is made
    from dbplatform.bluegreen.config_edit import ConfigChange

INSTANCE_TIMEOUT = 3600.0
SNAPSHOT_TIMEOUT = 4 * 3600.0


@dataclass(frozen=True)
class Cycle:
    """The stack's blue/green situation: the state record and the live deployment, if any."""

    state: BgState | None
    deployment: Deployment | None


def locate(ctx: Context) -> Cycle:
    """Read the record and find the deployment it names (or any deployment of the primary)."""
    rds = ctx.client("rds")
    state = read_state(ctx)
    dep = None
    if state is not None and state.deployment_id:
        dep = get_deployment(rds, state.deployment_id)
    if dep is None:
        live = [d for d in find_deployments(rds, ctx.stack.names) if d.status != DELETING]
        dep = live[0] if live else None
    return Cycle(state, dep)


def _member(rds: BaseClient, blue: str) -> tuple[dict[str, Any] | None, ...]:
    """The instances named `<blue>`, `<blue>-old1` and `<blue>-new1` (None: absent)."""
    return tuple(describe_instance(rds, blue + s) for s in ("", OLD_SUFFIX, NEW_SUFFIX))


def _layout(blue: str, here: Any, old: Any, new: Any) -> str:
    if here and old and not new:
        return "switched"
    if new and old and not here:
        return "green-aside"
    if here and new and not old:
        return "restored"
    present = [n for n, p in ((blue, here), ("-old1", old), ("-new1", new)) if p]
    return f"other (present: {present})"


def member_layout(rds: BaseClient, blue: str) -> str:
    """Where a member stands by its names: switched | green-aside | restored | other."""
    return _layout(blue, *_member(rds, blue))


def blue_ids(rds: BaseClient, members: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """(blue, DbiResourceId) of each member's blue, as it is now (before any switchover)."""
    found = ((blue, describe_instance(rds, blue) or {}) for blue, _ in members)
    return tuple((blue, str(i["DbiResourceId"])) for blue, i in found if i.get("DbiResourceId"))


SWITCHED, UNSWITCHED = "switched", "not switched"


def layout_without_deployment(ctx: Context, state: BgState) -> str:
    """Where a cycle whose deployment is gone stands, from the instances: SWITCHED, UNSWITCHED,
    or a description of anything else (the caller refuses and shows it).

    A renamed instance keeps its DbiResourceId ("immutable": botocore rds/2014-10-31
    DBInstance.DbiResourceId), so the names alone are not trusted: switched means every
    member's blue (by the resource id recorded before the switchover) is `<blue>-old1` and
    another instance holds `<blue>`; not switched means the blue still holds its name. A stale
    `<blue>-old1` of an earlier cycle, or a rollback half done, is neither. The deployment goes
    when deleted from the console, as RDS allows after a switchover (only without
    DeleteTarget: botocore rds/2014-10-31 DeleteBlueGreenDeploymentRequest.DeleteTarget)."""
    rds = ctx.client("rds")
    recorded = dict(state.blue_ids)
    members = [blue for blue, _ in state.members] or [ctx.stack.names.primary]
    missing = [blue for blue in members if blue not in recorded]
    if missing:
        return (
            f"unknown: no resource id of the blue instance(s) {', '.join(missing)} was recorded "
            "before the switchover, so the instances cannot be told apart by name alone"
        )
    seen = []
    for blue in members:
        here, old, new = _member(rds, blue)
        rid = recorded[blue]
        if new is None and here is not None and here.get("DbiResourceId") == rid:
            seen.append(UNSWITCHED)
        elif new is None and here is not None and (old or {}).get("DbiResourceId") == rid:
            seen.append(SWITCHED)
        else:
            seen.append(f"{blue}: {_layout(blue, here, old, new)}")
    if all(x == SWITCHED for x in seen):
        return SWITCHED
    if all(x == UNSWITCHED for x in seen):
        return UNSWITCHED
    return "; ".join(seen)


def refuse_half_done_rollback(ctx: Context, state: BgState | None) -> None:
    """Every command but rollback refuses while a rollback is half done, naming the way on."""
    if state is not None and state.phase == ROLLING_BACK:
        raise Refused(
            f"a rollback of {ctx.stack.names.primary} is half done (interrupted between "
            f"renames): re-run `dbplatform bluegreen rollback --stack {ctx.stack.name}` to "
            "finish it"
        )


def require_primary(ctx: Context) -> None:
    """Refuse (3) when neither the primary nor a renamed member of it (`-old1`, `-new1`) exists
    where this run looks: a wrong account, profile or region must not read as "nothing to do"."""
    rds = ctx.client("rds")
    primary = ctx.stack.names.primary
    if any(
        describe_instance(rds, i) for i in (primary, primary + OLD_SUFFIX, primary + NEW_SUFFIX)
    ):
        return
    who = ctx.whoami()
    raise Refused(
        f"no instance {primary} (nor {primary}{OLD_SUFFIX} or {primary}{NEW_SUFFIX}) in account "
        f"{who['account']}, region {who['region']}, as {who['arn']}: is AWS_PROFILE (or the "
        f"account, or aws:region of Pulumi.{ctx.stack.name}.yaml) the right one? Nothing was "
        "changed",
        data={"account": who["account"], "region": who["region"]},
    )


def state_from_deployment(ctx: Context, dep: Deployment) -> BgState:
    """A record for a deployment this tool did not start (console, another tool) or lost."""
    rds = ctx.client("rds")
    members = dep.pairs
    blue = describe_instance(rds, members[0][0]) or {}
    green = describe_instance(rds, members[0][1]) or {}
    return BgState(
        phase=STARTED,
        deployment_id=dep.id,
        deployment_name=dep.name,
        source_version=blue.get("EngineVersion", ""),
        target_version=green.get("EngineVersion", ""),
        source_class=blue.get("DBInstanceClass", ""),
        target_class=green.get("DBInstanceClass", ""),
        members=members,
        # only before a switchover do the members' names hold the blues
        blue_ids=blue_ids(rds, members) if dep.status in (PROVISIONING, AVAILABLE) else (),
        started_at=iso(ctx.clock.now()),
        run_id=ctx.run_id,
    )


def deployment_ready(ctx: Context, dep: Deployment) -> tuple[bool, str]:
    """(ready, status text): AVAILABLE, every member AVAILABLE, every green instance available."""
    if dep.status != AVAILABLE:
        return False, dep.status + (f" ({dep.details})" if dep.details else "")
    rds = ctx.client("rds")
    waiting = [f"{m.target}: {m.status}" for m in dep.members if m.status != AVAILABLE]
    for m in dep.members:
        if m.status == AVAILABLE:
            inst = describe_instance(rds, m.target)
            state = (inst or {}).get("DBInstanceStatus", "missing")
            if state != "available":
                waiting.append(f"{m.target}: instance {state}")
    if waiting:
        return False, "members not ready: " + ", ".join(waiting)
    return True, AVAILABLE


def wait_ready(ctx: Context, deployment_id: str, timeout: float) -> Deployment:
    """Wait until the green environment is available with every member."""
    rds = ctx.client("rds")

    def poll() -> Poll[Deployment]:
        dep = get_deployment(rds, deployment_id)
        if dep is None:
            raise Failed(f"deployment {deployment_id} disappeared while waiting for it")
        if dep.status == INVALID_CONFIGURATION:
            raise Failed(
                f"{dep.describe()}. Fix the cause, then delete it with "
                f"`dbplatform bluegreen rollback --stack {ctx.stack.name}`",
                data={"deployment": dep.summary()},
            )
        ready, text = deployment_ready(ctx, dep)
        return Poll(ready, text, dep)

    dep = ctx.wait_for(f"green environment of {deployment_id}", poll, timeout=timeout)
    assert dep is not None
    return dep


def wait_instance(
    ctx: Context, identifier: str, timeout: float = INSTANCE_TIMEOUT
) -> dict[str, Any]:
    """Wait until `identifier` exists and is available (after a rename or a modify)."""
    rds = ctx.client("rds")

    def poll() -> Poll[dict[str, Any]]:
        inst = describe_instance(rds, identifier)
        status = (inst or {}).get("DBInstanceStatus", "not found")
        return Poll(status == "available", status, inst)

    inst = ctx.wait_for(f"instance {identifier}", poll, timeout=timeout)
    assert inst is not None
    return inst


def take_snapshot(ctx: Context, instance: str, snapshot: str, purpose: str) -> str:
    """Create (or find, on a re-run) manual snapshot `snapshot` of `instance`; wait for it."""
    return take_snapshot_seen(
        ctx, instance, snapshot, purpose, describe_snapshot(ctx.client("rds"), snapshot)
    )


def take_snapshot_seen(
    ctx: Context, instance: str, snapshot: str, purpose: str, existing: dict[str, Any] | None
) -> str:
    """`take_snapshot` for a caller that has just described `snapshot` (`existing`, None when
    there is none): RDS is not asked twice."""
    rds = ctx.client("rds")
    if existing is None:
        tags = [{"Key": k, "Value": v} for k, v in sorted(ctx.stack.config.base_tags().items())]
        tags += [
            {"Key": "dbplatform:purpose", "Value": purpose},
            {"Key": "dbplatform:run-id", "Value": ctx.run_id},
        ]
        ctx.mutate(
            rds,
            "create_db_snapshot",
            {"DBSnapshotIdentifier": snapshot, "DBInstanceIdentifier": instance, "Tags": tags},
        )
    elif existing.get("DBInstanceIdentifier") not in (instance, None):
        raise Failed(
            f"snapshot {snapshot} exists but is of {existing.get('DBInstanceIdentifier')}, not "
            f"{instance}; rename or delete it, then re-run"
        )
    if ctx.dry_run:
        return snapshot

    def poll() -> Poll[str]:
        snap = describe_snapshot(rds, snapshot)
        status = (snap or {}).get("Status", "not found")
        if status in ("failed", "incompatible-restore"):
            raise Failed(f"snapshot {snapshot} of {instance} is {status}")
        return Poll(status == "available", status, snapshot)

    ctx.wait_for(f"snapshot {snapshot}", poll, timeout=SNAPSHOT_TIMEOUT)
    return snapshot


def config_advice(
    ctx: Context, engine_version: str, instance_class: str | None, write: bool
) -> tuple[list[str], list[ConfigChange]]:
    """Lines telling the operator how to bring the stack file and Pulumi state in line.

    With `write` (`--update-config`) the change is made in the file (never under --dry-run).
    """
    from dbplatform.bluegreen.config_edit import LayoutError, apply_changes, changes_for

    changes = changes_for(ctx.stack, engine_version, instance_class)
    name = ctx.stack.name
    lines: list[str] = []
    if changes:
        lines += [ch.describe(name) for ch in changes]
        if write and not ctx.dry_run:
            try:
                apply_changes(ctx.stack, changes)
                lines.append(f"written to {ctx.stack.config_path.name}: commit it")
            except (ValueError, OSError, ConfigError) as exc:  # the switch itself is done
                # a LayoutError names the file itself
                where = (
                    ""
                    if isinstance(exc, LayoutError)
                    else (f"could not update {ctx.stack.config_path.name}: ")
                )
                ctx.out.warn(f"{where}{exc}")
                lines.append("edit it by hand, then commit it")
        elif write:
            lines.append(f"would write it to {ctx.stack.config_path.name}")
        else:
            lines.append("make this change (or re-run with --update-config) and commit it")
    lines.append(
        f"then: pulumi refresh --stack {name} --yes && pulumi preview --stack {name} "
        "(the preview must show no replacement of the database)"
    )
    return lines, changes
