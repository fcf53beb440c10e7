"""Read replicas: same-region replicas with staggered windows, and an optional cross-region one.

A replica holds no data of its own: it carries no deletion protection (so removing one, or
moving it to another AZ, is a plain delete and create; RDS refuses DeleteDBInstance on a
protected instance and the provider does not lift the flag first), and it is replaced
delete-first because its identifier is fixed. It grows its storage like its source, exports
its logs like its source, and is encrypted whenever its source is.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components._common import NO_GUARD, KeyGuard, child, cmk, tags
from infra.components.database import (
    LOG_EXPORTS,
    LOG_RETENTION_DAYS,
    TIMEOUTS,
    _storage_key_policy,
    parameters,
)
from infra.config import DatabaseConfig
from infra.naming import Names


@dataclass(frozen=True, kw_only=True)
class ReplicaSpec:
    """One same-region replica, resolved from config."""

    name: str
    """short name"""
    instance_class: str
    """instance class"""
    availability_zone: str | None
    """AZ or None"""
    maintenance_window: str
    """its own maintenance window (RDS syntax)"""


@dataclass(frozen=True, kw_only=True)
class CrossRegionSpec:
    """The DR-region replica and what it needs there."""

    region: str
    """DR region"""
    instance_class: str
    """instance class"""
    subnet_group_name: pulumi.Input[str]
    """subnet group in the DR region"""
    security_group_id: pulumi.Input[str]
    """security group in the DR region"""
    provider: pulumi.ProviderResource
    """provider scoped to the DR region"""


@dataclass(frozen=True, kw_only=True)
class ReplicasArgs:
    """Inputs of the Replicas component."""

    names: Names
    """physical names"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    source_identifier: pulumi.Input[str]
    """the primary's identifier (same region)"""
    source_arn: pulumi.Input[str]
    """the primary's ARN (cross region)"""
    replicas: tuple[ReplicaSpec, ...]
    """same-region replicas"""
    cross_region: CrossRegionSpec | None
    """the DR replica, if any"""
    parameter_group_name: pulumi.Input[str]
    """parameter group shared with the primary"""
    security_group_id: pulumi.Input[str]
    """security group shared with the primary"""
    key_arn: pulumi.Input[str]
    """storage/PI key (same region)"""
    monitoring_role_arn: pulumi.Input[str]
    """enhanced monitoring role"""
    monitoring_interval: int
    """enhanced monitoring seconds"""
    performance_insights_retention_days: int
    """PI retention"""
    db: DatabaseConfig
    """the primary's settings: storage ceiling, encryption, IAM auth, parameters"""
    parameter_family: str
    """parameter group family (the DR region gets its own group of it)"""
    account_id: pulumi.Input[str]
    """the AWS account, for the DR key's policy"""
    break_glass: KeyGuard = NO_GUARD
    """role names that alone may disable or delete the DR key (guarded keys only)"""
    auto_minor_version_upgrade: bool
    """as the primary"""
    port: int
    """PostgreSQL port"""
    protect: bool
    """protect the DR replica's key (prod): the replica becomes the database after a failover"""


class Replicas(pulumi.ComponentResource):
    """Same-region read replicas and an optional cross-region replica with its own key."""

    identifiers: pulumi.Output[list[str]]
    """same-region replica identifiers"""
    endpoints: pulumi.Output[list[str]]
    """same-region replica endpoints"""
    cross_region_endpoint: pulumi.Output[str | None]
    """the DR replica's endpoint, or None"""
    instances: list[aws.rds.Instance]
    """the same-region replicas, in config order (the alarms watch them)"""
    cross_region_instance: aws.rds.Instance | None
    """the DR region's replica, if any"""

    def __init__(
        self, name: str, args: ReplicasArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Replicas", name, None, opts)
        n = args.names
        self.instances = []
        self.cross_region_instance = None
        db = args.db
        for spec in args.replicas:
            identifier = n.replica(spec.name)
            log_groups = self._log_groups(f"{name}-{spec.name}", args, identifier, args.key_arn)
            self.instances.append(
                aws.rds.Instance(
                    f"{name}-{spec.name}",
                    identifier=identifier,
                    replicate_source_db=args.source_identifier,
                    instance_class=spec.instance_class,
                    availability_zone=spec.availability_zone,
                    storage_type="gp3",
                    # The source's, as RDS gives it (storage_encrypted is ForceNew: declaring
                    # anything else would replace the replica on every run).
                    storage_encrypted=db.storage_encrypted,
                    # RDS does not keep this in step with the source: without it a replica
                    # fills up once the source has grown past the replica's allocation.
                    max_allocated_storage=db.max_allocated_storage,
                    vpc_security_group_ids=[args.security_group_id],
                    parameter_group_name=args.parameter_group_name,
                    publicly_accessible=False,
                    multi_az=False,
                    port=args.port,
                    maintenance_window=spec.maintenance_window,
                    # A replica holds no data of its own and RDS cannot snapshot it on delete.
                    backup_retention_period=0,
                    skip_final_snapshot=True,
                    deletion_protection=False,
                    copy_tags_to_snapshot=True,
                    auto_minor_version_upgrade=args.auto_minor_version_upgrade,
                    iam_database_authentication_enabled=db.iam_auth,
                    enabled_cloudwatch_logs_exports=LOG_EXPORTS,
                    performance_insights_enabled=True,
                    performance_insights_kms_key_id=args.key_arn,
                    performance_insights_retention_period=args.performance_insights_retention_days,
                    monitoring_interval=args.monitoring_interval,
                    monitoring_role_arn=args.monitoring_role_arn
                    if args.monitoring_interval
                    else None,
                    tags=tags(args.base_tags, identifier),
                    opts=child(
                        self,
                        custom_timeouts=TIMEOUTS,
                        delete_before_replace=True,
                        depends_on=log_groups,
                    ),
                )
            )

        if args.cross_region is not None:
            cr = args.cross_region
            # Encrypted snapshots and replicas cannot cross regions under the source's key:
            # the DR copy needs a key of its own in the DR region.
            dr_key = cmk(
                self,
                f"{name}-dr-key",
                description=f"dbplatform {n.stack} DR replica storage ({cr.region})",
                alias=n.kms_alias("rds-dr"),
                base_tags=args.base_tags,
                # Logs of the DR replica are encrypted with it in that region.
                policy=pulumi.Output.from_input(args.account_id).apply(
                    lambda account: _storage_key_policy(account, cr.region, args.break_glass)
                ),
                provider=cr.provider,
                protect=args.protect,
            )
            # The DR region has no group of ours otherwise: the replica would run on that
            # region's default parameters (no logging, no logical replication).
            dr_params = aws.rds.ParameterGroup(
                f"{name}-dr-params",
                name=n.parameter_group(args.parameter_family),
                family=args.parameter_family,
                description=f"dbplatform {n.stack} {args.parameter_family} ({cr.region})",
                parameters=[
                    aws.rds.ParameterGroupParameterArgs(name=k, value=v, apply_method=m)
                    for k, (v, m) in sorted(parameters(db, args.parameter_family).items())
                ],
                tags=tags(args.base_tags, n.parameter_group(args.parameter_family)),
                opts=child(self, provider=cr.provider, retain_on_delete=True),
            )
            dr_logs = self._log_groups(
                f"{name}-dr", args, n.cross_region_replica, dr_key.arn, provider=cr.provider
            )
            self.cross_region_instance = aws.rds.Instance(
                f"{name}-dr",
                identifier=n.cross_region_replica,
                replicate_source_db=args.source_arn,
                instance_class=cr.instance_class,
                storage_type="gp3",
                storage_encrypted=db.storage_encrypted,
                kms_key_id=dr_key.arn if db.storage_encrypted else None,
                max_allocated_storage=db.max_allocated_storage,
                db_subnet_group_name=cr.subnet_group_name,
                vpc_security_group_ids=[cr.security_group_id],
                parameter_group_name=dr_params.name,
                publicly_accessible=False,
                port=args.port,
                backup_retention_period=0,
                skip_final_snapshot=True,
                deletion_protection=False,
                copy_tags_to_snapshot=True,
                auto_minor_version_upgrade=args.auto_minor_version_upgrade,
                iam_database_authentication_enabled=db.iam_auth,
                enabled_cloudwatch_logs_exports=LOG_EXPORTS,
                performance_insights_enabled=True,
                performance_insights_kms_key_id=dr_key.arn,
                performance_insights_retention_period=args.performance_insights_retention_days,
                # IAM is global: the primary region's monitoring role serves here too.
                monitoring_interval=args.monitoring_interval,
                monitoring_role_arn=args.monitoring_role_arn if args.monitoring_interval else None,
                tags=tags(args.base_tags, n.cross_region_replica),
                opts=child(
                    self,
                    provider=cr.provider,
                    custom_timeouts=TIMEOUTS,
                    delete_before_replace=True,
                    depends_on=dr_logs,
                ),
            )

        self.identifiers = pulumi.Output.all(*[i.identifier for i in self.instances])
        self.endpoints = pulumi.Output.all(*[i.endpoint for i in self.instances])
        self.cross_region_endpoint = (
            self.cross_region_instance.endpoint
            if self.cross_region_instance is not None
            else pulumi.Output.from_input(None)
        )
        self.register_outputs(
            {
                "identifiers": self.identifiers,
                "endpoints": self.endpoints,
                "cross_region_endpoint": self.cross_region_endpoint,
            }
        )

    def _log_groups(
        self,
        name: str,
        args: ReplicasArgs,
        identifier: str,
        key_arn: pulumi.Input[str],
        *,
        provider: pulumi.ProviderResource | None = None,
    ) -> list[pulumi.Resource]:
        """The replica's exported-log groups, declared first as for the primary (encrypted,
        retained for LOG_RETENTION_DAYS) so RDS does not create unencrypted, unexpiring ones."""
        return [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{export}",
                name=f"/aws/rds/instance/{identifier}/{export}",
                retention_in_days=LOG_RETENTION_DAYS,
                kms_key_id=key_arn,
                tags=tags(args.base_tags, f"{identifier}-{export}"),
                opts=child(self, provider=provider),
            )
            for export in LOG_EXPORTS
        ]
