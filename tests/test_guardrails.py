"""The guardrail catalogue: each rule on a compliant and a violating input, prod passing every
mandatory rule, a weakened prod failing exactly the rules it should, and the CLI's exit codes."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dbplatform.manifest.synthetic import environment, with_inputs, without
from infra.offline import from_recording
from policy.manifest import Manifest, Resource
from policy.rules import BY_ID, CATALOGUE, Level, evaluate
from scripts import guardrails
from tests.conftest import record

RDS = "aws:rds/instance:Instance"
U = "(known after deploy)"

# A primary that passes every resource rule; each case below changes what its rule is about.
PRIMARY = {
    "identifier": "db-1",
    "engine": "postgres",
    "storageEncrypted": True,
    "publiclyAccessible": False,
    "multiAz": True,
    "monitoringInterval": 60,
    "deletionProtection": True,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    "iamDatabaseAuthenticationEnabled": True,
    "backupRetentionPeriod": 14,
    "autoMinorVersionUpgrade": True,
    "copyTagsToSnapshot": True,
    "port": 6432,
    "username": "dbadmin",
    "skipFinalSnapshot": False,
    "finalSnapshotIdentifier": "db-1-final",
}


def res(type_token: str, inputs: dict[str, Any], **options: Any) -> Resource:
    return Resource(
        urn=f"urn:pulumi:t::dbplatform::{type_token}::x",
        type=type_token,
        name="x",
        inputs=inputs,
        **options,
    )


# rule id -> (type, compliant inputs, violating inputs)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "rds-storage-encrypted": (RDS, PRIMARY, {**PRIMARY, "storageEncrypted": False}),
    "rds-not-public": (RDS, PRIMARY, {**PRIMARY, "publiclyAccessible": True}),
    "rds-multi-az": (RDS, PRIMARY, {**PRIMARY, "multiAz": False}),
    "rds-enhanced-monitoring": (RDS, PRIMARY, {**PRIMARY, "monitoringInterval": 0}),
    "rds-deletion-protection": (RDS, PRIMARY, {**PRIMARY, "deletionProtection": False}),
    "rds-logs-exported": (
        RDS,
        PRIMARY,
        {**PRIMARY, "enabledCloudwatchLogsExports": ["upgrade"]},
    ),
    "rds-iam-auth": (RDS, PRIMARY, {**PRIMARY, "iamDatabaseAuthenticationEnabled": None}),
    "rds-automated-backups": (RDS, PRIMARY, {**PRIMARY, "backupRetentionPeriod": 1}),
    "rds-minor-upgrades": (RDS, PRIMARY, {**PRIMARY, "autoMinorVersionUpgrade": False}),
    "rds-copy-tags-to-snapshots": (RDS, PRIMARY, {**PRIMARY, "copyTagsToSnapshot": False}),
    "rds-non-default-port": (RDS, PRIMARY, {**PRIMARY, "port": 5432}),
    "rds-custom-admin-username": (RDS, PRIMARY, {**PRIMARY, "username": "postgres"}),
    "rds-final-snapshot": (RDS, PRIMARY, {**PRIMARY, "skipFinalSnapshot": True}),
    "kms-key-rotation": ("aws:kms/key:Key", {"enableKeyRotation": True}, {}),
    "backup-vault-encrypted": ("aws:backup/vault:Vault", {"kmsKeyArn": U}, {"name": "v"}),
    "secret-cmk": ("aws:secretsmanager/secret:Secret", {"kmsKeyId": U}, {"name": "s"}),
    "secret-rotation-period": (
        "aws:secretsmanager/secretRotation:SecretRotation",
        {"rotationRules": {"automaticallyAfterDays": 30}},
        {"rotationRules": {"scheduleExpression": "rate(120 days)"}},
    ),
    "sns-topic-encrypted": ("aws:sns/topic:Topic", {"kmsMasterKeyId": U}, {"name": "t"}),
    "alarm-has-actions": (
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        {"alarmActions": [U]},
        {"alarmActions": []},
    ),
    "no-open-ingress": (
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"cidrIpv4": "10.20.0.0/16"},
        {"cidrIpv4": "0.0.0.0/0"},
    ),
    "no-public-resource-policy": (
        "aws:kms/key:Key",
        {
            "policy": json.dumps(
                {
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": "*"},
                            "Action": "kms:Decrypt",
                            "Condition": {"StringEquals": {"aws:PrincipalAccount": "1"}},
                        },
                        {"Effect": "Deny", "Principal": "*", "Action": "kms:Disable*"},
                    ]
                }
            )
        },
        {
            "policy": json.dumps(
                {"Statement": {"Sid": "Open", "Effect": "Allow", "Principal": "*", "Action": "*"}}
            )
        },
    ),
    "subnet-no-public-ip": (
        "aws:ec2/subnet:Subnet",
        {"mapPublicIpOnLaunch": False},
        {"mapPublicIpOnLaunch": True},
    ),
}


def test_every_resource_rule_has_a_case() -> None:
    resource_rules = {r.id for r in CATALOGUE if not r.is_stack_rule}
    # stateful-protected is about the resource option, not an input: its own test below
    assert resource_rules == set(CASES) | {"stateful-protected"}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_resource_rule_passes_compliant_and_fails_violating(rule_id: str) -> None:
    type_token, good, bad = CASES[rule_id]
    rule = BY_ID[rule_id]
    assert rule.check_resource(res(type_token, good)) == []
    violations = rule.check_resource(res(type_token, bad))
    assert len(violations) == 1 and violations[0].rule == rule_id and violations[0].message


def test_stateful_protected_is_about_the_protect_option() -> None:
    rule = BY_ID["stateful-protected"]
    assert rule.check_resource(res(RDS, PRIMARY, protect=True)) == []
    assert rule.check_resource(res(RDS, PRIMARY, protect=False))
    replica = {**PRIMARY, "replicateSourceDb": "db-1"}
    assert rule.check_resource(res(RDS, replica, protect=False)) == []  # rebuildable copy


@pytest.mark.parametrize(
    ("rule_id", "key"),
    [
        ("rds-storage-encrypted", "storageEncrypted"),
        ("rds-multi-az", "multiAz"),
        ("rds-enhanced-monitoring", "monitoringInterval"),
        ("rds-non-default-port", "port"),
    ],
)
def test_unknown_values_are_not_judged_offline(rule_id: str, key: str) -> None:
    assert BY_ID[rule_id].check_resource(res(RDS, {**PRIMARY, key: U})) == []


def test_replica_rules_skip_what_the_source_governs() -> None:
    replica = {**PRIMARY, "replicateSourceDb": "db-1", "multiAz": False, "backupRetentionPeriod": 0}
    for rule_id in ("rds-multi-az", "rds-automated-backups", "rds-final-snapshot"):
        assert BY_ID[rule_id].check_resource(res(RDS, replica)) == [], rule_id


def test_levels_mandatory_in_production_advisory_elsewhere_and_overridable() -> None:
    rule = BY_ID["rds-multi-az"]
    assert rule.level("production") is Level.MANDATORY
    assert rule.level("non-production") is Level.ADVISORY
    assert rule.level("production", {"rds-multi-az": Level.ADVISORY}) is Level.ADVISORY
    assert BY_ID["rds-non-default-port"].level("production") is Level.ADVISORY


def test_every_rule_names_a_description_and_a_remediation() -> None:
    for rule in CATALOGUE:
        assert rule.description and rule.remediation, rule.id
        assert rule.control is None or rule.control.split(".")[0] in {
            "RDS",
            "KMS",
            "SecretsManager",
            "Backup",
            "CloudWatch",
            "EC2",
        }


# ---------------------------------------------------------------------------------------------
# Stack rules, on generated manifests in the program's shapes
# ---------------------------------------------------------------------------------------------

GOOD = environment(replicas=2)


def _failing(m: Manifest, rule_id: str) -> list[str]:
    _, violations = BY_ID[rule_id].check_manifest(m)
    return [f"{v.resource}: {v.message}" for v in violations]


def test_generated_environment_passes_every_mandatory_rule() -> None:
    assert evaluate(GOOD).mandatory_failures == []


def test_alarm_set_requires_every_metric_on_every_instance() -> None:
    bad = without(
        GOOD, "alarms-replicas-r2-replicalag-critical", "alarms-replicas-r2-replicalag-warning"
    )
    assert _failing(bad, "db-alarms-complete") == ["replicas-r2: no alarm on ReplicaLag"]
    primary_alarms = [
        r.name for r in GOOD.resources if r.name.startswith("alarms-database-primary-")
    ]
    assert _failing(without(GOOD, *primary_alarms), "db-alarms-complete")[0].startswith(
        "database-primary: no alarm on CPUUtilization, FreeStorageSpace"
    )


def test_alarm_matched_by_dimension_not_by_dependency() -> None:
    # an alarm watching another identifier does not count for this instance
    name = "alarms-replicas-r1-replicalag-critical"
    moved = with_inputs(GOOD, name, dimensions={"DBInstanceIdentifier": "someone-else"})
    moved = without(moved, "alarms-replicas-r1-replicalag-warning")
    assert _failing(moved, "db-alarms-complete") == ["replicas-r1: no alarm on ReplicaLag"]


def test_burstable_instances_need_a_credit_balance_alarm() -> None:
    small = environment(replicas=0, instance_class="db.t4g.medium")
    assert _failing(small, "db-alarms-complete") == []
    bad = without(
        small,
        "alarms-database-primary-cpucreditbalance-warning",
        "alarms-database-primary-cpucreditbalance-critical",
    )
    assert _failing(bad, "db-alarms-complete") == ["database-primary: no alarm on CPUCreditBalance"]


def test_backup_plan_selection_by_arn_dependency_tag_or_nothing() -> None:
    assert _failing(GOOD, "db-backup-plan") == []
    assert _failing(without(GOOD, "backups-selection"), "db-backup-plan") == [
        "database-primary: no AWS Backup plan selects it (by ARN or by tag)"
    ]
    by_tag = with_inputs(
        GOOD,
        "backups-selection",
        resources=None,
        selectionTags=[{"type": "STRINGEQUALS", "key": "stack", "value": "synthetic"}],
    )
    assert _failing(by_tag, "db-backup-plan") == []
    wrong_tag = with_inputs(
        by_tag,
        "backups-selection",
        selectionTags=[{"type": "STRINGEQUALS", "key": "stack", "value": "other"}],
    )
    assert _failing(wrong_tag, "db-backup-plan")
    by_arn = with_inputs(
        GOOD,
        "backups-selection",
        resources=["arn:aws:rds:us-east-1:123456789012:db:dbplatform-synthetic-pg"],
    )
    assert _failing(by_arn, "db-backup-plan") == []
    wildcard_other_region = with_inputs(
        GOOD, "backups-selection", resources=["arn:aws:rds:eu-west-1:*:db:*"]
    )
    assert _failing(wildcard_other_region, "db-backup-plan")
    conditioned = with_inputs(
        GOOD,
        "backups-selection",
        resources=["arn:aws:rds:*:*:db:*"],
        conditions=[{"stringEquals": [{"key": "aws:ResourceTag/stack", "value": "synthetic"}]}],
    )
    assert _failing(conditioned, "db-backup-plan") == []


def test_master_secret_must_have_a_rotation() -> None:
    assert _failing(GOOD, "db-master-secret-rotated") == []
    assert _failing(without(GOOD, "vault-master-rotation"), "db-master-secret-rotated") == [
        "database-primary: master secret vault-master has no rotation schedule"
    ]
    disabled = with_inputs(GOOD, "vault-master-rotation", rotationEnabled=False)
    assert _failing(disabled, "db-master-secret-rotated")
    assert _failing(without(GOOD, "vault-master-value"), "db-master-secret-rotated") == [
        "database-primary: no Secrets Manager secret holds its master credential"
    ]


def test_windows_must_not_collide() -> None:
    assert _failing(GOOD, "windows-no-collision") == []
    clash = with_inputs(GOOD, "replicas-r1", maintenanceWindow="sun:03:00-sun:03:30")
    assert _failing(clash, "windows-no-collision") == [
        "database-primary: dbplatform-synthetic-pg maintenance 'sun:02:00-sun:04:00' overlaps "
        "dbplatform-synthetic-pg-r1 maintenance 'sun:03:00-sun:03:30' on Sunday"
    ]
    rotation = with_inputs(
        GOOD,
        "vault-master-rotation",
        rotationRules={"scheduleExpression": "cron(0 4 ? 1/3 SUN#1 *)", "duration": "3h"},
    )
    assert any(
        "rotation" in f and "maintenance" in f for f in _failing(rotation, "windows-no-collision")
    )


def test_dr_copies_required_only_where_dr_is_configured() -> None:
    for rule_id in ("dr-backup-copies", "dr-point-in-time", "dr-secret-replica"):
        assert _failing(GOOD, rule_id) == [], rule_id
        assert BY_ID[rule_id].check_manifest(environment(replicas=1, dr_region=None))[0] == 0
    no_copy = with_inputs(
        GOOD,
        "backups-plan",
        rules=[{**GOOD.by_urn[_urn(GOOD, "backups-plan")].inputs["rules"][0], "copyActions": []}],
    )
    assert _failing(no_copy, "dr-backup-copies") == [
        "database-primary: no backup plan rule copies its recovery points to us-west-2"
    ]
    home_arn = with_inputs(
        GOOD,
        "backups-plan",
        rules=[
            {
                **GOOD.by_urn[_urn(GOOD, "backups-plan")].inputs["rules"][0],
                "copyActions": [
                    {"destinationVaultArn": "arn:aws:backup:us-east-1:1:backup-vault:x"}
                ],
            }
        ],
    )
    assert _failing(home_arn, "dr-backup-copies")
    assert _failing(without(GOOD, "backups-replication"), "dr-point-in-time") == [
        "database-primary: neither automated-backups replication nor a read replica in us-west-2"
    ]
    assert _failing(with_inputs(GOOD, "vault-master", replicas=[]), "dr-secret-replica") == [
        "vault-master: not replicated to us-west-2: a DR rebuild could not log in"
    ]


def _urn(m: Manifest, name: str) -> str:
    return next(r.urn for r in m.resources if r.name == name)


# ---------------------------------------------------------------------------------------------
# The committed stacks
# ---------------------------------------------------------------------------------------------


@functools.cache
def _prod() -> Manifest:
    return from_recording(record("prod"))


@pytest.mark.parametrize(
    "rule_id", [r.id for r in CATALOGUE if r.level("production") is Level.MANDATORY]
)
def test_prod_passes_every_mandatory_rule(rule_id: str) -> None:
    report = evaluate(_prod())
    result = next(r for r in report.results if r.rule.id == rule_id)
    # prod's own tier sets the levels: a tier read wrongly would make every rule advisory
    assert report.tier == "production" and result.level is Level.MANDATORY
    assert result.violations == (), [v.message for v in result.violations]


def test_prod_advisory_rule_reports_every_instance_without_failing_the_run() -> None:
    report = evaluate(_prod())
    advisory = [r for r in report.results if r.level is Level.ADVISORY]
    assert [r.rule.id for r in advisory] == ["rds-non-default-port"]  # advisory everywhere
    # prod keeps PostgreSQL's port (database.port, default 5432): RDS.23 names each instance,
    # and the run still passes
    port = advisory[0]
    assert sorted(v.resource or "" for v in port.violations) == sorted(
        i.name for i in _prod().db_instances()
    )
    assert {v.message for v in port.violations} == {"port is the PostgreSQL default (5432)"}
    assert report.mandatory_failures == []


def test_every_stack_rule_has_something_to_check_in_prod() -> None:
    # The stack rules work on what the program declares (alarms, backups, rotation, DR copies):
    # none of them may pass only because there was nothing to look at.
    report = evaluate(_prod())
    idle = [r.rule.id for r in report.results if r.rule.is_stack_rule and r.checked == 0]
    assert idle == []


def test_staging_failures_are_advisory() -> None:
    report = evaluate(from_recording(record("staging")))
    assert report.tier == "non-production"
    assert report.mandatory_failures == []
    assert {"rds-multi-az", "rds-deletion-protection"} <= report.failed(Level.ADVISORY)


def weakened_prod() -> Manifest:
    """Prod with encryption off, a public primary, no backups and no alarms."""
    m = with_inputs(
        _prod(),
        "database-primary",
        storageEncrypted=False,
        kmsKeyId=None,
        publiclyAccessible=True,
        backupRetentionPeriod=0,
    )
    gone = {
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        "aws:backup/selection:Selection",
        "aws:backup/plan:Plan",
    }
    return replace(m, resources=tuple(r for r in m.resources if r.type not in gone))


def test_weakened_prod_fails_exactly_the_rules_it_should() -> None:
    baseline = evaluate(_prod()).failed(Level.MANDATORY)
    report = evaluate(weakened_prod())
    expected = {
        "rds-storage-encrypted",
        "rds-not-public",
        "rds-automated-backups",
        "db-backup-plan",
        "db-alarms-complete",
        "dr-backup-copies",
    }
    assert report.failed(Level.MANDATORY) - baseline == expected
    for result in report.mandatory_failures:
        assert any(v.resource == "database-primary" for v in result.violations), result.rule.id


def _write(tmp_path: Path, m: Manifest, name: str) -> Path:
    path = tmp_path / name
    path.write_text(m.to_json(), encoding="utf-8")
    return path


def test_cli_exit_0_on_prod_and_1_on_weakened_prod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert guardrails.main(["--manifest", str(_write(tmp_path, _prod(), "prod.json"))]) == 0
    assert "OK: no mandatory rule fails" in capsys.readouterr().out
    weak = _write(tmp_path, weakened_prod(), "weak.json")
    assert guardrails.main(["--manifest", str(weak)]) == 1
    out = capsys.readouterr().out
    for rule_id in ("rds-storage-encrypted", "rds-not-public", "db-alarms-complete"):
        assert f"{rule_id}" in out.split("FAILED:")[1]


def test_cli_json_and_level_override(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weak = str(_write(tmp_path, weakened_prod(), "weak.json"))
    assert guardrails.main(["--manifest", weak, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    failing = {
        r["id"] for r in data["rules"] if r["status"] == "fail" and r["level"] == "mandatory"
    }
    assert "rds-not-public" in failing and data["ok"] is False
    overrides = [f"--set-level={rule}=advisory" for rule in sorted(failing)]
    assert guardrails.main(["--manifest", weak, *overrides]) == 0


def test_cli_bad_inputs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert guardrails.main(["--manifest", str(broken)]) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        guardrails.main(["--manifest", str(broken), "--set-level", "no-such-rule=advisory"])
    assert exc.value.code == 2


def test_cli_stack_synthesises_that_stack(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import synth

    asked: list[str] = []

    def cached(stack: str, root: Path) -> Manifest:  # the recording conftest already made
        asked.append(stack)
        return from_recording(record(stack))

    monkeypatch.setattr(synth, "build_manifest", cached)
    assert guardrails.main(["--stack", "staging", "-q"]) == 0
    assert asked == ["staging"]
    assert "guardrails for stack 'staging' (tier non-production)" in capsys.readouterr().out


def test_a_violation_row_survives_the_comments_redaction_as_written(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The PR comment redacts the report; a row "vault-app-webhook-secret: not protected" came
    out as "vault-app-webhook-secret: [secret] protected", the opposite of what it said."""
    from dbplatform.manifest.redact import redact_text

    golden = Path(__file__).resolve().parent / "golden" / "staging.json"
    guardrails.main(["--manifest", str(golden), "--tier", "production"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("      - ")]
    secrets = [line for line in rows if "secret —" in line and "not protected" in line]
    assert secrets, rows
    assert [redact_text(line) for line in rows] == rows
