"""Backups beyond RDS's own PITR: an AWS Backup vault and plan, DR copies, restore tests.

RDS automated backups (PITR) are set on the instance by the Database unit; this unit adds what
survives the instance and the region: recovery points in a CMK-encrypted vault that nobody may
delete early (vault policy, vault lock in production), copies in the DR region's vault,
cross-region replication of the automated backups, and a daily restore test that proves the
points restore. Schedules come from config, already checked against the maintenance calendar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components._common import (
    NO_GUARD,
    KeyGuard,
    assume_role_policy,
    child,
    cmk,
    key_policy,
    permissions_boundary,
    tags,
)
from infra.config import BackupConfig, DrConfig
from infra.naming import Names

# The rule may take this long to finish once started; a daily job that has not finished in a
# day has failed (and tomorrow's would start anyway).
COMPLETION_WINDOW_MINUTES = 24 * 60
# A restore test picks a recovery point from the last day and keeps the restored instance this
# long for validation before AWS Backup deletes it.
RESTORE_TEST_SELECTION_DAYS = 1
RESTORE_TEST_VALIDATION_HOURS = 1
RESTORE_TEST_START_WINDOW_HOURS = 1
# Actions a vault policy refuses to everyone: recovery points expire by their lifecycle only.
DENIED_VAULT_ACTIONS = ("backup:DeleteRecoveryPoint", "backup:UpdateRecoveryPointLifecycle")
_BACKUP_POLICIES = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
)


@dataclass(frozen=True, kw_only=True)
class BackupsArgs:
    """Inputs of the Backups component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    account_id: pulumi.Input[str]
    """the AWS account, for the key policies"""
    protect: bool
    """protect the vaults and keys (prod)"""
    backup: BackupConfig
    """plan rules, vault lock, restore testing"""
    dr: DrConfig
    """DR region and automated-backups replication"""
    dr_provider: pulumi.ProviderResource | None
    """provider scoped to dr.region (None when dr.region is not set)"""
    source_arn: pulumi.Input[str]
    """the primary DB instance (the only one holding data of its own)"""
    subnet_group_name: pulumi.Input[str]
    """DB subnet group a restore test restores into"""
    security_group_id: pulumi.Input[str]
    """security group a restore test's instance gets"""
    break_glass: KeyGuard = NO_GUARD
    """role names that alone may disable or delete the keys (guarded keys only)"""


class Backups(pulumi.ComponentResource):
    """Keys and vaults (policy, lock), plan and selection, restore tests, backup replication."""

    vault_name: pulumi.Output[str]
    """the environment's backup vault"""
    vault_arn: pulumi.Output[str]
    """ARN of the backup vault"""
    dr_vault_arn: pulumi.Output[str | None]
    """ARN of the DR region's vault (None without DR copies)"""
    plan_id: pulumi.Output[str]
    """the AWS Backup plan"""
    restore_testing_plan_name: pulumi.Output[str | None]
    """restore-testing plan (None when off)"""

    def __init__(
        self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Backups", name, None, opts)
        n, bk, dr = args.names, args.backup, args.dr

        key, vault = self._vault(name, args, n.backup_vault, provider=None)
        dr_vault: aws.backup.Vault | None = None
        if args.dr_provider is not None and any(r.copy_to_dr for r in bk.plan):
            _, dr_vault = self._vault(
                f"{name}-dr", args, n.dr_backup_vault, provider=args.dr_provider
            )

        role = aws.iam.Role(
            f"{name}-role",
            name=n.backup_role,
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: assume_role_policy("backup.amazonaws.com", source_account=account)
            ),
            permissions_boundary=permissions_boundary(args.account_id, self),
            tags=tags(args.base_tags, n.backup_role),
            opts=child(self),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-role-{policy.rsplit('For', 1)[1].lower()}",
                role=role.name,
                policy_arn=policy,
                opts=child(self),
            )
            for policy in _BACKUP_POLICIES
        ]

        rules = []
        for rule in bk.plan:
            copy_actions = None
            if rule.copy_to_dr and dr_vault is not None:
                copy_actions = [
                    aws.backup.PlanRuleCopyActionArgs(
                        destination_vault_arn=dr_vault.arn,
                        lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(
                            delete_after=rule.retention_days
                        ),
                    )
                ]
            rules.append(
                aws.backup.PlanRuleArgs(
                    rule_name=rule.name,
                    target_vault_name=vault.name,
                    schedule=rule.schedule,
                    schedule_expression_timezone="Etc/UTC",
                    start_window=rule.start_window_minutes,
                    completion_window=COMPLETION_WINDOW_MINUTES,
                    enable_continuous_backup=rule.continuous,
                    lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=rule.retention_days),
                    copy_actions=copy_actions,
                    recovery_point_tags=tags(args.base_tags, f"{n.prefix}-{rule.name}"),
                )
            )
        plan = aws.backup.Plan(
            f"{name}-plan",
            name=n.backup_plan,
            rules=rules,
            tags=tags(args.base_tags, n.backup_plan),
            opts=child(self),
        )
        # The primary by ARN, not by tag: restored copies (restore tests, restore checks) carry
        # the same tags and must not be backed up as if they were the environment's database.
        aws.backup.Selection(
            f"{name}-selection",
            name=n.backup_selection,
            plan_id=plan.id,
            iam_role_arn=role.arn,
            resources=[args.source_arn],
            opts=child(self, depends_on=attachments),
        )

        testing_plan_name: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if bk.restore_testing:
            testing = aws.backup.RestoreTestingPlan(
                f"{name}-restore-test",
                name=n.restore_testing_plan,
                schedule_expression=bk.restore_testing_schedule,
                schedule_expression_timezone="Etc/UTC",
                start_window_hours=RESTORE_TEST_START_WINDOW_HOURS,
                recovery_point_selection=aws.backup.RestoreTestingPlanRecoveryPointSelectionArgs(
                    algorithm="LATEST_WITHIN_WINDOW",
                    include_vaults=[vault.arn],
                    recovery_point_types=["CONTINUOUS", "SNAPSHOT"],
                    selection_window_days=RESTORE_TEST_SELECTION_DAYS,
                ),
                tags=tags(args.base_tags, f"{n.prefix}-restore-test"),
                opts=child(self),
            )
            # Without overrides a restore lands in the default VPC's subnets and security group
            # (docs/architecture.md): restore into the environment's own, private network instead.
            aws.backup.RestoreTestingSelection(
                f"{name}-restore-test-db",
                name=n.restore_testing_selection,
                restore_testing_plan_name=testing.name,
                protected_resource_type="RDS",
                protected_resource_arns=[args.source_arn],
                iam_role_arn=role.arn,
                validation_window_hours=RESTORE_TEST_VALIDATION_HOURS,
                restore_metadata_overrides={
                    "dbSubnetGroupName": args.subnet_group_name,
                    "vpcSecurityGroupIds": pulumi.Output.from_input(args.security_group_id).apply(
                        lambda sg: json.dumps([sg])
                    ),
                },
                opts=child(self, depends_on=attachments),
            )
            testing_plan_name = testing.name

        if args.dr_provider is not None and dr.backup_replication:
            # PITR in the DR region: the automated backups (snapshots + WAL) replicated there,
            # encrypted under a key of that region.
            replication_key = cmk(
                self,
                f"{name}-replication-key",
                description=f"dbplatform {n.stack} replicated automated backups ({dr.region})",
                alias=n.kms_alias("rds-backups"),
                base_tags=args.base_tags,
                policy=pulumi.Output.from_input(args.account_id).apply(
                    lambda account: _key_policy(account, args.break_glass)
                ),
                provider=args.dr_provider,
                protect=args.protect,
            )
            aws.rds.InstanceAutomatedBackupsReplication(
                f"{name}-replication",
                source_db_instance_arn=args.source_arn,
                retention_period=dr.backup_replication_retention_days,
                kms_key_id=replication_key.arn,
                # Every input forces a new replication (the resource has no Update). Create
                # first would start a second replication of the same instance into the same
                # Region while the first runs, which AWS does not document (unverified): stop
                # the old one first. Its replicated backups stay, RETAINED, until their
                # retention ends (terraform-provider-aws internal/service/rds/
                # instance_automated_backups_replication.go: Delete is
                # StopDBInstanceAutomatedBackupsReplication, and RETAINED reads as stopped).
                opts=child(self, provider=args.dr_provider, delete_before_replace=True),
            )

        self.key_arn = key.arn
        self.vault_name = vault.name
        self.vault_arn = vault.arn
        self.dr_vault_arn = dr_vault.arn if dr_vault is not None else pulumi.Output.from_input(None)
        self.plan_id = plan.id
        self.restore_testing_plan_name = testing_plan_name
        self.register_outputs(
            {
                "key_arn": self.key_arn,
                "vault_name": self.vault_name,
                "vault_arn": self.vault_arn,
                "dr_vault_arn": self.dr_vault_arn,
                "plan_id": self.plan_id,
                "restore_testing_plan_name": self.restore_testing_plan_name,
            }
        )

    def _vault(
        self,
        name: str,
        args: BackupsArgs,
        vault_name: str,
        *,
        provider: pulumi.ProviderResource | None,
    ) -> tuple[aws.kms.Key, aws.backup.Vault]:
        """A CMK, a vault encrypted with it, a policy refusing early deletion, and the lock."""
        n, lock = args.names, args.backup.vault_lock
        key = cmk(
            self,
            f"{name}-key",
            description=f"dbplatform {n.stack} AWS Backup vault {vault_name}",
            alias=n.kms_alias("backup" if provider is None else "backup-dr"),
            base_tags=args.base_tags,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: _key_policy(account, args.break_glass)
            ),
            provider=provider,
            protect=args.protect,
        )
        vault = aws.backup.Vault(
            f"{name}-vault",
            name=vault_name,
            kms_key_arn=key.arn,
            # Never let `pulumi destroy` empty a vault: recovery points outlive the stack.
            force_destroy=False,
            tags=tags(args.base_tags, vault_name),
            opts=child(self, provider=provider, protect=args.protect),
        )
        if args.protect:
            # Production only: a non-production stack may be torn down before its last
            # recovery point expires, once someone deletes its points on purpose (force_destroy
            # stays off: docs/vault-backups-alarms.md says how).
            aws.backup.VaultPolicy(
                f"{name}-vault-policy",
                backup_vault_name=vault.name,
                policy=_vault_policy(),
                opts=child(self, provider=provider),
            )
        if lock.enabled:
            aws.backup.VaultLockConfiguration(
                f"{name}-vault-lock",
                backup_vault_name=vault.name,
                min_retention_days=lock.min_retention_days,
                max_retention_days=lock.max_retention_days,
                changeable_for_days=lock.changeable_for_days,
                opts=child(self, provider=provider, protect=args.protect),
            )
        return key, vault


def _vault_policy() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyEarlyDeletion",
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": list(DENIED_VAULT_ACTIONS),
                    # Recovery points, not the vault, are the resources of these actions.
                    "Resource": "*",
                }
            ],
        },
        sort_keys=True,
    )


def _key_policy(account_id: str, break_glass: KeyGuard = NO_GUARD) -> str:
    # Administration stays in the account; AWS Backup and RDS use the key on the account's
    # behalf through kms:ViaService grants.
    return key_policy(
        account_id,
        {
            "Sid": "BackupAndRdsUse",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
                "kms:CreateGrant",
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account_id},
                "StringLike": {"kms:ViaService": ["backup.*.amazonaws.com", "rds.*.amazonaws.com"]},
            },
        },
        break_glass=break_glass,
    )
