"""Backups under mocks: PITR, encrypted and locked vaults, the plan, DR copies, restore tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError, load_config, read_stack_values
from infra.naming import Names
from infra.offline import KNOWN_AFTER_DEPLOY, Recorded, Recording
from tests.conftest import ROOT

VAULT_T = "aws:backup/vault:Vault"
LOCK_T = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
POLICY_T = "aws:backup/vaultPolicy:VaultPolicy"
PLAN_T = "aws:backup/plan:Plan"
SELECTION_T = "aws:backup/selection:Selection"
TEST_PLAN_T = "aws:backup/restoreTestingPlan:RestoreTestingPlan"
TEST_SELECTION_T = "aws:backup/restoreTestingSelection:RestoreTestingSelection"
REPLICATION_T = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
KEY_T = "aws:kms/key:Key"
INSTANCE_T = "aws:rds/instance:Instance"


def deps(rec: Recording, res: Recorded, type_token: str) -> list[Recorded]:
    by_urn = rec.by_urn()
    return [by_urn[u] for u in res.dependencies if u in by_urn and by_urn[u].type == type_token]


def primary(rec: Recording) -> Recorded:
    (p,) = [r for r in rec.of_type(INSTANCE_T) if not r.inputs.get("replicateSourceDb")]
    return p


def vault_named(rec: Recording, name: str) -> Recorded:
    (v,) = [v for v in rec.of_type(VAULT_T) if v.inputs["name"] == name]
    return v


def test_pitr_on_the_primary_is_as_configured(stack_recording: Recording) -> None:
    cfg = stack_recording.config
    p = primary(stack_recording).inputs
    assert p["backupRetentionPeriod"] == cfg.backup.retention_days >= 1
    assert p["backupWindow"] == cfg.backup.window


def test_vaults_are_cmk_encrypted_protected_in_prod_and_refuse_early_deletion(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    vaults = rec.of_type(VAULT_T)
    assert Names(rec.stack).backup_vault in {v.inputs["name"] for v in vaults}
    for vault in vaults:
        assert vault.inputs["kmsKeyArn"] == KNOWN_AFTER_DEPLOY
        (key,) = deps(rec, vault, KEY_T)
        assert key.inputs["enableKeyRotation"] is True
        assert key.region == vault.region, "a vault's key lives in the vault's region"
        assert vault.inputs["forceDestroy"] is False
        assert vault.protect is rec.config.is_production
        assert key.protect is rec.config.is_production
        policies = [p for p in rec.of_type(POLICY_T) if vault.urn in p.dependencies]
        if not rec.config.is_production:
            # a non-production stack stays destroyable before its last point expires
            assert policies == []
            continue
        (policy,) = policies
        statements = json.loads(policy.inputs["policy"])["Statement"]
        denies = [s for s in statements if s["Effect"] == "Deny"]
        assert any(
            "backup:DeleteRecoveryPoint" in s["Action"] and s["Principal"] == {"AWS": "*"}
            for s in denies
        )


def test_prod_locks_its_vaults_with_the_configured_retention_bounds(prod: Recording) -> None:
    lock = prod.config.backup.vault_lock
    assert lock.enabled
    for vault in prod.of_type(VAULT_T):
        (cfg,) = [c for c in prod.of_type(LOCK_T) if vault.urn in c.dependencies]
        assert cfg.inputs["minRetentionDays"] == lock.min_retention_days
        assert cfg.inputs["maxRetentionDays"] == lock.max_retention_days
        assert cfg.inputs["changeableForDays"] == lock.changeable_for_days
        assert cfg.protect


def test_staging_does_not_lock_its_vault(staging: Recording) -> None:
    assert not staging.config.backup.vault_lock.enabled
    assert staging.of_type(LOCK_T) == []


def test_plan_rules_follow_the_config(stack_recording: Recording) -> None:
    rec = stack_recording
    cfg, names = rec.config, Names(rec.stack)
    (plan,) = rec.of_type(PLAN_T)
    assert plan.inputs["name"] == names.backup_plan
    rules = {r["ruleName"]: r for r in plan.inputs["rules"]}
    assert set(rules) == {r.name for r in cfg.backup.plan}
    for rule in cfg.backup.plan:
        got = rules[rule.name]
        assert got["schedule"] == rule.schedule
        assert got["scheduleExpressionTimezone"] == "Etc/UTC"
        assert got["startWindow"] == rule.start_window_minutes
        assert got["lifecycle"] == {"deleteAfter": rule.retention_days}
        assert got["enableContinuousBackup"] is rule.continuous
        assert got["targetVaultName"] == names.backup_vault
        copies = got.get("copyActions") or []
        if rule.copy_to_dr and cfg.dr.region:
            assert copies == [
                {"destinationVaultArn": KNOWN_AFTER_DEPLOY,
                 "lifecycle": {"deleteAfter": rule.retention_days}}
            ]  # fmt: skip
        else:
            assert copies == []


def test_prod_plan_follows_the_runbooks_and_copies_to_the_dr_vault(prod: Recording) -> None:
    (plan,) = prod.of_type(PLAN_T)
    kinds = {
        (r["enableContinuousBackup"], r["lifecycle"]["deleteAfter"]) for r in plan.inputs["rules"]
    }
    assert kinds == {(True, 7), (False, 30)}  # runbooks: continuous 7 days, daily 30 days
    dr_vaults = [v for v in deps(prod, plan, VAULT_T) if v.region == prod.config.dr.region]
    assert [v.inputs["name"] for v in dr_vaults] == [Names("prod").dr_backup_vault]
    assert prod.config.dr.region == "us-west-2"


def test_staging_has_no_dr_vault_and_no_copies(staging: Recording) -> None:
    assert [v.inputs["name"] for v in staging.of_type(VAULT_T)] == [Names("staging").backup_vault]


def test_selection_is_the_primary_only(stack_recording: Recording) -> None:
    rec = stack_recording
    (selection,) = rec.of_type(SELECTION_T)
    (plan,) = rec.of_type(PLAN_T)
    assert plan.urn in selection.dependencies
    instances = deps(rec, selection, INSTANCE_T)
    assert instances == [primary(rec)]
    assert len(selection.inputs["resources"]) == 1
    assert not selection.inputs.get("selectionTags"), "tags would also pick restored copies"
    role = deps(rec, selection, "aws:iam/role:Role")
    assert role and "backup.amazonaws.com" in role[0].inputs["assumeRolePolicy"]


def test_restore_tests_run_daily_into_the_environments_private_network(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    cfg = rec.config
    assert cfg.backup.restore_testing
    (plan,) = rec.of_type(TEST_PLAN_T)
    assert plan.inputs["scheduleExpression"] == cfg.backup.restore_testing_schedule
    assert plan.inputs["scheduleExpression"].endswith("? * * *)"), "runbooks: daily"
    selection_spec = plan.inputs["recoveryPointSelection"]
    assert selection_spec["includeVaults"] == [KNOWN_AFTER_DEPLOY]
    assert [v.inputs["name"] for v in deps(rec, plan, VAULT_T)] == [Names(rec.stack).backup_vault]
    (sel,) = rec.of_type(TEST_SELECTION_T)
    assert sel.inputs["protectedResourceType"] == "RDS"
    assert deps(rec, sel, INSTANCE_T) == [primary(rec)]
    overrides = sel.inputs["restoreMetadataOverrides"]
    assert overrides["dbSubnetGroupName"] == Names(rec.stack).subnet_group
    assert {"network-subnets", "network-db"} <= {
        r.name for r in rec.resources if r.urn in sel.dependencies
    }


def test_restore_testing_can_be_turned_off(run_variant: Callable[..., Recording]) -> None:
    rec = run_variant("staging", backup={"restoreTesting": False})
    assert rec.of_type(TEST_PLAN_T) == [] and rec.of_type(TEST_SELECTION_T) == []


def test_prod_replicates_automated_backups_into_the_dr_region(prod: Recording) -> None:
    dr = prod.config.dr
    (rep,) = prod.of_type(REPLICATION_T)
    assert rep.region == dr.region
    assert rep.inputs["retentionPeriod"] == dr.backup_replication_retention_days
    assert primary(prod).urn in rep.dependencies
    (key,) = deps(prod, rep, KEY_T)
    assert key.region == dr.region


@pytest.mark.parametrize(
    ("stack", "groups"),
    [("staging", {}), ("prod", {"dr": {"backupReplication": False}})],
    ids=["no-dr", "replication-off"],
)
def test_no_backup_replication_where_not_configured(
    stack: str, groups: dict[str, Any], run_variant: Callable[..., Recording]
) -> None:
    assert run_variant(stack, **groups).of_type(REPLICATION_T) == []


def test_copies_off_means_no_dr_vault(run_variant: Callable[..., Recording]) -> None:
    plan = [
        {"name": "continuous", "schedule": "cron(0 10 ? * * *)", "retentionDays": 7,
         "continuous": True, "copyToDr": False},
        {"name": "daily", "schedule": "cron(0 8 ? * * *)", "retentionDays": 30, "copyToDr": False},
    ]  # fmt: skip
    rec = run_variant("prod", backup={"plan": plan})
    assert [v.region for v in rec.of_type(VAULT_T)] == ["us-east-1"]
    assert all(not r.get("copyActions") for r in rec.of_type(PLAN_T)[0].inputs["rules"])


# --- config rules --------------------------------------------------------------------------


def _refused(backup: dict[str, Any]) -> str:
    values, region = read_stack_values("prod", ROOT)
    values = {**values, "backup": {**values.get("backup", {}), **backup}}
    with pytest.raises(ConfigError) as err:
        load_config("prod", values, region, root=ROOT)
    return str(err.value)


def test_vault_lock_minimum_above_a_rule_retention_is_refused_naming_the_rule() -> None:
    lock = {
        "enabled": True,
        "minRetentionDays": 10,
        "maxRetentionDays": 400,
        "changeableForDays": 3,
    }
    text = _refused({"vaultLock": lock})
    assert "dbplatform:backup.plan[0].retentionDays 7" in text and "10..400" in text


def test_vault_lock_maximum_below_a_rule_retention_is_refused() -> None:
    lock = {"enabled": True, "minRetentionDays": 1, "maxRetentionDays": 14, "changeableForDays": 3}
    assert "dbplatform:backup.plan[1].retentionDays 30" in _refused({"vaultLock": lock})


def test_vault_lock_min_above_max_and_short_grace_are_refused() -> None:
    lock = {"enabled": True, "minRetentionDays": 50, "maxRetentionDays": 40, "changeableForDays": 1}
    text = _refused({"vaultLock": lock, "plan": []})
    assert "dbplatform:backup.vaultLock.minRetentionDays" in text
    assert "dbplatform:backup.vaultLock.changeableForDays" in text


def test_continuous_retention_beyond_35_days_is_refused() -> None:
    plan = [{"name": "pitr", "schedule": "cron(0 10 ? * * *)", "retentionDays": 40,
             "continuous": True}]  # fmt: skip
    assert "dbplatform:backup.plan[0].retentionDays 40 must be 1..35" in _refused({"plan": plan})


def test_a_plan_rule_inside_the_maintenance_window_is_refused() -> None:
    plan = [{"name": "weekly", "schedule": "cron(30 2 ? * SUN *)", "retentionDays": 30}]
    text = _refused({"plan": plan})
    assert "dbplatform:backup.plan[0].schedule" in text and "backup plan rule weekly" in text
    assert "dbplatform:database.maintenanceWindow" in text
    assert "primary maintenance" in text and "Sunday" in text
