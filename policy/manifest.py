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

from policy import inputs
from policy.markers import KNOWN_AFTER_DEPLOY, SECRET

MANIFEST_VERSION = 1

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
    def from_dict(
        cls, data: Mapping[str, Any], check: _Checker | None = None, where: str = "resource"
    ) -> Resource:
        c = check or _Checker("manifest")
        strings = {
            key: tuple(c.list_of(data, key, str, where=where, optional=True))
            for key in ("dependencies", "ignoreChanges", "replaceOnChanges")
        }
        timeouts = c.mapping(data, "customTimeouts", where)
        for key, value in timeouts.items():
            if not isinstance(value, str):
                raise c.fail(where, f"customTimeouts.{key}", value, "must be a string")
        return cls(
            urn=c.text(data, "urn", where),
            type=c.text(data, "type", where),
            name=c.text(data, "name", where),
            inputs=c.mapping(data, "inputs", where),
            custom=c.flag(data, "custom", where, True),
            parent=c.text(data, "parent", where, default=None),
            dependencies=strings["dependencies"],
            protect=c.flag(data, "protect", where, False),
            retain_on_delete=c.flag(data, "retainOnDelete", where, False),
            ignore_changes=strings["ignoreChanges"],
            replace_on_changes=strings["replaceOnChanges"],
            delete_before_replace=c.flag(data, "deleteBeforeReplace", where, False),
            import_id=c.text(data, "import", where, default=None),
            provider=c.text(data, "provider", where, default=None),
            region=c.text(data, "region", where, default=None),
            custom_timeouts=timeouts,
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
        """A manifest from its JSON form; ManifestError naming the key, the value and the rule
        when the document is not the shape `synth` writes (the checks trust that shape)."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: not a JSON object (write one with `dbplatform synth`)")
        version = data.get("manifestVersion")
        if version != MANIFEST_VERSION:
            raise ManifestError(
                f"{source}: manifestVersion {_short(version)} is not {MANIFEST_VERSION}; "
                "regenerate it with `dbplatform synth --format json`"
            )
        missing = [k for k in ("stack", "region", "resources") if k not in data]
        if missing:
            raise ManifestError(f"{source}: missing key(s) {', '.join(missing)}")
        check = _Checker(source)
        resources = check.list_of(data, "resources", dict)
        parsed: list[Resource] = []
        urns: set[str] = set()
        for i, item in enumerate(resources):
            where = f"resources[{i}]"
            if not all(k in item for k in ("urn", "type", "name")):
                raise ManifestError(f"{source}: {where} needs urn, type and name")
            resource = Resource.from_dict(item, check, where)
            if resource.urn in urns:
                raise ManifestError(f"{source}: {where}.urn {resource.urn!r} appears twice")
            urns.add(resource.urn)
            parsed.append(resource)
        calendar = []
        for i, c in enumerate(check.list_of(data, "calendar", dict, optional=True)):
            calendar.append(
                CalendarRow(
                    name=check.text(c, "name", f"calendar[{i}]"),
                    kind=check.text(c, "kind", f"calendar[{i}]"),
                    window=check.text(c, "window", f"calendar[{i}]"),
                )
            )
        return cls(
            project=check.text(data, "project", "", default="dbplatform"),
            stack=check.text(data, "stack", ""),
            tier=check.text(data, "tier", "", default="production"),
            region=check.text(data, "region", ""),
            dr_region=check.text(data, "drRegion", "", default=None),
            resources=tuple(parsed),
            outputs=check.mapping(data, "outputs", ""),
            calendar=tuple(calendar),
        )


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


class _Checker:
    """Type checks of a manifest's fields, each failure naming the key path and the value."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, key: str, value: Any, rule: str) -> ManifestError:
        path = f"{where}.{key}" if where else key
        return ManifestError(f"{self.source}: {path} {_short(value)} {rule}")

    def text(self, data: Mapping[str, Any], key: str, where: str, **kw: Any) -> Any:
        if key not in data or data[key] is None:
            if "default" in kw:
                return kw["default"]
            raise self.fail(where, key, None, "is required (a non-empty string)")
        value = data[key]
        if not isinstance(value, str) or not value:
            raise self.fail(where, key, value, "must be a non-empty string")
        return value

    def flag(self, data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(where, key, value, "must be true or false")
        return value

    def mapping(self, data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, key, value, "must be an object")
        return value

    def list_of(
        self,
        data: Mapping[str, Any],
        key: str,
        kind: type,
        *,
        where: str = "",
        optional: bool = False,
    ) -> list[Any]:
        value = data.get(key)
        if value is None and optional:
            return []
        label = "objects" if kind is dict else "strings"
        if not isinstance(value, list):
            raise self.fail(where, key, value, f"must be a list of {label}")
        for i, item in enumerate(value):
            if not isinstance(item, kind):
                raise self.fail(where, f"{key}[{i}]", item, f"must be one of a list of {label}")
        return value


def load(path: Path | str) -> Manifest:
    """Read a manifest file written by `dbplatform synth --format json` (`-`: standard input)."""
    p = Path(path)
    try:  # `-` is standard input, as for every file argument of the commands
        data = sys.stdin.buffer.read() if str(path) == "-" else p.read_bytes()
    except OSError as exc:
        raise ManifestError(f"{p}: cannot read it ({exc.strerror or exc})") from None
    try:
        doc = inputs.loads_json(inputs.decode(data, str(p), inputs.MAX_DOCUMENT_BYTES), str(p))
    except inputs.InputError as exc:
        raise ManifestError(str(exc)) from None
    return Manifest.from_dict(doc, str(p))


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
