"""The composition root: one environment of the data tier from its validated config."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.components._common import (
    NO_GUARD,
    KeyGuard,
    RegionProvider,
    created_keys,
    region_provider,
)
from infra.components.alarms import Alarms, AlarmsArgs, ProtectedRegion, WatchedInstance
from infra.components.backups import Backups, BackupsArgs
from infra.components.database import Database, DatabaseArgs
from infra.components.network import Network, NetworkArgs
from infra.components.replicas import CrossRegionSpec, Replicas, ReplicasArgs, ReplicaSpec
from infra.components.vault import Vault, VaultArgs
from infra.config import StackConfig
from infra.naming import Names


class Environment(pulumi.ComponentResource):
    """Network, vault, primary, replicas, and the units that back them up and watch them."""

    def __init__(
        self,
        cfg: StackConfig,
        opts: pulumi.ResourceOptions | None = None,
        *,
        provider_settings: dict[str, object] | None = None,
    ) -> None:
        names = Names(cfg.stack)
        super().__init__("dbplatform:index:Environment", names.prefix, None, opts)
        base = cfg.base_tags()
        protect = cfg.is_production
        settings = provider_settings or {}
        # Production keys are guarded: only these roles may disable, delete or re-policy them.
        break_glass = KeyGuard(cfg.break_glass_roles, cfg.deploy_roles) if protect else NO_GUARD
        # The account id comes from the credentials in use; only the key policies need it.
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        net = cfg.network

        self.network = Network(
            "network",
            NetworkArgs(
                names=names,
                base_tags=base,
                vpc_id=net.vpc_id,
                subnet_ids=net.subnet_ids,
                cidr=net.cidr,
                az_count=net.az_count,
                allowed_cidrs=net.allowed_cidrs,
                allowed_security_group_ids=net.allowed_security_group_ids,
                port=cfg.database.port,
                account_id=account_id,
                connect=net.connect,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self._replica_zones = self._check_replica_zones(cfg)
        dr: RegionProvider | None = None
        if cfg.dr.region is not None:
            dr = RegionProvider(
                region=cfg.dr.region,
                provider=region_provider("dr-region", cfg.dr.region, settings, self),
            )
        self.vault = Vault(
            "vault",
            VaultArgs(
                names=names,
                base_tags=base,
                account_id=account_id,
                region=cfg.region,
                master_username=cfg.database.master_username,
                protect=protect,
                app_secrets=cfg.vault.app_secrets,
                rotation_days=cfg.vault.rotation_days,
                rotation_window=cfg.vault.rotation_window,
                vpc_id=self.network.vpc_id,
                subnet_ids=self.network.subnet_ids,
                db_security_group_id=self.network.security_group_id,
                port=cfg.database.port,
                private_secrets_endpoint=(
                    net.vpc_id is None
                    if net.private_secrets_endpoint is None
                    else net.private_secrets_endpoint
                ),
                break_glass=break_glass,
                dr=dr if cfg.vault.replicate_to_dr else None,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.database = Database(
            "database",
            DatabaseArgs(
                names=names,
                base_tags=base,
                region=cfg.region,
                account_id=account_id,
                db=cfg.database,
                parameter_family=cfg.parameter_family,
                upgrade_parameter_family=cfg.upgrade_parameter_family,
                backup_retention_days=cfg.backup.retention_days,
                backup_window=cfg.backup.window,
                subnet_group_name=self.network.subnet_group_name,
                security_group_id=self.network.security_group_id,
                master_password=self.vault.master_password,
                protect=protect,
                adopt_identifier=cfg.restore.adopt_identifier,
                break_glass=break_glass,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.master_secret_version = self.vault.store_master_credential(
            host=self.database.address,
            port=cfg.database.port,
            dbname=cfg.database.db_name,
            instance_identifier=self.database.identifier,
        )

        # Pilot light: wherever a DR region is configured, an isolated network with the
        # database's subnet group and security group already waits there (free to keep), so
        # `scripts.dr rebuild` can restore into it without Pulumi while the primary region is down.
        cross_region = None
        dr_exports: dict[str, pulumi.Input[object]] = {}
        if dr is not None:
            dr_net = Network(
                "dr-network",
                NetworkArgs(
                    names=names,
                    base_tags=base,
                    vpc_id=None,
                    subnet_ids=(),
                    # Its own CIDR (validated apart from every other network here), so it can
                    # be peered or attached next to the primary's.
                    cidr=cfg.dr.cidr,
                    az_count=2,
                    # After a failover the clients are the application's DR network.
                    allowed_cidrs=cfg.dr.connect.peer_cidrs or net.allowed_cidrs,
                    allowed_security_group_ids=(),
                    port=cfg.database.port,
                    account_id=account_id,
                    connect=cfg.dr.connect,
                    role="dr",
                ),
                pulumi.ResourceOptions(parent=self, provider=dr.provider),
            )
            dr_exports = {
                "dr_subnet_group": dr_net.subnet_group_name,
                "dr_security_group_id": dr_net.security_group_id,
            }
            if cfg.dr.cross_region_replica:
                cross_region = CrossRegionSpec(
                    region=dr.region,
                    instance_class=cfg.database.instance_class,
                    subnet_group_name=dr_net.subnet_group_name,
                    security_group_id=dr_net.security_group_id,
                    provider=dr.provider,
                )
        windows = cfg.replica_windows()
        self.replicas = Replicas(
            "replicas",
            ReplicasArgs(
                names=names,
                base_tags=base,
                source_identifier=self.database.identifier,
                source_arn=self.database.arn,
                replicas=tuple(
                    ReplicaSpec(
                        name=r.name,
                        instance_class=r.instance_class or cfg.database.instance_class,
                        availability_zone=r.availability_zone,
                        maintenance_window=windows[r.name].to_rds(),
                    )
                    for r in cfg.replicas
                ),
                cross_region=cross_region,
                parameter_group_name=self.database.parameter_group_name,
                security_group_id=self.network.security_group_id,
                key_arn=self.database.key_arn,
                monitoring_role_arn=self.database.monitoring_role_arn,
                monitoring_interval=cfg.database.monitoring_interval,
                performance_insights_retention_days=cfg.database.performance_insights_retention_days,
                db=cfg.database,
                parameter_family=cfg.parameter_family,
                account_id=account_id,
                break_glass=break_glass,
                auto_minor_version_upgrade=cfg.database.auto_minor_version_upgrade,
                port=cfg.database.port,
                protect=protect,
            ),
            pulumi.ResourceOptions(parent=self),
        )

        self.backups = Backups(
            "backups",
            BackupsArgs(
                names=names,
                base_tags=base,
                account_id=account_id,
                protect=protect,
                backup=cfg.backup,
                dr=cfg.dr,
                dr_provider=dr.provider if dr is not None else None,
                source_arn=self.database.arn,
                subnet_group_name=self.network.subnet_group_name,
                security_group_id=self.network.security_group_id,
                break_glass=break_glass,
            ),
            pulumi.ResourceOptions(parent=self),
        )
        watched = [
            WatchedInstance(
                key="primary",
                role="primary",
                identifier=self.database.identifier,
                instance_class=cfg.database.instance_class,
                allocated_storage=cfg.database.allocated_storage,
            ),
            *(
                WatchedInstance(
                    key=r.name,
                    role="replica",
                    identifier=instance.identifier,
                    instance_class=r.instance_class or cfg.database.instance_class,
                    allocated_storage=cfg.database.allocated_storage,
                )
                for r, instance in zip(cfg.replicas, self.replicas.instances, strict=True)
            ),
        ]
        if cross_region is not None and self.replicas.cross_region_instance is not None:
            watched.append(
                WatchedInstance(
                    key="dr",
                    role="replica",
                    identifier=self.replicas.cross_region_instance.identifier,
                    instance_class=cross_region.instance_class,
                    allocated_storage=cfg.database.allocated_storage,
                    region=cross_region.region,
                    provider=cross_region.provider,
                )
            )
        self.alarms = Alarms(
            "alarms",
            AlarmsArgs(
                names=names,
                base_tags=base,
                account_id=account_id,
                region=cfg.region,
                instances=tuple(watched),
                thresholds=cfg.alarms.thresholds,
                subscriptions=cfg.alarms.subscriptions,
                backup_vault_arn=self.backups.vault_arn,
                health_check_url=cfg.alarms.health_check_url,
                dashboard=cfg.alarms.dashboard,
                protect=protect,
                restore_check=cfg.backup.restore_testing,
                restore_check_required=cfg.is_production,
                break_glass=break_glass,
                max_allocated_storage=cfg.database.max_allocated_storage,
                provider_settings=settings,
                parameter_groups=(self.database.parameter_group_name,),
                protected=self._protected(cfg, dr, watched),
            ),
            pulumi.ResourceOptions(parent=self),
        )

        self.exports: dict[str, pulumi.Input[object]] = {
            "db_primary_identifier": self.database.identifier,
            "db_primary_endpoint": self.database.endpoint,
            "db_primary_address": self.database.address,
            "db_primary_arn": self.database.arn,
            "db_port": cfg.database.port,
            "db_name": cfg.database.db_name,
            "db_parameter_group": self.database.parameter_group_name,
            "db_subnet_group": self.network.subnet_group_name,
            "db_security_group_id": self.network.security_group_id,
            "db_replica_identifiers": self.replicas.identifiers,
            "db_replica_endpoints": self.replicas.endpoints,
            "db_cross_region_replica_endpoint": self.replicas.cross_region_endpoint,
            "db_master_secret_arn": self.vault.master_secret_arn,
            "kms_storage_key_arn": self.database.key_arn,
            "kms_secrets_key_arn": self.vault.key_arn,
            "vault_app_secret_arns": self.vault.app_secret_arns,
            "vault_rotation_function_arn": self.vault.rotation_function_arn,
            "backup_vault_name": self.backups.vault_name,
            "backup_vault_arn": self.backups.vault_arn,
            "backup_dr_vault_arn": self.backups.dr_vault_arn,
            "backup_plan_id": self.backups.plan_id,
            "backup_restore_testing_plan_name": self.backups.restore_testing_plan_name,
            "alarm_topic_critical_arn": self.alarms.critical_topic_arn,
            "alarm_topic_warning_arn": self.alarms.warning_topic_arn,
            "alarm_health_check_id": self.alarms.health_check_id,
            "alarm_dashboard_name": self.alarms.dashboard_name,
            "network_vpc_id": self.network.vpc_id,
            "region": cfg.region,
            **dr_exports,
        }
        # The replica-AZ check is awaited with the component's outputs, so a mismatch fails.
        self.register_outputs({**self.exports, "replica_zones": self._replica_zones})

    def _protected(
        self, cfg: StackConfig, dr: RegionProvider | None, watched: list[WatchedInstance]
    ) -> tuple[ProtectedRegion, ...]:
        """Per region, the keys, vaults and instances whose weakening pages (review N3, N4)."""
        names = Names(cfg.stack)
        keys = [
            pk
            for c in (self.vault, self.database, self.replicas, self.backups)
            for pk in created_keys(c)
        ]
        out = [
            ProtectedRegion(
                region=cfg.region,
                provider=None,
                instance_identifiers=tuple(w.identifier for w in watched if w.region is None),
                keys=tuple(k for p, k in keys if p is None),
                vault_names=(names.backup_vault,),
            )
        ]
        if dr is not None:
            out.append(
                ProtectedRegion(
                    region=dr.region,
                    provider=dr.provider,
                    instance_identifiers=tuple(
                        w.identifier for w in watched if w.region == dr.region
                    ),
                    keys=tuple(k for p, k in keys if p is dr.provider),
                    vault_names=(names.dr_backup_vault,),
                )
            )
        return tuple(out)

    def _check_replica_zones(self, cfg: StackConfig) -> pulumi.Output[list[str]]:
        """A replica's AZ must be one of the created subnets' AZs, or RDS refuses to create it.

        The AZs are only known from the provider (the Local-Zone-free list of the region), so
        the check runs when they are: a mismatch fails the preview with the key and the AZs.
        """
        wanted = {r.name: r.availability_zone for r in cfg.replicas if r.availability_zone}
        if cfg.network.vpc_id is not None or not wanted:
            return self.network.availability_zones

        def check(zones: list[str]) -> list[str]:
            for name, zone in wanted.items():
                if zone not in zones:
                    raise ValueError(
                        f"{cfg.stack}: dbplatform:replicas {name}.availabilityZone {zone!r} is "
                        f"not one of the database subnets' AZs ({', '.join(zones)}); pick one "
                        "of them or raise network.azCount"
                    )
            return zones

        return self.network.availability_zones.apply(check)
