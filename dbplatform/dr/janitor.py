"""`dbplatform dr janitor`: find and remove what interrupted restore checks and drills left
behind, by tag and age, so no copy of production data lingers unnoticed.

A CI job that is cancelled or times out may kill a command before its own cleanup ran. What it
can leave, and what the janitor removes once older than `--older-than` (default 12 h, above
every tool timeout, so a running check's instance is never touched):

- DB instances tagged `dbplatform:source-stack = S` and `dbplatform:purpose` `restore-check`
  (deleted without a final snapshot: a throwaway copy of a recovery point that is still kept)
  or `dr-drill` (a restored copy of the primary: a final snapshot `<id>-janitor-final` is taken
  first, so a drill that was in fact needed loses nothing);
- DB parameter groups tagged `dbplatform:purpose = dr-drill` of S, used by no instance;
- the stack's operations lock (SSM) in each region when it expired longer ago than the bound.

Nothing else is ever deleted: an instance without both tags, a DR rebuild's or a PITR's
instance, an unexpired lock. `--dry-run` lists; a real run asks for confirmation (`--yes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr.points import human
from dbplatform.dr.restore import TAG_PURPOSE, TAG_RUN, TAG_SOURCE, tags_of
from dbplatform.ops import BadUsage, Context, Failed, LockInfo, Result, error_code
from dbplatform.ops.clock import parse_iso
from infra.naming import rds_identifier

DEFAULT_OLDER_THAN_HOURS = 12.0
TEMPORARY = {"restore-check": False, "dr-drill": True}
"""purpose tag -> take a final snapshot before deleting"""


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


def final_snapshot_id(identifier: str) -> str:
    return rds_identifier(identifier, "janitor-final")


def find(ctx: Context, regions: list[str], bound: timedelta) -> list[Orphan]:
    """Everything of this stack older than `bound` that an interrupted run left (read-only)."""
    stack = ctx.stack.name
    now = ctx.clock.now()
    out: list[Orphan] = []
    for region in regions:
        rds = ctx.client("rds", region)
        in_use: set[str] = set()
        for page in rds.get_paginator("describe_db_instances").paginate():
            for db in page.get("DBInstances", []):
                in_use.update(g["DBParameterGroupName"] for g in db.get("DBParameterGroups", []))
                tags = tags_of(rds, db)
                purpose = tags.get(TAG_PURPOSE, "")
                if tags.get(TAG_SOURCE) != stack or purpose not in TEMPORARY:
                    continue
                if db.get("DBInstanceStatus") == "deleting":
                    continue
                created = _utc(db.get("InstanceCreateTime")) or _run_time(tags.get(TAG_RUN))
                if created is None or now - created < bound:
                    continue
                ident = str(db["DBInstanceIdentifier"])
                action = (
                    f"final snapshot {final_snapshot_id(ident)}, then delete"
                    if TEMPORARY[purpose]
                    else "delete (no final snapshot: a throwaway restore-check copy)"
                )
                out.append(
                    Orphan(
                        kind="db-instance",
                        id=ident,
                        region=region,
                        age=now - created,
                        action=action,
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
        lock = _stale_lock(ctx, region, now, bound)
        if lock is not None:
            out.append(lock)
    return out


def _stale_lock(ctx: Context, region: str, now: datetime, bound: timedelta) -> Orphan | None:
    name = ctx.stack.names.lock_parameter
    try:
        value = ctx.client("ssm", region).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise
    info = LockInfo.from_json(value)
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
    )


def remove(ctx: Context, orphan: Orphan) -> None:
    rds = ctx.client("rds", orphan.region)
    if orphan.kind == "db-instance":
        db = rds.describe_db_instances(DBInstanceIdentifier=orphan.id)["DBInstances"][0]
        if db.get("DeletionProtection"):
            ctx.mutate(
                rds,
                "modify_db_instance",
                {
                    "DBInstanceIdentifier": orphan.id,
                    "DeletionProtection": False,
                    "ApplyImmediately": True,
                },
            )
        params: dict[str, Any] = {"DBInstanceIdentifier": orphan.id}
        if orphan.action.startswith("final snapshot"):
            params["FinalDBSnapshotIdentifier"] = final_snapshot_id(orphan.id)
            params["SkipFinalSnapshot"] = False
        else:
            params["SkipFinalSnapshot"] = True
        params["DeleteAutomatedBackups"] = True
        ctx.mutate(rds, "delete_db_instance", params)
    elif orphan.kind == "db-parameter-group":
        ctx.mutate(rds, "delete_db_parameter_group", {"DBParameterGroupName": orphan.id})
    else:
        ssm = ctx.client("ssm", orphan.region)
        ctx.mutate(ssm, "delete_parameter", {"Name": orphan.id}, track=False)


def janitor(ctx: Context) -> Result:
    """The `janitor` operation."""
    cfg, args = ctx.stack.config, ctx.args
    if args.older_than <= 0:
        raise BadUsage(f"--older-than {args.older_than}: a number of hours greater than 0")
    bound = timedelta(hours=args.older_than)
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
            remove(ctx, o)
            data["removed"].append(o.to_json())
        except ClientError as exc:
            problems.append(f"{o.kind} {o.id} ({o.region}): {error_code(exc)}")
    data["problems"] = problems
    text = "\n".join([f"removed {len(data['removed'])} of {len(found)}:", *listing])
    if problems:
        raise Failed(text + "\nnot removed: " + "; ".join(problems), data=data)
    return Result(text, data=data)
