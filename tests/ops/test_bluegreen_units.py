"""Blue/green pieces that need no emulator, or that moto cannot show: a real AWS deployment with
green replicas (moto greens only the primary: stubbed with botocore's Stubber here), the stack
file edit, the state record, and the update-config and cancel paths end to end in-process."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dbplatform.bluegreen.checks import alarms_firing, subscriber_problems, uncovered_replicas
from dbplatform.bluegreen.common import wait_ready
from dbplatform.bluegreen.config_edit import ConfigChange, apply_changes, edit_text
from dbplatform.bluegreen.model import BgState, Deployment
from dbplatform.ops import Context, Failed, Progress, resolve_stack
from infra.config import load_stack
from tests.ops.support import ROOT, AwsEnv, FakeClock, new_session

ARN = "arn:aws:rds:us-east-1:123456789012:db:"


def _real_deployment(status: str, member_status: dict[str, str]) -> dict[str, Any]:
    """DescribeBlueGreenDeployments as RDS answers for a primary with two replicas."""
    return {
        "BlueGreenDeploymentIdentifier": "bgd-abcdefgh12345678",
        "BlueGreenDeploymentName": "dbplatform-prod-pg-bg-17-2",
        "Source": ARN + "dbplatform-prod-pg",
        "Target": ARN + "dbplatform-prod-pg-green-abc123",
        "Status": status,
        "SwitchoverDetails": [
            {"SourceMember": ARN + blue, "TargetMember": ARN + green, "Status": st}
            for (blue, green), st in zip(
                [
                    ("dbplatform-prod-pg", "dbplatform-prod-pg-green-abc123"),
                    ("dbplatform-prod-pg-r1", "dbplatform-prod-pg-r1-green-def456"),
                    ("dbplatform-prod-pg-r2", "dbplatform-prod-pg-r2-green-ghi789"),
                ],
                member_status.values(),
                strict=True,
            )
        ],
        "Tasks": [{"Name": "CREATING_READ_REPLICA_OF_SOURCE", "Status": "COMPLETED"}],
    }


def _context(rds: Any) -> Context:
    stack = resolve_stack("prod", ROOT)
    ctx = Context(
        command="bluegreen start",
        operation="start",
        args=argparse.Namespace(),
        stack=stack,
        session=boto3.Session(
            region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        ),
        out=Progress(label="test", verbosity=-1),
        clock=FakeClock(),
        run_id="test",
        dry_run=False,
        yes=True,
    )
    ctx._clients[("rds", stack.region)] = rds  # the stubbed client stands in for AWS
    return ctx


def test_green_counts_as_ready_only_when_every_member_and_instance_is() -> None:
    """moto lacks green replicas; RDS reports one member per instance: stubbed here."""
    rds = new_session().client("rds", aws_access_key_id="x", aws_secret_access_key="x")
    ident = {"BlueGreenDeploymentIdentifier": "bgd-abcdefgh12345678"}
    with Stubber(rds) as stub:
        provisioning = {"a": "AVAILABLE", "b": "PROVISIONING", "c": "AVAILABLE"}
        stub.add_response(
            "describe_blue_green_deployments",
            {"BlueGreenDeployments": [_real_deployment("PROVISIONING", provisioning)]},
            ident,
        )
        ready = {"a": "AVAILABLE", "b": "AVAILABLE", "c": "AVAILABLE"}
        stub.add_response(
            "describe_blue_green_deployments",
            {"BlueGreenDeployments": [_real_deployment("AVAILABLE", ready)]},
            ident,
        )
        for green in (
            "dbplatform-prod-pg-green-abc123",
            "dbplatform-prod-pg-r1-green-def456",
            "dbplatform-prod-pg-r2-green-ghi789",
        ):
            stub.add_response(
                "describe_db_instances",
                {"DBInstances": [{"DBInstanceIdentifier": green, "DBInstanceStatus": "available"}]},
                {"DBInstanceIdentifier": green},
            )
        ctx = _context(rds)
        dep = wait_ready(ctx, "bgd-abcdefgh12345678", timeout=3600)
        stub.assert_no_pending_responses()

    assert [m.target for m in dep.members][1:] == [
        "dbplatform-prod-pg-r1-green-def456",
        "dbplatform-prod-pg-r2-green-ghi789",
    ]
    assert ctx.clock.monotonic() == 15.0  # one poll interval between the two answers
    primary = {
        "ReadReplicaDBInstanceIdentifiers": ["dbplatform-prod-pg-r1", "dbplatform-prod-pg-r2"]
    }
    assert uncovered_replicas(primary, dep) == []


def test_alarms_in_alarm_are_found_on_every_page() -> None:
    cloudwatch = new_session().client(
        "cloudwatch", aws_access_key_id="x", aws_secret_access_key="x"
    )
    asked = {"AlarmNamePrefix": "dbplatform-prod-", "StateValue": "ALARM"}
    with Stubber(cloudwatch) as stub:
        stub.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [{"AlarmName": "dbplatform-prod-cpu", "StateValue": "ALARM"}],
                "NextToken": "page-2",
            },
            asked,
        )
        stub.add_response(
            "describe_alarms",
            {
                "MetricAlarms": [{"AlarmName": "dbplatform-prod-lag", "StateValue": "OK"}],
                "CompositeAlarms": [{"AlarmName": "dbplatform-prod-any", "StateValue": "ALARM"}],
            },
            {**asked, "NextToken": "page-2"},
        )
        ctx = _context(None)
        ctx._clients[("cloudwatch", "us-east-1")] = cloudwatch
        assert alarms_firing(ctx) == ["dbplatform-prod-any", "dbplatform-prod-cpu"]
        stub.assert_no_pending_responses()


def test_an_invalid_configuration_fails_the_wait_with_the_way_out() -> None:
    rds = new_session().client("rds", aws_access_key_id="x", aws_secret_access_key="x")
    bad = _real_deployment(
        "INVALID_CONFIGURATION", {"a": "AVAILABLE", "b": "MISSING_TARGET", "c": "AVAILABLE"}
    )
    with Stubber(rds) as stub:
        stub.add_response("describe_blue_green_deployments", {"BlueGreenDeployments": [bad]})
        with pytest.raises(Failed) as err:
            wait_ready(_context(rds), "bgd-abcdefgh12345678", timeout=60)
    assert "INVALID_CONFIGURATION" in err.value.message
    assert "MISSING_TARGET" in err.value.message
    assert "bluegreen rollback --stack prod" in err.value.message


def test_deployment_parses_members_and_replicas_without_green() -> None:
    dep = Deployment.from_api(
        _real_deployment("AVAILABLE", {"a": "AVAILABLE", "b": "AVAILABLE", "c": "AVAILABLE"})
    )
    assert dep.source == "dbplatform-prod-pg"
    assert len(dep.members) == 3
    late = {"ReadReplicaDBInstanceIdentifiers": ["dbplatform-prod-pg-r1", "dbplatform-prod-pg-r9"]}
    assert uncovered_replicas(late, dep) == ["dbplatform-prod-pg-r9"]


def test_state_record_round_trips_and_tolerates_unknown_keys() -> None:
    state = BgState(
        phase="promoted",
        deployment_id="bgd-1",
        deployment_name="n",
        source_version="16.4",
        target_version="17.2",
        members=(("a", "a-green"),),
        retired=("a-old1",),
        data_window=("2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z"),
    )
    assert BgState.from_json(state.to_json()) == state
    newer = state.to_json().replace('"phase"', '"added_later": 1, "phase"')
    assert BgState.from_json(newer) == state


def test_config_edit_keeps_comments_and_replaces_or_inserts_keys() -> None:
    text = (
        "# header comment\nconfig:\n  aws:region: us-east-1\n  dbplatform:database:\n"
        "    # why this class\n    instanceClass: db.r6g.large\n  dbplatform:owner: x\n"
    )
    once = edit_text(text, [ConfigChange("engineVersion", "16.4", "17.2")])
    assert '    engineVersion: "17.2"\n' in once
    assert "# header comment" in once and "# why this class" in once
    twice = edit_text(once, [ConfigChange("engineVersion", "17.2", "17.4")])
    assert twice.count("engineVersion") == 1 and '"17.4"' in twice
    no_block = edit_text(
        "config:\n  aws:region: us-east-1\n", [ConfigChange("instanceClass", "a", "db.r7g.large")]
    )
    assert no_block.endswith("  dbplatform:database:\n    instanceClass: db.r7g.large\n")


def test_an_edit_that_would_break_the_config_leaves_the_file_alone(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    shutil.copy(ROOT / "Pulumi.staging.yaml", tmp_path)
    before = (tmp_path / "Pulumi.staging.yaml").read_text()
    stack = resolve_stack("staging", tmp_path)
    from infra.config import ConfigError

    with pytest.raises(ConfigError):
        apply_changes(stack, [ConfigChange("engineVersion", "16.4", "9.6")])  # unsupported major
    assert (tmp_path / "Pulumi.staging.yaml").read_text() == before


@pytest.mark.moto
def test_promote_with_update_config_writes_the_stack_file(
    aws: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    shutil.copy(ROOT / "Pulumi.staging.yaml", tmp_path)
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(tmp_path))
    aws.started("staging")
    run = aws.main("promote", "--stack", "staging", "--yes", "--update-config")
    assert run.code == 0, run.text
    assert "written to Pulumi.staging.yaml" in run.stdout
    # major only: automatic minor upgrades would make a pinned minor read as a downgrade
    assert load_stack("staging", tmp_path).database.engine_version == "17"
    text = (tmp_path / "Pulumi.staging.yaml").read_text()
    assert text.startswith("# Staging relaxes")  # comments kept
    assert load_stack("staging", ROOT).database.engine_version == "16"  # the checkout untouched


@pytest.mark.moto
def test_rollback_before_switchover_deletes_only_green(aws: AwsEnv) -> None:
    aws.started("staging")
    green = next(i for i in aws.instances() if "-green-" in i)
    run = aws.main("rollback", "--stack", "staging", "--yes")
    assert run.code == 0, run.text
    after = aws.instances()
    assert green not in after
    assert after["dbplatform-staging-pg"] == "16.4"
    assert aws.deployments() == {}
    assert aws.record("staging")["phase"] == "cancelled"
    again = aws.main("rollback", "--stack", "staging", "--yes")
    assert again.code == 0 and again.stdout.startswith("nothing to do")
    # a new cycle can start once the old one is cancelled
    restart = aws.main("start", "--stack", "staging", "--engine-version", "17.2")
    assert restart.code == 0, restart.text


@pytest.mark.moto
def test_green_worker_settings_are_checked_in_greens_parameter_group(aws: AwsEnv) -> None:
    """In a logical blue/green green is the subscriber: its apply workers (one per database)
    come from the target parameter group, whatever blue has."""
    rds = aws.client("rds")
    group = "dbplatform-prod-pg17-green"
    rds.create_db_parameter_group(
        DBParameterGroupName=group, DBParameterGroupFamily="postgres17", Description="green"
    )

    def set_workers(workers: int, logical: int) -> None:
        rds.modify_db_parameter_group(
            DBParameterGroupName=group,
            Parameters=[
                {"ParameterName": n, "ParameterValue": str(v), "ApplyMethod": "pending-reboot"}
                for n, v in (
                    ("max_worker_processes", workers),
                    ("max_logical_replication_workers", logical),
                )
            ],
        )

    set_workers(8, 2)
    problems = subscriber_problems(_context(rds), group, "postgres17", 3)
    assert len(problems) == 1, problems
    want = f"max_logical_replication_workers is 2 on green (parameter group {group})"
    assert problems[0].startswith(want)
    set_workers(4, 4)
    problems = subscriber_problems(_context(rds), group, "postgres17", 3)
    assert [p.split(" on ")[0] for p in problems] == ["max_worker_processes is 4"]
    set_workers(16, 4)
    assert subscriber_problems(_context(rds), group, "postgres17", 3) == []
