"""The committed JSON Schema of a stack file is current, and every committed stack file (and the
effective config `dbplatform config` prints) validates against it."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from infra.config import ROOT, committed_stacks
from infra.schema import SCHEMA_PATH, stack_schema
from scripts import config as config_cmd

COMMITTED = json.loads((ROOT / SCHEMA_PATH).read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(COMMITTED)


def test_the_committed_schema_is_current() -> None:
    assert stack_schema(ROOT) == COMMITTED, (
        f"{SCHEMA_PATH} is stale: run `dbplatform config --schema > {SCHEMA_PATH}`"
    )
    jsonschema.Draft202012Validator.check_schema(COMMITTED)


@pytest.mark.parametrize("stack", committed_stacks(ROOT))
def test_committed_stack_files_and_their_effective_config_validate(
    stack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    VALIDATOR.validate(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text("utf-8")))
    assert config_cmd.main(["--stack", stack, "--json"]) == 0
    VALIDATOR.validate(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(
    "config",
    [
        {"dbplatform:databse": {}},
        {"dbplatform:tier": "prod"},
        {"dbplatform:database": {"multiAZ": True}},
        {"dbplatform:replicas": [{"instanceClass": "db.r6g.large"}]},  # name is required
        {"dbplatform:owner": {"secure": "v1:x"}},
        {"tier": "production"},
    ],
)
def test_the_schema_catches_what_an_editor_should_underline(config: dict[str, object]) -> None:
    assert list(VALIDATOR.iter_errors({"config": config}))


def test_a_secret_endpoint_is_valid_in_the_schema() -> None:
    sub = {"severity": "critical", "protocol": "https", "endpoint": {"secure": "v1:x"}}
    VALIDATOR.validate({"config": {"dbplatform:alarms": {"subscriptions": [sub]}}})
