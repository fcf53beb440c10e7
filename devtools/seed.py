"""Test/demo harness: create in a LOCAL emulator the stateful resources a stack's program declares.

NOT a deploy engine and never pointed at real AWS (it refuses any endpoint but 127.0.0.1 /
localhost). It stands in for `pulumi up`, which these machines cannot run, so the operational
commands have a database to work on: network, subnet group, security group, parameter group
with the program's parameters, KMS key, self-managed master secret (RDS JSON shape), primary,
replicas, SNS topics and alarms, each under the physical name `infra.naming.Names` gives; the
command line also seeds the application secrets, the backup vaults and the DR-region network.
`python -m devtools.seed --stack staging` seeds the server `AWS_ENDPOINT_URL` names.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import secrets
import string
import sys
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

import boto3

from infra.components.database import parameters as program_parameters
from infra.config import ConfigError, StackConfig, load_stack
from infra.naming import Names

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
APP_SECRET_ALPHABET = string.ascii_letters + string.digits


class NotLocal(RuntimeError):
    """Raised when a seed would reach anything but a local emulator."""


@dataclass(frozen=True)
class Seeded:
    """What the seed created (physical ids)."""

    primary: str
    replicas: tuple[str, ...]
    parameter_group: str
    subnet_group: str
    security_group_id: str
    kms_key_id: str
    master_secret_arn: str
    topics: tuple[str, ...]
    alarms: tuple[str, ...] = field(default_factory=tuple)


# The clients made for each session, kept while the session lives: one seed makes ~20 calls
# through 6 services, and a client costs more to build than most calls to the emulator.
_CLIENTS: weakref.WeakKeyDictionary[boto3.Session, dict[tuple[str, str], Any]] = (
    weakref.WeakKeyDictionary()
)


def _local_client(session: boto3.Session, service: str, region: str) -> Any:
    """A client of `service` (one per session and region), refused unless it talks to a local
    emulator.

    Checked per client: `AWS_ENDPOINT_URL_<SERVICE>` can send one service elsewhere.
    """
    made = _CLIENTS.setdefault(session, {})
    if (service, region) in made:
        return made[service, region]
    client = session.client(service, region_name=region)
    endpoint = client.meta.endpoint_url
    host = urlparse(endpoint).hostname or ""
    if host not in LOCAL_HOSTS:
        raise NotLocal(
            f"devtools.seed only writes to a local emulator; the {service} endpoint is "
            f"{endpoint}. Set AWS_ENDPOINT_URL=http://127.0.0.1:<port> "
            "(python -m devtools.moto_server)"
        )
    made[service, region] = client
    return client


def seed_stack(
    session: boto3.Session,
    cfg: StackConfig,
    *,
    with_alarms: bool = True,
    with_network: bool = True,
    engine_version: str | None = None,
) -> Seeded:
    """Create `cfg`'s stateful resources in the emulator behind `session`.

    `with_network=False` skips VPC, subnets, subnet group and security group (faster, for
    tests that only need the instances).
    """
    region = cfg.region
    n = Names(cfg.stack)
    tags = [{"Key": k, "Value": v} for k, v in sorted(cfg.base_tags().items())]
    rds = _local_client(session, "rds", region)
    kms = _local_client(session, "kms", region)
    sm = _local_client(session, "secretsmanager", region)
    db = cfg.database

    # --- network ---
    sg_id = ""
    if with_network:
        sg_id = _network(
            _local_client(session, "ec2", region),
            rds,
            cfg,
            tags,
            subnet_group=n.subnet_group,
            security_group=n.security_group,
            az_count=cfg.network.az_count,
        )

    # --- key, parameter group, secret ---
    key_id = kms.create_key(Description=f"dbplatform {cfg.stack} rds", Tags=[])["KeyMetadata"][
        "KeyId"
    ]
    kms.create_alias(AliasName=n.kms_alias("rds"), TargetKeyId=key_id)
    family = f"postgres{(engine_version or db.engine_version).split('.')[0]}"
    group = create_parameter_group(session, cfg, family)
    password = secrets.token_urlsafe(24)
    secret_arn = sm.create_secret(
        Name=n.master_secret,
        KmsKeyId=key_id,
        SecretString=json.dumps({"username": db.master_username, "password": password}),
        Tags=tags,
    )["ARN"]

    # --- instances ---
    rds.create_db_instance(
        DBInstanceIdentifier=n.primary,
        Engine="postgres",
        EngineVersion=concrete_version(engine_version or db.engine_version),
        DBInstanceClass=db.instance_class,
        AllocatedStorage=db.allocated_storage,
        MaxAllocatedStorage=db.max_allocated_storage,
        StorageType="gp3",
        StorageEncrypted=db.storage_encrypted,
        KmsKeyId=key_id,
        MultiAZ=db.multi_az,
        **({"DBSubnetGroupName": n.subnet_group, "VpcSecurityGroupIds": [sg_id]} if sg_id else {}),
        DBParameterGroupName=group,
        DBName=db.db_name,
        MasterUsername=db.master_username,
        MasterUserPassword=password,
        Port=db.port,
        BackupRetentionPeriod=cfg.backup.retention_days,
        PreferredBackupWindow=cfg.backup.window,
        PreferredMaintenanceWindow=db.maintenance_window,
        DeletionProtection=db.deletion_protection,
        CopyTagsToSnapshot=True,
        Tags=tags,
    )
    endpoint = rds.describe_db_instances(DBInstanceIdentifier=n.primary)["DBInstances"][0][
        "Endpoint"
    ]
    sm.put_secret_value(
        SecretId=secret_arn,
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": endpoint["Address"],
                "port": db.port,
                "username": db.master_username,
                "password": password,
                "dbname": db.db_name,
                "dbInstanceIdentifier": n.primary,
            },
            sort_keys=True,
        ),
    )
    replicas = []
    for spec in cfg.replicas:
        ident = n.replica(spec.name)
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=ident,
            SourceDBInstanceIdentifier=n.primary,
            DBInstanceClass=spec.instance_class or db.instance_class,
            **({"AvailabilityZone": spec.availability_zone} if spec.availability_zone else {}),
            DeletionProtection=db.deletion_protection,
            Tags=tags,
        )
        replicas.append(ident)

    # --- monitoring ---
    sns = _local_client(session, "sns", region)
    topics = tuple(
        sns.create_topic(Name=n.topic(sev), Tags=tags)["TopicArn"]
        for sev in ("critical", "warning")
    )
    alarms: list[str] = []
    if with_alarms:
        cw = _local_client(session, "cloudwatch", region)
        t = cfg.alarms.thresholds
        for ident in [n.primary, *replicas]:
            for tier, topic in (("critical", topics[0]), ("warning", topics[1])):
                name = n.alarm(ident, f"cpu-{tier}")
                cw.put_metric_alarm(
                    AlarmName=name,
                    Namespace="AWS/RDS",
                    MetricName="CPUUtilization",
                    Dimensions=[{"Name": "DBInstanceIdentifier", "Value": ident}],
                    Statistic="Average",
                    Period=300,
                    EvaluationPeriods=3,
                    Threshold=getattr(t.cpu_percent, tier),
                    ComparisonOperator="GreaterThanThreshold",
                    AlarmActions=[topic],
                )
                alarms.append(name)
    return Seeded(
        primary=n.primary,
        replicas=tuple(replicas),
        parameter_group=group,
        subnet_group=n.subnet_group,
        security_group_id=sg_id,
        kms_key_id=key_id,
        master_secret_arn=secret_arn,
        topics=topics,
        alarms=tuple(alarms),
    )


def _network(
    ec2: Any,
    rds: Any,
    cfg: StackConfig,
    tags: list[dict[str, str]],
    *,
    subnet_group: str,
    security_group: str,
    az_count: int,
) -> str:
    """VPC, one private subnet per AZ, the DB subnet group and security group; the SG id."""
    vpc_id = ec2.create_vpc(CidrBlock=cfg.network.cidr)["Vpc"]["VpcId"]
    azs = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    subnets = list(ipaddress.ip_network(cfg.network.cidr).subnets(new_prefix=24))
    subnet_ids = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=str(subnets[i]), AvailabilityZone=azs[i])[
            "Subnet"
        ]["SubnetId"]
        for i in range(az_count)
    ]
    rds.create_db_subnet_group(
        DBSubnetGroupName=subnet_group,
        DBSubnetGroupDescription=f"dbplatform {cfg.stack} database subnets",
        SubnetIds=subnet_ids,
        Tags=tags,
    )
    sg_id = ec2.create_security_group(
        GroupName=security_group, Description=f"dbplatform {cfg.stack} database", VpcId=vpc_id
    )["GroupId"]
    if cfg.network.allowed_cidrs:
        ec2.authorize_security_group_ingress(
            GroupId=sg_id,
            IpPermissions=[
                {
                    "IpProtocol": "tcp",
                    "FromPort": cfg.database.port,
                    "ToPort": cfg.database.port,
                    "IpRanges": [{"CidrIp": c} for c in cfg.network.allowed_cidrs],
                }
            ],
        )
    return str(sg_id)


def seed_dr_network(session: boto3.Session, cfg: StackConfig) -> tuple[str, str] | None:
    """The program's DR pilot light: the DR region's subnet group and security group.

    Returns (subnet group, security group id), or None when the stack has no DR region.
    """
    region = cfg.dr.region
    if region is None:
        return None
    n = Names(cfg.stack)
    tags = [{"Key": k, "Value": v} for k, v in sorted(cfg.base_tags().items())]
    sg_id = _network(
        _local_client(session, "ec2", region),
        _local_client(session, "rds", region),
        cfg,
        tags,
        subnet_group=n.dr_subnet_group,
        security_group=n.dr_security_group,
        az_count=2,  # as the program's DR network
    )
    return n.dr_subnet_group, sg_id


def seed_app_secrets_and_vaults(session: boto3.Session, cfg: StackConfig) -> list[str]:
    """The application secrets (replicated to the DR region) and the AWS Backup vaults."""
    n = Names(cfg.stack)
    dr = cfg.dr.region
    made: list[str] = []
    kms = _local_client(session, "kms", cfg.region)
    key = kms.create_key(Description=f"dbplatform {cfg.stack} secrets")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=n.kms_alias("secrets"), TargetKeyId=key)
    sm = _local_client(session, "secretsmanager", cfg.region)
    replicate = dr is not None and cfg.vault.replicate_to_dr
    for spec in cfg.vault.app_secrets:
        # The program's shape: letters and digits of the configured length.
        value = "".join(secrets.choice(APP_SECRET_ALPHABET) for _ in range(spec.length))
        sm.create_secret(
            Name=n.app_secret(spec.name),
            Description=spec.description or spec.name,
            KmsKeyId=key,
            SecretString=value,
            **({"AddReplicaRegions": [{"Region": dr}]} if replicate else {}),
        )
        made.append(n.app_secret(spec.name) + (f" (replica in {dr})" if replicate else ""))
    _local_client(session, "backup", cfg.region).create_backup_vault(BackupVaultName=n.backup_vault)
    made.append(f"backup vault {n.backup_vault}")
    if dr is not None:
        _local_client(session, "backup", dr).create_backup_vault(BackupVaultName=n.dr_backup_vault)
        made.append(f"backup vault {n.dr_backup_vault} ({dr})")
    return made


def create_parameter_group(session: boto3.Session, cfg: StackConfig, family: str) -> str:
    """The program's parameter group of `family` (what a major upgrade's target needs)."""
    rds = _local_client(session, "rds", cfg.region)
    name = Names(cfg.stack).parameter_group(family)
    rds.create_db_parameter_group(
        DBParameterGroupName=name,
        DBParameterGroupFamily=family,
        Description=f"dbplatform {cfg.stack} {family}",
        Tags=[{"Key": k, "Value": v} for k, v in sorted(cfg.base_tags().items())],
    )
    rds.modify_db_parameter_group(
        DBParameterGroupName=name,
        Parameters=[
            {"ParameterName": k, "ParameterValue": v, "ApplyMethod": m}
            for k, (v, m) in sorted(program_parameters(cfg.database).items())
        ],
    )
    return name


def report_replica_lag(
    session: boto3.Session, region: str, identifier: str, seconds: float
) -> None:
    """Publish a ReplicaLag datapoint for `identifier`, as RDS does every minute."""
    _report_rds_metric(
        session, region, identifier, metric="ReplicaLag", value=seconds, unit="Seconds"
    )


def report_slot_lag(session: boto3.Session, region: str, identifier: str, megabytes: float) -> None:
    """Publish an OldestReplicationSlotLag datapoint of `megabytes` MB (MiB) for blue
    `identifier`, as RDS does for an instance with logical replication slots (a major-version
    blue/green): in bytes, whatever the console's "(MB)" label says (Amazon RDS User Guide,
    "Amazon CloudWatch metrics for Amazon RDS")."""
    _report_rds_metric(
        session,
        region,
        identifier,
        metric="OldestReplicationSlotLag",
        value=megabytes * 1024 * 1024,
        unit="Bytes",
    )


def _report_rds_metric(
    session: boto3.Session, region: str, identifier: str, *, metric: str, value: float, unit: str
) -> None:
    """One AWS/RDS datapoint for instance `identifier`, timestamped now."""
    _local_client(session, "cloudwatch", region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": identifier}],
                "Timestamp": datetime.now(UTC),
                "Value": value,
                "Unit": unit,
            }
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.seed", description=__doc__)
    parser.add_argument("--stack", required=True)
    args = parser.parse_args(argv)
    try:
        cfg = load_stack(args.stack)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = boto3.Session(region_name=cfg.region)
    try:
        seeded = seed_stack(session, cfg)
        others = seed_app_secrets_and_vaults(session, cfg)
        dr_network = seed_dr_network(session, cfg)
    except NotLocal as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    report: dict[str, object] = {**seeded.__dict__, "secrets_and_vaults": others}
    if dr_network is not None:
        report["dr_network"] = f"{dr_network[0]} in {cfg.dr.region}"
    print(json.dumps(report, indent=2))
    return 0


# RDS answers a major-only EngineVersion with that major's default minor; moto echoes what it is
# given, so the seed stands in for RDS here. Fixture values, not a list of what RDS offers.
_DEFAULT_MINOR = {"13": "13.16", "14": "14.13", "15": "15.8", "16": "16.4", "17": "17.2"}


def concrete_version(version: str) -> str:
    return _DEFAULT_MINOR.get(version, version)


if __name__ == "__main__":
    raise SystemExit(main())
