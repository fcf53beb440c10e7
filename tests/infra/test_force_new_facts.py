"""The replacement facts cover the program: every AWS (and random) resource type a committed stack
declares has its replacement-forcing inputs in infra/provider_facts.FORCE_NEW, each input is one the
provider's Python class accepts (a misspelt key would silently never match), and the infra diff
reports a change of such an input as a replacement.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
from dataclasses import replace
from typing import Any

import pytest

from dbplatform.manifest.diff import diff
from infra.offline import Recording, from_recording
from infra.provider_facts import FORCE_NEW, SUBNET, VPC
from policy.manifest import Manifest
from tests.conftest import record

# Types the program declares with no input that forces replacement, each with the source that
# says so. Empty today: every declared type has at least one (FORCE_NEW names the file).
NO_FORCE_NEW: dict[str, str] = {}

_PROVIDER_PACKAGES = {"aws": "pulumi_aws", "random": "pulumi_random"}


def _declared(rec: Recording) -> set[str]:
    return {r.type for r in rec.resources if r.type.split(":")[0] in _PROVIDER_PACKAGES}


def _resource_class(type_token: str) -> Any:
    """pulumi-aws/pulumi-random class of a type token (`aws:ec2/vpc:Vpc` -> pulumi_aws.ec2.Vpc)."""
    package, module, name = type_token.split(":")
    path = _PROVIDER_PACKAGES[package]
    module = module.split("/")[0]
    if module != "index":
        path = f"{path}.{module}"
    return getattr(importlib.import_module(path), name)


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _inputs(type_token: str) -> set[str]:
    """The input names the class takes, as Pulumi spells them (camelCase)."""
    params = inspect.signature(_resource_class(type_token)._internal_init).parameters
    skip = {"self", "__self__", "resource_name", "opts", "__props__"}
    return {_camel(p) for p in params if p not in skip}


def test_every_declared_type_has_its_replacement_facts(stack_recording: Recording) -> None:
    missing = sorted(_declared(stack_recording) - set(FORCE_NEW) - set(NO_FORCE_NEW))
    assert missing == [], f"{stack_recording.stack}: no FORCE_NEW entry for {missing}"


def test_the_types_without_facts_are_not_also_in_force_new() -> None:
    assert not set(NO_FORCE_NEW) & set(FORCE_NEW)
    assert all(NO_FORCE_NEW.values())


@pytest.mark.parametrize("type_token", sorted(FORCE_NEW))
def test_every_fact_names_an_input_the_provider_accepts(type_token: str) -> None:
    unknown = sorted(set(FORCE_NEW[type_token]) - _inputs(type_token))
    assert unknown == [], f"{type_token}: not inputs of {_resource_class(type_token).__name__}"


@pytest.mark.parametrize("type_token", sorted(FORCE_NEW))
def test_every_fact_names_its_source(type_token: str) -> None:
    for name, source in FORCE_NEW[type_token].items():
        assert re.match(r"(terraform-provider-(aws|random) internal/|pulumi_aws )", source), name


@functools.cache
def _prod() -> Manifest:
    return from_recording(record("prod"))


def test_the_camel_case_conversion_matches_the_manifest() -> None:
    """The manifest's input names are the ones the conversion gives (cidrBlock, vpcId, ...)."""
    for r in _prod().resources:
        if r.type.split(":")[0] in _PROVIDER_PACKAGES:
            assert set(r.inputs) <= _inputs(r.type), r.name


def _change(type_token: str, name: str, **inputs: Any) -> Any:
    """What the diff says when one resource's inputs change in a copy of the prod manifest.

    Selected by type and name: a subnet and its route table association share a logical name.
    """
    base = _prod()
    (target,) = [r for r in base.resources if (r.type, r.name) == (type_token, name)]
    edited = replace(target, inputs={**target.inputs, **inputs})
    head = replace(base, resources=tuple(edited if r is target else r for r in base.resources))
    (change,) = [c for c in diff(base, head).changes if c.urn == target.urn]
    return change


def test_a_new_vpc_cidr_replaces_the_vpc() -> None:
    vpc = _change(VPC, "dr-network-vpc", cidrBlock="10.43.0.0/16")
    assert vpc.action == "replace"
    assert vpc.reasons == ("cidrBlock changed: forces replacement",)


def test_a_new_subnet_cidr_replaces_the_subnet_and_a_new_zone_is_ignored() -> None:
    cidr = _change(SUBNET, "dr-network-private-0", cidrBlock="10.42.48.0/20")
    assert cidr.action == "replace"
    assert cidr.reasons == ("cidrBlock changed: forces replacement",)
    # a zone would force one too, so the program ignores it once the subnet exists (the zone
    # list is read at every run and shifts in an outage: infra/components/network.py)
    assert "availabilityZone" in FORCE_NEW[SUBNET]
    base = _prod()
    (subnet,) = [r for r in base.resources if (r.type, r.name) == (SUBNET, "network-private-0")]
    assert "availabilityZone" in subnet.ignore_changes
    moved = replace(subnet, inputs={**subnet.inputs, "availabilityZone": "us-east-1d"})
    head = replace(base, resources=tuple(moved if r is subnet else r for r in base.resources))
    assert [c for c in diff(base, head).changes if c.urn == subnet.urn] == []


def test_a_vpc_attribute_with_an_update_api_stays_an_update() -> None:
    vpc = _change(VPC, "dr-network-vpc", enableDnsHostnames=False)
    assert (vpc.action, vpc.reasons) == ("update", ())
