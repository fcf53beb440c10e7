"""Small helpers every component shares: tags and child options."""

from __future__ import annotations

import pulumi


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
    import json

    admin = {
        "Sid": "AccountAdministers",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [admin, *statements]}, sort_keys=True)
