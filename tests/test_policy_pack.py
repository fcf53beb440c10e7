"""The CrossGuard pack in policy/: every catalogue rule is a policy of the same name, and each
policy's `validate`, fed `ResourceValidationArgs`/`StackValidationArgs` built from the recorded
resources, reports exactly what the offline guardrails report."""

from __future__ import annotations

import runpy
from collections.abc import Mapping
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from dbplatform.manifest.synthetic import with_inputs, without
from infra.offline import from_recording
from policy.adapter import PACK_NAME, manifest_from_stack, policies, violation_text
from policy.manifest import Manifest, Resource
from policy.rules import BY_ID, CATALOGUE
from tests.conftest import ROOT, record

KNOWN_AFTER_DEPLOY = "(known after deploy)"


def _wire(value: Any) -> Any:
    """A manifest value as CrossGuard delivers it during preview: unknowns as the sentinel."""
    if value == KNOWN_AFTER_DEPLOY:
        return UNKNOWN_STRING_VALUE
    if isinstance(value, Mapping):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value


def _opts(r: Resource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=r.protect,
        ignore_changes=list(r.ignore_changes),
        delete_before_replace=r.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=r.parent,
    )


def _provider(m: Manifest, r: Resource) -> PolicyProviderResource:
    # Every resource has a provider at deploy time: an explicit one, or the default one whose
    # region is the stack's aws:region.
    urn = r.provider or f"urn:pulumi:{m.stack}::dbplatform::pulumi:providers:aws::default"
    return PolicyProviderResource("pulumi:providers:aws", {"region": m.region_of(r)}, urn, "aws")


def resource_args(m: Manifest, r: Resource) -> ResourceValidationArgs:
    return ResourceValidationArgs(
        resource_type=r.type,
        props=unknown_checking_proxy(_wire(dict(r.inputs))),
        urn=r.urn,
        name=r.name,
        opts=_opts(r),
        provider=_provider(m, r),
    )


def stack_args(m: Manifest) -> StackValidationArgs:
    built: dict[str, PolicyResource] = {}
    for r in m.resources:  # URN order puts no parent after its children here; link below
        built[r.urn] = PolicyResource(
            resource_type=r.type,
            props=unknown_checking_proxy(_wire(dict(r.inputs))),
            urn=r.urn,
            name=r.name,
            opts=_opts(r),
            provider=_provider(m, r),
            parent=None,
            dependencies=[],
            property_dependencies={},
        )
    for r in m.resources:
        pr = built[r.urn]
        pr.parent = built.get(r.parent) if r.parent else None
        pr.dependencies = [built[d] for d in r.dependencies if d in built]
    return StackValidationArgs(resources=list(built.values()))


def _prod() -> Manifest:
    return from_recording(record("prod"))


POLICIES = {p.name: p for p in policies()}


def test_one_policy_per_rule_with_its_level() -> None:
    assert list(POLICIES) == [r.id for r in CATALOGUE]
    for rule in CATALOGUE:
        policy = POLICIES[rule.id]
        kind = StackValidationPolicy if rule.is_stack_rule else ResourceValidationPolicy
        assert isinstance(policy, kind), rule.id
        expected = EnforcementLevel.ADVISORY if rule.advisory_only else EnforcementLevel.MANDATORY
        assert policy.enforcement_level == expected, rule.id
        if rule.control:
            assert policy.framework is not None and policy.framework.reference == rule.control


def test_main_builds_the_pack(monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi_policy

    seen: dict[str, Any] = {}

    def fake_pack(name: str, policies: list[Any], **_: Any) -> None:  # the real one serves gRPC
        seen["name"], seen["policies"] = name, [p.name for p in policies]

    monkeypatch.setattr(pulumi_policy, "PolicyPack", fake_pack)
    runpy.run_path(str(ROOT / "policy" / "__main__.py"), run_name="__main__")
    assert seen == {"name": PACK_NAME, "policies": [r.id for r in CATALOGUE]}


def _reported(policy: Any, args: Any) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    policy.validate(args, lambda message, urn=None: out.append((message, urn)))
    return out


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_resource_policies_report_what_the_offline_rules_report(stack: str) -> None:
    m = from_recording(record(stack))
    for rule in CATALOGUE:
        if rule.is_stack_rule:
            continue
        policy = POLICIES[rule.id]
        for r in m.resources:
            expected = [(violation_text(rule, v), None) for v in rule.check_resource(r)]
            assert _reported(policy, resource_args(m, r)) == expected, (rule.id, r.name)


def test_resource_policy_reports_a_weakened_primary() -> None:
    m = with_inputs(_prod(), "database-primary", storageEncrypted=False, publiclyAccessible=True)
    primary = next(r for r in m.resources if r.name == "database-primary")
    for rule_id in ("rds-storage-encrypted", "rds-not-public"):
        reported = _reported(POLICIES[rule_id], resource_args(m, primary))
        assert len(reported) == 1 and reported[0][0].startswith("database-primary: "), rule_id


def test_unknown_values_do_not_raise_in_policies() -> None:
    m = with_inputs(_prod(), "database-primary", storageEncrypted=KNOWN_AFTER_DEPLOY)
    primary = next(r for r in m.resources if r.name == "database-primary")
    assert _reported(POLICIES["rds-storage-encrypted"], resource_args(m, primary)) == []


def test_stack_manifest_rebuilt_from_crossguard_resources() -> None:
    m = _prod()
    rebuilt = manifest_from_stack(stack_args(m).resources)
    assert rebuilt.stack == "prod" and rebuilt.region == "us-east-1"
    assert {r.urn: r.region for r in rebuilt.resources} == {
        r.urn: m.region_of(r) for r in m.resources
    }
    assert {r.urn: r.dependencies for r in rebuilt.resources} == {
        r.urn: r.dependencies for r in m.resources
    }


@pytest.mark.parametrize(
    "variant",
    ["prod", "no-selection", "no-alarms", "no-rotation", "no-dr-copies", "window-clash"],
)
def test_stack_policies_report_what_the_offline_rules_report(variant: str) -> None:
    m = _prod()
    if variant == "no-selection":
        m = without(m, "backups-selection")
    elif variant == "no-alarms":
        m = without(m, *[r.name for r in m.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")][:5])
    elif variant == "no-rotation":
        m = without(m, "vault-master-rotation")
    elif variant == "no-dr-copies":
        m = without(m, "backups-replication")
    elif variant == "window-clash":
        m = with_inputs(m, "replicas-r1", maintenanceWindow="sun:03:00-sun:03:30")
    args = stack_args(m)
    any_failure = False
    for rule in CATALOGUE:
        if not rule.is_stack_rule:
            continue
        _, violations = BY_ID[rule.id].check_manifest(m)
        expected = [(violation_text(rule, v), v.urn) for v in violations]
        assert _reported(POLICIES[rule.id], args) == expected, rule.id
        any_failure = any_failure or bool(expected)
    assert any_failure == (variant != "prod")
