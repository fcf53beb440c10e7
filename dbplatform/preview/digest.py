"""Read the output of `pulumi preview --json` (Pulumi's PreviewDigest) into one redacted change per
resource, with the stateful deletes and replacements picked out. Values and messages also have
the account id of every ARN masked (`mask_accounts`): the report goes to pull-request comments
and job summaries, which everyone who can read the repository reads.

The document shape follows `PreviewDigest` in pulumi/sdk `pkg/display/json.go`: `steps` (`op`,
`urn`, `oldState`, `newState`, `diffReasons`, `replaceReasons`, `detailedDiff`), `changeSummary`
and `diagnostics`. Anything else in the document is ignored, so newer CLI versions keep working.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbplatform.manifest.redact import (
    REDACTED,
    is_credential_name,
    is_pulumi_secret,
    is_reference,
    mask_accounts,
    redact,
    scrub,
)
from dbplatform.preview.weakened import Weakening, weakened_steps
from infra.stateful import STATEFUL_TYPES, is_stateful, replacement_properties
from policy import inputs
from policy.markers import KNOWN_AFTER_DEPLOY

# The placeholder Pulumi serializes for a value only known after apply (plugin.UnknownStringValue).
# It reads as the manifests spell such a value, so the preview's details and the infra diff
# embedded in the same comment say it one way.
UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# A changed secret: both sides would read REDACTED, which looks like no change at all. The infra
# diff writes the same.
SECRET_CHANGED = f"{REDACTED} (changed)"
# Policy violations reach the digest as diagnostics carrying the enforcement level in brackets.
_POLICY_MARK = re.compile(r"\[(mandatory|advisory|remediate)\]", re.I)

# The steps one replacement emits per URN (create-before-delete or delete-before-create) all mean
# "this resource is replaced"; import-replacement swaps an existing resource for an imported one.
REPLACE_OPS = frozenset({"replace", "create-replacement", "delete-replaced", "import-replacement"})
# Ops that change nothing in the cloud: not listed in the table of changes.
NO_CHANGE_OPS = frozenset({"same", "read", "refresh"})
# Display order of operations, most dangerous first; unknown ops sort after these by name.
OP_ORDER = (
    "replace",
    "delete",
    "create",
    "update",
    "import",
    "read-replacement",
    "discard",
    "discard-replaced",
    "remove-pending-replace",
    "read",
    "refresh",
    "same",
)
_OP_RANK = {op: i for i, op in enumerate(OP_ORDER)}
# Every step op Pulumi writes: the `OpType` constants of pulumi's sdk/go/common/apitype
# (updates.go). A step with any other op is not from `pulumi preview --json`.
STEP_OPS = frozenset(OP_ORDER) | REPLACE_OPS
# changeSummary keys Pulumi uses for the sub-steps of a replacement; counted under "replace".
_SUMMARY_ALIASES = {"create-replacement": "replace", "delete-replaced": "replace"}

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
TOP_LEVEL = "(top level)"
_VALUE_WIDTH = 60
_MIN_SCRUB_LEN = 4
_MIN_NAMED_SECRET_LEN = 8


class PreviewError(Exception):
    """The input is not a readable preview document; the message says what is wrong."""


@dataclass(frozen=True)
class PropertyChange:
    """One changed property of a resource, with redacted, shortened old and new values."""

    path: str
    """Property path as Pulumi writes it (`engine`, `tags.Name`, `vpcSecurityGroupIds[0]`)."""
    kind: str
    """add, update or delete, with `-replace` appended when this change forces replacement."""
    old: str | None
    """Old value rendered for display (None when absent)."""
    new: str | None
    """New value rendered for display (None when absent)."""
    forces_replacement: bool
    """True when this property is one of the reasons the resource is replaced."""


@dataclass(frozen=True)
class ResourceChange:
    """All steps of one resource (one URN) merged into a single change."""

    urn: str
    name: str
    type: str
    op: str
    """Merged operation: `replace` for any replacement step, else the most significant step."""
    steps: tuple[str, ...]
    """The raw ops Pulumi emitted for this URN, in document order."""
    component: str
    """Display label of the parent component chain, or TOP_LEVEL."""
    changes: tuple[PropertyChange, ...]
    replaced_because: tuple[str, ...]
    """Properties that force the replacement (empty unless op is replace)."""
    inputs: tuple[tuple[str, str], ...]
    """For creates: the new resource's top-level inputs, rendered and redacted."""
    protected: bool
    retain_on_delete: bool

    @property
    def stateful(self) -> bool:
        """True for resources whose loss loses data or keys (infra.stateful decides)."""
        return is_stateful(self.type)

    @property
    def what_is_lost(self) -> str:
        """Short description of what deleting this resource destroys."""
        return STATEFUL_TYPES.get(self.type, "")

    @property
    def destructive(self) -> bool:
        """True when a stateful resource would be deleted or replaced."""
        return self.stateful and self.op in ("delete", "replace")


@dataclass(frozen=True)
class Diagnostic:
    """A message from the preview: an error, a warning, or a policy violation."""

    severity: str
    message: str
    urn: str
    policy: bool


@dataclass(frozen=True)
class Preview:
    """A parsed preview: merged resource changes, operation counts and diagnostics."""

    stack: str
    resources: tuple[ResourceChange, ...]
    counts: tuple[tuple[str, int], ...]
    diagnostics: tuple[Diagnostic, ...]
    weakened: tuple[Weakening, ...] = ()
    """Protections turned off (dbplatform.preview.weakened): as destructive as a deletion."""

    @property
    def destructive(self) -> tuple[ResourceChange, ...]:
        """Stateful resources that would be deleted or replaced."""
        return tuple(r for r in self.resources if r.destructive)

    @property
    def needs_approval(self) -> bool:
        """A deletion or replacement of stateful resources, or a protection weakened."""
        return bool(self.destructive or self.weakened)

    @property
    def blocked_by_protect(self) -> tuple[ResourceChange, ...]:
        """Deleted or replaced resources whose `protect` option makes `pulumi up` fail."""
        return tuple(r for r in self.destructive if r.protected)

    @property
    def changed(self) -> tuple[ResourceChange, ...]:
        """Resources with a cloud change (not same/read/refresh), the root stack excluded."""
        return tuple(
            r for r in self.resources if r.op not in NO_CHANGE_OPS and r.type != ROOT_STACK_TYPE
        )

    @property
    def policy_violations(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.policy)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error" and not d.policy)


def op_rank(op: str) -> tuple[int, str]:
    """Sort key putting operations in OP_ORDER, unknown ones last by name."""
    return (_OP_RANK.get(op, len(OP_ORDER)), op)


def load_preview(text: str, source: str, stack: str | None = None) -> Preview:
    """Parse the JSON text of a preview; raise PreviewError naming `source` if it is not one."""
    if not text.strip():
        raise PreviewError(
            f"{source} is empty: `pulumi preview --json` wrote nothing (did the preview fail "
            "before it started? check its stderr)"
        )
    if len(text) > inputs.MAX_DOCUMENT_BYTES:  # characters >= bytes / 4: a cheap first bound
        raise PreviewError(
            f"{source} is {len(text):,} characters; the limit is "
            f"{inputs.MAX_DOCUMENT_BYTES:,}: is it the output of `pulumi preview --json`?"
        )
    try:
        doc = inputs.loads_json(text, source)
    except inputs.InputError as exc:
        hint = "pass the stdout of `pulumi preview --json`, without its stderr"
        raise PreviewError(f"{exc}; {hint}" if "not valid JSON" in str(exc) else str(exc)) from None
    return parse_preview(doc, source, stack)


def load_preview_bytes(data: bytes, source: str, stack: str | None = None) -> Preview:
    """`load_preview` of a file's bytes: refused over the size limit or when not UTF-8."""
    try:
        text = inputs.decode(data, source, inputs.MAX_DOCUMENT_BYTES)
    except inputs.InputError as exc:
        raise PreviewError(str(exc)) from None
    return load_preview(text, source, stack)


def parse_preview(doc: object, source: str, stack: str | None = None) -> Preview:
    """Validate a decoded PreviewDigest and merge its steps per URN."""
    if not isinstance(doc, dict) or not ({"steps", "changeSummary", "diagnostics"} & doc.keys()):
        raise PreviewError(
            f"{source} is not the output of `pulumi preview --json`: expected a JSON object with "
            "'steps', 'changeSummary' or 'diagnostics'"
        )
    try:
        inputs.check_shape(doc, source)
    except inputs.InputError as exc:
        raise PreviewError(str(exc)) from None
    steps = _list_of_objects(doc.get("steps"), source, "steps")
    for i, step in enumerate(steps):
        _check_step(step, i, source)
    doc_stack = _stack_of(steps)
    for i, step in enumerate(steps):
        if (other := _stack_of([step])) != doc_stack:
            raise PreviewError(
                f"{source}: steps[{i}].urn is of stack '{other}' but steps[0].urn of stack "
                f"'{doc_stack}': one preview covers one stack"
            )
    if stack and doc_stack and stack != doc_stack:
        raise PreviewError(
            f"{source} is a preview of stack '{doc_stack}', not '{stack}': pass the preview of "
            f"'{stack}' or --stack {doc_stack}"
        )
    secrets = _collect_secrets(steps)
    resources = _merge(steps, secrets)
    counts = _counts(doc.get("changeSummary"), resources, source)
    diagnostics = _diagnostics(doc, source, secrets)
    return Preview(
        stack=stack or doc_stack or "unknown",
        resources=resources,
        counts=counts,
        diagnostics=diagnostics,
        weakened=weakened_steps(steps),
    )


# --- validation -----------------------------------------------------------------------------


def _list_of_objects(value: object, source: str, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PreviewError(f"{source}: '{what}' must be a list of objects")
    return value


def _check_step(step: dict[str, Any], i: int, source: str) -> None:
    where = f"{source}: steps[{i}]"
    if not isinstance(step.get("op"), str) or not step["op"]:
        raise PreviewError(f"{where} has no 'op' string")
    if step["op"] not in STEP_OPS:
        raise PreviewError(
            f"{where}.op {step['op']!r} is not a Pulumi step op (apitype OpType: "
            f"{', '.join(sorted(STEP_OPS))})"
        )
    urn = step.get("urn")
    if not isinstance(urn, str) or not urn.startswith("urn:pulumi:") or urn.count("::") < 3:
        raise PreviewError(
            f"{where} has no valid 'urn' (expected urn:pulumi:STACK::PROJECT::TYPE::NAME, "
            f"got {urn!r})"
        )
    for key in ("oldState", "newState", "detailedDiff"):
        if step.get(key) is not None and not isinstance(step[key], dict):
            raise PreviewError(f"{where}: '{key}' must be an object")
    for key in ("diffReasons", "replaceReasons"):
        value = step.get(key)
        if value is not None and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise PreviewError(f"{where}: '{key}' must be a list of property names")
    for path, diff in (step.get("detailedDiff") or {}).items():
        if not isinstance(diff, dict) or not isinstance(diff.get("kind"), str):
            raise PreviewError(f"{where}: detailedDiff[{path!r}] must be an object with a 'kind'")


def _stack_of(steps: list[dict[str, Any]]) -> str | None:
    for step in steps:
        return str(step["urn"]).split("::", 1)[0].removeprefix("urn:pulumi:")
    return None


# --- merging steps per URN -----------------------------------------------------------------


def _split_urn(urn: str) -> tuple[list[str], str]:
    """The type chain (parents first) and the name of a URN."""
    _, _, qualified_type, name = urn.split("::", 3)
    return qualified_type.split("$"), name


def _short_type(token: str) -> str:
    return token.rsplit(":", 1)[-1] or token


def _component_label(chain: list[str], parent_urn: object) -> str:
    parents = [t for t in chain[:-1] if t != ROOT_STACK_TYPE]
    if not parents:
        return TOP_LEVEL
    label = " › ".join(_short_type(t) for t in parents)
    # The URN carries only the parents' types; the state names the direct parent, which tells two
    # components of one type apart (the primary database from a replica).
    if isinstance(parent_urn, str) and parent_urn.count("::") >= 3:
        parent_chain, parent_name = _split_urn(parent_urn)
        if parent_chain[-1] != ROOT_STACK_TYPE:
            label += f" ({parent_name})"
    return label


def _merged_op(ops: list[str]) -> str:
    if any(op in REPLACE_OPS for op in ops):
        return "replace"
    return min(ops, key=op_rank)


def _merge(steps: list[dict[str, Any]], secrets: frozenset[str]) -> tuple[ResourceChange, ...]:
    by_urn: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        by_urn.setdefault(step["urn"], []).append(step)
    merged = [_merge_one(urn, group, secrets) for urn, group in by_urn.items()]
    merged.sort(key=lambda r: (r.component, op_rank(r.op), r.name, r.type, r.urn))
    return tuple(merged)


def _first(group: list[dict[str, Any]], key: str) -> dict[str, Any]:
    # The replace / create-replacement steps carry the new state; prefer them over the others.
    for step in sorted(group, key=lambda s: s["op"] not in ("replace", "create-replacement")):
        value = step.get(key)
        if isinstance(value, dict) and value:
            return value
    return {}


def _merge_one(urn: str, group: list[dict[str, Any]], secrets: frozenset[str]) -> ResourceChange:
    ops = [str(s["op"]) for s in group]
    op = _merged_op(ops)
    old, new = _first(group, "oldState"), _first(group, "newState")
    chain, name = _split_urn(urn)
    type_token = str(new.get("type") or old.get("type") or chain[-1])
    detailed: dict[str, str] = {}
    diff_reasons: set[str] = set()
    replace_reasons: set[str] = set()
    for step in group:
        for path, diff in sorted((step.get("detailedDiff") or {}).items()):
            detailed.setdefault(path, diff["kind"])
        diff_reasons.update(step.get("diffReasons") or ())
        replace_reasons.update(step.get("replaceReasons") or ())

    forcing: set[str] = set()
    if op == "replace":
        changed = set(detailed) | diff_reasons | replace_reasons
        forcing = set(replace_reasons)
        forcing.update(p for p, kind in detailed.items() if kind.endswith("-replace"))
        forcing.update(replacement_properties(type_token, changed))

    paths = sorted(detailed) if detailed else sorted(diff_reasons | replace_reasons)
    old_inputs = _props(old)
    new_inputs = _props(new)
    changes = tuple(
        PropertyChange(
            path=path,
            kind=detailed.get(path, "update"),
            old=_display(old_inputs, path, secrets),
            new=_new_display(old_inputs, new_inputs, path, secrets),
            forces_replacement=path in forcing or _top(path) in forcing,
        )
        for path in paths
        if op not in NO_CHANGE_OPS
    )
    return ResourceChange(
        urn=urn,
        name=name,
        type=type_token,
        op=op,
        steps=tuple(ops),
        component=_component_label(chain, new.get("parent") or old.get("parent")),
        changes=changes,
        replaced_because=tuple(sorted(forcing)),
        inputs=_rendered_inputs(new.get("inputs"), secrets) if op in ("create", "import") else (),
        protected=bool(old.get("protect") or new.get("protect")),
        retain_on_delete=bool(old.get("retainOnDelete") or new.get("retainOnDelete")),
    )


def _rendered_inputs(props: object, secrets: frozenset[str]) -> tuple[tuple[str, str], ...]:
    if not isinstance(props, dict):
        return ()
    return tuple(
        (key, render_value(value, is_credential_name(key), secrets))
        for key, value in sorted(props.items())
        if not key.startswith("__")  # engine bookkeeping such as __defaults
    )


def _props(state: Mapping[str, Any]) -> dict[str, Any]:
    inputs = state.get("inputs")
    outputs = state.get("outputs")
    merged: dict[str, Any] = dict(outputs) if isinstance(outputs, dict) else {}
    if isinstance(inputs, dict):
        merged.update(inputs)
    return merged


def _top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


_PATH_TOKEN = re.compile(r'\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([^.\[\]]+)')


def _lookup(props: Mapping[str, Any], path: str) -> tuple[bool, Any, bool]:
    """Follow a Pulumi property path; return (found, value, under a sensitive name)."""
    value: Any = props
    sensitive = False
    for quoted, index, plain in _PATH_TOKEN.findall(path):
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None, sensitive
            value = value[int(index)]
            continue
        key = quoted or plain
        if is_pulumi_secret(value):
            return True, value, sensitive
        if not isinstance(value, dict) or key not in value:
            return False, None, sensitive
        sensitive = sensitive or is_credential_name(key)
        value = value[key]
    return True, value, sensitive


def _display(props: Mapping[str, Any], path: str, secrets: frozenset[str]) -> str | None:
    found, value, sensitive = _lookup(props, path)
    if not found:
        return None
    return render_value(value, sensitive, secrets)


def _new_display(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, secrets: frozenset[str]
) -> str | None:
    """The new value; SECRET_CHANGED where both sides are hidden, since Pulumi listed the path as
    changed. Only two plaintexts seen equal (the value became secret, say) keep REDACTED."""
    shown = _display(new, path, secrets)
    if shown != REDACTED or _display(old, path, secrets) != REDACTED:
        return shown
    before, after = _plaintext(_lookup(old, path)[1]), _plaintext(_lookup(new, path)[1])
    return REDACTED if before is not None and before == after else SECRET_CHANGED


def _plaintext(value: Any) -> Any:
    """A value with Pulumi's secret wrapper taken off; None when the document hides it."""
    if is_pulumi_secret(value):
        value = value.get("value", value.get("plaintext"))
    return None if value is None or value == REDACTED else value


# --- secrets -------------------------------------------------------------------------------


def render_value(value: Any, sensitive: bool, secrets: frozenset[str]) -> str:
    """One-line, redacted, shortened rendering of a property value."""
    if value == UNKNOWN_VALUE:
        return KNOWN_AFTER_DEPLOY
    clean = redact(value, sensitive)
    if clean == REDACTED:
        return REDACTED
    text = json.dumps(clean, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    text = scrub(text.replace(json.dumps(UNKNOWN_VALUE), KNOWN_AFTER_DEPLOY), secrets)
    # before the cut, which could leave part of an account id that the mask no longer finds
    text = mask_accounts(text)
    if len(text) > _VALUE_WIDTH:
        text = text[: _VALUE_WIDTH - 1] + "…"
    return text


def _collect_secrets(steps: list[dict[str, Any]]) -> frozenset[str]:
    """Every plaintext that a state marks secret or keeps under a credential-like name."""
    found: set[str] = set()

    def walk(value: Any, sensitive: bool) -> None:
        if is_pulumi_secret(value):
            inner = value.get("value", value.get("plaintext"))
            if isinstance(inner, str):
                found.add(inner)
                # A secret JSON document (an RDS secret string) holds its credentials under
                # credential-like names; its other fields (engine, port) stay readable.
                with contextlib.suppress(ValueError):
                    walk(json.loads(inner), False)
            else:
                walk(inner, False)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, sensitive or is_credential_name(str(k)))
        elif isinstance(value, list):
            for v in value:
                walk(v, sensitive)
        elif (
            sensitive
            and isinstance(value, str)
            and not is_reference(value)
            # Name-based finds must be long enough not to be a common word ("master").
            and len(value) >= _MIN_NAMED_SECRET_LEN
        ):
            found.add(value)

    for step in steps:
        for key in ("oldState", "newState"):
            state = step.get(key) or {}
            walk(state.get("inputs"), False)
            walk(state.get("outputs"), False)
    return frozenset(
        s for s in found if len(s) >= _MIN_SCRUB_LEN and s not in (REDACTED, UNKNOWN_VALUE)
    )


# --- counts and diagnostics ----------------------------------------------------------------


def _counts(
    summary: object, resources: tuple[ResourceChange, ...], source: str
) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    if summary is not None:
        if not isinstance(summary, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in summary.values()
        ):
            raise PreviewError(f"{source}: 'changeSummary' must map operations to counts")
        for op, n in summary.items():
            key = _SUMMARY_ALIASES.get(str(op), str(op))
            # create-replacement and delete-replaced count the same replacements as "replace"
            counts[key] = max(counts.get(key, 0), n) if key == "replace" else n
    else:
        for r in resources:
            counts[r.op] = counts.get(r.op, 0) + 1
    return tuple(sorted(((op, n) for op, n in counts.items() if n), key=lambda c: op_rank(c[0])))


def _diagnostics(
    doc: dict[str, Any], source: str, secrets: frozenset[str]
) -> tuple[Diagnostic, ...]:
    out: list[Diagnostic] = []
    for i, d in enumerate(_list_of_objects(doc.get("diagnostics"), source, "diagnostics")):
        message = d.get("message")
        if not isinstance(message, str):
            raise PreviewError(f"{source}: diagnostics[{i}] has no 'message' string")
        prefix = d.get("prefix") if isinstance(d.get("prefix"), str) else ""
        severity = str(d.get("severity") or "info")
        if severity == "debug":
            continue
        text = mask_accounts(scrub(f"{prefix}{message}".strip(), secrets))
        out.append(
            Diagnostic(
                severity=severity,
                message=text,
                urn=str(d.get("urn") or ""),
                policy=bool(_POLICY_MARK.search(text)),
            )
        )
    # `pulumi events summary` documents carry violations in their own list; accept them too.
    for i, v in enumerate(
        _list_of_objects(doc.get("policyViolations"), source, "policyViolations")
    ):
        level = str(v.get("enforcementLevel") or "advisory")
        pack = str(v.get("policyPackName") or "policy")
        name = str(v.get("policyName") or f"violation {i}")
        message = mask_accounts(scrub(str(v.get("message") or "").strip(), secrets))
        out.append(
            Diagnostic(
                severity="error" if level == "mandatory" else "warning",
                message=f"[{level}] {pack}/{name}: {message}",
                urn=str(v.get("resourceUrn") or ""),
                policy=True,
            )
        )
    return tuple(out)
