"""The manifest: everything a stack declares, as plain data that `synth` writes and every offline
check (guardrails, infra diff, critical path) reads, plus the lookups those checks share.

A manifest comes from a recording of the real program (`infra.offline.from_recording`), from a
JSON file written by `dbplatform synth` (`load`), or from what CrossGuard hands a policy pack
(policy/adapter.py). The JSON form is deterministic: resources sorted by URN, keys sorted, no ids
or timestamps.
"""

from __future__ import annotations

import fnmatch
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

MANIFEST_VERSION = 1

# How a manifest spells values it cannot know offline: outputs of resources not yet created, and
# secrets (their plaintext never reaches a manifest).
KNOWN_AFTER_DEPLOY = "(known after deploy)"
SECRET = "[secret]"

RDS_INSTANCE = "aws:rds/instance:Instance"
AWS_PROVIDER = "pulumi:providers:aws"

# Inputs that carry a resource's physical (cloud) name, in order of preference.
_PHYSICAL_NAME_KEYS = (
    "identifier",
    "clusterIdentifier",
    "name",
    "alarmName",
    "dashboardName",
    "bucket",
    "functionName",
)


class ManifestError(ValueError):
    """A manifest file that cannot be read; the message names the file and what is wrong."""


def is_known(value: Any) -> bool:
    """False for values only the cloud can assign (and for absent ones)."""
    return value is not None and value != KNOWN_AFTER_DEPLOY


def physical_name(inputs: Mapping[str, Any]) -> str | None:
    """The cloud name the program sets for a resource, or None when AWS picks it."""
    for key in _PHYSICAL_NAME_KEYS:
        value = inputs.get(key)
        if isinstance(value, str) and is_known(value) and value != SECRET:
            return value
    return None


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One declared resource: identity, options and inputs (secrets redacted)."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    custom: bool = True
    parent: str | None = None
    dependencies: tuple[str, ...] = ()
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()
    replace_on_changes: tuple[str, ...] = ()
    delete_before_replace: bool = False
    import_id: str | None = None
    provider: str | None = None
    region: str | None = None
    custom_timeouts: Mapping[str, str] = field(default_factory=dict)

    @property
    def physical_name(self) -> str | None:
        return physical_name(self.inputs)

    def get(self, key: str, default: Any = None) -> Any:
        return self.inputs.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "physicalName": self.physical_name,
            "custom": self.custom,
            "parent": self.parent,
            "dependencies": sorted(self.dependencies),
            "protect": self.protect,
            "retainOnDelete": self.retain_on_delete,
            "ignoreChanges": sorted(self.ignore_changes),
            "replaceOnChanges": sorted(self.replace_on_changes),
            "deleteBeforeReplace": self.delete_before_replace,
            "import": self.import_id,
            "provider": self.provider,
            "region": self.region,
            "customTimeouts": dict(self.custom_timeouts),
            "inputs": dict(self.inputs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Resource:
        return cls(
            urn=str(data["urn"]),
            type=str(data["type"]),
            name=str(data["name"]),
            inputs=dict(data.get("inputs") or {}),
            custom=bool(data.get("custom", True)),
            parent=data.get("parent"),
            dependencies=tuple(data.get("dependencies") or ()),
            protect=bool(data.get("protect", False)),
            retain_on_delete=bool(data.get("retainOnDelete", False)),
            ignore_changes=tuple(data.get("ignoreChanges") or ()),
            replace_on_changes=tuple(data.get("replaceOnChanges") or ()),
            delete_before_replace=bool(data.get("deleteBeforeReplace", False)),
            import_id=data.get("import"),
            provider=data.get("provider"),
            region=data.get("region"),
            custom_timeouts=dict(data.get("customTimeouts") or {}),
        )


@dataclass(frozen=True, kw_only=True)
class CalendarRow:
    """One recurring window of the stack's maintenance calendar (from its config)."""

    name: str
    kind: str
    window: str
    """RDS syntax: `ddd:hh24:mi-ddd:hh24:mi` weekly, `hh24:mi-hh24:mi` daily (UTC)"""


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """What one stack declares."""

    project: str
    stack: str
    tier: str
    region: str
    dr_region: str | None
    resources: tuple[Resource, ...]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    calendar: tuple[CalendarRow, ...] = ()

    # --- lookups (computed once; a manifest never changes) ---

    @cached_property
    def by_urn(self) -> dict[str, Resource]:
        return {r.urn: r for r in self.resources}

    @cached_property
    def _children(self) -> dict[str, list[Resource]]:
        out: dict[str, list[Resource]] = {}
        for r in self.resources:
            if r.parent:
                out.setdefault(r.parent, []).append(r)
        return out

    def of_type(self, *types: str) -> list[Resource]:
        return [r for r in self.resources if r.type in types]

    def children(self, urn: str) -> list[Resource]:
        return self._children.get(urn, [])

    def custom_descendants(self, urn: str) -> list[Resource]:
        """Every custom resource below a component: what depending on the component waits for."""
        out: list[Resource] = []
        stack = list(self.children(urn))
        while stack:
            r = stack.pop()
            if r.custom:
                out.append(r)
            stack.extend(self.children(r.urn))
        return out

    def component_of(self, r: Resource) -> Resource | None:
        """The innermost component resource that contains `r`."""
        parent = self.by_urn.get(r.parent) if r.parent else None
        while parent is not None and parent.custom:
            parent = self.by_urn.get(parent.parent) if parent.parent else None
        return parent

    def region_of(self, r: Resource) -> str:
        return r.region or self.region

    # --- DB instances ---

    def db_instances(self) -> list[Resource]:
        return self.of_type(RDS_INSTANCE)

    def source_instances(self) -> list[Resource]:
        """DB instances that hold the data of record (not read replicas)."""
        return [r for r in self.db_instances() if not is_replica(r)]

    def replication_source(self, replica: Resource) -> Resource | None:
        """The DB instance a read replica copies, when it is in this manifest."""
        value = replica.get("replicateSourceDb")
        for candidate in self.db_instances():
            if candidate.urn != replica.urn and points_to(replica, value, candidate):
                return candidate
        return None

    # --- serialisation ---

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifestVersion": MANIFEST_VERSION,
            "project": self.project,
            "stack": self.stack,
            "tier": self.tier,
            "region": self.region,
            "drRegion": self.dr_region,
            "resources": [r.to_dict() for r in sorted(self.resources, key=lambda r: r.urn)],
            "outputs": dict(self.outputs),
            "calendar": [
                {"name": c.name, "kind": c.kind, "window": c.window} for c in self.calendar
            ],
        }

    def to_json(self) -> str:
        """The deterministic JSON form: same manifest, same bytes."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: not a JSON object (write one with scripts.synth)")
        version = data.get("manifestVersion")
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"{source}: manifestVersion {version!r} is not {MANIFEST_VERSION}; "
                "regenerate it with `python -m scripts.synth`"
            )
        missing = [k for k in ("stack", "region", "resources") if k not in data]
        if missing:
            raise ManifestError(f"{source}: missing key(s) {', '.join(missing)}")
        resources = data["resources"]
        if not isinstance(resources, list):
            raise ManifestError(f"{source}: 'resources' must be a list")
        parsed: list[Resource] = []
        for i, item in enumerate(resources):
            if not isinstance(item, dict) or not all(k in item for k in ("urn", "type", "name")):
                raise ManifestError(f"{source}: resources[{i}] needs urn, type and name")
            parsed.append(Resource.from_dict(item))
        return cls(
            project=str(data.get("project", "dbplatform")),
            stack=str(data["stack"]),
            tier=str(data.get("tier", "production")),
            region=str(data["region"]),
            dr_region=data.get("drRegion"),
            resources=tuple(parsed),
            outputs=dict(data.get("outputs") or {}),
            calendar=tuple(
                CalendarRow(name=c["name"], kind=c["kind"], window=c["window"])
                for c in data.get("calendar") or []
            ),
        )


def load(path: Path | str) -> Manifest:
    """Read a manifest file written by `dbplatform synth --format json` (`-`: standard input)."""
    p = Path(path)
    try:  # `-` is standard input, as for every file argument of the commands
        text = sys.stdin.buffer.read().decode("utf-8") if str(path) == "-" else p.read_text("utf-8")
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    return Manifest.from_dict(data, str(p))


def is_replica(r: Resource) -> bool:
    return r.type == RDS_INSTANCE and bool(r.get("replicateSourceDb"))


def _arn_parts(value: str) -> tuple[str, str, str, str] | None:
    """(service, region, account, resource) of an ARN, or None."""
    parts = value.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return parts[2], parts[3], parts[4], parts[5]


def arn_region(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    parts = _arn_parts(value)
    return parts[1] if parts and parts[1] and "*" not in parts[1] else None


# Service and resource prefix of each type's ARN: arn:aws:<svc>:<region>:<account>:<prefix><name>
_ARN_SHAPES = {
    RDS_INSTANCE: ("rds", "db:"),
    "aws:rds/cluster:Cluster": ("rds", "cluster:"),
    "aws:backup/vault:Vault": ("backup", "backup-vault:"),
    "aws:secretsmanager/secret:Secret": ("secretsmanager", "secret:"),
    "aws:sns/topic:Topic": ("sns", ""),
    "aws:kms/key:Key": ("kms", "key/"),
}


def arn_matches(pattern: str, target: Resource, home_region: str | None = None) -> bool:
    """Whether an ARN (possibly with `*` wildcards, as AWS Backup selections allow) names target."""
    parts = _arn_parts(pattern)
    shape = _ARN_SHAPES.get(target.type)
    name = target.physical_name
    if parts is None or shape is None or name is None:
        return False
    service, region, _account, resource = parts
    if not fnmatch.fnmatchcase(shape[0], service):
        return False
    target_region = target.region or home_region
    if region and target_region and not fnmatch.fnmatchcase(target_region, region):
        return False
    full = shape[1] + name
    if target.type == "aws:secretsmanager/secret:Secret" and resource.startswith(full + "-"):
        return True  # Secrets Manager appends a random 6-character suffix to the name
    return fnmatch.fnmatchcase(full, resource)


def points_to(
    holder: Resource, value: Any, target: Resource, home_region: str | None = None
) -> bool:
    """Whether `value` (an input of `holder`) refers to `target`."""
    if isinstance(value, str) and is_known(value):
        if value in (target.physical_name, target.urn):
            return True
        return arn_matches(value, target, home_region)
    return value == KNOWN_AFTER_DEPLOY and target.urn in holder.dependencies
