"""`scripts.infra_diff` on manifests of real program variants: updates pass (exit 0), stateful
replacements, removals and major upgrades are put on top and refused (exit 3)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbplatform.manifest.diff import (
    COMMENT_LIMIT,
    diff,
    property_changes,
    to_markdown,
    verdict,
    weakened,
)
from dbplatform.manifest.synthetic import environment, with_inputs, without
from infra.offline import Recording, from_recording
from policy.manifest import Manifest, Resource
from scripts import infra_diff
from tests.conftest import record


@functools.cache
def _prod() -> Manifest:
    return from_recording(record("prod"))


_VARIANTS: dict[str, Manifest] = {}


@pytest.fixture
def variant(run_variant: Callable[..., Recording]) -> Callable[..., Manifest]:
    """A prod variant's manifest, each variant run once per test process."""

    def make(label: str, **groups: Any) -> Manifest:
        if label not in _VARIANTS:
            _VARIANTS[label] = from_recording(run_variant("prod", **groups))
        return _VARIANTS[label]

    return make


def _run(tmp_path: Path, base: Manifest, head: Manifest, *extra: str) -> int:
    b, h = tmp_path / "base.json", tmp_path / "head.json"
    b.write_text(base.to_json(), encoding="utf-8")
    h.write_text(head.to_json(), encoding="utf-8")
    return infra_diff.main([str(b), str(h), "-q", *extra])


def _change(d: Any, name: str) -> Any:
    return next(c for c in d.changes if c.name == name)


def test_no_change_is_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path, _prod(), _prod()) == 0
    assert "No change to the declared infrastructure." in capsys.readouterr().out


def test_instance_class_change_is_an_update(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = with_inputs(_prod(), "database-primary", instanceClass="db.r6g.2xlarge")
    d = diff(_prod(), head)
    primary = _change(d, "database-primary")
    assert primary.action == "update" and not primary.at_risk
    assert [(p.path, p.old, p.new) for p in primary.changes] == [
        ("instanceClass", "db.r6g.xlarge", "db.r6g.2xlarge")
    ]
    assert d.at_risk == []
    assert _run(tmp_path, _prod(), head) == 0
    out = capsys.readouterr().out
    assert "No stateful resource is destroyed or replaced." in out
    assert "| `instanceClass` | `db.r6g.xlarge` | `db.r6g.2xlarge` |" in out


def test_engine_major_version_change_is_at_risk(
    tmp_path: Path, variant: Callable[..., Manifest], capsys: pytest.CaptureFixture[str]
) -> None:
    head = variant("major", database={"engineVersion": "17"})
    d = diff(_prod(), head)
    primary = _change(d, "database-primary")
    assert primary.at_risk and "engine major version 16 → 17" in primary.reasons[0]
    # one group per family: the new family's group is created, the old one (still used by the
    # retired blue until `bluegreen finalize`) leaves the stack but stays in the cloud
    assert _change(d, "database-params-postgres17").action == "create"
    old_group = _change(d, "database-params-postgres16")
    assert old_group.action == "delete" and not old_group.at_risk
    assert "retainOnDelete keeps it" in old_group.reasons[0]
    assert _run(tmp_path, _prod(), head) == 3
    out = capsys.readouterr().out
    # the danger comes first, before the list of ordinary changes
    assert out.index("stateful resource(s) at risk") < out.index("### Updated")


def test_minor_version_change_is_a_plain_update() -> None:
    d = diff(_prod(), with_inputs(_prod(), "database-primary", engineVersion="16.6"))
    assert _change(d, "database-primary").action == "update"
    assert d.at_risk == []


def test_identifier_change_replaces_the_primary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = with_inputs(_prod(), "database-primary", identifier="dbplatform-prod-pg-2")
    d = diff(_prod(), head)
    primary = _change(d, "database-primary")
    assert primary.action == "replace" and primary.at_risk
    assert primary.reasons == ("identifier changed: forces replacement",)
    assert _run(tmp_path, _prod(), head) == 3
    out = capsys.readouterr().out
    assert "| `database-primary` | `aws:rds/instance:Instance` | **replace** |" in out
    assert "| `identifier` | `dbplatform-prod-pg` | `dbplatform-prod-pg-2` |" in out


def test_storage_encryption_change_replaces_the_primary(
    tmp_path: Path, variant: Callable[..., Manifest]
) -> None:
    head = variant(
        "unencrypted",
        database={"storageEncrypted": False},
        safetyOverrides=["allow-unencrypted-storage"],
    )
    primary = _change(diff(_prod(), head), "database-primary")
    assert primary.action == "replace" and primary.at_risk
    assert primary.reasons == ("kmsKeyId, storageEncrypted changed: forces replacement",)
    assert _run(tmp_path, _prod(), head) == 3


def test_added_replica_is_not_a_risk(tmp_path: Path, variant: Callable[..., Manifest]) -> None:
    replicas = [
        {"name": "r1", "availabilityZone": "us-east-1b"},
        {"name": "r2", "availabilityZone": "us-east-1c"},
        {"name": "r3"},
    ]
    head = variant("replica", replicas=replicas)
    d = diff(_prod(), head)
    created = {c.name for c in d.by_action("create")}
    assert "replicas-r3" in created
    assert any(n.startswith("alarms-r3-") for n in created)  # it comes with its alarms
    assert d.at_risk == []
    assert _run(tmp_path, _prod(), head) == 0


def test_removed_alarm_is_a_delete_but_not_a_risk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alarm = next(r.name for r in _prod().of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    d = diff(_prod(), without(_prod(), alarm))
    assert [(c.name, c.action, c.at_risk) for c in d.changes] == [(alarm, "delete", False)]
    assert _run(tmp_path, _prod(), without(_prod(), alarm), "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["delete"] == 1 and data["atRisk"] == []


def test_removed_stateful_resource_is_at_risk_unless_retained() -> None:
    head = without(_prod(), "backups-dr-vault")
    vault = _change(diff(_prod(), head), "backups-dr-vault")
    assert vault.action == "delete" and vault.at_risk
    # Pulumi stops at `protect`; were it lifted, AWS refuses to delete a vault holding backups
    assert [(r.fact, r.who) for r in vault.refusals] == [
        ("pulumi-protect", "Pulumi"),
        ("backup-vault-not-empty", "AWS"),
    ]
    retained = replace(
        _prod(),
        resources=tuple(
            replace(r, retain_on_delete=True) if r.name == "backups-dr-vault" else r
            for r in _prod().resources
        ),
    )
    assert not _change(diff(retained, head), "backups-dr-vault").at_risk


def test_unused_parameter_group_is_not_stateful() -> None:
    m = environment(replicas=0)
    unused = with_inputs(m, "database-primary", parameterGroupName="some-other-group")
    head = with_inputs(unused, "database-params", family="postgres17")
    assert not _change(diff(unused, head), "database-params").at_risk
    head_in_use = with_inputs(m, "database-params", family="postgres17")
    assert _change(diff(m, head_in_use), "database-params").at_risk


def test_logical_rename_of_a_stateful_resource_is_at_risk() -> None:
    def renamed(r: Resource) -> Resource:
        if r.name != "vault-master":
            return r
        return replace(
            r, name="vault-master-2", urn=r.urn.replace("::vault-master", "::vault-master-2")
        )

    head = replace(_prod(), resources=tuple(renamed(r) for r in _prod().resources))
    d = diff(_prod(), head)
    change = _change(d, "vault-master")
    assert change.action == "rename" and change.at_risk
    assert "aliases" in change.reasons[0]
    assert not d.by_action("create")  # the new URN is the rename, not an extra create


def test_secret_values_are_redacted_in_changes() -> None:
    old_arn = "arn:aws:secretsmanager:us-east-1:1:secret:a"
    changes = property_changes(
        {
            "password": "old-plaintext",
            "name": "a",
            "apiCredentials": {"user": "u1"},
            "manageMasterUserPassword": False,
            "secretId": old_arn,
        },
        {
            "password": "new-plaintext",
            "name": "b",
            "apiCredentials": {"user": "u2"},
            "manageMasterUserPassword": True,
            "secretId": old_arn + "-2",
        },
    )
    assert [(c.path, c.old, c.new) for c in changes] == [
        # under a credential-like name at any depth, as in the preview report
        ("apiCredentials.user", "[secret]", "[secret] (changed)"),
        # a flag and a reference to a secret are no credential: a reviewer sees them
        ("manageMasterUserPassword", False, True),
        ("name", "a", "b"),
        ("password", "[secret]", "[secret] (changed)"),
        ("secretId", old_arn, old_arn + "-2"),
    ]


def test_comment_stays_under_the_github_limit() -> None:
    base = environment(replicas=50)
    head = environment(replicas=50, instance_class="db.r6g.2xlarge")
    text = to_markdown(diff(base, head), limit=4_000)
    assert len(text) <= 4_000
    assert "left out to fit a PR comment" in text
    assert len(to_markdown(diff(base, head))) <= COMMENT_LIMIT


def test_unreadable_or_mismatched_inputs_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.json"
    good = tmp_path / "prod.json"
    good.write_text(_prod().to_json(), encoding="utf-8")
    assert infra_diff.main([str(missing), str(good)]) == 2
    assert "cannot read it" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(environment(replicas=0).to_json(), encoding="utf-8")
    assert infra_diff.main([str(good), str(other)]) == 2
    assert "same stack" in capsys.readouterr().err
    assert infra_diff.main([str(good), str(good), "--out", str(good / "diff.md")]) == 2
    assert f"cannot write {good / 'diff.md'}" in capsys.readouterr().err
    # `--out none` is standard output as the help says, not a file named `none`
    monkeypatch.chdir(tmp_path)
    assert infra_diff.main([str(good), str(good), "--out", "none"]) == 0
    assert "prod" in capsys.readouterr().out and not (tmp_path / "none").exists()


def _options(m: Manifest, name: str, **changes: Any) -> Manifest:
    return replace(
        m, resources=tuple(replace(r, **changes) if r.name == name else r for r in m.resources)
    )


def _key_policy(statements: list[dict[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


_ADMIN = {
    "Sid": "AccountAdministers",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
    "Action": "kms:*",
    "Resource": "*",
}
_DENY = {
    "Sid": "NoKeyDeletion",
    "Effect": "Deny",
    "Principal": {"AWS": "*"},
    "Action": ["kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:PutKeyPolicy"],
    "Resource": "*",
}


def test_weakened_names_each_protection_turned_off() -> None:
    base = with_inputs(_prod(), "database-key", policy=_key_policy([_ADMIN, _DENY]))
    head = _options(base, "vault-master", protect=False)
    head = _options(head, "database-params-postgres16", retain_on_delete=False)
    head = with_inputs(head, "database-primary", deletionProtection=False, skipFinalSnapshot=True)
    head = with_inputs(head, "database-key", policy=_key_policy([_ADMIN]))
    head = with_inputs(head, "backups-vault-lock", minRetentionDays=1)
    head = replace(head, tier="non-production")
    found = {(w.name, w.what, json.dumps(w.old), json.dumps(w.new)) for w in weakened(base, head)}
    assert found == {
        ("prod", "tier", '"production"', '"non-production"'),
        ("vault-master", "protect", "true", "false"),
        ("database-params-postgres16", "retainOnDelete", "true", "false"),
        ("database-primary", "deletionProtection", "true", "false"),
        ("database-primary", "skipFinalSnapshot", "false", "true"),
        ("database-key", "policyDeny", '"NoKeyDeletion"', "null"),
        (
            "backups-vault-lock",
            "vaultLock",
            json.dumps({"minRetentionDays": 7, "maxRetentionDays": 400, "changeableForDays": 3}),
            json.dumps({"minRetentionDays": 1, "maxRetentionDays": 400, "changeableForDays": 3}),
        ),
    }
    # pure: the same answer from the same manifests, and nothing when nothing is weakened
    assert weakened(base, head) == weakened(base, head)
    assert weakened(base, base) == []
    # the other way round strengthens, but a tier change and a vault lock change are flagged
    # either way: the tier decides which safety rules apply, and a new lock is a delete+create
    assert [w.what for w in weakened(head, base)] == ["tier", "vaultLock"]


def test_a_changed_deny_statement_and_an_added_allow_both_count() -> None:
    base = with_inputs(_prod(), "database-key", policy=_key_policy([_ADMIN, _DENY]))
    narrowed = {**_DENY, "Action": ["kms:ScheduleKeyDeletion"]}
    head = with_inputs(base, "database-key", policy=_key_policy([_ADMIN, narrowed]))
    assert [(w.what, w.old, w.new) for w in weakened(base, head)] == [
        ("policyDeny", "NoKeyDeletion", "changed")
    ]
    # Decided (security re-audit N4): an Allow added to a key policy lets someone new use the
    # key as surely as a Deny removed, so it needs the same approval; the same Allow unchanged
    # is nothing.
    extra = {**_ADMIN, "Sid": "Extra", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}
    more = with_inputs(base, "database-key", policy=_key_policy([_ADMIN, extra, _DENY]))
    assert [(w.what, w.old, w.new) for w in weakened(base, more)] == [
        ("policyAllow", "Extra", "added")
    ]
    assert weakened(more, more) == []
    # a policy whose text is known only at deploy may let anyone in: it fails closed
    later = with_inputs(base, "database-key", policy="04da6b54-80e4-46f7-96ec-b56ff0331ba9")
    assert [(w.what, w.new) for w in weakened(base, later)] == [
        ("policyDeny", None),
        ("policyAllow", "not known until deploy"),
    ]


def test_an_outside_account_in_a_trust_or_endpoint_policy_is_weakening(tmp_path: Path) -> None:
    prod = _prod()
    role = next(r for r in prod.resources if r.name == "backups-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    trust["Statement"].append(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
            "Action": "sts:AssumeRole",
        }
    )
    endpoint = next(r for r in prod.resources if r.type == "aws:ec2/vpcEndpoint:VpcEndpoint")
    policy = json.loads(endpoint.inputs["policy"])
    policy["Statement"].append(
        {"Effect": "Allow", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*"}
    )
    head = with_inputs(prod, "backups-role", assumeRolePolicy=json.dumps(trust))
    head = with_inputs(head, endpoint.name, policy=json.dumps(policy))
    assert sorted((w.name, w.what, w.new) for w in weakened(prod, head)) == [
        ("backups-role", "policyAllow", "added"),
        (endpoint.name, "policyAllow", "added"),
    ]
    assert _run(tmp_path, prod, head) == 3


def test_removing_a_vault_lock_or_a_deny_policy_is_weakening(tmp_path: Path) -> None:
    head = without(_prod(), "backups-vault-lock", "backups-vault-policy")
    assert {(w.name, w.what) for w in weakened(_prod(), head)} == {
        ("backups-vault-lock", "vaultLock"),
        ("backups-vault-policy", "policyDeny"),
    }
    lock = _change(diff(_prod(), head), "backups-vault-lock")
    assert {r.fact for r in lock.refusals} == {"pulumi-protect", "backup-vault-lock-immutable"}
    assert _run(tmp_path, _prod(), head) == 3


def test_weakening_alone_exits_3_and_is_shown_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _options(_prod(), "vault-master", protect=False)
    d = diff(_prod(), head)
    assert d.at_risk == [] and d.refused == [] and d.flagged
    assert verdict(d) == "update"
    assert _run(tmp_path, _prod(), head) == 3
    out = capsys.readouterr().out
    assert "**1 protection(s) weakened**" in out
    assert "| `vault-master` | protect | `true` | `false` |" in out
    assert out.index("protection(s) weakened") < out.index("### Updated")


def test_refused_steps_are_listed_with_their_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = with_inputs(_prod(), "database-primary", allocatedStorage=100)
    d = diff(_prod(), head)
    assert verdict(d) == "refused by AWS"
    assert _run(tmp_path, _prod(), head, "--format", "json") == 3
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "refused by AWS"
    (refused,) = data["refused"]
    assert refused["name"] == "database-primary"
    assert [r["fact"] for r in refused["refusals"]] == ["rds-storage-shrink"]
    assert "ModifyDBInstance.AllocatedStorage" in refused["refusals"][0]["source"]
    assert "autoscaling on" in refused["refusals"][0]["message"]
    assert _run(tmp_path, _prod(), head) == 3
    out = capsys.readouterr().out
    assert "`pulumi up` would fail on" in out
    assert "| `database-primary` | AWS | allocatedStorage 200 → 100 GiB" in out


@pytest.mark.parametrize(
    ("old", "new", "fact"),
    [
        ("16.6", "16.4", "rds-engine-downgrade"),
        ("16.11", "16.6", "rds-engine-downgrade"),
        ("16.4", "16.11", None),
        ("16.4", "16", None),
        ("16", "17", "rds-major-upgrade-not-allowed"),
        ("17.2", "16.9", "rds-engine-downgrade"),
    ],
)
def test_engine_version_changes_aws_refuses(old: str, new: str, fact: str | None) -> None:
    base = with_inputs(_prod(), "database-primary", engineVersion=old)
    d = diff(base, with_inputs(base, "database-primary", engineVersion=new))
    assert [r.fact for r in _change(d, "database-primary").refusals] == ([fact] if fact else [])


def test_a_read_replica_holds_no_data_but_deleting_it_still_obeys_aws() -> None:
    head = without(_prod(), "replicas-r2")
    r2 = _change(diff(_prod(), head), "replicas-r2")
    assert r2.action == "delete" and not r2.stateful and not r2.at_risk
    assert "holds no data of its own" in " ".join(r2.reasons)
    base = with_inputs(_prod(), "replicas-r2", deletionProtection=False)
    assert _change(diff(base, without(base, "replicas-r2")), "replicas-r2").refusals == ()
    # a replica cannot take a final snapshot: asking for one makes the delete fail
    asks = with_inputs(base, "replicas-r2", skipFinalSnapshot=False)
    assert [r.fact for r in _change(diff(asks, head), "replicas-r2").refusals] == [
        "rds-replica-final-snapshot"
    ]


def test_a_replacement_under_a_fixed_name_needs_delete_before_replace() -> None:
    # the program declares replicas delete-first; this test takes that away to see the refusal
    base = _options(
        with_inputs(_prod(), "replicas-r1", deletionProtection=False),
        "replicas-r1",
        delete_before_replace=False,
    )
    head = with_inputs(base, "replicas-r1", availabilityZone="us-east-1d")
    r1 = _change(diff(base, head), "replicas-r1")
    assert r1.action == "replace"
    assert [r.fact for r in r1.refusals] == ["unique-name"]
    assert "DBInstanceAlreadyExists" in r1.refusals[0].message
    dbr = _options(head, "replicas-r1", delete_before_replace=True)
    assert _change(diff(base, dbr), "replicas-r1").refusals == ()


@settings(max_examples=25, deadline=None)
@given(
    old=st.integers(20, 65536),
    new=st.integers(20, 65536),
    ceiling=st.one_of(st.just(0), st.integers(22, 70000)),
)
def test_storage_is_refused_exactly_when_it_shrinks(old: int, new: int, ceiling: int) -> None:
    base = with_inputs(
        _prod(), "database-primary", allocatedStorage=old, maxAllocatedStorage=ceiling
    )
    d = diff(base, with_inputs(base, "database-primary", allocatedStorage=new))
    facts = [r.fact for c in d.changes for r in c.refusals]
    assert facts == (["rds-storage-shrink"] if new < old else [])
    assert d.flagged is (new < old)


_VERSION = st.lists(st.integers(0, 30), min_size=1, max_size=2).map(
    lambda parts: ".".join(str(p) for p in [parts[0] + 11, *parts[1:]])
)


@settings(max_examples=30, deadline=None)
@given(old=_VERSION, new=_VERSION)
def test_engine_version_refusals_follow_the_version_order(old: str, new: str) -> None:
    base = with_inputs(_prod(), "database-primary", engineVersion=old)
    d = diff(base, with_inputs(base, "database-primary", engineVersion=new))
    facts = [r.fact for c in d.changes for r in c.refusals]
    a, z = [tuple(int(x) for x in v.split(".")) for v in (old, new)]
    n = min(len(a), len(z))
    if z[:n] < a[:n]:
        assert facts == ["rds-engine-downgrade"]
    elif a[0] != z[0]:
        assert facts == ["rds-major-upgrade-not-allowed"]
    else:  # same, a later minor, or a dotted prefix of the old one (the provider keeps it)
        assert facts == []


def test_a_replaced_key_replaces_the_database_encrypted_with_it() -> None:
    # kmsKeyId forces a new instance and holds the key's id, known only after deploy: both
    # manifests show the same placeholder, so only the cascade tells (_ID_INPUTS).
    prod = _prod()
    key = next(r for r in prod.resources if r.name == "database-key")
    head = with_inputs(prod, "database-key", customerMasterKeySpec="RSA_2048")
    d = diff(prod, head)
    primary = _change(d, "database-primary")
    assert primary.action == "replace" and primary.at_risk
    assert "kmsKeyId comes from database-key, which is replaced" in primary.reasons[0]
    assert _change(d, key.name).action == "replace"
    assert d.flagged


@pytest.mark.parametrize(
    ("before", "after", "kinds"),
    [
        (None, None, []),
        ("[secret]", "[secret]", []),  # the same placeholder: nothing changed
        ("[secret]", "[secret] (changed)", ["policyAllow"]),  # changed, reach unknown
        ("", json.dumps({"Statement": [_ADMIN]}), ["policyAllow"]),  # not a policy before
        (json.dumps({"Statement": [_ADMIN]}), json.dumps({"Statement": _ADMIN}), []),  # one dict
        (None, json.dumps({"Statement": [_ADMIN]}), ["policyAllow"]),  # a policy where none was
        ({"Statement": [_ADMIN]}, json.dumps({"Statement": [_ADMIN]}), []),  # parsed or as text
    ],
)
def test_a_policy_that_cannot_be_read_fails_closed(
    before: object, after: object, kinds: list[str]
) -> None:
    from infra.provider_facts import policy_loosened

    assert [kind for kind, _, _ in policy_loosened(before, after)] == kinds


# FORCE_NEW inputs the program fills from another resource but that are no cascade: a backup
# selection names the database by an ARN built from its identifier, which a replacement keeps;
# a RandomId's keepers are compared by value where they are known.
_NOT_AN_ID = {
    ("aws:backup/selection:Selection", "resources"),
    ("random:index/randomId:RandomId", "keepers"),
}


def test_every_input_that_takes_an_id_and_forces_a_replacement_is_followed(
    stack_recording: Recording,
) -> None:
    from dbplatform.manifest.diff import _ID_INPUTS
    from infra.offline import from_recording
    from infra.provider_facts import FORCE_NEW
    from policy.markers import KNOWN_AFTER_DEPLOY

    unfollowed = {
        (r.type, name)
        for r in from_recording(stack_recording).resources
        for name in FORCE_NEW.get(r.type, {})
        if KNOWN_AFTER_DEPLOY in json.dumps(r.inputs.get(name))
        and name not in _ID_INPUTS
        and (r.type, name) not in _NOT_AN_ID
    }
    assert unfollowed == set()


def test_a_replaced_key_replaces_only_what_holds_its_id_in_a_forcing_input() -> None:
    # the replicas depend on the key through performanceInsightsKmsKeyId (updated in place) and
    # have no kmsKeyId: not replaced; the vault takes it as kmsKeyArn: replaced (and refused)
    prod = _prod()
    head = with_inputs(prod, "backups-key", customerMasterKeySpec="RSA_2048")
    d = diff(prod, head)
    assert _change(d, "backups-vault").action == "replace"
    database = with_inputs(prod, "database-key", customerMasterKeySpec="RSA_2048")
    replaced = {c.name for c in diff(prod, database).changes if c.action == "replace"}
    assert "database-primary" in replaced
    assert not {"replicas-r1", "replicas-r2"} & replaced


def test_a_group_replaced_in_a_new_vpc_is_no_name_clash_even_if_changed_itself() -> None:
    import dataclasses

    prod = _prod()
    head = with_inputs(prod, "dr-network-vpc", cidrBlock="10.43.0.0/16")
    head = dataclasses.replace(
        head,
        resources=tuple(
            dataclasses.replace(r, ignore_changes=(), inputs={**r.inputs, "description": "new"})
            if r.name == "dr-network-db"
            else r
            for r in head.resources
        ),
    )
    group = _change(diff(prod, head), "dr-network-db")
    assert group.action == "replace"
    assert [r.fact for r in group.refusals] == []


# --- what a reviewer reads: long values, large reports, the counts line ----------------------

_RDS_RULE = "aws:cloudwatch/eventRule:EventRule"


def _edit_rule(m: Manifest, name: str, **inputs: Any) -> Manifest:
    """`with_inputs` for the event rule alone (its target has the same logical name)."""
    return replace(
        m,
        resources=tuple(
            replace(r, inputs={**r.inputs, **inputs})
            if r.name == name and r.type == _RDS_RULE
            else r
            for r in m.resources
        ),
    )


def _rows(markdown: str, path: str) -> list[list[str]]:
    """The cells of the table rows whose property cell starts with `path`."""
    return [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in markdown.splitlines()
        if line.startswith(f"| `{path}`")
    ]


def test_a_long_json_value_shows_the_item_that_left_the_list() -> None:
    # The review's case: the rule that pages when a DB instance is deleted stops watching one
    # replica. Cut at 80 characters, old and new showed the same `{"detail": {"eventName": …`.
    prod = _prod()
    rule = next(
        r for r in prod.resources if r.name == "alarms-protection-rds" and r.type == _RDS_RULE
    )
    pattern = json.loads(rule.inputs["eventPattern"])
    watched = pattern["detail"]["requestParameters"]["dBInstanceIdentifier"]
    gone = watched[1]
    pattern["detail"]["requestParameters"]["dBInstanceIdentifier"] = [
        w for w in watched if w != gone
    ]
    head = _edit_rule(prod, "alarms-protection-rds", eventPattern=json.dumps(pattern))
    text = to_markdown(diff(prod, head))
    assert _rows(text, "eventPattern") == [
        [
            "`eventPattern` › `detail.requestParameters.dBInstanceIdentifier`",
            f"`{json.dumps(gone)}`",
            "(removed from the list)",
        ]
    ]
    # an item changed in place (a list of the same length) is named by its index
    pattern["detail"]["eventName"] = ["DeleteDBCluster"]
    head = _edit_rule(prod, "alarms-protection-rds", eventPattern=json.dumps(pattern))
    assert [
        "`eventPattern` › `detail.eventName[0]`",
        "`DeleteDBInstance`",
        "`DeleteDBCluster`",
    ] in (_rows(to_markdown(diff(prod, head)), "eventPattern"))


def test_a_long_text_value_shows_where_it_differs() -> None:
    prod = _prod()
    rule = next(
        r for r in prod.resources if r.name == "alarms-protection-rds" and r.type == _RDS_RULE
    )
    old = rule.inputs["description"] + " " + "x" * 80 + " paged at once"
    new = old.replace("paged at once", "paged within 5 minutes")
    base = _edit_rule(prod, "alarms-protection-rds", description=old)
    head = _edit_rule(prod, "alarms-protection-rds", description=new)
    ((_, before, after),) = _rows(to_markdown(diff(base, head)), "description")
    # both cut around the difference, not at the same first 80 characters
    assert before != after
    assert before.startswith("`…") and "paged at once`" in before
    assert after.startswith("`…") and "paged within 5 minutes`" in after
    assert len(before) < 80 and len(after) < 80


def test_a_large_report_collapses_what_is_not_flagged() -> None:
    base = environment(replicas=50)
    head = with_inputs(
        environment(replicas=50, instance_class="db.r6g.2xlarge"),
        "database-primary",
        identifier="dbplatform-synthetic-pg-2",
    )
    d = diff(base, head)
    text = to_markdown(d)
    # the primary is at risk: its details stay open, before any collapsed block
    primary = text.index("#### `database-primary`")
    assert "<details>" not in text[:primary]
    assert "| `identifier` | `dbplatform-synthetic-pg` | `dbplatform-synthetic-pg-2` |" in text
    # the 50 replicas' updates are one collapsed block with a count
    updated = text.split("### Updated (50)", 1)[1]
    assert updated.lstrip().startswith(
        "<details><summary>50 updated resources not flagged (50 changed properties)</summary>"
    )
    assert updated.count("#### `replicas-r") == 50
    assert text.count("<details>") == text.count("</details>") == 2
    # cut to fit, a block is closed before the note, which would otherwise fold into it
    short = to_markdown(d, limit=4_000)
    assert short.count("<details>") == short.count("</details>") == 2
    assert short.rstrip().endswith("`--format json` has everything._")
    # a small report is not collapsed
    small = to_markdown(
        diff(_prod(), with_inputs(_prod(), "database-primary", engineVersion="16.6"))
    )
    assert "<details>" not in small


def test_the_markdown_starts_with_the_counts_the_preview_report_reads() -> None:
    from dbplatform.preview.offline import InfraDiffCounts, read_infra_diff

    head = with_inputs(_prod(), "database-primary", identifier="dbplatform-prod-pg-2")
    head = _options(head, "vault-master", protect=False)
    d = diff(_prod(), head)
    text = to_markdown(d)
    assert text.startswith("<!-- dbplatform-infra-diff: ")  # hidden in a rendered comment
    assert read_infra_diff(text) == InfraDiffCounts(
        at_risk=len(d.at_risk), refused=len(d.refused), weakened=len(d.weakened),
        changes=len(d.changes),
    )  # fmt: skip
    assert read_infra_diff(to_markdown(diff(_prod(), _prod()))) == InfraDiffCounts(0, 0, 0, 0)
