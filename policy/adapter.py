"""Adapt the guardrail catalogue (policy/rules.py) to CrossGuard policies.

Every rule becomes one policy of the same name: a resource rule a `ResourceValidationPolicy`
that runs the rule's check on the resource CrossGuard hands over, a stack rule a
`StackValidationPolicy` that rebuilds a manifest from the stack's resources and runs the rule's
stack check. No rule logic lives here, so the pack enforces exactly what
`python -m scripts.guardrails` checks offline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyComplianceFramework,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy
from pulumi_policy import secret as _secret

from policy.manifest import (
    KNOWN_AFTER_DEPLOY,
    RDS_INSTANCE,
    SECRET,
    Manifest,
    Resource,
    is_known,
    is_replica,
)
from policy.rules import CATALOGUE, Rule, Violation

PACK_NAME = "dbplatform-guardrails"
FSBP = "AWS Foundational Security Best Practices"
FSBP_VERSION = "1.0.0"

_UNKNOWN_SENTINELS = frozenset(
    {
        _proxy.UNKNOWN_BOOLEAN_VALUE,
        _proxy.UNKNOWN_NUMBER_VALUE,
        _proxy.UNKNOWN_STRING_VALUE,
        _proxy.UNKNOWN_ARRAY_VALUE,
        _proxy.UNKNOWN_ASSET_VALUE,
        _proxy.UNKNOWN_ARCHIVE_VALUE,
        _proxy.UNKNOWN_OBJECT_VALUE,
    }
)
_PROXIES = (
    _proxy._DictProxy,
    _proxy._ListProxy,
    _secret._DictSecretsProxy,
    _secret._ListSecretsProxy,
)


def plain(value: Any) -> Any:
    """CrossGuard's property values in the manifest's form: proxies unwrapped, unknowns as the
    "known after deploy" marker (instead of raising), secrets redacted."""
    if isinstance(value, _PROXIES):
        value = value["__target"]
    if isinstance(value, _secret.Secret):
        return SECRET
    if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
        return KNOWN_AFTER_DEPLOY
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _region(props: Mapping[str, Any], provider_props: Mapping[str, Any] | None) -> str | None:
    for candidate in (props.get("region"), (provider_props or {}).get("region")):
        if isinstance(candidate, str) and is_known(candidate):
            return candidate
    return None


def _is_custom(type_token: str) -> bool:
    # Provider resources and package resources (`aws:rds/instance:Instance`) are custom;
    # components (`dbplatform:index:Database`) are not.
    parts = type_token.split(":")
    return type_token.startswith("pulumi:providers:") or (len(parts) == 3 and "/" in parts[1])


def _resource(
    subject: ResourceValidationArgs | PolicyResource,
    parent: str | None,
    dependencies: tuple[str, ...] = (),
) -> Resource:
    """A resource CrossGuard hands over, in the shape the rules read."""
    props = plain(subject.props)
    provider_props = plain(subject.provider.props) if subject.provider else None
    return Resource(
        urn=subject.urn,
        type=subject.resource_type,
        name=subject.name,
        inputs=props,
        custom=_is_custom(subject.resource_type),
        parent=parent,
        dependencies=dependencies,
        protect=bool(subject.opts.protect),
        ignore_changes=tuple(subject.opts.ignore_changes or ()),
        delete_before_replace=bool(subject.opts.delete_before_replace),
        provider=subject.provider.urn if subject.provider else None,
        region=_region(props, provider_props),
    )


def resource_from_args(args: ResourceValidationArgs) -> Resource:
    """One resource under validation, in the shape the rules read."""
    return _resource(args, args.opts.parent)


def _stack_of(urn: str) -> tuple[str, str]:
    """(stack, project) from `urn:pulumi:<stack>::<project>::...`."""
    parts = urn.split("::")
    return parts[0].rsplit(":", 1)[-1], parts[1] if len(parts) > 1 else "dbplatform"


def manifest_from_stack(resources: Iterable[PolicyResource]) -> Manifest:
    """A manifest of the stack CrossGuard validates: its home region is the one its DB instances
    of record live in; any other region a resource uses is taken as the DR region."""
    out = [
        _resource(
            pr,
            pr.parent.urn if pr.parent else None,
            tuple(sorted(d.urn for d in pr.dependencies or [])),
        )
        for pr in resources
    ]
    out.sort(key=lambda r: r.urn)
    sources = [r for r in out if r.type == RDS_INSTANCE and not is_replica(r) and r.region]
    regions = Counter(r.region for r in out if r.region)
    home = sources[0].region if sources else (regions.most_common(1)[0][0] if regions else "")
    stack, project = _stack_of(out[0].urn) if out else ("unknown", "dbplatform")
    return Manifest(
        project=project,
        stack=stack,
        tier="production",  # levels come from the pack's enforcement config, not from here
        region=home or "",
        dr_region=None,  # derived by the rules from the regions in use
        resources=tuple(out),
    )


def violation_text(rule: Rule, v: Violation) -> str:
    """The message a policy reports for one violation (tests compare against it)."""
    where = f"{v.resource}: " if v.resource else ""
    return f"{where}{v.message}. Fix: {rule.remediation}"


def _resource_validate(rule: Rule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for v in rule.check_resource(resource_from_args(args)):
            report_violation(violation_text(rule, v), None)

    return validate


def _stack_validate(rule: Rule) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        _, violations = rule.check_manifest(manifest_from_stack(args.resources))
        for v in violations:
            report_violation(violation_text(rule, v), v.urn)

    return validate


def policies(rules: Iterable[Rule] = CATALOGUE) -> list[Policy]:
    """One CrossGuard policy per rule, mandatory unless the rule is advisory everywhere."""
    out: list[Policy] = []
    for rule in rules:
        level = EnforcementLevel.ADVISORY if rule.advisory_only else EnforcementLevel.MANDATORY
        framework = (
            PolicyComplianceFramework(name=FSBP, version=FSBP_VERSION, reference=rule.control)
            if rule.control
            else None
        )
        description = f"{rule.description} ({rule.control or 'dbplatform'})"
        if rule.is_stack_rule:
            out.append(
                StackValidationPolicy(
                    name=rule.id,
                    description=description,
                    validate=_stack_validate(rule),
                    enforcement_level=level,
                    framework=framework,
                    remediation_steps=rule.remediation,
                )
            )
        else:
            out.append(
                ResourceValidationPolicy(
                    name=rule.id,
                    description=description,
                    validate=_resource_validate(rule),
                    enforcement_level=level,
                    framework=framework,
                    remediation_steps=rule.remediation,
                )
            )
    return out
