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
