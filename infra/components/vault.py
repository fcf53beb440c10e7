"""The environment's vault: a KMS key for secrets and the master credential secret.

The master password is generated here (pulumi-random) and kept in a self-managed Secrets Manager
secret, not RDS-managed: RDS Blue/Green deployments refuse instances whose master password is
managed by RDS (DESIGN.md). The secret holds the RDS secret JSON shape that AWS's rotation
functions and client libraries expect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.components._common import child, tags
from infra.naming import Names

# RDS refuses '/', '@', '"' and spaces in a master password.
PASSWORD_SPECIALS = "!#$%&*()-_=+[]{}<>:?"


@dataclass(frozen=True, kw_only=True)
class VaultArgs:
    """Inputs of the Vault component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    account_id: pulumi.Input[str]
    """the AWS account, for the key policy"""
    master_username: str
    """master user name stored in the secret"""
    protect: bool
    """protect the stateful children (prod)"""


class Vault(pulumi.ComponentResource):
    """Secrets KMS key, master password and master secret."""

    key_arn: pulumi.Output[str]
    """KMS key encrypting the secrets"""
    master_secret_arn: pulumi.Output[str]
    """ARN of the master credential secret"""
    master_password: pulumi.Output[str]
    """the generated master password (secret)"""

    def __init__(
        self, name: str, args: VaultArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Vault", name, None, opts)
        n = args.names
        self._args = args
        key = aws.kms.Key(
            f"{name}-key",
            description=f"dbplatform {n.stack} secrets",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=pulumi.Output.from_input(args.account_id).apply(_key_policy),
            tags=tags(args.base_tags, n.kms_alias("secrets")),
            opts=child(self, protect=args.protect),
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=n.kms_alias("secrets"),
            target_key_id=key.key_id,
            opts=child(self),
        )
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
            tags=tags(args.base_tags, n.master_secret),
            opts=child(self, protect=args.protect),
        )
        self._key = key
        self._secret = secret
        self.key_arn = key.arn
        self.master_secret_arn = secret.arn
        self.master_password: pulumi.Output[str] = pulumi.Output.secret(password.result)
        self.register_outputs(
            {"key_arn": self.key_arn, "master_secret_arn": self.master_secret_arn}
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
        writing the original password back over a rotated one.
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
        return aws.secretsmanager.SecretVersion(
            f"{self._secret._name}-value",
            secret_id=self._secret.id,
            secret_string=pulumi.Output.secret(value),  # type: ignore[arg-type]
            opts=child(self, ignore_changes=["secretString"]),
        )


def _key_policy(account_id: str) -> str:
    # Key administration and use stay inside the account; Secrets Manager uses the key on the
    # account's behalf through grants scoped by kms:ViaService.
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
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
            ],
        },
        sort_keys=True,
    )
