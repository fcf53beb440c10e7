"""The program's body: load the stack's config from the engine, build the environment, export."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pulumi
from pulumi.runtime.config import (
    CONFIG,
    get_config_env,
    get_config_secret_keys_env,
    is_config_secret,
)

from infra.config import (
    NAMESPACE,
    ConfigError,
    StackConfig,
    aws_setting_problems,
    camel,
    load_config,
)
from infra.environment import Environment


def _parsed(raw: str) -> Any:
    """A config value as the engine hands it over: objects and lists as JSON, the rest text."""
    try:
        return json.loads(raw) if raw[:1] in ("[", "{") else raw
    except json.JSONDecodeError:
        return raw


def _engine_keys(namespace: str) -> set[str]:
    """Every key of `namespace` the engine has. The CLI's language host passes config in the
    PULUMI_CONFIG environment variable; mocks and the Automation API's inline programs set it
    in the runtime (CONFIG)."""
    keys = set()
    for full_key in (*CONFIG.get(), *get_config_env()):
        ns, _, key = full_key.partition(":")
        if ns == namespace:
            keys.add(key)
    return keys


def _engine_values() -> tuple[dict[str, Any], str | None]:
    """This stack's `dbplatform:` values as the engine hands them over (objects as JSON)."""
    keys = {camel(f.name) for f in dataclasses.fields(StackConfig)} - {"stack", "region"}
    # Also every dbplatform key the engine has, so a misspelt key is refused, not ignored.
    keys |= _engine_keys(NAMESPACE)
    config = pulumi.Config(NAMESPACE)
    values = {key: _parsed(raw) for key in sorted(keys) if (raw := config.get(key)) is not None}
    return values, pulumi.Config("aws").get("region")


def _engine_aws_values() -> tuple[dict[str, Any], frozenset[str]]:
    """The stack's `aws:` settings as the engine hands them over (secrets decrypted), keyed as
    in the stack file, and the keys Pulumi marks secret (never shown in a message)."""
    config = pulumi.Config("aws")
    values = {
        f"aws:{key}": _parsed(raw)
        for key in sorted(_engine_keys("aws"))
        if (raw := config.get(key)) is not None
    }
    # The CLI's language host names the secret keys in PULUMI_CONFIG_SECRET_KEYS; mocks and the
    # Automation API set them in the runtime.
    secret = set(get_config_secret_keys_env())
    return values, frozenset(k for k in values if k in secret or is_config_secret(k))


def load() -> StackConfig:
    """The stack's config, refused as the offline commands and the operations refuse it: its
    `aws:` settings by the same check (infra/config.py `aws_setting_problems`), so `pulumi up`
    stops with the same words before the provider reads a bad value its own way."""
    stack = pulumi.get_stack()
    aws_values, secret_keys = _engine_aws_values()
    problems = aws_setting_problems(aws_values, f"Pulumi.{stack}.yaml", secret_keys=secret_keys)
    if problems:
        raise ConfigError(stack, problems)
    values, region = _engine_values()
    return load_config(stack, values, region)


def _provider_settings() -> dict[str, object]:
    """The stack's `aws:` settings, for the explicit providers of other regions."""
    from infra.components._common import PROVIDER_SETTINGS

    config = pulumi.Config("aws")
    return {key: _parsed(raw) for key in PROVIDER_SETTINGS if (raw := config.get(key)) is not None}


def run() -> None:
    env = Environment(load(), provider_settings=_provider_settings())
    for key, value in env.exports.items():
        pulumi.export(key, value)
