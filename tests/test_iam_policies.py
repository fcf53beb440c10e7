"""The least-privilege policies in ci/iam (devtools/iam_policies.py), against the synth manifests
and botocore's service models: every action the program needs is granted, every action is a real
AWS operation, nothing is broader than that, and the drill role reaches only drill instances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from devtools import iam_policies
from devtools.iam_policies import TYPE_OPERATIONS, declared_types, policies

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "tests" / "golden").glob("*.json"))
POLICIES = {
    p.name: json.loads(p.read_text(encoding="utf-8")) for p in (ROOT / "ci/iam").glob("*.json")
}
# IAM prefix -> botocore service (the inverse of iam_policies._IAM_PREFIX, plus the state bucket).
SERVICES = {prefix: service for service, prefix in iam_policies._IAM_PREFIX.items()} | {"s3": "s3"}
# IAM actions named unlike an operation (Service Authorization Reference): iam:PassRole is
# "permission only"; s3:ListBucket grants the ListObjects/ListObjectsV2 operations.
PERMISSION_ONLY = {"iam:PassRole": None, "s3:ListBucket": "ListObjectsV2"}


def actions(policy: dict[str, Any], effect: str = "Allow") -> set[str]:
    out: set[str] = set()
    for st in policy["Statement"]:
        if st["Effect"] == effect:
            out.update([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    return out


def test_committed_policies_are_what_the_program_declares_now() -> None:
    assert set(POLICIES) == {"preview.json", "deploy.json", "drill.json", "operator.json"}
    assert iam_policies.main(["--check"]) == 0
    assert policies(MANIFESTS) == POLICIES


@pytest.mark.parametrize("name", ["preview.json", "deploy.json", "drill.json", "operator.json"])
def test_every_action_is_a_real_operation_of_its_service(name: str) -> None:
    session = botocore.session.get_session()
    models: dict[str, set[str]] = {}
    for act in actions(POLICIES[name]) | actions(POLICIES[name], "Deny"):
        assert "*" not in act, f"{name}: wildcard action {act}"
        prefix, operation = act.split(":")
        if act in PERMISSION_ONLY:
            if PERMISSION_ONLY[act] is None:
                continue
            operation = str(PERMISSION_ONLY[act])
        service = SERVICES[prefix]
        if service not in models:
            models[service] = set(session.get_service_model(service).operation_names)
        assert operation in models[service], f"{name}: {act} is not an operation of {service}"


def test_every_type_the_program_declares_is_covered() -> None:
    types = declared_types(MANIFESTS)
    assert types and types <= TYPE_OPERATIONS.keys(), sorted(types - TYPE_OPERATIONS.keys())
    preview, deploy = actions(POLICIES["preview.json"]), actions(POLICIES["deploy.json"])
    for t in types:
        service, reads, writes = TYPE_OPERATIONS[t]
        for op in reads:
            assert iam_policies.action(service, op) in preview, (t, op)
        for op in reads + writes:
            assert iam_policies.action(service, op) in deploy, (t, op)


def test_nothing_broader_than_the_program_needs() -> None:
    types = declared_types(MANIFESTS)
    needed = {
        iam_policies.action(s, o)
        for s, ops in iam_policies.operations(types, write=True).items()
        for o in ops
    }
    state = {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    state |= {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "iam:PassRole"}
    assert actions(POLICIES["deploy.json"]) - needed - state == set()
    preview = actions(POLICIES["preview.json"]) - state
    assert all(a.split(":")[1].startswith(("Describe", "List", "Get")) for a in preview), preview
    for statement in POLICIES["preview.json"]["Statement"]:
        for act in (
            [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        ):
            assert not act.startswith(("s3:Put", "s3:Delete", "kms:Encrypt")), act


def test_ci_never_administers_keys() -> None:
    for name in ("deploy.json", "drill.json", "operator.json"):
        denied = actions(POLICIES[name], "Deny")
        assert {"kms:ScheduleKeyDeletion", "kms:DisableKey"} <= denied, name


def test_the_drill_role_reaches_only_drill_instances() -> None:
    drill = POLICIES["drill.json"]
    writes = [
        st
        for st in drill["Statement"]
        if st["Effect"] == "Allow"
        and any(a in ("rds:DeleteDBInstance", "rds:ModifyDBInstance") for a in st["Action"])
    ]
    assert len(writes) == 1
    (st,) = writes
    assert st["Resource"] == [
        "arn:${Partition}:rds:*:${AccountId}:db:dbplatform-*-rc-*",
        "arn:${Partition}:rds:*:${AccountId}:db:dbplatform-*-drill-*",
    ]
    assert st["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/dbplatform:purpose": ["restore-check", "dr-drill", "dr-rebuild"]
        }
    }
    restores = [st for st in drill["Statement"] if st["Sid"] == "RestoreOnlyDrillInstances"]
    assert restores[0]["Condition"]["StringEquals"]["aws:RequestTag/dbplatform:purpose"]
    # The restore-check and DR identifiers the code generates fall under these prefixes.
    from dbplatform.dr.stackfile import drill_stack
    from infra.naming import Names

    assert Names("prod").restore_check_instance("run1").startswith("dbplatform-prod-rc-")
    assert Names(drill_stack("prod", "run1")).primary.startswith("dbplatform-prod-drill-")
    (passrole,) = [st for st in drill["Statement"] if st["Action"] == ["iam:PassRole"]]
    assert passrole["Resource"].endswith(":role/dbplatform-*-backup")
    assert "Deny" not in {st["Effect"] for st in drill["Statement"] if "rds:" in str(st["Action"])}
