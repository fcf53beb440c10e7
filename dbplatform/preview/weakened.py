"""Protections a `pulumi preview` turns off, read from its steps' old and new state (inputs and
resource options). A weakening is as destructive as a deletion: the next change can then lose the
data without any gate noticing, so the preview report refuses it (exit 3) without approval.

The kinds are the offline infra diff's (`weakened(base, head)` in dbplatform.manifest.diff), over
a preview instead of two manifests: `protect` off, `retainOnDelete` removed, deletion protection
off, final snapshot skipped, a vault made force-destroyable, the stack's tier changed, a backup
vault lock changed or removed, a Deny statement of a key (vault, secret, role trust, endpoint)
policy removed or changed, an Allow statement of one added or changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.provider_facts import (
    LOCK_INPUTS,
    POLICY_INPUTS,
    PROTECTIVE_INPUTS,
    VAULT_LOCK,
    deny_statements,
    policy_loosened,
)

KINDS = (
    "protect",
    "retainOnDelete",
    "deletionProtection",
    "skipFinalSnapshot",
    "forceDestroy",
    "tier",
    "vaultLock",
    "policyDeny",
    "policyAllow",
)

_ROOT_STACK = "pulumi:pulumi:Stack"
_DELETE_OPS = frozenset({"delete", "delete-replaced", "discard", "discard-replaced"})


@dataclass(frozen=True)
class Weakening:
    """One protection turned off or loosened."""

    urn: str
    name: str
    type: str
    kind: str
    """One of KINDS."""
    old: object
    new: object

    def describe(self) -> str:
        """One line for people: what is weakened, from what to what."""
        if self.kind in ("protect", "retainOnDelete"):
            return f"{self.kind} option removed"
        if self.kind == "vaultLock":
            return "vault lock removed" if self.new is None else "vault lock changed"
        if self.kind == "policyDeny":
            return f"Deny statement {self.old!r} {'changed' if self.new else 'removed'}"
        if self.kind == "policyAllow":
            return f"Allow statement {self.old!r} {self.new}"
        return f"{self.kind} {json.dumps(self.old)} → {json.dumps(self.new)}"


def _state(steps: list[Mapping[str, Any]], key: str) -> dict[str, Any]:
    for step in steps:
        value = step.get(key)
        if isinstance(value, dict) and value:
            return value
    return {}


def _inputs(state: Mapping[str, Any]) -> dict[str, Any]:
    inputs = state.get("inputs")
    return inputs if isinstance(inputs, dict) else {}


def weakened_steps(steps: Iterable[Mapping[str, Any]]) -> tuple[Weakening, ...]:
    """Every protection the preview's steps turn off, in URN order."""
    by_urn: dict[str, list[Mapping[str, Any]]] = {}
    for step in steps:
        by_urn.setdefault(str(step["urn"]), []).append(step)
    out: list[Weakening] = []
    for urn in sorted(by_urn):
        group = by_urn[urn]
        old, new = _state(group, "oldState"), _state(group, "newState")
        if not old:
            continue  # a create weakens nothing
        rtype = str(old.get("type") or urn.rsplit("::", 2)[-2].rsplit("$", 1)[-1])
        name = urn.rsplit("::", 1)[-1]

        def add(kind: str, before: object, after: object) -> None:
            out.append(Weakening(urn, name, rtype, kind, before, after))  # noqa: B023

        if rtype == _ROOT_STACK:
            before, after = old.get("outputs") or {}, new.get("outputs") or {}
            if "tier" in before and before.get("tier") != after.get("tier"):
                add("tier", before.get("tier"), after.get("tier"))
            continue
        old_in, new_in = _inputs(old), _inputs(new)
        deleted = not new or all(str(s.get("op")) in _DELETE_OPS for s in group)
        if deleted:
            if rtype == VAULT_LOCK:
                add("vaultLock", "locked", None)
            if rtype in POLICY_INPUTS:
                for sid in sorted(deny_statements(old_in.get(POLICY_INPUTS[rtype]))):
                    add("policyDeny", sid, None)
            continue
        if old.get("protect") and not new.get("protect"):
            add("protect", True, False)
        if old.get("retainOnDelete") and not new.get("retainOnDelete"):
            add("retainOnDelete", True, False)
        for key, safe in PROTECTIVE_INPUTS.items():
            if key in old_in and old_in[key] == safe and new_in.get(key) != safe:
                add(key, old_in[key], new_in.get(key))
        if rtype == VAULT_LOCK:
            before = {k: old_in.get(k) for k in LOCK_INPUTS}
            after = {k: new_in.get(k) for k in LOCK_INPUTS}
            if before != after:
                add("vaultLock", before, after)
        policy = POLICY_INPUTS.get(rtype)
        if policy:
            for kind, sid, change in policy_loosened(old_in.get(policy), new_in.get(policy)):
                add(kind, sid, change)
    return tuple(out)
