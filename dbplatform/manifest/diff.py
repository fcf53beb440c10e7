"""Compare two manifests: what a pull request changes in the declared infrastructure, which
stateful resources it would destroy, replace or irreversibly change, which steps `pulumi up` would
fail on, and which protections it weakens.

Resources are matched by URN. A change is a replacement when a changed input is replacement-
forcing for its type (infra/provider_facts.py, from the AWS provider's schema), is listed in the
resource's `replaceOnChanges`, or moves the resource to another region. A data-holding resource
(not a read replica: it holds no data of its own) removed, renamed (its URN changed: Pulumi
deletes and recreates unless an alias is declared) or replaced is "at risk"; so is a PostgreSQL
major version change, which cannot be undone. A change the cloud or the engine refuses (deleting a
protected resource or one with deletion protection, a storage decrease, an engine downgrade, a
locked vault lock...) is "refused", with the fact it breaks. `weakened` (a pure function of the
two manifests, shared with the preview report) lists protections turned off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from dbplatform.manifest.redact import REDACTED, is_credential_name, redact
from dbplatform.preview.digest import SECRET_CHANGED
from dbplatform.preview.markdown import GITHUB_COMMENT_LIMIT as COMMENT_LIMIT
from dbplatform.preview.offline import InfraDiffCounts
from infra.provider_facts import (
    DELETION_PROTECTION,
    FORCE_NEW,
    KMS_KEY,
    LOCK_INPUTS,
    POLICY_INPUTS,
    PROTECTIVE_INPUTS,
    REFUSALS,
    SECRET,
    SECURITY_GROUP,
    SUBNET,
    SUBNET_GROUP,
    UNIQUE_NAMES,
    VAULT,
    VAULT_LOCK,
    VPC,
    deny_statements,
    policy_loosened,
)
from infra.stateful import STATEFUL_TYPES, is_stateful, replacement_properties
from policy.manifest import RDS_INSTANCE, Manifest, Resource, is_replica, points_to
from policy.markers import KNOWN_AFTER_DEPLOY

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
class Refused:
    """One step `pulumi up` would fail on: the fact (infra/provider_facts.py) and what breaks it."""

    fact: str
    who: str
    """AWS or Pulumi"""
    message: str

    @property
    def source(self) -> str:
        return REFUSALS[self.fact].source


@dataclass(frozen=True)
class Weakening:
    """One protection the head turns off or loosens."""

    urn: str
    """the resource's URN, or `(stack)` for the stack's tier"""
    name: str
    type: str
    what: str
    """protect | retainOnDelete | deletionProtection | skipFinalSnapshot | forceDestroy | tier |
    vaultLock | policyDeny | policyAllow"""
    old: Any
    new: Any

    def describe(self) -> str:
        return f"{self.what}: {_plain(self.old)} → {_plain(self.new)}"


def _plain(v: Any) -> str:
    return "(none)" if v is None else json.dumps(v) if not isinstance(v, str) else v


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
    refusals: tuple[Refused, ...] = ()
    """the steps of this change `pulumi up` would fail on"""


@dataclass(frozen=True)
class Diff:
    """Every resource change between a base and a head manifest."""

    stack: str
    changes: tuple[ResourceChange, ...]
    weakened: tuple[Weakening, ...] = ()

    @property
    def at_risk(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.at_risk]

    @property
    def refused(self) -> list[ResourceChange]:
        return [c for c in self.changes if c.refusals]

    @property
    def flagged(self) -> bool:
        """Needs an explicit approval: data at risk, a step that fails, or protection weakened."""
        return bool(self.at_risk or self.refused or self.weakened)

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
            rb = SECRET_CHANGED
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
    """Holds data (or the means to read it): a read replica copies its source and does not."""
    if not is_stateful(r.type) or is_replica(r):
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


def _version(v: Any) -> tuple[int, ...] | None:
    if not isinstance(v, str) or not re.fullmatch(r"\d+(\.\d+)*", v):
        return None
    return tuple(int(x) for x in v.split("."))


def _gone_refusals(old: Resource, action: str) -> list[Refused]:
    """What refuses the delete half of a delete, replace or rename of `old`."""
    out: list[Refused] = []
    verb = "delete" if action == "delete" else f"{action} (its delete half)"
    if old.protect:
        out.append(Refused("pulumi-protect", "Pulumi", f"{verb} of a protected resource"))
    if action == "delete" and old.retain_on_delete:
        return out  # Pulumi forgets it; nothing is asked of AWS
    flag = DELETION_PROTECTION.get(old.type)
    if flag and old.get(flag) is True:
        out.append(
            Refused(
                "rds-deletion-protection",
                "AWS",
                f"{verb} of an instance with {flag}=true: DeleteDBInstance is refused",
            )
        )
    if is_replica(old) and old.get("skipFinalSnapshot") is not True:
        out.append(
            Refused(
                "rds-replica-final-snapshot",
                "AWS",
                f"{verb} of a read replica without skipFinalSnapshot=true",
            )
        )
    if old.type == VAULT_LOCK:
        out.append(
            Refused(
                "backup-vault-lock-immutable",
                "AWS",
                f"{verb} of a vault lock past its lock date "
                f"(changeableForDays={old.get('changeableForDays')})",
            )
        )
    if old.type == VAULT and old.get("forceDestroy") is not True:
        out.append(
            Refused("backup-vault-not-empty", "AWS", f"{verb} of a vault that holds backups")
        )
    return out


def _update_refusals(old: Resource, new: Resource) -> list[Refused]:
    """Updates in place that AWS refuses."""
    out: list[Refused] = []
    if new.type != RDS_INSTANCE:
        return out
    a, z = old.get("allocatedStorage"), new.get("allocatedStorage")
    if isinstance(a, int) and isinstance(z, int) and z < a:
        ceiling = new.get("maxAllocatedStorage")
        hidden = isinstance(ceiling, int) and ceiling > z
        out.append(
            Refused(
                "rds-storage-shrink",
                "AWS",
                f"allocatedStorage {a} → {z} GiB: storage cannot shrink"
                + (
                    " (with autoscaling on the provider hides the decrease: nothing changes and "
                    "the config no longer describes the instance)"
                    if hidden
                    else ""
                ),
            )
        )
    va, vz = _version(old.get("engineVersion")), _version(new.get("engineVersion"))
    if va and vz and va != vz:
        common = min(len(va), len(vz))
        if vz[:common] < va[:common]:
            out.append(
                Refused(
                    "rds-engine-downgrade",
                    "AWS",
                    f"engineVersion {old.get('engineVersion')} → {new.get('engineVersion')} "
                    "is a downgrade",
                )
            )
        elif va[0] != vz[0] and new.get("allowMajorVersionUpgrade") is not True:
            out.append(
                Refused(
                    "rds-major-upgrade-not-allowed",
                    "AWS",
                    f"engine major {va[0]} → {vz[0]} without allowMajorVersionUpgrade: use "
                    "`dbplatform bluegreen`",
                )
            )
    return out


def _in_use_subnets_refused(
    base: Manifest, head: Manifest, changes: list[ResourceChange]
) -> list[ResourceChange]:
    """A subnet deleted or replaced while a DB instance that stays runs in it (through its DB
    subnet group) is refused at the delete: fact "ec2-subnet-in-use"."""
    h = head.by_urn
    in_use: dict[str, str] = {}  # subnet urn -> the instance that runs in it
    for group in base.of_type(SUBNET_GROUP):
        for inst in base.db_instances():
            if inst.urn in h and points_to(inst, inst.get("dbSubnetGroupName"), group):
                for subnet in group.dependencies:
                    in_use.setdefault(subnet, inst.name)
    out = []
    for change in changes:
        user = in_use.get(change.urn)
        gone = change.action in ("delete", "replace")
        if user is not None and gone and change.type == SUBNET:
            refused = Refused(
                "ec2-subnet-in-use", "AWS", f"{change.action} of a subnet {user} runs in"
            )
            out.append(replace(change, refusals=(*change.refusals, refused)))
        else:
            out.append(change)
    return out


def _replace_refusals(old: Resource, new: Resource, *, new_vpc: bool = False) -> list[Refused]:
    out = _gone_refusals(old, "replace")
    unique = UNIQUE_NAMES.get(new.type)
    name = new.physical_name
    # a security group's name is unique within its VPC only: one made in a new VPC is no clash
    other_scope = new.type == SECURITY_GROUP and (new_vpc or old.get("vpcId") != new.get("vpcId"))
    if (
        unique
        and name
        and name == old.physical_name
        and not new.delete_before_replace
        and not other_scope
    ):
        out.append(
            Refused(
                "unique-name",
                "AWS",
                f"replaced create-before-delete under the same name {name!r}: the create fails "
                f"with {unique[0]} (set deleteBeforeReplace)",
            )
        )
    return out


# An input whose value is another resource's id, by the type that id comes from: when that
# resource is replaced, the input changes at deploy (the manifests say "(known after deploy)" on
# both sides), and where the input forces replacement (FORCE_NEW), the holder is replaced too.
_ID_INPUTS: dict[str, str] = {
    "vpcId": VPC,
    "subnetId": SUBNET,
    "routeTableId": "aws:ec2/routeTable:RouteTable",
    "securityGroupId": SECURITY_GROUP,
    "kmsKeyId": KMS_KEY,
    "kmsKeyArn": KMS_KEY,
    "secretId": SECRET,
    "backupVaultName": VAULT,
    "planId": "aws:backup/plan:Plan",
    "sourceDbInstanceArn": RDS_INSTANCE,
    "role": "aws:iam/role:Role",
    "iamRoleArn": "aws:iam/role:Role",
    "logDestination": "aws:cloudwatch/logGroup:LogGroup",
    "topic": "aws:sns/topic:Topic",
    "arn": "aws:sns/topic:Topic",
    "rule": "aws:cloudwatch/eventRule:EventRule",
}


def _direct_replacement(
    base: Manifest, head: Manifest, old: Resource, new: Resource
) -> tuple[list[PropertyChange], list[str]]:
    """The input changes `pulumi up` acts on (ignoreChanges left out, a region move as
    `(region)`), and why they replace the resource, if they do."""
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
    return props, reasons


def _id_from_replaced(
    old: Resource, new: Resource, replaced: set[str], h: Mapping[str, Resource]
) -> tuple[str, str] | None:
    """(input, source name) when `new` holds, in an input that forces a replacement, the id of
    a replaced resource: an input it has, the placeholder on both sides, of the source's type."""
    forcing = FORCE_NEW.get(new.type, {})
    for name, source_type in _ID_INPUTS.items():
        if name not in forcing or name in new.ignore_changes:
            continue
        if not old.inputs.get(name) == new.inputs.get(name) == KNOWN_AFTER_DEPLOY:
            continue
        for dep in new.dependencies:
            if dep in replaced and h[dep].type == source_type:
                return name, h[dep].name
    return None


def _cascaded_replacements(
    base: Manifest, head: Manifest
) -> tuple[dict[str, tuple[str, str]], set[str]]:
    """urn -> (input, name of the resource it comes from), for each resource replaced because
    one it takes an id from is replaced; and every urn replaced, directly or so
    (a VPC's new CIDR replaces its subnets, route tables and security groups: their vpcId)."""
    b, h = base.by_urn, head.by_urn
    both = [u for u in sorted(set(b) & set(h)) if h[u].custom]
    replaced = {u for u in both if _direct_replacement(base, head, b[u], h[u])[1]}
    out: dict[str, tuple[str, str]] = {}
    grew = True
    while grew:  # a new subnet replaces its route table association, and so on
        grew = False
        for urn in (u for u in both if u not in replaced):
            found = _id_from_replaced(b[urn], h[urn], replaced, h)
            if found is not None:
                out[urn] = found
                replaced.add(urn)
                grew = True
    return out, replaced


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
                    tuple(_gone_refusals(old, "rename")),
                )
            )
            continue
        if old.retain_on_delete:
            why = ["removed from the stack; retainOnDelete keeps it in the cloud"]
            at_risk = False
        else:
            why = [f"deleted: {_what(old)}"]
            if is_replica(old):
                why.append("a read replica holds no data of its own")
            at_risk = stateful
        changes.append(
            ResourceChange(
                old.urn,
                old.type,
                old.name,
                "delete",
                (),
                tuple(why),
                stateful,
                at_risk,
                refusals=tuple(_gone_refusals(old, "delete")),
            )
        )

    for new in added:
        if new.urn not in renamed_targets:
            changes.append(
                ResourceChange(new.urn, new.type, new.name, "create", stateful=False, at_risk=False)
            )

    cascaded, all_replaced = _cascaded_replacements(base, head)
    for urn in sorted(set(b) & set(h)):
        old, new = b[urn], h[urn]
        if not new.custom:
            continue
        props, reasons = _direct_replacement(base, head, old, new)
        if urn in cascaded:
            name, source = cascaded[urn]
            reasons.append(f"{name} comes from {source}, which is replaced: forces replacement")
            props.append(PropertyChange(name, old.get(name), f"(the new {source}'s id)"))
        option_changes = [
            PropertyChange(f"(option) {label}", a, z)
            for label, a, z in (
                ("protect", old.protect, new.protect),
                ("retainOnDelete", old.retain_on_delete, new.retain_on_delete),
                ("deleteBeforeReplace", old.delete_before_replace, new.delete_before_replace),
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
        new_vpc = any(d in all_replaced and h[d].type == VPC for d in new.dependencies)
        refusals = _replace_refusals(old, new, new_vpc=new_vpc) if replaced else []
        refusals += _update_refusals(old, new)
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
                refusals=tuple(refusals),
            )
        )
    changes = _in_use_subnets_refused(base, head, changes)
    order = {"delete": 0, "rename": 1, "replace": 2, "update": 3, "create": 4}
    changes.sort(key=lambda c: (not (c.at_risk or c.refusals), order[c.action], c.urn))
    return Diff(head.stack, tuple(changes), tuple(weakened(base, head)))


# ---------------------------------------------------------------------------------------------
# Protection weakened (also used by the preview report)
# ---------------------------------------------------------------------------------------------


def weakened(base: Manifest, head: Manifest) -> list[Weakening]:
    """Every protection `head` turns off or loosens compared with `base`.

    `protect` or `retainOnDelete` removed, deletion protection off, final snapshot skipped, a
    vault made force-destroyable, the stack's tier changed (it decides which safety rules apply),
    a backup vault lock changed or removed, a Deny statement of a key (or vault, secret, role
    trust, endpoint) policy removed or changed, an Allow statement of one added or changed.
    Pure: two manifests in, a list out (the preview report reuses it).
    """
    out: list[Weakening] = []
    if base.tier != head.tier:
        out.append(Weakening("(stack)", base.stack, "tier", "tier", base.tier, head.tier))
    b, h = base.by_urn, head.by_urn
    for urn in sorted(b):
        old, new = b[urn], h.get(urn)
        if not old.custom:
            continue
        if new is None:
            if old.type == VAULT_LOCK:
                out.append(Weakening(urn, old.name, old.type, "vaultLock", "locked", None))
            if old.type in POLICY_INPUTS and deny_statements(old.get(POLICY_INPUTS[old.type])):
                out.append(Weakening(urn, old.name, old.type, "policyDeny", "present", None))
            continue
        if old.protect and not new.protect:
            out.append(Weakening(urn, old.name, old.type, "protect", True, False))
        if old.retain_on_delete and not new.retain_on_delete:
            out.append(Weakening(urn, old.name, old.type, "retainOnDelete", True, False))
        for key, safe in PROTECTIVE_INPUTS.items():
            if key in old.inputs and old.get(key) == safe and new.get(key) != safe:
                out.append(Weakening(urn, old.name, old.type, key, old.get(key), new.get(key)))
        if old.type == VAULT_LOCK:
            lock = LOCK_INPUTS
            before = {k: old.get(k) for k in lock}
            after = {k: new.get(k) for k in lock}
            if before != after:
                out.append(Weakening(urn, old.name, old.type, "vaultLock", before, after))
        policy_key = POLICY_INPUTS.get(old.type)
        if policy_key:
            for kind, sid, change in policy_loosened(old.get(policy_key), new.get(policy_key)):
                out.append(Weakening(urn, old.name, old.type, kind, sid, change))
    return out


# ---------------------------------------------------------------------------------------------
# The verdict of a whole change: what `pulumi up` would do
# ---------------------------------------------------------------------------------------------

VERDICTS = ("blocked by protect", "refused by AWS", "replace", "delete", "update", "create", "none")


def verdict(d: Diff) -> str:
    """What `pulumi up` does with the whole change, the first that applies in VERDICTS order.

    The engine checks `protect` while planning, before any step runs, so a protected resource's
    delete stops everything; otherwise the first step AWS refuses fails the update.
    """
    facts = {r.who for c in d.changes for r in c.refusals}
    if "Pulumi" in facts:
        return "blocked by protect"
    if "AWS" in facts:
        return "refused by AWS"
    actions = {c.action for c in d.changes}
    if actions & {"replace", "rename"}:
        return "replace"
    for action in ("delete", "update", "create"):
        if action in actions:
            return action
    return "none"


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


_VALUE_WIDTH = 80
# Characters of common text shown on each side of where two long values differ.
_CONTEXT = 24
# Differences listed inside one JSON document (a policy, an event pattern) before "… N more".
_MAX_JSON_ROWS = 12
# Past this many lines of per-resource tables, the resources that are not flagged are collapsed
# (<details>, one block per section), as the preview comment collapses its details: the flagged
# ones then read first and whole, without a click.
_COLLAPSE_OVER_LINES = 80
# The other side of an item that left a list or joined it (JSON documents only).
_LEFT_LIST = object()
_NOT_IN_LIST = object()


def _escape(text: str) -> str:
    """Text for a code span in a table cell: a pipe would end the cell, a backtick the span."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")


def _value(v: Any, limit: int = _VALUE_WIDTH) -> str:
    if v is None:
        return "—"
    text = _escape(v if isinstance(v, str) else json.dumps(v, sort_keys=True))
    return f"`{text[: limit - 1]}…`" if len(text) > limit else f"`{text}`"


def _windows(old: str, new: str, limit: int = _VALUE_WIDTH) -> tuple[str, str]:
    """Both values cut to where they differ, with _CONTEXT characters of what they share on
    either side: cut at the same place, two long values read the same even when they are not
    (an event pattern that stops watching one instance showed the same first 80 characters)."""
    shared = min(len(old), len(new))
    start = next((i for i in range(shared) if old[i] != new[i]), shared)
    tail = 0
    while tail < shared - start and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    lo = max(0, start - _CONTEXT)
    out = []
    for text in (old, new):
        hi = min(len(text), len(text) - tail + _CONTEXT)
        piece = _escape(text[lo:hi])
        more = hi < len(text)
        if len(piece) > limit:
            piece, more = piece[: limit - 1], True
        out.append(f"`{'…' if lo else ''}{piece}{'…' if more else ''}`")
    return out[0], out[1]


def _json_document(v: Any) -> Any:
    """The object or list a string holds as JSON text (a policy, an event pattern), or None."""
    if not isinstance(v, str) or not v.lstrip().startswith(("{", "[")):
        return None
    try:
        doc = json.loads(v)
    except ValueError:
        return None
    return doc if isinstance(doc, (dict, list)) else None


def _json_differences(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path inside the document, old, new) per difference: objects key by key, lists of one
    length item by item, lists whose length changed as the items that left and joined (an event
    pattern's values or a policy's statements are sets: which one went matters, not where the
    others moved to)."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out += _json_differences(old.get(key, _MISSING), new.get(key, _MISSING), sub)
        return out
    if isinstance(old, list) and isinstance(new, list):
        if len(old) == len(new):
            return [
                d
                for i, (a, z) in enumerate(zip(old, new, strict=True))
                for d in _json_differences(a, z, f"{path}[{i}]")
            ]
        left = list(old)
        joined = []
        for item in new:
            if item in left:
                left.remove(item)
            else:
                joined.append(item)
        return [(path, item, _LEFT_LIST) for item in left] + [
            (path, _NOT_IN_LIST, item) for item in joined
        ]
    return [(path, old, new)]


def _json_cell(v: Any) -> str:
    if v is _MISSING:
        return "—"
    if v is _LEFT_LIST:
        return "(removed from the list)"
    if v is _NOT_IN_LIST:
        return "(not in the list)"
    return _value(v) if v is not None else "`null`"


def _row(path: str, old: Any, new: Any, cell: Callable[[Any], str] = _value) -> str:
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > _VALUE_WIDTH:
        a, z = _windows(old, new)
    else:
        a, z = cell(old), cell(new)
    return f"| {path} | {a} | {z} |"


def _property_rows(p: PropertyChange) -> list[str]:
    """One row per changed property; for a long JSON text, one per difference inside it."""
    long = any(isinstance(v, str) and len(v) > _VALUE_WIDTH for v in (p.old, p.new))
    a, z = (_json_document(p.old), _json_document(p.new)) if long else (None, None)
    found = _json_differences(a, z) if a is not None and z is not None else []
    if not found:
        return [_row(f"`{p.path}`", p.old, p.new)]
    rows = [
        _row(f"`{p.path}` › `{_escape(sub)}`" if sub else f"`{p.path}`", old, new, _json_cell)
        for sub, old, new in found[:_MAX_JSON_ROWS]
    ]
    if len(found) > _MAX_JSON_ROWS:
        rows.append(f"| `{p.path}` | … {len(found) - _MAX_JSON_ROWS} more differences | |")
    return rows


# GitHub refuses a longer pull-request comment; details are cut before that, with room spare.
_RESERVE = 300


def to_markdown(d: Diff, *, max_properties: int = 40, limit: int = COMMENT_LIMIT) -> str:
    """The PR comment: at-risk resources first and always kept, then the details that fit.

    The first line is hidden: the counts, which the preview report reads back for its verdict
    (dbplatform.preview.offline)."""
    counts_line = InfraDiffCounts(
        at_risk=len(d.at_risk),
        refused=len(d.refused),
        weakened=len(d.weakened),
        changes=len(d.changes),
    ).marker()
    lines = [counts_line, f"## Infrastructure diff: `{d.stack}`", ""]
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
    refused = d.refused
    if refused:
        lines += [
            f"> [!CAUTION]\n> **{len(refused)} change(s) `pulumi up` would fail on**: refused by "
            "AWS or stopped by Pulumi (`protect`). Fix the change, or lift the protection "
            "deliberately in its own pull request.",
            "",
            "| resource | refused by | why | rule |",
            "|---|---|---|---|",
        ]
        for c in refused:
            for r in c.refusals:
                lines.append(f"| `{c.name}` | {r.who} | {r.message} | `{r.fact}` |")
        lines.append("")
    if d.weakened:
        lines += [
            f"> [!WARNING]\n> **{len(d.weakened)} protection(s) weakened**: merge only with an "
            "explicit approval.",
            "",
            "| resource | protection | old | new |",
            "|---|---|---|---|",
        ]
        for w in d.weakened:
            lines.append(f"| `{w.name}` | {w.what} | {_value(w.old)} | {_value(w.new)} |")
        lines.append("")
    counts = {a: len(d.by_action(a)) for a in ("create", "update", "replace", "rename", "delete")}
    lines.append(
        f"**{counts['create']} to create, {counts['update']} to update, "
        f"{counts['replace']} to replace, {counts['rename']} renamed, "
        f"{counts['delete']} to delete.**"
    )
    if d.empty:
        lines += ["", "No change to the declared infrastructure."]
        return "\n".join(lines) + "\n"
    chunks = _details(d, max_properties)
    budget = limit - _RESERVE - sum(len(x) + 1 for x in lines)
    kept: list[str] = []
    for i, chunk in enumerate(chunks):
        size = sum(len(x) + 1 for x in chunk)
        if size > budget:
            # A block left open would fold the note, and anything after the report, into it.
            if sum(x.startswith("<details>") for x in kept) > kept.count("</details>"):
                kept += ["", "</details>"]
            left = sum(len(c) for c in chunks[i:])
            kept += [
                "",
                f"_… {left} more line(s) of detail left out to fit a PR "
                "comment; `--format json` has everything._",
            ]
            break
        kept += chunk
        budget -= size
    return "\n".join(lines + kept).rstrip("\n") + "\n"


def _details(d: Diff, max_properties: int) -> list[list[str]]:
    """The sections per action, in chunks of lines that are kept or left out whole.

    In a large report the resources that are not flagged go, per section, into one collapsed
    block after the flagged ones, which stay open."""
    tables = {
        c.urn: _table(c, max_properties)
        for c in d.changes
        if c.action not in ("create", "delete") and c.changes
    }
    collapse = sum(len(t) for t in tables.values()) > _COLLAPSE_OVER_LINES
    chunks: list[list[str]] = []
    for action, title, verb in (
        ("delete", "Deleted", "deleted"),
        ("rename", "Renamed", "renamed"),
        ("replace", "Replaced", "replaced"),
        ("update", "Updated", "updated"),
        ("create", "Created", "created"),
    ):
        group = d.by_action(action)
        if not group:
            continue
        chunks.append(["", f"### {title} ({len(group)})", ""])
        if action in ("create", "delete"):
            chunks += [[f"- `{c.name}` (`{c.type}`)"] for c in group]
            continue
        shown = [c for c in group if not collapse or c.at_risk or c.refusals]
        quiet = [c for c in group if collapse and not (c.at_risk or c.refusals)]
        chunks += [_resource(c, tables) for c in shown]
        if quiet:
            n = sum(len(c.changes) for c in quiet)
            what = f"{len(quiet)} {verb} resource{'s' if len(quiet) > 1 else ''}"
            chunks.append(
                [
                    f"<details><summary>{what} not flagged ({n} changed "
                    f"propert{'y' if n == 1 else 'ies'})</summary>",
                    "",
                ]
            )
            chunks += [_resource(c, tables) for c in quiet]
            chunks.append(["</details>", ""])
    return chunks


def _resource(c: ResourceChange, tables: Mapping[str, list[str]]) -> list[str]:
    suffix = f" → `{c.renamed_to.rsplit('::', 1)[-1]}`" if c.renamed_to else ""
    lines = [f"#### `{c.name}`{suffix} (`{c.type}`)"]
    if c.reasons:
        lines += ["", *[f"- {r}" for r in c.reasons]]
    return [*lines, *tables.get(c.urn, []), ""]


def _table(c: ResourceChange, max_properties: int) -> list[str]:
    lines = ["", "| property | old | new |", "|---|---|---|"]
    for p in c.changes[:max_properties]:
        lines += _property_rows(p)
    if len(c.changes) > max_properties:
        lines.append(f"| … | {len(c.changes) - max_properties} more | |")
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
            "refusals": [
                {"fact": r.fact, "who": r.who, "message": r.message, "source": r.source}
                for r in c.refusals
            ],
            "renamedTo": c.renamed_to,
            "changes": [{"path": p.path, "old": p.old, "new": p.new} for p in c.changes],
        }

    return {
        "stack": d.stack,
        "atRisk": [change(c) for c in d.at_risk],
        "refused": [change(c) for c in d.refused],
        "weakened": [
            {
                "urn": w.urn,
                "name": w.name,
                "type": w.type,
                "what": w.what,
                "old": w.old,
                "new": w.new,
            }
            for w in d.weakened
        ],
        "verdict": verdict(d),
        "changes": [change(c) for c in d.changes],
        "summary": {
            a: len(d.by_action(a)) for a in ("create", "update", "replace", "rename", "delete")
        },
    }
