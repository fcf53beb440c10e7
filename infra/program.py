"""The program's body: load the stack's config from the engine, build the environment, export."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
from pulumi.runtime.config import CONFIG, get_config_env

from infra.config import NAMESPACE, StackConfig, camel, load_config
from infra.environment import Environment


def _engine_values() -> tuple[dict[str, Any], str | None]:
    """This stack's `dbplatform:` values as the engine hands them over (objects as JSON)."""
    keys = {camel(f.name) for f in dataclasses.fields(StackConfig)} - {"stack", "region"}
    # Also every dbplatform key the engine has, so a misspelt key is refused, not ignored. The
    # CLI's language host passes config in the PULUMI_CONFIG environment variable; mocks and the
    # Automation API's inline programs set it in the runtime (CONFIG).
    for full_key in (*CONFIG.get(), *get_config_env()):
        ns, _, key = full_key.partition(":")
        if ns == NAMESPACE:
            keys.add(key)
    config = pulumi.Config(NAMESPACE)
    values: dict[str, Any] = {}
    for key in sorted(keys):
        raw = config.get(key)
        if raw is None:
            continue
        try:
            values[key] = json.loads(raw) if raw[:1] in ("[", "{") else raw
        except json.JSONDecodeError:
            values[key] = raw
    return values, pulumi.Config("aws").get("region")


def load() -> StackConfig:
    values, region = _engine_values()
    return load_config(pulumi.get_stack(), values, region)


def _provider_settings() -> dict[str, object]:
    """The stack's `aws:` settings, for the explicit providers of other regions."""
    from infra.components._common import PROVIDER_SETTINGS

    config = pulumi.Config("aws")
    out: dict[str, object] = {}
    for key in PROVIDER_SETTINGS:
        raw = config.get(key)
        if raw is None:
            continue
        try:
            out[key] = json.loads(raw) if raw[:1] in ("[", "{") else raw
        except json.JSONDecodeError:
            out[key] = raw
    return out


def run() -> None:
    env = Environment(load(), provider_settings=_provider_settings())
    for key, value in env.exports.items():
        pulumi.export(key, value)
