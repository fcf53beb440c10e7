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


# The stack's `aws:` settings an explicit provider must repeat: an explicit provider reads only
# its own arguments, so without them the DR region would run under other credentials, tags or
# accounts than the stack's (Pulumi, "Explicit provider configuration").
PROVIDER_SETTINGS = (
    "assumeRoles",
    "profile",
    "sharedConfigFiles",
    "sharedCredentialsFiles",
    "defaultTags",
    "ignoreTags",
    "allowedAccountIds",
    "forbiddenAccountIds",
)


def region_provider(
    name: str, region: str, settings: dict[str, object], parent: pulumi.Resource
) -> aws.Provider:
    """An explicit provider for another region with the stack's own `aws:` settings."""
    args: dict[str, object] = {}
    for key, value in settings.items():
        if key not in PROVIDER_SETTINGS:
            continue
        # Nested settings take snake_case field names in Python (assumeRoles[].roleArn ->
        # role_arn, defaultTags.tags); tag keys and values stay as written.
        if isinstance(value, list):
            args[_snake(key)] = [
                {_snake(k): v for k, v in item.items()} if isinstance(item, dict) else item
                for item in value
            ]
        elif isinstance(value, dict):
            args[_snake(key)] = {_snake(k): v for k, v in value.items()}
        else:
            args[_snake(key)] = value
    return aws.Provider(name, region=region, opts=pulumi.ResourceOptions(parent=parent), **args)  # type: ignore[call-overload]


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


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


# What makes a key's data unreadable at once (DisableKey, PutKeyPolicy to an outside principal)
# or in 30 days (ScheduleKeyDeletion): only a break-glass role may do it to a guarded key.
GUARDED_KEY_ACTIONS = ("kms:DisableKey", "kms:ScheduleKeyDeletion")
# Re-policying a guarded key is denied to all but the break-glass roles AND the deploy roles:
# KMS refuses to create a key whose policy would stop the caller from a later PutKeyPolicy
# (provider_facts "kms-lockout"), so denying it to the deploy role makes the first `pulumi up`
# fail (docs/vault-backups-alarms.md, "Key guard").
REPOLICY_ACTION = "kms:PutKeyPolicy"


@dataclass(frozen=True)
class KeyGuard:
    """Who may weaken a production key: `break_glass` roles all of it, `deployers` the policy."""

    break_glass: tuple[str, ...] = ()
    deployers: tuple[str, ...] = ()


NO_GUARD = KeyGuard()


def key_policy(
    account_id: str, *statements: dict[str, object], break_glass: KeyGuard = NO_GUARD
) -> str:
    """A KMS key policy: the account administers the key, plus the given service statements.

    The account-root statement keeps the key manageable through IAM; without it a key whose
    policy names only services can lock everyone out of it. With `break_glass` role names the
    key is guarded: an explicit Deny, which no IAM policy can override, keeps every other
    principal (the deploy role included) from disabling or deleting the key and from granting
    it to anything but an AWS resource; re-policying it is left to the break-glass and the
    deploy roles (docs/vault-backups-alarms.md, "Key guard").
    """
    admin = {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    guard: list[dict[str, object]] = []
    if break_glass.break_glass:

        def not_roles(*roles: str) -> dict[str, object]:
            # aws:PrincipalArn is the role's ARN for every session of that role.
            arns = [f"arn:aws:iam::{account_id}:role/{r}" for r in roles]
            return {"ArnNotLike": {"aws:PrincipalArn": arns}}

        not_break_glass = not_roles(*break_glass.break_glass)
        guard = [
            {
                "Sid": "OnlyBreakGlassDisablesOrDeletes",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": list(GUARDED_KEY_ACTIONS),
                "Resource": "*",
                "Condition": not_break_glass,
            },
            {
                "Sid": "OnlyBreakGlassOrDeployRepolicies",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": REPOLICY_ACTION,
                "Resource": "*",
                "Condition": not_roles(*break_glass.break_glass, *break_glass.deployers),
            },
            {
                "Sid": "OnlyBreakGlassGrantsToNonAwsResources",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {**not_break_glass, "Bool": {"kms:GrantIsForAWSResource": "false"}},
            },
        ]
    return json.dumps(
        {"Version": "2012-10-17", "Statement": [admin, *statements, *guard]}, sort_keys=True
    )


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
    # Remembered on the component so the protection rules can watch exactly the stack's keys
    # (created_keys); the provider tells the key's region.
    parent.__dict__.setdefault(_KEYS_ATTR, []).append((provider, key))
    aws.kms.Alias(
        alias_resource_name or f"{name}-alias",
        name=alias,
        target_key_id=key.key_id,
        opts=child(parent, provider=provider),
    )
    return key


_KEYS_ATTR = "_dbplatform_keys"


def created_keys(
    component: pulumi.Resource,
) -> list[tuple[pulumi.ProviderResource | None, aws.kms.Key]]:
    """The keys `cmk` declared under `component`, each with its provider (None: stack region)."""
    return list(component.__dict__.get(_KEYS_ATTR, []))


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


# The permissions boundary every role of the program carries: the CI deploy role may create a role
# only with it (devtools/iam_policies.py BOUNDARY_NAME, ci/iam/boundary.json, docs/ci.md), so a
# role created without it is refused by IAM with AccessDenied.
PERMISSIONS_BOUNDARY_NAME = "dbplatform-service-role-boundary"


def permissions_boundary(
    account_id: pulumi.Input[str], parent: pulumi.Resource
) -> pulumi.Output[str]:
    """ARN of the account's boundary policy, in the partition of the credentials in use
    (`arn:<partition>:iam::<account>:policy/<name>`, IAM User Guide "IAM ARNs")."""
    partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=parent)).partition
    return pulumi.Output.all(partition, account_id).apply(
        lambda pa: f"arn:{pa[0]}:iam::{pa[1]}:policy/{PERMISSIONS_BOUNDARY_NAME}"
    )


def assume_role_policy(
    service: str, *, source_account: str | None = None, source_arn: str | None = None
) -> str:
    """Trust policy of a role only the given AWS service may assume, for this account only.

    `aws:SourceAccount` / `aws:SourceArn` keep another account's use of the same service from
    assuming the role (the confused deputy: AWS Backup "Cross-service confused deputy
    prevention", RDS "Setting up and enabling Enhanced Monitoring").
    """
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
    }
    condition: dict[str, dict[str, str]] = {}
    if source_account is not None:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, sort_keys=True)
