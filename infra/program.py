"""The program's body: load the stack's config from the engine, build the environment, export."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from infra.config import NAMESPACE, StackConfig, camel, load_config
from infra.config import StackConfig as _SC
from infra.environment import Environment


def _engine_values() -> tuple[dict[str, Any], str | None]:
    """This stack's `dbplatform:` values as the engine hands them over (objects as JSON)."""
    import dataclasses

    from pulumi.runtime.config import CONFIG

    keys = {camel(f.name) for f in dataclasses.fields(_SC)} - {"stack", "region"}
    # Also every dbplatform key the engine has, so a misspelt key is refused, not ignored.
    keys |= {k.split(":", 1)[1] for k in CONFIG.get() if k.startswith(f"{NAMESPACE}:")}
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {}
    for key in sorted(keys):
        raw = config.get(key)
        if raw is None:
            continue
        try:
            values[key] = json.loads(raw) if raw[:1] in "[{" else raw
        except json.JSONDecodeError:
            values[key] = raw
    return values, pulumi.Config("aws").get("region")


def load() -> StackConfig:
    values, region = _engine_values()
    return load_config(pulumi.get_stack(), values, region)


def run() -> None:
    env = Environment(load())
    for key, value in env.exports.items():
        pulumi.export(key, value)
