"""What blue/green looks like in AWS: deployments, instances, the state record and names.

RDS keeps the deployment object (status, members, tasks); what it does not keep (when the
switchover happened, which snapshots were taken, the soak deadline, what a rollback renamed)
lives in an SSM parameter beside the lock, `/dbplatform/<stack>/ops/bluegreen`, so any
operator on any machine resumes from AWS alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dbplatform.ops import Context, error_code
from infra.naming import Names, rds_identifier

OLD_SUFFIX = "-old1"  # RDS renames the blue instances so at switchover
NEW_SUFFIX = "-new1"  # our rollback renames the former green so; same length as -old1

# Deployment statuses (RDS API)
PROVISIONING = "PROVISIONING"
AVAILABLE = "AVAILABLE"
SWITCHOVER_IN_PROGRESS = "SWITCHOVER_IN_PROGRESS"
SWITCHOVER_COMPLETED = "SWITCHOVER_COMPLETED"
SWITCHOVER_FAILED = "SWITCHOVER_FAILED"
INVALID_CONFIGURATION = "INVALID_CONFIGURATION"
DELETING = "DELETING"

# Phases of the state record, in order of a promote; a rollback branches off.
STARTED = "started"
SWITCHING = "switching"
SWITCHED_OVER = "switched-over"
PROMOTED = "promoted"
CANCELLED = "cancelled"
ROLLING_BACK = "rolling-back"
ROLLED_BACK = "rolled-back"
FINALIZED = "finalized"
OPEN_PHASES = (SWITCHING, SWITCHED_OVER, PROMOTED, ROLLING_BACK, ROLLED_BACK)


def deployment_name(names: Names, target_version: str) -> str:
    return rds_identifier(names.primary, "bg", target_version)


def identifier_of(arn_or_id: str) -> str:
    """`arn:aws:rds:...:db:mydb` -> `mydb`; an identifier stays as it is."""
    return arn_or_id.rsplit(":db:", 1)[-1] if ":db:" in arn_or_id else arn_or_id


def short_id(deployment_id: str) -> str:
    """The tail of a deployment id, to name snapshots deterministically (idempotent re-runs)."""
    return deployment_id.removeprefix("bgd-")[-8:]


# ---------------------------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One blue instance and its green counterpart."""

    source: str
    target: str
    status: str


@dataclass(frozen=True)
class Deployment:
    """A blue/green deployment as DescribeBlueGreenDeployments reports it."""

    id: str
    name: str
    status: str
    details: str
    source: str
    target: str
    members: tuple[Member, ...]
    tasks: tuple[tuple[str, str], ...]

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Deployment:
        return cls(
            id=d["BlueGreenDeploymentIdentifier"],
            name=d.get("BlueGreenDeploymentName", ""),
            status=d.get("Status", "UNKNOWN"),
            details=d.get("StatusDetails") or "",
            source=identifier_of(d.get("Source", "")),
            target=identifier_of(d.get("Target", "")),
            members=tuple(
                Member(
                    source=identifier_of(m.get("SourceMember", "")),
                    target=identifier_of(m.get("TargetMember", "")),
                    status=m.get("Status", "UNKNOWN"),
                )
                for m in d.get("SwitchoverDetails", [])
            ),
            tasks=tuple((t.get("Name", "?"), t.get("Status", "?")) for t in d.get("Tasks", [])),
        )

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """(blue, green) of each member, as `BgState.members` records them; the deployment's
        own source and target when it lists no member yet."""
        return tuple((m.source, m.target) for m in self.members) or ((self.source, self.target),)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "status_details": self.details,
            "source": self.source,
            "target": self.target,
            "members": [asdict(m) for m in self.members],
            "tasks": [{"name": n, "status": s} for n, s in self.tasks],
        }

    def describe(self) -> str:
        members = ", ".join(f"{m.source} -> {m.target}: {m.status}" for m in self.members)
        details = f" ({self.details})" if self.details else ""
        return f"deployment {self.id} is {self.status}{details}; members: {members or 'none'}"


def find_deployments(rds: BaseClient, names: Names) -> list[Deployment]:
    """Deployments whose source or target is this stack's primary (or its -old1)."""
    ours = {names.primary, names.primary + OLD_SUFFIX}
    found = []
    for page in rds.get_paginator("describe_blue_green_deployments").paginate():
        for raw in page.get("BlueGreenDeployments", []):
            d = Deployment.from_api(raw)
            if d.source in ours or d.target in ours or d.name.startswith(names.primary + "-bg-"):
                found.append(d)
    return found


def get_deployment(rds: BaseClient, deployment_id: str) -> Deployment | None:
    try:
        raw = rds.describe_blue_green_deployments(BlueGreenDeploymentIdentifier=deployment_id)
    except ClientError as exc:
        if error_code(exc) == "BlueGreenDeploymentNotFoundFault":
            return None
        raise
    items = raw.get("BlueGreenDeployments", [])
    return Deployment.from_api(items[0]) if items else None


# ---------------------------------------------------------------------------------------------
# Instances and snapshots
# ---------------------------------------------------------------------------------------------


def describe_snapshot(rds: BaseClient, identifier: str) -> dict[str, Any] | None:
    try:
        items = rds.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
    except ClientError as exc:
        if error_code(exc) == "DBSnapshotNotFound":
            return None
        raise
    return dict(items[0]) if items else None


# ---------------------------------------------------------------------------------------------
# The state record
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgState:
    """What a blue/green cycle of one stack did so far (JSON in SSM)."""

    phase: str
    deployment_id: str
    deployment_name: str
    source_version: str
    target_version: str
    source_class: str = ""
    target_class: str = ""
    source_parameter_group: str = ""
    target_parameter_group: str = ""
    members: tuple[tuple[str, str], ...] = ()
    """(blue identifier, green identifier at creation) per member."""
    blue_ids: tuple[tuple[str, str], ...] = ()
    """(blue identifier, its DbiResourceId) per member: a renamed instance keeps its resource
    id, so the instances tell whether a switchover happened when the deployment is gone."""
    started_at: str = ""
    run_id: str = ""
    switchover_requested_at: str | None = None
    switchover_at: str | None = None
    """When writes moved to green: start of the window a rollback would lose."""
    pre_switchover_snapshot: str | None = None
    soak_until: str | None = None
    retired: tuple[str, ...] = ()
    """Instances kept for the soak, deleted by finalize (old blue, or green after a rollback)."""
    rollback_snapshot: str | None = None
    data_window: tuple[str, str] | None = None
    final_snapshots: tuple[str, ...] = ()
    history: tuple[str, ...] = field(default=())
    """`<time> <phase> <run id>` lines, oldest first."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BgState:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in raw.items() if k in known}
        for key in ("retired", "final_snapshots", "history"):
            values[key] = tuple(values.get(key) or ())
        values["members"] = tuple(tuple(m) for m in values.get("members") or ())
        values["blue_ids"] = tuple(tuple(m) for m in values.get("blue_ids") or ())
        if values.get("data_window"):
            values["data_window"] = tuple(values["data_window"])
        return cls(**values)

    @property
    def primary_green(self) -> str:
        return self.members[0][1] if self.members else ""


def read_raw_state(ctx: Context) -> str | None:
    """The record's stored text (None when there is none), to put back verbatim."""
    try:
        return str(
            ctx.client("ssm").get_parameter(Name=ctx.stack.names.bluegreen_state_parameter)[
                "Parameter"
            ]["Value"]
        )
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise


def restore_raw_state(ctx: Context, raw: str | None) -> None:
    """Put back a record read by `read_raw_state`, unchanged (no history line added); None:
    there was none, so the one written since is deleted."""
    if raw is None:
        ctx.mutate(
            ctx.client("ssm"),
            "delete_parameter",
            {"Name": ctx.stack.names.bluegreen_state_parameter},
            track=False,
        )
        return
    ctx.mutate(
        ctx.client("ssm"),
        "put_parameter",
        {
            "Name": ctx.stack.names.bluegreen_state_parameter,
            "Value": raw,
            "Type": "String",
            "Overwrite": True,
            "Description": f"dbplatform blue/green record of stack {ctx.stack.name}",
        },
        track=False,
    )


def read_state(ctx: Context) -> BgState | None:
    ssm = ctx.client("ssm")
    try:
        value = ssm.get_parameter(Name=ctx.stack.names.bluegreen_state_parameter)["Parameter"][
            "Value"
        ]
    except ClientError as exc:
        if error_code(exc) == "ParameterNotFound":
            return None
        raise
    try:
        return BgState.from_json(value)
    except (ValueError, TypeError, KeyError):
        ctx.out.warn(
            f"ignoring an unreadable record in {ctx.stack.names.bluegreen_state_parameter}"
        )
        return None


def write_state(ctx: Context, state: BgState, phase: str | None = None) -> BgState:
    """Store `state` (with `phase` and a history line); returns what was stored."""
    if phase is not None:
        line = f"{ctx.clock.now():%Y-%m-%dT%H:%M:%SZ} {phase} {ctx.run_id}"
        state = replace(state, phase=phase, history=(*state.history, line)[-20:])
    ctx.mutate(
        ctx.client("ssm"),
        "put_parameter",
        {
            "Name": ctx.stack.names.bluegreen_state_parameter,
            "Value": state.to_json(),
            "Type": "String",
            "Overwrite": True,
            "Description": f"dbplatform blue/green record of stack {ctx.stack.name}",
        },
        track=False,
    )
    return state
