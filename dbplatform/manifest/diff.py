"""Compare two manifests: what a pull request changes in the declared infrastructure, and which
stateful resources it would destroy, replace or irreversibly change.

Resources are matched by URN. A change is a replacement when a changed input is replacement-
forcing for its type (infra/stateful.py, from the AWS provider's documentation), is listed in the
resource's `replaceOnChanges`, or moves the resource to another region. A stateful resource
removed, renamed (its URN changed: Pulumi deletes and recreates unless an alias is declared) or
replaced is "at risk"; so is a PostgreSQL major version change, which cannot be undone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbplatform.manifest.redact import REDACTED, is_credential_name, redact
from dbplatform.preview.markdown import GITHUB_COMMENT_LIMIT as COMMENT_LIMIT
from infra.stateful import STATEFUL_TYPES, is_stateful, replacement_properties
from policy.manifest import RDS_INSTANCE, Manifest, Resource, points_to

# Parameter and subnet groups are only at risk while a DB instance uses them.
_IN_USE_TYPES = frozenset(
    {"aws:rds/parameterGroup:ParameterGroup", "aws:rds/subnetGroup:SubnetGroup"}
)
_ENGINE_VERSIONED = frozenset({RDS_INSTANCE, "aws:rds/cluster:Cluster"})
_MISSING = object()


@dataclass(frozen=True)
class PropertyChange:
    """One changed input: its path (`tags.owner`, `parameters[2].value`), old and new values."""

    path: str
    old: Any
    new: Any

    @property
    def top(self) -> str:
        return re.split(r"[.\[]", self.path, maxsplit=1)[0]


@dataclass(frozen=True)
class ResourceChange:
    """What happens to one resource."""

    urn: str
    type: str
    name: str
    action: str
    """create | delete | update | replace | rename"""
    changes: tuple[PropertyChange, ...] = ()
    reasons: tuple[str, ...] = ()
    """why it is replaced or at risk, for people"""
    stateful: bool = False
    at_risk: bool = False
    renamed_to: str | None = None


@dataclass(frozen=True)
class Diff:
    """Every resource change between a base and a head manifest."""

    stack: str
    changes: tuple[ResourceChange, ...]

    @property
    def at_risk(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.at_risk]

    def by_action(self, action: str) -> list[ResourceChange]:
        return [c for c in self.changes if c.action == action]

    @property
    def empty(self) -> bool:
        return not self.changes


def _redact(path: str, value: Any) -> Any:
    if value is _MISSING:
        return value
    # As in the preview report, everything under a credential-like name is hidden, at any depth.
    return redact(value, any(is_credential_name(p) for p in re.split(r"[.\[\]]", path) if p))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k in sorted(value):
            _flatten(value[k], f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value


def property_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[PropertyChange]:
    """Leaf-level differences between two input maps, secrets redacted."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    for key, value in old.items():
        _flatten(value, key, a)
    for key, value in new.items():
        _flatten(value, key, b)
    out = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, _MISSING), b.get(path, _MISSING)
        if va == vb:
            continue
        ra, rb = _redact(path, va), _redact(path, vb)
        if ra == rb == REDACTED:
            rb = f"{REDACTED} (changed)"
        out.append(
            PropertyChange(path, None if ra is _MISSING else ra, None if rb is _MISSING else rb)
        )
    return out


def _in_use(m: Manifest, group: Resource) -> bool:
    for inst in m.db_instances():
        key = "parameterGroupName" if "parameterGroup" in group.type else "dbSubnetGroupName"
        if points_to(inst, inst.get(key), group):
            return True
    return False


def _stateful(m: Manifest, r: Resource) -> bool:
    if not is_stateful(r.type):
        return False
    return r.type not in _IN_USE_TYPES or _in_use(m, r)


def _major(version: Any) -> str | None:
    return version.split(".")[0] if isinstance(version, str) and version else None


def _what(r: Resource) -> str:
    return STATEFUL_TYPES.get(r.type, r.type)


def _is_rename(old: Resource, new: Resource) -> bool:
    """Same kind of resource under a new logical name: same type and same physical name, or the
    same inputs."""
    if old.type != new.type:
        return False
    if old.physical_name and old.physical_name == new.physical_name:
        return True
    return dict(old.inputs) == dict(new.inputs)


def diff(base: Manifest, head: Manifest) -> Diff:
    """What changes from base to head."""
    b, h = base.by_urn, head.by_urn
    changes: list[ResourceChange] = []
    removed = [b[u] for u in sorted(set(b) - set(h)) if b[u].custom]
    added = [h[u] for u in sorted(set(h) - set(b)) if h[u].custom]

    renamed: dict[str, Resource] = {}
    for old in removed:
        match = next(
            (n for n in added if n.urn not in renamed.values() and _is_rename(old, n)), None
        )
        if match is not None:
            renamed[old.urn] = match
    renamed_targets = {n.urn for n in renamed.values()}

    for old in removed:
        stateful = _stateful(base, old)
        new = renamed.get(old.urn)
        if new is not None:
            why = [
                f"logical name {old.name} → {new.name} (URN changed): Pulumi deletes and "
                "recreates it unless the new resource declares aliases=[the old URN]"
            ]
            changes.append(
                ResourceChange(
                    old.urn,
                    old.type,
                    old.name,
                    "rename",
                    tuple(property_changes(old.inputs, new.inputs)),
                    tuple(why),
                    stateful,
                    stateful,
                    new.urn,
                )
            )
            continue
        if old.retain_on_delete:
            why = ["removed from the stack; retainOnDelete keeps it in the cloud"]
            at_risk = False
        else:
            why = [f"deleted: {_what(old)}"]
            if old.protect:
                why.append("protected: `pulumi up` refuses until protect is removed")
            at_risk = stateful
        changes.append(
            ResourceChange(old.urn, old.type, old.name, "delete", (), tuple(why), stateful, at_risk)
        )

    for new in added:
        if new.urn not in renamed_targets:
            changes.append(
                ResourceChange(new.urn, new.type, new.name, "create", stateful=False, at_risk=False)
            )

    for urn in sorted(set(b) & set(h)):
        old, new = b[urn], h[urn]
        if not new.custom:
            continue
        ignored = set(new.ignore_changes)
        props = [c for c in property_changes(old.inputs, new.inputs) if c.top not in ignored]
        reasons: list[str] = []
        changed_tops = {c.top for c in props}
        forcing = replacement_properties(new.type, changed_tops)
        forcing += sorted(changed_tops & set(new.replace_on_changes) - set(forcing))
        if forcing:
            reasons.append(f"{', '.join(forcing)} changed: forces replacement")
        if base.region_of(old) != head.region_of(new):
            reasons.append(f"region {base.region_of(old)} → {head.region_of(new)}: replacement")
            props.append(PropertyChange("(region)", base.region_of(old), head.region_of(new)))
        option_changes = [
            PropertyChange(f"(option) {label}", a, z)
            for label, a, z in (
                ("protect", old.protect, new.protect),
                ("retainOnDelete", old.retain_on_delete, new.retain_on_delete),
                ("ignoreChanges", list(old.ignore_changes), list(new.ignore_changes)),
                ("import", old.import_id, new.import_id),
            )
            if a != z
        ]
        if not props and not option_changes:
            continue
        stateful = _stateful(base, old) or _stateful(head, new)
        replaced = bool(reasons)
        at_risk = stateful and replaced
        if new.type in _ENGINE_VERSIONED:
            a, z = _major(old.get("engineVersion")), _major(new.get("engineVersion"))
            if a and z and a != z:
                reasons.append(
                    f"engine major version {a} → {z}: an in-place major upgrade cannot be "
                    "undone (plan it as a blue/green deployment)"
                )
                at_risk = at_risk or stateful
        changes.append(
            ResourceChange(
                urn,
                new.type,
                new.name,
                "replace" if replaced else "update",
                tuple(props + option_changes),
                tuple(reasons),
                stateful,
                at_risk,
            )
        )
    order = {"delete": 0, "rename": 1, "replace": 2, "update": 3, "create": 4}
    changes.sort(key=lambda c: (not c.at_risk, order[c.action], c.urn))
    return Diff(head.stack, tuple(changes))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _value(v: Any, limit: int = 80) -> str:
    if v is None:
        return "—"
    text = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    text = text.replace("|", "\\|").replace("\n", " ").replace("`", "'")
    return f"`{text[: limit - 1]}…`" if len(text) > limit else f"`{text}`"


# GitHub refuses a longer pull-request comment; details are cut before that, with room spare.
_RESERVE = 300


def to_markdown(d: Diff, *, max_properties: int = 40, limit: int = COMMENT_LIMIT) -> str:
    """The PR comment: at-risk resources first and always kept, then the details that fit."""
    lines = [f"## Infrastructure diff: `{d.stack}`", ""]
    risky = d.at_risk
    if risky:
        lines += [
            f"> [!CAUTION]\n> **{len(risky)} stateful resource(s) at risk**: this change would "
            "destroy, replace or irreversibly change data-holding resources. Merge only with an "
            "explicit approval.",
            "",
            "| resource | type | what happens | why |",
            "|---|---|---|---|",
        ]
        for c in risky:
            lines.append(f"| `{c.name}` | `{c.type}` | **{c.action}** | {'; '.join(c.reasons)} |")
        lines.append("")
    else:
        lines += ["No stateful resource is destroyed or replaced.", ""]
    counts = {a: len(d.by_action(a)) for a in ("create", "update", "replace", "rename", "delete")}
    lines.append(
        f"**{counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['rename']} renamed, "
        f"{counts['delete']} to delete.**"
    )
    if d.empty:
        lines += ["", "No change to the declared infrastructure."]
        return "\n".join(lines) + "\n"
    details = _details(d, max_properties)
    budget = limit - _RESERVE - sum(len(x) + 1 for x in lines)
    kept: list[str] = []
    for i, line in enumerate(details):
        if len(line) + 1 > budget:
            kept += [
                "",
                f"_… {len(details) - i} more line(s) of detail left out to fit a PR "
                "comment; `--format json` has everything._",
            ]
            break
        kept.append(line)
        budget -= len(line) + 1
    return "\n".join(lines + kept).rstrip("\n") + "\n"


def _details(d: Diff, max_properties: int) -> list[str]:
    lines: list[str] = []
    for action, title in (
        ("delete", "Deleted"),
        ("rename", "Renamed"),
        ("replace", "Replaced"),
        ("update", "Updated"),
        ("create", "Created"),
    ):
        group = d.by_action(action)
        if not group:
            continue
        lines += ["", f"### {title} ({len(group)})", ""]
        if action in ("create", "delete"):
            lines += [f"- `{c.name}` (`{c.type}`)" for c in group]
            continue
        for c in group:
            suffix = f" → `{c.renamed_to.rsplit('::', 1)[-1]}`" if c.renamed_to else ""
            lines.append(f"#### `{c.name}`{suffix} (`{c.type}`)")
            if c.reasons:
                lines += ["", *[f"- {r}" for r in c.reasons]]
            if c.changes:
                lines += ["", "| property | old | new |", "|---|---|---|"]
                for p in c.changes[:max_properties]:
                    lines.append(f"| `{p.path}` | {_value(p.old)} | {_value(p.new)} |")
                if len(c.changes) > max_properties:
                    lines.append(f"| … | {len(c.changes) - max_properties} more | |")
            lines.append("")
    return lines


def to_json(d: Diff) -> dict[str, Any]:
    def change(c: ResourceChange) -> dict[str, Any]:
        return {
            "urn": c.urn,
            "type": c.type,
            "name": c.name,
            "action": c.action,
            "stateful": c.stateful,
            "atRisk": c.at_risk,
            "reasons": list(c.reasons),
            "renamedTo": c.renamed_to,
            "changes": [{"path": p.path, "old": p.old, "new": p.new} for p in c.changes],
        }

    return {
        "stack": d.stack,
        "atRisk": [change(c) for c in d.at_risk],
        "changes": [change(c) for c in d.changes],
        "summary": {
            a: len(d.by_action(a)) for a in ("create", "update", "replace", "rename", "delete")
        },
    }
