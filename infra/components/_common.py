"""Small helpers every component shares: tags, child options, KMS keys, port rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class RegionProvider:
    """Another region than the stack's (the DR region) and the provider that deploys there."""

    region: str
    """the region"""
    provider: pulumi.ProviderResource
    """provider scoped to that region"""


def tags(base: dict[str, str], name: str) -> dict[str, str]:
    """The stack's base tags plus a Name; the base tags win so no resource can drop them."""
    return {"Name": name, **base}


def child(
    parent: pulumi.Resource,
    *,
    provider: pulumi.ProviderResource | None = None,
    **extra: object,
) -> pulumi.ResourceOptions:
    """Options for a component's child: parented, and on the component's provider if any."""
    return pulumi.ResourceOptions(parent=parent, provider=provider, **extra)  # type: ignore[arg-type]


def key_policy(account_id: str, *statements: dict[str, object]) -> str:
    """A KMS key policy: the account administers the key, plus the given service statements.

    The account-root statement keeps the key manageable through IAM; without it a key whose
    policy names only services can lock everyone out of it.
    """
    admin = {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [admin, *statements]}, sort_keys=True)


def cmk(
    parent: pulumi.Resource,
    name: str,
    *,
    description: str,
    alias: str,
    base_tags: dict[str, str],
    policy: pulumi.Input[str] | None = None,
    provider: pulumi.ProviderResource | None = None,
    protect: bool = False,
    alias_resource_name: str | None = None,
) -> aws.kms.Key:
    """A customer managed key and its alias: yearly rotation, 30 days to cancel a deletion.

    `policy` None keeps AWS's default key policy (the account administers the key).
    """
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=tags(base_tags, alias),
        opts=child(parent, provider=provider, protect=protect),
    )
    aws.kms.Alias(
        alias_resource_name or f"{name}-alias",
        name=alias,
        target_key_id=key.key_id,
        opts=child(parent, provider=provider),
    )
    return key


def tcp_rule(
    parent: pulumi.Resource,
    name: str,
    *,
    direction: Literal["ingress", "egress"],
    security_group_id: pulumi.Input[str],
    port: int,
    description: str,
    base_tags: dict[str, str],
    tag_name: str,
    cidr: str | None = None,
    peer_security_group_id: pulumi.Input[str] | None = None,
) -> pulumi.CustomResource:
    """One security group rule for one TCP port, to or from a CIDR or another security group.

    Rules are resources of their own (not inline `ingress`/`egress`), so a rule another unit
    adds to a group is never removed by the group's owner.
    """
    rule = (
        aws.vpc.SecurityGroupIngressRule
        if direction == "ingress"
        else aws.vpc.SecurityGroupEgressRule
    )
    return rule(
        name,
        security_group_id=security_group_id,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        cidr_ipv4=cidr,
        referenced_security_group_id=peer_security_group_id,
        description=description,
        tags=tags(base_tags, tag_name),
        opts=child(parent),
    )


def assume_role_policy(service: str) -> str:
    """Trust policy of a role only the given AWS service may assume."""
    import json

    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )
