"""The primary PostgreSQL instance, its storage key, parameter group, logs and monitoring role."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra import aws_rules
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
from infra.config import DatabaseConfig
from infra.naming import Names

LOG_EXPORTS = ["postgresql", "upgrade"]
# Properties of an adopted (restored) instance that stay as the restore set them.
ADOPTED_AS_RESTORED = [
    "kmsKeyId",
    "dbSubnetGroupName",
    "vpcSecurityGroupIds",
    "parameterGroupName",
    "performanceInsightsKmsKeyId",
    "username",
    "dbName",
]
# CloudWatch.16 (Config rule cw-loggroup-retention-period-check) asks for at least a year.
LOG_RETENTION_DAYS = 365
# rds.force_ssl defaults to 1 from PostgreSQL 15 (RDS User Guide, "Requiring an SSL connection
# to a PostgreSQL DB instance"); re-declaring an engine default with an apply method other than
# the one RDS reports diffs on every run (pulumi_aws rds/parameter_group.py, "Problematic
# Configuration"), so it is declared only where the default is 0.
FORCE_SSL_DEFAULT_FROM_MAJOR = 15
# RDS creates, modifies and deletes multi-AZ instances of hundreds of GiB slowly; the provider's
# 40-minute default fails a healthy `pulumi up` half way.
TIMEOUTS = pulumi.CustomTimeouts(create="120m", update="180m", delete="120m")


def parameters(db: DatabaseConfig, family: str | None = None) -> dict[str, tuple[str, str]]:
    """A parameter group's settings: name -> (value, apply method); family defaults to the
    engine version's (postgres<major>).

    Apply methods follow each parameter's apply type (aws_rules.PARAMETER_APPLY_TYPE): static
    ones only take effect at a reboot, and RDS refuses `immediate` for them.
    """
    params: dict[str, tuple[str, str]] = {}
    major = int((family or "").removeprefix("postgres") or db.engine_version.split(".")[0])
    if major < FORCE_SSL_DEFAULT_FROM_MAJOR:
        params["rds.force_ssl"] = ("1", "immediate")
    params |= {
        "log_min_duration_statement": (str(db.slow_query_ms), "immediate"),
        "log_connections": ("1", "immediate"),
        "log_disconnections": ("1", "immediate"),
        "log_lock_waits": ("1", "immediate"),
        "log_temp_files": ("0", "immediate"),
        "log_autovacuum_min_duration": ("1000", "immediate"),
    }
    # The heartbeat that measures the RPO from the data (`dbplatform heartbeat install`) is
    # written by pg_cron: RDS loads it through shared_preload_libraries, whose RDS default is
    # pg_stat_statements (kept), and runs its jobs in cron.database_name; both static (AWS RDS
    # User Guide, "Scheduling maintenance with the PostgreSQL pg_cron extension").
    params["shared_preload_libraries"] = ("pg_stat_statements,pg_cron", "pending-reboot")
    params["cron.database_name"] = (db.db_name, "pending-reboot")
    if db.blue_green:
        # Blue/Green major-version upgrades replicate logically; a static parameter (reboot).
        params["rds.logical_replication"] = ("1", "pending-reboot")
    for name, (_, method) in params.items():
        if rule := aws_rules.apply_method_rule(name, method):  # a bug in this table, not config
            raise ValueError(f"parameter {name} {rule}")
    return params


@dataclass(frozen=True, kw_only=True)
class DatabaseArgs:
    """Inputs of the Database component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    region: str
    """the stack's region (log group names, key policy)"""
    account_id: pulumi.Input[str]
    """the AWS account, for the key policy"""
    db: DatabaseConfig
    """the primary's settings"""
    parameter_family: str
    """parameter group family, e.g. postgres16"""
    backup_retention_days: int
    """automated backup retention"""
    backup_window: str
    """daily backup window"""
    subnet_group_name: pulumi.Input[str]
    """DB subnet group"""
    security_group_id: pulumi.Input[str]
    """security group of the instance"""
    master_password: pulumi.Input[str]
    """generated master password"""
    protect: bool
    """protect stateful resources (prod)"""
    upgrade_parameter_family: str | None = None
    """also declare this family's parameter group (a pending blue/green major upgrade)"""
    adopt_identifier: str | None = None
    """import an instance restored outside Pulumi (DR rebuild) instead of creating one"""
    break_glass: KeyGuard = NO_GUARD
    """role names that alone may disable or delete the key (guarded keys only)"""


class Database(pulumi.ComponentResource):
    """KMS key, parameter group, log groups, monitoring role and the primary instance."""

    identifier: pulumi.Output[str]
    """the primary's DB instance identifier"""
    arn: pulumi.Output[str]
    """the primary's ARN"""
    endpoint: pulumi.Output[str]
    """host:port of the primary"""
    address: pulumi.Output[str]
    """host name of the primary"""
    key_arn: pulumi.Output[str]
    """KMS key for storage, Performance Insights and logs"""
    parameter_group_name: pulumi.Output[str]
    """the custom parameter group"""
    monitoring_role_arn: pulumi.Output[str]
    """enhanced monitoring role"""

    def __init__(
        self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Database", name, None, opts)
        n, db = args.names, args.db
        identifier = args.adopt_identifier or n.primary

        key = cmk(
            self,
            f"{name}-key",
            description=f"dbplatform {n.stack} database storage, Performance Insights and logs",
            alias=n.kms_alias("rds"),
            base_tags=args.base_tags,
            policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: _storage_key_policy(account, args.region, args.break_glass)
            ),
            protect=args.protect,
        )

        # One group per family, named after it: a blue/green major upgrade needs the next
        # family's group before it starts, and after it the old family's group is still in use
        # by the retired blue, so Pulumi forgets that group instead of failing to delete it.
        groups = {
            family: aws.rds.ParameterGroup(
                f"{name}-params-{family}",
                name=n.parameter_group(family),
                family=family,
                description=f"dbplatform {n.stack} {family}",
                parameters=[
                    aws.rds.ParameterGroupParameterArgs(name=k, value=v, apply_method=m)
                    for k, (v, m) in sorted(parameters(db, family).items())
                ],
                tags=tags(args.base_tags, n.parameter_group(family)),
                opts=child(self, retain_on_delete=True),
            )
            for family in dict.fromkeys(
                f for f in (args.parameter_family, args.upgrade_parameter_family) if f
            )
        }
        params = groups[args.parameter_family]

        role = aws.iam.Role(
            f"{name}-monitoring",
            name=n.monitoring_role,
            # Only this account's instances of this stack (the replicas and restore checks
            # too, in any region) may have RDS assume it.
            assume_role_policy=pulumi.Output.from_input(args.account_id).apply(
                lambda account: assume_role_policy(
                    "monitoring.rds.amazonaws.com",
                    source_account=account,
                    source_arn=f"arn:aws:rds:*:{account}:db:{n.prefix}-*",
                )
            ),
            permissions_boundary=permissions_boundary(args.account_id, self),
            tags=tags(args.base_tags, n.monitoring_role),
            opts=child(self),
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child(self),
        )

        # Declared before the instance so RDS writes into encrypted, retained groups instead of
        # creating unencrypted ones that never expire.
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{export}",
                name=f"/aws/rds/instance/{identifier}/{export}",
                retention_in_days=LOG_RETENTION_DAYS,
                kms_key_id=key.arn,
                tags=tags(args.base_tags, f"{identifier}-{export}"),
                opts=child(self),
            )
            for export in LOG_EXPORTS
        ]

        # Rotation changes the password outside Pulumi; never write the original back.
        ignored = ["password"]
        if args.adopt_identifier:
            # A restored instance keeps the key, network and parameter group it was restored
            # with (scripts.dr rebuild chose them while this stack did not exist yet). Pulumi
            # refuses an import whose declared inputs differ from the instance, and changing
            # the key would mean another restore, so these stay as restored.
            ignored += ADOPTED_AS_RESTORED
        instance_opts = child(
            self,
            protect=args.protect,
            ignore_changes=ignored,
            custom_timeouts=TIMEOUTS,
            depends_on=log_groups,
            import_=args.adopt_identifier,
            # The identifier is fixed, so a replacement must delete first: create-first fails
            # with DBInstanceAlreadyExists (provider_facts "unique-name", infra review N6).
            # Production never gets here (protect and deletion protection stop a replace).
            delete_before_replace=not args.protect,
        )
        # Snapshot identifiers are unique per account and region: a constant name fails the
        # second deletion of an instance of this identifier (a staging rebuilt and torn down
        # again). The suffix is kept in state and drawn again whenever the instance is replaced:
        # its keepers are the instance's replacement-forcing inputs (provider_facts.FORCE_NEW),
        # so a second replace under the same identifier never reuses a snapshot name (N6).
        snapshot_suffix = random.RandomId(
            f"{name}-final-snapshot-suffix",
            byte_length=4,
            keepers=snapshot_keepers(
                identifier=identifier,
                engine="postgres",
                storage_encrypted=db.storage_encrypted,
                kms_key_id=key.arn if db.storage_encrypted else "",
                db_name=db.db_name,
                username=db.master_username,
            ),
            opts=child(self),
        )
        instance = aws.rds.Instance(
            f"{name}-primary",
            identifier=identifier,
            engine="postgres",
            engine_version=db.engine_version,
            instance_class=db.instance_class,
            allocated_storage=db.allocated_storage,
            max_allocated_storage=db.max_allocated_storage,
            storage_type="gp3",
            storage_encrypted=db.storage_encrypted,
            kms_key_id=key.arn if db.storage_encrypted else None,
            multi_az=db.multi_az,
            db_subnet_group_name=args.subnet_group_name,
            vpc_security_group_ids=[args.security_group_id],
            publicly_accessible=False,
            parameter_group_name=params.name,
            db_name=db.db_name,
            username=db.master_username,
            password=args.master_password,
            port=db.port,
            backup_retention_period=args.backup_retention_days,
            backup_window=args.backup_window,
            maintenance_window=db.maintenance_window,
            deletion_protection=db.deletion_protection,
            skip_final_snapshot=db.skip_final_snapshot,
            final_snapshot_identifier=snapshot_suffix.hex.apply(
                lambda suffix: f"{n.final_snapshot(identifier)}-{suffix}"
            ),
            delete_automated_backups=False,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=db.auto_minor_version_upgrade,
            allow_major_version_upgrade=False,
            apply_immediately=False,
            iam_database_authentication_enabled=db.iam_auth,
            enabled_cloudwatch_logs_exports=LOG_EXPORTS,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=db.performance_insights_retention_days,
            monitoring_interval=db.monitoring_interval,
            monitoring_role_arn=role.arn if db.monitoring_interval else None,
            ca_cert_identifier="rds-ca-rsa2048-g1",
            tags=tags(args.base_tags, identifier),
            opts=instance_opts,
        )

        self.identifier = instance.identifier
        self.arn = instance.arn
        self.endpoint = instance.endpoint
        self.address = instance.address
        self.key_arn = key.arn
        self.parameter_group_name = params.name
        self.monitoring_role_arn = role.arn
        self.register_outputs(
            {
                "identifier": self.identifier,
                "arn": self.arn,
                "endpoint": self.endpoint,
                "address": self.address,
                "key_arn": self.key_arn,
                "parameter_group_name": self.parameter_group_name,
                "monitoring_role_arn": self.monitoring_role_arn,
            }
        )


def snapshot_keepers(
    *,
    identifier: str,
    engine: str,
    storage_encrypted: bool,
    kms_key_id: pulumi.Input[str],
    db_name: str,
    username: str,
) -> dict[str, pulumi.Input[str]]:
    """The final-snapshot suffix's keepers: the replacement-forcing inputs the primary sets,
    keyed by their pulumi-aws names (provider_facts.FORCE_NEW[RDS_INSTANCE])."""
    return {
        "identifier": identifier,
        "engine": engine,
        "storageEncrypted": str(storage_encrypted).lower(),
        "kmsKeyId": kms_key_id,
        "dbName": db_name,
        "username": username,
    }


def _storage_key_policy(account_id: str, region: str, break_glass: KeyGuard) -> str:
    # RDS uses the key through grants (kms:ViaService); CloudWatch Logs needs a direct grant to
    # encrypt the exported PostgreSQL logs.
    return key_policy(
        account_id,
        {
            "Sid": "CloudWatchLogsEncrypt",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": [
                "kms:Encrypt*",
                "kms:Decrypt*",
                "kms:ReEncrypt*",
                "kms:GenerateDataKey*",
                "kms:Describe*",
            ],
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:aws:logs:{region}:{account_id}:log-group:/aws/rds/*"
                    )
                }
            },
        },
        break_glass=break_glass,
    )
