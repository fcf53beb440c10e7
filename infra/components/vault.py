"""The environment's vault: KMS keys for secrets, the master credential and application secrets.

The master password is generated here (pulumi-random) and kept in a self-managed Secrets Manager
secret, not RDS-managed: RDS Blue/Green deployments refuse instances whose master password is
managed by RDS (docs/architecture.md). The secret holds the RDS secret JSON shape that AWS's
rotation functions and client libraries expect, and is rotated on a schedule by AWS's hosted
PostgreSQL single-user rotation function running inside the database's subnets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.components._common import (
    NO_GUARD,
    KeyGuard,
    RegionProvider,
    child,
    cmk,
    key_policy,
    tags,
    tcp_rule,
)
from infra.config import AppSecretConfig
from infra.naming import Names
from policy import windows

# RDS refuses '/', '@', '"' and spaces in a master password.
PASSWORD_SPECIALS = "!#$%&*()-_=+[]{}<>:?"
# What the rotation function must never put in a new password (same rule as above, plus the
# quote and backslash that break connection strings).
ROTATION_EXCLUDED_CHARACTERS = " /@\"'\\"

# AWS's hosted rotation function, the one AWS CDK's `addRotationSingleUser` deploys; pinned so a
# `pulumi up` never swaps the code that changes the production password without a reviewed diff.
ROTATION_APPLICATION_ID = (
    "arn:aws:serverlessrepo:us-east-1:297356227824:applications/"
    "SecretsManagerRDSPostgreSQLRotationSingleUser"
)
ROTATION_APPLICATION_VERSION = "1.1.671"
# Tag telling operators (and scripts.rotate_secret's messages) how a secret is rotated.
SECRET_KIND_TAG = "dbplatform:secret-kind"

# Longest gap, in days, between the first <weekday> of a month and the first <weekday> `k`
# months later when the months step by k from January (checked by brute force over 2000-2100 in
# tests/infra/test_vault.py). Month strides divide 12 so the steps stay even across New Year.
MONTH_STRIDE_MAX_GAP_DAYS = {1: 35, 2: 63, 3: 98, 4: 126, 6: 189}
_CRON_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


@dataclass(frozen=True)
class RotationSchedule:
    """A Secrets Manager rotation rule: when the window opens and how long it stays open."""

    schedule_expression: str
    duration: str
    max_interval_days: int
    """the longest time between two rotations this schedule allows"""


def rotation_schedule(rotation_days: int, rotation_window: str) -> RotationSchedule:
    """Map `vault.rotationDays` and `vault.rotationWindow` onto a Secrets Manager cron + duration.

    Secrets Manager opens a rotation window on the hour, for whole hours, never past midnight
    UTC, and a cron cannot say "every N days on a Tuesday". So the window's weekday and hour are
    kept exactly, and the period is the longest calendar stride that never exceeds N days:
    weekly, or the first <weekday> of every k-th month (k in 1, 2, 3, 4, 6). 90 days gives the
    first Tuesday of every other month (at most 63 days apart). Config validation guarantees the
    window is on the hour, within one UTC day, and N >= 7.
    """
    window = windows.parse_weekly(rotation_window)
    day, minute = divmod(window.start, windows.MINUTES_PER_DAY)
    hour, dow = minute // 60, _CRON_DAYS[day]
    duration = f"{max(1, window.length // 60)}h"
    strides = [k for k, gap in MONTH_STRIDE_MAX_GAP_DAYS.items() if gap <= rotation_days]
    if not strides:
        return RotationSchedule(f"cron(0 {hour} ? * {dow} *)", duration, 7)
    k = max(strides)
    months = "*" if k == 1 else f"1/{k}"
    return RotationSchedule(
        f"cron(0 {hour} ? {months} {dow}#1 *)", duration, MONTH_STRIDE_MAX_GAP_DAYS[k]
    )


@dataclass(frozen=True, kw_only=True)
class VaultArgs:
    """Inputs of the Vault component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    account_id: pulumi.Input[str]
    """the AWS account, for the key policy"""
    region: str
    """the stack's region (Secrets Manager endpoint of the rotation function)"""
    master_username: str
    """master user name stored in the secret"""
    protect: bool
    """protect the stateful children (prod)"""
    app_secrets: tuple[AppSecretConfig, ...] = ()
    """application secrets to generate"""
    rotation_days: int
    """rotate the master secret at least this often"""
    rotation_window: str
    """weekly window in which rotation may run"""
    vpc_id: pulumi.Input[str]
    """VPC of the database, where the rotation function runs"""
    subnet_ids: pulumi.Input[list[str]]
    """the database's subnets, where the rotation function runs"""
    db_security_group_id: pulumi.Input[str]
    """security group of the DB instances; the rotation function is admitted to it"""
    port: int
    """PostgreSQL port"""
    private_secrets_endpoint: bool = False
    """declare a Secrets Manager interface endpoint (isolated VPCs have no other route to it)"""
    dr: RegionProvider | None = None
    """replicate the secrets to this region (the DR region), under a key there"""
    break_glass: KeyGuard = NO_GUARD
    """role names that alone may disable or delete the keys (guarded keys only)"""


class Vault(pulumi.ComponentResource):
    """Secrets KMS key, master password and secret, rotation, application secrets."""

    key_arn: pulumi.Output[str]
    """KMS key encrypting the secrets"""
    master_secret_arn: pulumi.Output[str]
    """ARN of the master credential secret"""
    master_password: pulumi.Output[str]
    """the generated master password (secret)"""
    app_secret_arns: pulumi.Output[dict[str, str]]
    """application secret name -> ARN"""
    rotation_function_arn: pulumi.Output[str]
    """the rotation Lambda's ARN"""

    def __init__(
        self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Vault", name, None, opts)
        n = args.names
        self._args = args
        self._name = name
        policy = pulumi.Output.from_input(args.account_id).apply(
            lambda account: _key_policy(account, args.break_glass)
        )
        key = cmk(
            self,
            f"{name}-key",
            description=f"dbplatform {n.stack} secrets",
            alias=n.kms_alias("secrets"),
            base_tags=args.base_tags,
            policy=policy,
            protect=args.protect,
        )
        self._replicas: list[aws.secretsmanager.SecretReplicaArgs] | None = None
        if args.dr is not None:
            # A replica secret is encrypted in its own region, under a key that lives there.
            replica_key = cmk(
                self,
                f"{name}-dr-key",
                description=f"dbplatform {n.stack} secrets replicas ({args.dr.region})",
                alias=n.kms_alias("secrets"),
                base_tags=args.base_tags,
                policy=policy,
                provider=args.dr.provider,
                protect=args.protect,
            )
            self._replicas = [
                aws.secretsmanager.SecretReplicaArgs(
                    region=args.dr.region, kms_key_id=replica_key.arn
                )
            ]

        password = random.RandomPassword(
            f"{name}-master-password",
            length=40,
            special=True,
            override_special=PASSWORD_SPECIALS,
            min_lower=2,
            min_upper=2,
            min_numeric=2,
            min_special=2,
            opts=child(self),
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-master",
            name=n.master_secret,
            description=f"dbplatform {n.stack} RDS master credential (rotated by Secrets Manager)",
            kms_key_id=key.arn,
            recovery_window_in_days=30,
            replicas=self._replicas,
            tags={**tags(args.base_tags, n.master_secret), SECRET_KIND_TAG: "master"},
            opts=child(self, protect=args.protect),
        )

        app_arns: dict[str, pulumi.Output[str]] = {}
        for spec in args.app_secrets:
            app_arns[spec.name] = self._app_secret(spec, key).arn

        self._rotation_stack = self._rotation_function(key)
        self._secret = secret
        self.key_arn = key.arn
        self.master_secret_arn = secret.arn
        self.master_password = pulumi.Output.secret(password.result)
        self.app_secret_arns = (
            pulumi.Output.all(**app_arns) if app_arns else pulumi.Output.from_input({})
        )
        self.rotation_function_arn = self._rotation_stack.outputs.apply(
            lambda o: str((o or {}).get("RotationLambdaARN", ""))
        )
        self.register_outputs(
            {
                "key_arn": self.key_arn,
                "master_secret_arn": self.master_secret_arn,
                "app_secret_arns": self.app_secret_arns,
                "rotation_function_arn": self.rotation_function_arn,
            }
        )

    def _app_secret(self, spec: AppSecretConfig, key: aws.kms.Key) -> aws.secretsmanager.Secret:
        """One generated application secret: a random value, its secret and first version."""
        a, n = self._args, self._args.names
        value = random.RandomPassword(
            f"{self._name}-app-{spec.name}-value",
            length=spec.length,
            # Letters and digits only: the value goes into headers, env vars and HMAC keys.
            special=False,
            min_lower=4,
            min_upper=4,
            min_numeric=4,
            opts=child(self),
        )
        secret = aws.secretsmanager.Secret(
            f"{self._name}-app-{spec.name}",
            name=n.app_secret(spec.name),
            description=spec.description or f"dbplatform {n.stack} application secret {spec.name}",
            kms_key_id=key.arn,
            recovery_window_in_days=30,
            replicas=self._replicas,
            tags={**tags(a.base_tags, n.app_secret(spec.name)), SECRET_KIND_TAG: "app"},
            opts=child(self, protect=a.protect),
        )
        first_value: pulumi.Output[str] = pulumi.Output.secret(value.result)
        aws.secretsmanager.SecretVersion(
            f"{self._name}-app-{spec.name}-value",
            secret_id=secret.id,
            secret_string=first_value,
            # `scripts.rotate_secret` writes new values outside Pulumi; never write the first
            # value back over a rotated one.
            opts=child(self, ignore_changes=["secretString"]),
        )
        return secret

    def _rotation_function(self, key: aws.kms.Key) -> aws.serverlessrepository.CloudFormationStack:
        """AWS's hosted rotation function in the DB subnets, reaching the DB and Secrets Manager."""
        a, n, name = self._args, self._args.names, self._name
        sg = aws.ec2.SecurityGroup(
            f"{name}-rotation",
            name=f"{n.prefix}-secret-rotation",
            description=f"dbplatform {n.stack} master secret rotation function",
            vpc_id=a.vpc_id,
            tags=tags(a.base_tags, f"{n.prefix}-secret-rotation"),
            opts=child(self),
        )

        def rule(
            suffix: str,
            direction: Literal["ingress", "egress"],
            group: pulumi.Input[str],
            port: int,
            description: str,
            *,
            peer: pulumi.Input[str] | None = None,
            cidr: str | None = None,
        ) -> None:
            # the rule's name doubles as its Name tag: `<prefix>-db-from-rotation` in the console
            tcp_rule(
                self,
                f"{name}-{suffix}",
                direction=direction,
                security_group_id=group,
                port=port,
                description=description,
                base_tags=a.base_tags,
                tag_name=f"{n.prefix}-{suffix}",
                cidr=cidr,
                peer_security_group_id=peer,
            )

        rule(
            "db-from-rotation",
            "ingress",
            a.db_security_group_id,
            a.port,
            "PostgreSQL from the master secret rotation function",
            peer=sg.id,
        )
        rule(
            "rotation-to-db",
            "egress",
            sg.id,
            a.port,
            "rotation function to PostgreSQL",
            peer=a.db_security_group_id,
        )
        endpoint_opts: list[pulumi.Resource] = []
        if a.private_secrets_endpoint:
            # The created VPC has no internet route: the function reaches Secrets Manager
            # through an interface endpoint whose private DNS answers the public name.
            endpoint_sg = aws.ec2.SecurityGroup(
                f"{name}-endpoint",
                name=f"{n.prefix}-secretsmanager-endpoint",
                description=f"dbplatform {n.stack} Secrets Manager endpoint (HTTPS from rotation)",
                vpc_id=a.vpc_id,
                tags=tags(a.base_tags, f"{n.prefix}-secretsmanager-endpoint"),
                opts=child(self),
            )
            rule(
                "endpoint-from-rotation",
                "ingress",
                endpoint_sg.id,
                443,
                "HTTPS from the rotation function",
                peer=sg.id,
            )
            rule(
                "rotation-to-endpoint",
                "egress",
                sg.id,
                443,
                "rotation function to the Secrets Manager endpoint",
                peer=endpoint_sg.id,
            )
            endpoint = aws.ec2.VpcEndpoint(
                f"{name}-secretsmanager",
                vpc_id=a.vpc_id,
                service_name=f"com.amazonaws.{a.region}.secretsmanager",
                vpc_endpoint_type="Interface",
                subnet_ids=a.subnet_ids,
                security_group_ids=[endpoint_sg.id],
                private_dns_enabled=True,
                # Not AWS's default full access: only this account's principals, only this
                # stack's secrets (plus GetRandomPassword, which has no resource), so the
                # rotation subnets cannot reach another account's Secrets Manager (L-2).
                policy=pulumi.Output.from_input(a.account_id).apply(
                    lambda account: _endpoint_policy(account, a.region, n.project, n.stack)
                ),
                tags=tags(a.base_tags, f"{n.prefix}-secretsmanager"),
                opts=child(self),
            )
            endpoint_opts.append(endpoint)
        else:
            # An existing VPC brings its own route to Secrets Manager (NAT or endpoint).
            rule(
                "rotation-to-https",
                "egress",
                sg.id,
                443,
                "rotation function to the Secrets Manager API",
                cidr="0.0.0.0/0",
            )
        return aws.serverlessrepository.CloudFormationStack(
            f"{name}-rotation-function",
            name=f"{n.prefix}-master-rotation",
            application_id=ROTATION_APPLICATION_ID,
            semantic_version=ROTATION_APPLICATION_VERSION,
            capabilities=["CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"],
            parameters={
                "endpoint": f"https://secretsmanager.{a.region}.amazonaws.com",
                "functionName": n.rotation_function,
                "vpcSubnetIds": pulumi.Output.from_input(a.subnet_ids).apply(",".join),
                "vpcSecurityGroupIds": sg.id,
                "kmsKeyArn": key.arn,
                "excludeCharacters": ROTATION_EXCLUDED_CHARACTERS,
            },
            tags=tags(a.base_tags, f"{n.prefix}-master-rotation"),
            opts=child(self, depends_on=endpoint_opts),
        )

    def store_master_credential(
        self,
        *,
        host: pulumi.Input[str],
        port: int,
        dbname: str,
        instance_identifier: pulumi.Input[str],
    ) -> aws.secretsmanager.SecretVersion:
        """Write the RDS secret JSON once the instance exists (host is only known then).

        Rotation replaces the password outside Pulumi; `ignore_changes` keeps `pulumi up` from
        writing the original password back over a rotated one. The rotation schedule is declared
        after this first version: rotating a secret with no current value fails.
        """
        value = pulumi.Output.all(self.master_password, host, instance_identifier).apply(
            lambda v: json.dumps(
                {
                    "engine": "postgres",
                    "host": v[1],
                    "port": port,
                    "username": self._args.master_username,
                    "password": v[0],
                    "dbname": dbname,
                    "dbInstanceIdentifier": v[2],
                },
                sort_keys=True,
            )
        )
        secret_value: pulumi.Output[str] = pulumi.Output.secret(value)
        version = aws.secretsmanager.SecretVersion(
            f"{self._name}-master-value",
            secret_id=self._secret.id,
            secret_string=secret_value,
            opts=child(self, ignore_changes=["secretString"]),
        )
        schedule = rotation_schedule(self._args.rotation_days, self._args.rotation_window)
        aws.secretsmanager.SecretRotation(
            f"{self._name}-master-rotation",
            secret_id=self._secret.id,
            rotation_lambda_arn=self.rotation_function_arn,
            rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                schedule_expression=schedule.schedule_expression,
                duration=schedule.duration,
            ),
            # Rotate once as soon as the schedule exists: the generated first password is in
            # Pulumi state, so it must not stay valid for up to two months (security M-8).
            # The provider calls RotateSecret again only when the rules, the function or the
            # external metadata change, and sends this flag with it: an edit of rotationDays or
            # rotationWindow rotates the password at once (docs/day2-changes.md). A stack made
            # while this was false sees false -> true in state only, no call
            # (terraform-provider-aws internal/service/secretsmanager/secret_rotation.go Update).
            rotate_immediately=True,
            opts=child(self, depends_on=[version, self._rotation_stack]),
        )
        return version


def _endpoint_policy(account_id: str, region: str, project: str, stack: str) -> str:
    """The Secrets Manager endpoint's policy: this account, this stack's secrets."""
    in_account = {"StringEquals": {"aws:PrincipalAccount": account_id}}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "StackSecretsOnly",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "secretsmanager:DescribeSecret",
                        "secretsmanager:GetSecretValue",
                        "secretsmanager:PutSecretValue",
                        "secretsmanager:UpdateSecretVersionStage",
                    ],
                    "Resource": f"arn:aws:secretsmanager:{region}:{account_id}:secret:"
                    f"{project}/{stack}/*",
                    "Condition": in_account,
                },
                {
                    "Sid": "RandomPasswords",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": "secretsmanager:GetRandomPassword",
                    "Resource": "*",
                    "Condition": in_account,
                },
            ],
        },
        sort_keys=True,
    )


def _key_policy(account_id: str, break_glass: KeyGuard = NO_GUARD) -> str:
    # Key administration and use stay inside the account; Secrets Manager uses the key on the
    # account's behalf (for the rotation function's role too) through kms:ViaService.
    return key_policy(
        account_id,
        {
            "Sid": "SecretsManagerUse",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": [
                "kms:Encrypt",
                "kms:Decrypt",
                "kms:GenerateDataKey*",
                "kms:DescribeKey",
            ],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account_id},
                "StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"},
            },
        },
        break_glass=break_glass,
    )
