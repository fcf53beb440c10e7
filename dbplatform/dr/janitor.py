"""`dbplatform dr janitor`: find and remove what interrupted restore checks and drills left
behind, by tag and age, so no copy of production data lingers unnoticed.

A CI job that is cancelled or times out may kill a command before its own cleanup ran. What it
can leave, and what the janitor removes once older than `--older-than` (default 12 h, above
every tool timeout, so a running check's instance is never touched):

- DB instances whose identifier is one this tool generates for S: a restore check's
  `dbplatform-S-rc-<run id>` or a drill's `dbplatform-S-drill-<run>-pg`. Tags are not trusted
  for instances (anyone with `rds:AddTagsToResource` can set them, and an AWS Backup restore
  killed before its job finished leaves the instance untagged): the identifier decides, its
  age comes from `InstanceCreateTime`. Every instance is a copy of the primary's data, so each
  gets a final snapshot `<id>-janitor-final` (storage is billed until an operator deletes it)
  and keeps its automated backups. Never touched: an identifier any committed stack file
  declares (primary, replicas, cross-Region replica of every stack), and an instance with
  deletion protection on (listed with the command to remove it by hand; the janitor never
  turns protection off);
- DB parameter groups tagged `dbplatform:purpose = dr-drill` of S, used by no instance;
- the stack's operations locks of the scopes restore checks and drills take (SSM
  `<lock>-restore-check`, and `<lock>-dr` when a drill held it; a rebuild's stays for an
  operator) in each region, when expired longer ago than the bound;
  removed through the same claim as `--break-lock`, so a lock an operator broke and now holds
  is never deleted. The other scopes' locks (`bluegreen`, `secrets`) are an operator's to break.

Nothing else is ever deleted: an instance of another name, a DR rebuild's or a PITR's
instance, an unexpired lock. `--dry-run` lists; a real run asks for confirmation (`--yes`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr.operations import COMMAND as DR_COMMAND
from dbplatform.dr.operations import DEFAULT_TIMEOUT_MINUTES as rebuild
from dbplatform.dr.pitr import DEFAULT_TIMEOUT_MINUTES as pitr
from dbplatform.dr.points import human
from dbplatform.dr.restore import TAG_PURPOSE, TAG_RUN, TAG_SOURCE, tags_of
from dbplatform.dr.restore_check import DEFAULT_TIMEOUT_MINUTES as check
from dbplatform.ops import BadUsage, Context, Failed, LockInfo, Refused, Result, error_code
from dbplatform.ops.clock import parse_iso
from dbplatform.ops.context import LOCK_SCOPES as OPERATION_LOCK_SCOPES
from dbplatform.ops.lock import StackLock
from infra.config import committed_stacks, load_stack
from infra.naming import Names, drill_stack, rds_identifier

DEFAULT_OLDER_THAN_HOURS = 12.0
MARGIN_MINUTES = 60
"""above the longest default tool deadline: a run's cleanup and clock skew"""
_RC_RUN = re.compile(r"-rc-(\d{8}t\d{6}z-[a-z0-9]+)$")
"""the run id at the end of a restore check's identifier (`Names.restore_check_instance`)"""
_DRILL_RUN = re.compile(r"-drill-([a-z0-9]+)-pg$")
"""the run's tail in a drill stack's primary (`drill_stack`, `Names.primary`)"""
LOCK_SCOPES = (OPERATION_LOCK_SCOPES["restore_check"], "dr")
"""the lock scopes of the runs whose leftovers the janitor removes (`Context.lock_scope` of
`restore-check` and `dr`): the drills job may touch only these (ci/iam/drill.json)"""
DRILL_OPERATION = f"{DR_COMMAND} drill"
"""the operation a drill's lock names (`Context.command`: the command and its operation)"""
UNSNAPSHOTTABLE = ("failed", "incompatible-restore", "incompatible-network")
"""states in which RDS deletes an instance only with SkipFinalSnapshot (botocore
rds/2014-10-31 DeleteDBInstanceMessage.SkipFinalSnapshot): a restore that failed leaves one"""


@dataclass(frozen=True, kw_only=True)
class Orphan:
    """One thing the janitor would remove."""

    kind: str
    """db-instance | db-parameter-group | lock"""
    id: str
    region: str
    age: timedelta
    action: str
    """what removing it means, in one line"""
    seen: LockInfo | None = None
    """a lock: the value it held when listed (removed only while it still holds it)"""
    final_snapshot: bool = True
    """an instance: deleted with a final snapshot (False only in an UNSNAPSHOTTABLE state)"""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "region": self.region,
            "age_seconds": int(self.age.total_seconds()),
            "action": self.action,
        }


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _run_time(run_id: str | None) -> datetime | None:
    """The start of a run from its id (`20261201T215747Z-ab12cd`)."""
    try:
        return datetime.strptime(str(run_id).split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _floor() -> timedelta:
    """The smallest safe `--older-than`: the longest default deadline of the tools whose
    leftovers the janitor removes, plus the margin."""
    return timedelta(minutes=max(rebuild, pitr, check) + MARGIN_MINUTES)


def final_snapshot_id(identifier: str) -> str:
    return rds_identifier(identifier, "janitor-final")


def generated_purpose(stack: str, identifier: str) -> str | None:
    """'restore-check' or 'dr-drill' when `identifier` is one this tool generates for `stack`'s
    runs (rebuilt from the run id it carries, so a look-alike never matches), else None.
    Neither identifier is ever clamped for a stack name of at most 24 characters: a restore
    check's may use all 63 (`Names.restore_check_instance`), a drill's stack name is cut to 24
    before its `-pg` is added (`drill_stack`)."""
    names = Names(stack)
    rc = _RC_RUN.search(identifier)
    if rc and names.restore_check_instance(rc.group(1)) == identifier:
        return "restore-check"
    drill = _DRILL_RUN.search(identifier)
    if drill and Names(drill_stack(stack, drill.group(1))).primary == identifier:
        return "dr-drill"
    return None


def declared_identifiers(root: Path) -> set[str]:
    """Every DB instance identifier a committed stack file declares: never the janitor's."""
    out: set[str] = set()
    for stack in committed_stacks(root):
        names = Names(stack)
        out |= {names.primary, names.cross_region_replica}
        # an invalid stack file still protects its names: `_declared` matches its primary's
        # prefix, which every replica and the cross-Region replica share
        with contextlib.suppress(Exception):
            out |= {names.replica(r.name) for r in load_stack(stack, root).replicas}
    return out


def _declared(identifier: str, declared: set[str]) -> bool:
    # replicas of an unreadable stack file share the primary's prefix
    return any(identifier == d or identifier.startswith(f"{d}-") for d in declared)


def find(ctx: Context, regions: list[str], bound: timedelta) -> list[Orphan]:
    """Everything of this stack older than `bound` that an interrupted run left (read-only)."""
    stack = ctx.stack.name
    now = ctx.clock.now()
    out: list[Orphan] = []
    declared = declared_identifiers(ctx.stack.root)
    for region in regions:
        rds = ctx.client("rds", region)
        in_use: set[str] = set()
        for page in rds.get_paginator("describe_db_instances").paginate():
            for db in page.get("DBInstances", []):
                in_use.update(g["DBParameterGroupName"] for g in db.get("DBParameterGroups", []))
                ident = str(db["DBInstanceIdentifier"])
                purpose = generated_purpose(stack, ident)
                if purpose is None or _declared(ident, declared):
                    continue
                if db.get("DBInstanceStatus") == "deleting":
                    continue
                rc = _RC_RUN.search(ident)
                created = _utc(db.get("InstanceCreateTime")) or _run_time(
                    rc.group(1).upper() if rc else tags_of(rds, db).get(TAG_RUN)
                )
                if created is None or now - created < bound:
                    continue
                status = str(db.get("DBInstanceStatus") or "")
                if db.get("DeletionProtection"):
                    action = (
                        "left alone: deletion protection is on (the janitor never turns it "
                        "off); if it is a leftover: aws rds modify-db-instance "
                        f"--db-instance-identifier {ident} --no-deletion-protection "
                        f"--region {region}, then run the janitor again"
                    )
                elif status in UNSNAPSHOTTABLE:
                    action = (
                        f"delete WITHOUT a final snapshot: it is '{status}', a state RDS "
                        "deletes only so and cannot snapshot (a restore that failed); "
                        "automated backups kept"
                    )
                else:
                    action = (
                        f"final snapshot {final_snapshot_id(ident)} (a copy of {stack}'s "
                        f"data from a {purpose}; its storage is billed until you delete it), "
                        "then delete; automated backups kept"
                    )
                out.append(
                    Orphan(
                        kind="db-instance",
                        id=ident,
                        region=region,
                        age=now - created,
                        action=action,
                        final_snapshot=status not in UNSNAPSHOTTABLE,
                    )
                )
        for page in rds.get_paginator("describe_db_parameter_groups").paginate():
            for group in page.get("DBParameterGroups", []):
                name = str(group["DBParameterGroupName"])
                if name in in_use or "DBParameterGroupArn" not in group:
                    continue
                arn = group["DBParameterGroupArn"]
                tags = {
                    t["Key"]: t["Value"]
                    for t in rds.list_tags_for_resource(ResourceName=arn).get("TagList", [])
                }
                if tags.get(TAG_SOURCE) != stack or tags.get(TAG_PURPOSE) != "dr-drill":
                    continue
                created = _run_time(tags.get(TAG_RUN))
                if created is None or now - created < bound:
                    continue
                out.append(
                    Orphan(
                        kind="db-parameter-group",
                        id=name,
                        region=region,
                        age=now - created,
                        action="delete (used by no instance)",
                    )
                )
        for scope in LOCK_SCOPES:
            lock = _stale_lock(ctx, region, scope, now, bound)
            if lock is not None:
                out.append(lock)
    return out


def _stale_lock(
    ctx: Context, region: str, scope: str, now: datetime, bound: timedelta
) -> Orphan | None:
    name = ctx.stack.names.lock(scope)
    try:
        value = ctx.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise
    info = LockInfo.from_json(value)
    if scope == "dr" and info.operation != DRILL_OPERATION:
        # a dead rebuild's (or secrets') lock is the operator's sign that a real recovery was
        # cut short: theirs to look at and break (--break-lock), never the janitor's
        return None
    try:
        expired = parse_iso(info.expires)
    except ValueError:
        return None  # unreadable: left for an operator (--break-lock names it)
    if now - expired < bound:
        return None
    return Orphan(
        kind="lock",
        id=name,
        region=region,
        age=now - expired,
        action=f"delete (held by {info.owner} for '{info.operation}', expired {info.expires})",
        seen=info,
    )


class Protected(Exception):
    """An instance the janitor found with deletion protection on: reported, never changed."""


def remove(ctx: Context, orphan: Orphan, bound: timedelta) -> None:
    rds = ctx.client("rds", orphan.region)
    if orphan.kind == "db-instance":
        db = rds.describe_db_instances(DBInstanceIdentifier=orphan.id)["DBInstances"][0]
        if db.get("DeletionProtection"):
            raise Protected(orphan.action)
        # A final snapshot and the automated backups kept: deleting it never loses data
        # (DeleteDBInstance, RDS API reference), except in a state RDS deletes only without a
        # snapshot (UNSNAPSHOTTABLE), which the listing said before the confirmation.
        params: dict[str, Any] = {
            "DBInstanceIdentifier": orphan.id,
            "DeleteAutomatedBackups": False,
        }
        if not orphan.final_snapshot and db.get("DBInstanceStatus") in UNSNAPSHOTTABLE:
            params["SkipFinalSnapshot"] = True
        else:
            params["SkipFinalSnapshot"] = False
            params["FinalDBSnapshotIdentifier"] = final_snapshot_id(orphan.id)
        ctx.mutate(rds, "delete_db_instance", params)
    elif orphan.kind == "db-parameter-group":
        ctx.mutate(rds, "delete_db_parameter_group", {"DBParameterGroupName": orphan.id})
    else:  # a lock: `_stale_lock` always records what it held
        assert orphan.seen is not None
        lock = StackLock(
            ctx,
            parameter=orphan.id,
            stack=ctx.stack.name,
            owner="dbplatform dr janitor",
            operation=ctx.command,
            run_id=ctx.run_id,
            region=orphan.region,
            heartbeat_thread=False,
        )
        lock.remove_expired(orphan.seen, older_than=bound)


def janitor(ctx: Context) -> Result:
    """The `janitor` operation."""
    cfg, args = ctx.stack.config, ctx.args
    if args.older_than <= 0:
        raise BadUsage(f"--older-than {args.older_than}: a number of hours greater than 0")
    bound = timedelta(hours=args.older_than)
    floor = _floor()
    if bound < floor and not getattr(args, "force", False):
        raise BadUsage(
            f"--older-than {args.older_than:g}: below {human(floor)}, the longest default tool "
            f"deadline plus a {MARGIN_MINUTES}-minute margin, it could remove the instance of "
            "a restore check or drill that is still running; pass --force if you know none is"
        )
    regions = list(dict.fromkeys(args.region or [r for r in (cfg.region, cfg.dr.region) if r]))
    with ctx.out.phase(f"look for leftovers of {cfg.stack} older than {human(bound)}"):
        found = find(ctx, regions, bound)
    data: dict[str, Any] = {
        "regions": regions,
        "older_than_seconds": int(bound.total_seconds()),
        "found": [o.to_json() for o in found],
        "removed": [],
        "problems": [],
    }
    if not found:
        return Result(
            f"nothing left behind by {cfg.stack}'s runs in {', '.join(regions)}", data=data
        )
    listing = [f"  {o.kind} {o.id} ({o.region}, {human(o.age)} old): {o.action}" for o in found]
    if ctx.dry_run:
        return Result("\n".join([f"dry run: would remove {len(found)}:", *listing]), data=data)
    ctx.confirm(f"remove {len(found)} leftover(s) of {cfg.stack}:\n" + "\n".join(listing))
    problems = []
    for o in found:
        try:
            remove(ctx, o, bound)
            data["removed"].append(o.to_json())
        except Protected as exc:
            problems.append(f"{o.kind} {o.id} ({o.region}): {exc}")
        except Refused as exc:  # a lock taken or broken since it was listed: left alone
            problems.append(f"{o.kind} {o.id} ({o.region}): {exc.message}")
        except ClientError as exc:
            problems.append(f"{o.kind} {o.id} ({o.region}): {error_code(exc)}")
    data["problems"] = problems
    text = "\n".join([f"removed {len(data['removed'])} of {len(found)}:", *listing])
    if problems:
        raise Failed(text + "\nnot removed: " + "; ".join(problems), data=data)
    return Result(text, data=data)
