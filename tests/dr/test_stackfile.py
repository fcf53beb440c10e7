"""The DR stack's config: derived from the source, valid for the config loader, and synthesized by
the program with the restored instance adopted (imported)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dbplatform.dr.stackfile import (
    Provenance,
    StackFileError,
    TargetNetwork,
    check_target_name,
    default_target_stack,
    derive_values,
    header_for,
    render,
    write,
)
from dbplatform.manifest.redact import redact_text
from infra.config import ConfigError, load_config, load_stack, read_stack_values
from infra.naming import drill_stack
from infra.offline import run_program

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2026, 3, 1, 11, 55, tzinfo=UTC)
PROVENANCE = Provenance(
    source_stack="prod",
    source_region="us-east-1",
    adopt_identifier="dbplatform-prod-usw2-pg",
    restored_from="prod-daily-copy",
    restore_time=WHEN,
)
NETWORK = TargetNetwork(
    vpc_id="vpc-0123456789abcdef0",
    subnet_ids=("subnet-0123456789abcdef0", "subnet-0123456789abcdef1"),
)


def _prod() -> dict:
    values, _ = read_stack_values("prod", ROOT)
    return values


def test_the_written_dr_config_loads_and_the_program_adopts_the_restored_instance(
    tmp_path: Path,
) -> None:
    for f in ("Pulumi.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / f, tmp_path / f)
    values, notes = derive_values(_prod(), provenance=PROVENANCE, network=NETWORK)
    text = render(values, "us-west-2", header=header_for(PROVENANCE, "python -m scripts.dr", notes))
    path = write(tmp_path, "prod-usw2", text)
    assert path == tmp_path / "Pulumi.prod-usw2.yaml"
    assert text.startswith("# DR stack written by")

    cfg = load_stack("prod-usw2", tmp_path)
    assert cfg.region == "us-west-2"
    assert cfg.restore.source_stack == "prod"
    assert cfg.restore.source_region == "us-east-1"
    assert cfg.restore.adopt_identifier == "dbplatform-prod-usw2-pg"
    assert cfg.restore.restored_from == "prod-daily-copy"
    assert cfg.restore.restore_time == "2026-03-01T11:55:00Z"
    # the source's own settings are kept
    source = load_stack("prod", ROOT)
    assert cfg.database.instance_class == source.database.instance_class
    assert cfg.backup == source.backup
    assert cfg.alarms.subscriptions == source.alarms.subscriptions
    assert cfg.alarms.thresholds == source.alarms.thresholds
    assert cfg.alarms.health_check_url is None  # its alarm would live in us-east-1
    assert [r.name for r in cfg.replicas] == [r.name for r in source.replicas]
    # what cannot cross regions does not
    assert all(r.availability_zone is None for r in cfg.replicas)
    assert cfg.network.vpc_id == NETWORK.vpc_id
    assert cfg.dr.region is None and not cfg.dr.backup_replication

    recording = run_program("prod-usw2", root=tmp_path)
    (primary,) = [
        r
        for r in recording.of_type("aws:rds/instance:Instance")
        if r.inputs.get("identifier") == "dbplatform-prod-usw2-pg"
    ]
    assert primary.import_id == "dbplatform-prod-usw2-pg"
    assert primary.region == "us-west-2"
    assert not [r for r in recording.resources if r.region == "us-east-1"]


def test_region_bound_ids_of_the_source_are_dropped() -> None:
    values = _prod()
    values["network"] = {
        **values["network"],
        "vpcId": "vpc-0aaaaaaaaaaaaaaaa",
        "subnetIds": ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"],
        "allowedSecurityGroupIds": ["sg-0aaaaaaaaaaaaaaaa"],
    }
    derived, notes = derive_values(values, provenance=PROVENANCE, network=None)
    assert "vpcId" not in derived["network"] and "subnetIds" not in derived["network"]
    assert derived["network"]["allowedSecurityGroupIds"] == []
    assert any("allowedSecurityGroupIds" in n for n in notes)
    load_config("prod-usw2", derived, "us-west-2", root=ROOT)


def test_a_drill_stack_is_unprotected_yet_valid_under_the_production_rules() -> None:
    derived, _ = derive_values(_prod(), provenance=PROVENANCE, network=NETWORK, throwaway=True)
    cfg = load_config("prod-drill-a1b2c3", derived, "us-west-2", root=ROOT)
    assert cfg.is_production
    assert not cfg.database.deletion_protection
    assert cfg.database.skip_final_snapshot
    # without the derived overrides, the same values break the production rules
    derived["safetyOverrides"] = []
    with pytest.raises(ConfigError, match="deletionProtection"):
        load_config("prod-drill-a1b2c3", derived, "us-west-2", root=ROOT)


def test_encrypted_values_cannot_be_carried_to_another_stack() -> None:
    values = {**_prod(), "alarms": {"healthCheckUrl": {"secure": "AAAAbase64"}}}
    with pytest.raises(StackFileError, match=r"alarms\.healthCheckUrl"):
        derive_values(values, provenance=PROVENANCE, network=NETWORK)


def test_target_names() -> None:
    assert default_target_stack("prod", "us-west-2") == "prod-usw2"
    assert default_target_stack("staging", "ap-southeast-1") == "staging-apse1"
    long = default_target_stack("a-very-long-stack-name-x", "eu-central-1")
    assert len(long) <= 24 and long.endswith("-euc1")
    assert drill_stack("prod", "a1b2c3") == "prod-drill-a1b2c3"
    check_target_name("prod", "prod-dr")
    with pytest.raises(StackFileError, match="source stack itself"):
        check_target_name("prod", "prod")
    with pytest.raises(StackFileError, match="not a stack name"):
        check_target_name("prod", "Prod_DR")


def test_encrypted_source_values_are_refused_with_advice_a_redacted_report_keeps() -> None:
    values = _prod()
    values["alarms"] = {
        **values["alarms"],
        "subscriptions": [{"protocol": "https", "endpoint": {"secure": "v1:abc"}}],
    }
    with pytest.raises(StackFileError) as err:
        derive_values(values, provenance=PROVENANCE, network=NETWORK)
    message = str(err.value)
    assert "alarms.subscriptions[0].endpoint" in message and "--secret" in message
    # the PR comment and the drill artifacts show messages through the redaction rule
    assert redact_text(message) == message
