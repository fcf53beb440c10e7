"""A generated environment manifest of any size, in the shapes the program declares, that passes
every guardrail: the benchmark times synth-side checks on it (50 replicas' worth of resources)
and the tests derive compliant and violating stack manifests from it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from infra.offline import KNOWN_AFTER_DEPLOY, SECRET
from policy import windows
from policy.manifest import Manifest, Resource
from policy.rules import required_alarms

U = KNOWN_AFTER_DEPLOY


class _Builder:
    def __init__(self, stack: str, region: str) -> None:
        self.stack = stack
        self.region = region
        self.resources: list[Resource] = []
        self.root = self.urn("pulumi:pulumi:Stack", "dbplatform:index:Environment", f"env-{stack}")
        self.resources.append(
            Resource(
                urn=self.root,
                type="dbplatform:index:Environment",
                name=f"env-{stack}",
                custom=False,
            )
        )

    def urn(self, parent_type: str, type_token: str, name: str) -> str:
        return f"urn:pulumi:{self.stack}::dbplatform::{parent_type}${type_token}::{name}"

    def component(self, kind: str, name: str) -> str:
        t = f"dbplatform:index:{kind}"
        urn = self.urn("dbplatform:index:Environment", t, name)
        self.resources.append(Resource(urn=urn, type=t, name=name, custom=False, parent=self.root))
        return urn

    def add(
        self,
        parent: str,
        type_token: str,
        name: str,
        inputs: dict[str, Any],
        *,
        deps: tuple[Resource, ...] = (),
        region: str | None = None,
        protect: bool = False,
        ignore: tuple[str, ...] = (),
    ) -> Resource:
        parent_type = parent.split("::")[2].rsplit("$", 1)[-1]
        r = Resource(
            urn=self.urn(parent_type, type_token, name),
            type=type_token,
            name=name,
            inputs=inputs,
            parent=parent,
            dependencies=tuple(sorted(d.urn for d in deps)),
            protect=protect,
            ignore_changes=ignore,
            region=region or self.region,
        )
        self.resources.append(r)
        return r

    def key(self, parent: str, name: str, region: str | None = None) -> Resource:
        """A rotating, protected customer managed key: each unit of the program has its own."""
        key_inputs = {"enableKeyRotation": True}
        return self.add(parent, "aws:kms/key:Key", name, key_inputs, region=region, protect=True)


def _tags(stack: str, name: str) -> dict[str, str]:
    return {"Name": name, "project": "dbplatform", "stack": stack, "managed-by": "pulumi"}


def environment(
    replicas: int = 2,
    *,
    stack: str = "synthetic",
    region: str = "us-east-1",
    dr_region: str | None = "us-west-2",
    instance_class: str = "db.r6g.large",
) -> Manifest:
    """A compliant environment: network, primary, `replicas` replicas, vault, backups, alarms."""
    b = _Builder(stack, region)
    prefix = f"dbplatform-{stack}"

    net = b.component("Network", "network")
    vpc = b.add(net, "aws:ec2/vpc:Vpc", "network-vpc", {"cidrBlock": "10.40.0.0/16"})
    subnets = [
        b.add(
            net,
            "aws:ec2/subnet:Subnet",
            f"network-private-{i}",
            {"vpcId": U, "cidrBlock": f"10.40.{16 * i}.0/20", "mapPublicIpOnLaunch": False},
            deps=(vpc,),
        )
        for i in range(3)
    ]
    subnet_group = b.add(
        net,
        "aws:rds/subnetGroup:SubnetGroup",
        "network-subnets",
        {"name": f"{prefix}-db", "subnetIds": [U, U, U]},
        deps=tuple(subnets),
    )
    sg = b.add(
        net,
        "aws:ec2/securityGroup:SecurityGroup",
        "network-db",
        {"name": f"{prefix}-db", "vpcId": U},
        deps=(vpc,),
    )
    b.add(
        net,
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        "network-from-cidr-0",
        {"securityGroupId": U, "cidrIpv4": "10.20.0.0/16", "fromPort": 5432, "toPort": 5432},
        deps=(sg,),
    )

    vault = b.component("Vault", "vault")
    vkey = b.key(vault, "vault-key")
    password = b.add(
        vault, "random:index/randomPassword:RandomPassword", "vault-master-password", {"length": 40}
    )

    db = b.component("Database", "database")
    dkey = b.key(db, "database-key")
    params = b.add(
        db,
        "aws:rds/parameterGroup:ParameterGroup",
        "database-params",
        {"name": f"{prefix}-postgres16", "family": "postgres16"},
    )
    primary_id = f"{prefix}-pg"
    common = {
        "engine": "postgres",
        "instanceClass": instance_class,
        "storageEncrypted": True,
        "kmsKeyId": U,
        "publiclyAccessible": False,
        "deletionProtection": True,
        "copyTagsToSnapshot": True,
        "autoMinorVersionUpgrade": True,
        "monitoringInterval": 60,
        "port": 5432,
        "parameterGroupName": f"{prefix}-postgres16",
        "vpcSecurityGroupIds": [U],
    }
    primary = b.add(
        db,
        "aws:rds/instance:Instance",
        "database-primary",
        {
            **common,
            "identifier": primary_id,
            "engineVersion": "16.4",
            "multiAz": True,
            "username": "dbadmin",
            "password": SECRET,
            "dbName": "app",
            "dbSubnetGroupName": f"{prefix}-db",
            "backupRetentionPeriod": 14,
            "backupWindow": "04:30-05:30",
            "maintenanceWindow": "sun:02:00-sun:04:00",
            "skipFinalSnapshot": False,
            "finalSnapshotIdentifier": f"{primary_id}-final",
            "iamDatabaseAuthenticationEnabled": True,
            "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
            "tags": _tags(stack, primary_id),
        },
        deps=(dkey, params, subnet_group, sg, password),
        protect=True,
        ignore=("password",),
    )

    # Replica windows: 30 minutes each, staggered clear of every other window of the week.
    fixed = [
        windows.parse_weekly("sun:02:00-sun:04:00"),
        windows.parse_daily("04:30-05:30"),
        windows.parse_daily("08:00-09:00"),
        windows.parse_weekly("tue:14:00-tue:16:00"),
    ]
    slots = windows.stagger(windows.Window(fixed[0].start, 30), replicas, fixed)
    reps = b.component("Replicas", "replicas")
    instances = [primary]
    for i in range(replicas):
        ident = f"{primary_id}-r{i + 1}"
        instances.append(
            b.add(
                reps,
                "aws:rds/instance:Instance",
                f"replicas-r{i + 1}",
                {
                    **common,
                    "identifier": ident,
                    "replicateSourceDb": primary_id,
                    "multiAz": False,
                    "backupRetentionPeriod": 0,
                    "skipFinalSnapshot": True,
                    "maintenanceWindow": slots[i].to_rds(),
                    "tags": _tags(stack, ident),
                },
                deps=(primary, dkey, params, sg),
            )
        )

    master = b.add(
        vault,
        "aws:secretsmanager/secret:Secret",
        "vault-master",
        {
            "name": f"dbplatform/{stack}/db/master",
            "kmsKeyId": U,
            "replicas": [{"region": dr_region, "kmsKeyId": U}] if dr_region else [],
        },
        deps=(vkey,),
        protect=True,
    )
    version = b.add(
        vault,
        "aws:secretsmanager/secretVersion:SecretVersion",
        "vault-master-value",
        {"secretId": U, "secretString": SECRET},
        deps=(master, password, primary),
        ignore=("secretString",),
    )
    b.add(
        vault,
        "aws:secretsmanager/secretRotation:SecretRotation",
        "vault-master-rotation",
        {
            "secretId": U,
            "rotateImmediately": False,
            "rotationRules": {"scheduleExpression": "cron(0 14 ? * TUE *)", "duration": "2h"},
        },
        deps=(master, version),
    )

    backups = b.component("Backups", "backups")
    bkey = b.key(backups, "backups-key")
    home_vault = b.add(
        backups,
        "aws:backup/vault:Vault",
        "backups-vault",
        {"name": f"{prefix}-vault", "kmsKeyArn": U},
        deps=(bkey,),
        protect=True,
    )
    plan_deps = [home_vault]
    copy: list[dict[str, Any]] = []
    if dr_region:
        drkey = b.key(backups, "backups-dr-key", region=dr_region)
        dr_vault = b.add(
            backups,
            "aws:backup/vault:Vault",
            "backups-dr-vault",
            {"name": f"{prefix}-dr-vault", "kmsKeyArn": U},
            deps=(drkey,),
            region=dr_region,
            protect=True,
        )
        plan_deps.append(dr_vault)
        copy = [{"destinationVaultArn": U, "lifecycle": {"deleteAfter": 30}}]
        b.add(
            backups,
            "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
            "backups-replication",
            {"sourceDbInstanceArn": U, "retentionPeriod": 7, "kmsKeyId": U},
            deps=(primary,),
            region=dr_region,
        )
    plan = b.add(
        backups,
        "aws:backup/plan:Plan",
        "backups-plan",
        {
            "name": f"{prefix}-plan",
            "rules": [
                {
                    "ruleName": "daily",
                    "targetVaultName": f"{prefix}-vault",
                    "schedule": "cron(0 8 ? * * *)",
                    "startWindow": 60,
                    "lifecycle": {"deleteAfter": 30},
                    "copyActions": copy,
                }
            ],
        },
        deps=tuple(plan_deps),
    )
    b.add(
        backups,
        "aws:backup/selection:Selection",
        "backups-selection",
        {"name": f"{prefix}-db", "planId": U, "iamRoleArn": U, "resources": [U]},
        deps=(plan, primary),
    )

    alarms = b.component("Alarms", "alarms")
    akey = b.key(alarms, "alarms-key")
    topic = b.add(
        alarms,
        "aws:sns/topic:Topic",
        "alarms-critical",
        {"name": f"{prefix}-alarms-critical", "kmsMasterKeyId": U},
        deps=(akey,),
    )
    for inst in instances:
        ident = inst.inputs["identifier"]
        for metric in required_alarms(inst):
            for tier in ("warning", "critical"):
                b.add(
                    alarms,
                    "aws:cloudwatch/metricAlarm:MetricAlarm",
                    f"alarms-{inst.name}-{metric.lower()}-{tier}",
                    {
                        "name": f"{ident}-{metric.lower()}-{tier}",
                        "namespace": "AWS/RDS",
                        "metricName": metric,
                        "dimensions": {"DBInstanceIdentifier": ident},
                        "alarmActions": [U],
                        "okActions": [U],
                    },
                    deps=(topic, inst),
                )
    return Manifest(
        project="dbplatform",
        stack=stack,
        tier="production",
        region=region,
        dr_region=dr_region,
        resources=tuple(sorted(b.resources, key=lambda r: r.urn)),
    )


def without(m: Manifest, *names: str) -> Manifest:
    """The manifest minus the named resources (by logical name)."""
    return replace(m, resources=tuple(r for r in m.resources if r.name not in names))


def with_inputs(m: Manifest, name: str, **inputs: Any) -> Manifest:
    """The manifest with some inputs of one resource replaced (None removes an input)."""

    def edit(r: Resource) -> Resource:
        merged = {**r.inputs, **inputs}
        return replace(r, inputs={k: v for k, v in merged.items() if v is not None})

    return replace(m, resources=tuple(edit(r) if r.name == name else r for r in m.resources))
