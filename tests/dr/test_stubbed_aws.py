"""The AWS calls moto 5.2.5 lacks, tested with botocore's Stubber (which also checks every request
against the service model): replicated automated backups (listing and PITR restore from their
ARN), AWS Backup recovery points and restore jobs. Plus the deletion guard's exact calls."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from dbplatform.dr.discover import dr_points
from dbplatform.dr.points import Choice, Kind, RestorePoint
from dbplatform.dr.restore import (
    TAG_RUN,
    Groups,
    Placement,
    delete_owned,
    restore_call,
    wait_restore_job,
)
from dbplatform.ops import Context, Failed, Progress, resolve_stack
from infra.naming import Names
from tests.dr.conftest import ROOT
from tests.ops.support import FakeClock, new_session

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
N = Names("prod")
SRC_ARN = f"arn:aws:rds:us-east-1:123456789012:db:{N.primary}"
AB_ARN = "arn:aws:rds:us-west-2:123456789012:auto-backup:ab-0123456789abcdef"
RP_ARN = "arn:aws:backup:us-west-2:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B"
GROUPS = Groups(
    subnet_group="dbplatform-prod-db-dr",
    vpc_id="vpc-0123456789abcdef0",
    subnet_ids=("subnet-0123456789abcdef0",),
    security_group_ids=("sg-0123456789abcdef0",),
    parameter_group="dbplatform-prod-postgres16",
)
PLACEMENT = Placement(
    identifier="dbplatform-prod-usw2-pg",
    groups=GROUPS,
    instance_class="db.r6g.xlarge",
    multi_az=True,
    port=5432,
    deletion_protection=True,
    iam_auth=True,
    tags={TAG_RUN: "run-1", "stack": "prod-usw2"},
)


def _client(service: str, region: str = "us-west-2") -> Any:
    return boto3.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name=region
    ).client(service)


def test_replicated_backups_recovery_points_and_the_replica_are_found() -> None:
    rds, backup, cw = _client("rds"), _client("backup"), _client("cloudwatch")
    with Stubber(rds) as s_rds, Stubber(backup) as s_backup, Stubber(cw) as s_cw:
        s_rds.add_response(
            "describe_db_instance_automated_backups",
            {
                "DBInstanceAutomatedBackups": [
                    {  # replicated from the source region: a PITR window here
                        "DBInstanceIdentifier": N.primary,
                        "DBInstanceArn": SRC_ARN,
                        "DBInstanceAutomatedBackupsArn": AB_ARN,
                        "Region": "us-east-1",
                        "Status": "replicating",
                        "RestoreWindow": {
                            "EarliestTime": NOW - timedelta(days=7),
                            "LatestTime": NOW - timedelta(minutes=4),
                        },
                        "Encrypted": True,
                        "EngineVersion": "16.4",
                        "AllocatedStorage": 200,
                    },
                    {  # a local instance's own backups: not the source's
                        "DBInstanceIdentifier": "something-else",
                        "DBInstanceArn": "arn:aws:rds:us-west-2:123456789012:db:something-else",
                        "DBInstanceAutomatedBackupsArn": AB_ARN + "-local",
                        "Status": "active",
                        "RestoreWindow": {"EarliestTime": NOW, "LatestTime": NOW},
                    },
                ]
            },
        )
        s_rds.add_response(
            "describe_db_instances",
            {
                "DBInstances": [
                    {
                        "DBInstanceIdentifier": N.cross_region_replica,
                        "ReadReplicaSourceDBInstanceIdentifier": SRC_ARN,
                        "DBInstanceStatus": "available",
                    }
                ]
            },
        )
        s_cw.add_response(
            "get_metric_statistics",
            {"Datapoints": [{"Timestamp": NOW - timedelta(minutes=1), "Maximum": 7.0}]},
        )
        s_backup.add_response(
            "list_recovery_points_by_backup_vault",
            {
                "RecoveryPoints": [
                    {
                        "RecoveryPointArn": RP_ARN,
                        "ResourceArn": SRC_ARN,
                        "Status": "COMPLETED",
                        "CreationDate": NOW - timedelta(hours=9),
                        "IsEncrypted": True,
                    },
                    {
                        "RecoveryPointArn": RP_ARN + "-partial",
                        "ResourceArn": SRC_ARN,
                        "Status": "PARTIAL",
                        "CreationDate": NOW - timedelta(hours=1),
                    },
                    {
                        "RecoveryPointArn": RP_ARN + "-other",
                        "ResourceArn": "arn:aws:rds:us-east-1:123456789012:db:other",
                        "Status": "COMPLETED",
                        "CreationDate": NOW,
                    },
                ]
            },
            {"BackupVaultName": N.dr_backup_vault, "ByResourceType": "RDS"},
        )
        s_rds.add_response(
            "describe_db_snapshots", {"DBSnapshots": []}, {"DBInstanceIdentifier": N.primary}
        )
        found = dr_points(
            rds=rds,
            backup=backup,
            cloudwatch=cw,
            names=N,
            source_region="us-east-1",
            region="us-west-2",
            now=NOW,
        )
    by_id = {p.id: p for p in found.points}
    assert set(by_id) == {AB_ARN, N.cross_region_replica, RP_ARN}
    window = by_id[AB_ARN]
    assert window.kind is Kind.AUTOMATED_BACKUP and window.is_window
    assert window.age(NOW) == timedelta(minutes=4)
    assert window.covers(NOW - timedelta(days=2))
    assert by_id[N.cross_region_replica].age(NOW) == timedelta(seconds=7)
    assert by_id[RP_ARN].kind is Kind.RECOVERY_POINT
    assert found.notes == []


def test_a_pitr_restore_from_replicated_backups_names_their_arn_and_every_group() -> None:
    point = RestorePoint(
        kind=Kind.AUTOMATED_BACKUP,
        id=AB_ARN,
        region="us-west-2",
        latest=NOW,
        earliest=NOW - timedelta(days=7),
    )
    when = NOW - timedelta(hours=3)
    call = restore_call(
        Choice(point=point, restore_time=when, data_time=when, reference=when),
        PLACEMENT,
        backup_role_arn=None,
    )
    rds = _client("rds")
    expected = {
        "SourceDBInstanceAutomatedBackupsArn": AB_ARN,
        "TargetDBInstanceIdentifier": "dbplatform-prod-usw2-pg",
        "RestoreTime": when,
        "DBSubnetGroupName": "dbplatform-prod-db-dr",
        "VpcSecurityGroupIds": ["sg-0123456789abcdef0"],
        "DBParameterGroupName": "dbplatform-prod-postgres16",
        "DBInstanceClass": "db.r6g.xlarge",
        "MultiAZ": True,
        "Port": 5432,
        "PubliclyAccessible": False,
        "StorageType": "gp3",
        "DeletionProtection": True,
        "EnableIAMDatabaseAuthentication": True,
        "CopyTagsToSnapshot": True,
        "Tags": [{"Key": TAG_RUN, "Value": "run-1"}, {"Key": "stack", "Value": "prod-usw2"}],
    }
    with Stubber(rds) as stub:
        stub.add_response("restore_db_instance_to_point_in_time", {"DBInstance": {}}, expected)
        getattr(rds, call.method)(**call.params)
        stub.assert_no_pending_responses()


def test_an_aws_backup_restore_passes_the_groups_as_metadata() -> None:
    point = RestorePoint(kind=Kind.RECOVERY_POINT, id=RP_ARN, region="us-west-2", latest=NOW)
    role = "arn:aws:iam::123456789012:role/dbplatform-prod-backup"
    call = restore_call(
        Choice(point=point, restore_time=None, data_time=NOW, reference=NOW),
        PLACEMENT,
        backup_role_arn=role,
    )
    backup = _client("backup")
    with Stubber(backup) as stub:
        stub.add_response(
            "start_restore_job",
            {"RestoreJobId": "job-1"},
            {
                "RecoveryPointArn": RP_ARN,
                "IamRoleArn": role,
                "ResourceType": "RDS",
                "IdempotencyToken": "run-1",
                "Metadata": {
                    "DBInstanceIdentifier": "dbplatform-prod-usw2-pg",
                    "DBSubnetGroupName": "dbplatform-prod-db-dr",
                    "VpcSecurityGroupIds": '["sg-0123456789abcdef0"]',
                    "DBParameterGroupName": "dbplatform-prod-postgres16",
                    "DBInstanceClass": "db.r6g.xlarge",
                    "MultiAZ": "true",
                    "Port": "5432",
                    "PubliclyAccessible": "false",
                    "StorageType": "gp3",
                    "DeletionProtection": "true",
                    "CopyTagsToSnapshot": "true",
                },
            },
        )
        assert getattr(backup, call.method)(**call.params)["RestoreJobId"] == "job-1"


def _context(clients: dict[tuple[str, str], Any]) -> Context:
    ctx = Context(
        command="dr rebuild",
        operation="rebuild",
        args=argparse.Namespace(),
        stack=resolve_stack("prod", ROOT),
        session=new_session(),
        out=Progress(label="test", verbosity=-1),
        clock=FakeClock(),
        run_id="run-1",
        dry_run=False,
        yes=True,
    )
    ctx._clients.update(clients)
    return ctx


def test_a_restore_job_is_polled_to_its_end_and_a_failed_one_fails() -> None:
    backup = _client("backup")
    ctx = _context({("backup", "us-west-2"): backup})
    db_arn = "arn:aws:rds:us-west-2:123456789012:db:dbplatform-prod-usw2-pg"
    with Stubber(backup) as stub:
        stub.add_response("describe_restore_job", {"Status": "RUNNING"}, {"RestoreJobId": "j"})
        stub.add_response(
            "describe_restore_job",
            {"Status": "COMPLETED", "CreatedResourceArn": db_arn},
            {"RestoreJobId": "j"},
        )
        assert wait_restore_job(ctx, "us-west-2", "j", timeout=600) == db_arn
        stub.add_response(
            "describe_restore_job",
            {"Status": "FAILED", "StatusMessage": "subnet group not found"},
            {"RestoreJobId": "k"},
        )
        with pytest.raises(Failed, match="subnet group not found"):
            wait_restore_job(ctx, "us-west-2", "k", timeout=600)


def _instance(tags: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "DBInstances": [
            {
                "DBInstanceIdentifier": "rc-1",
                "DBInstanceArn": "arn:aws:rds:us-east-1:123456789012:db:rc-1",
                "DBInstanceStatus": "available",
                "TagList": [{"Key": k, "Value": v} for k, v in tags.items()],
                **extra,
            }
        ]
    }


def _delete(rds: Any, **kwargs: Any) -> str:
    return delete_owned(
        rds,
        "rc-1",
        "run-1",
        mutate=lambda c, m, p: getattr(c, m)(**p),
        sleep=lambda s: None,
        monotonic=lambda: 0.0,
        **kwargs,
    )


def test_only_this_runs_instance_is_deleted_and_a_creating_one_is_retried() -> None:
    rds = _client("rds", "us-east-1")
    one = {"DBInstanceIdentifier": "rc-1"}
    delete = {
        "DBInstanceIdentifier": "rc-1",
        "SkipFinalSnapshot": True,
        "DeleteAutomatedBackups": True,
    }
    with Stubber(rds) as stub:
        # another run's instance under the same name: left alone (no delete call is stubbed)
        stub.add_response("describe_db_instances", _instance({TAG_RUN: "run-2"}), one)
        assert _delete(rds) == "not-ours"
        # ours, still being created: the delete is retried, without a final snapshot
        stub.add_response("describe_db_instances", _instance({TAG_RUN: "run-1"}), one)
        stub.add_client_error(
            "delete_db_instance", "InvalidDBInstanceState", expected_params=delete
        )
        stub.add_response("describe_db_instances", _instance({TAG_RUN: "run-1"}), one)
        stub.add_response("delete_db_instance", {"DBInstance": {}}, delete)
        assert _delete(rds) == "deleted"
        # protected: protection is lifted first
        stub.add_response(
            "describe_db_instances", _instance({TAG_RUN: "run-1"}, DeletionProtection=True), one
        )
        stub.add_response(
            "modify_db_instance",
            {"DBInstance": {}},
            {"DBInstanceIdentifier": "rc-1", "DeletionProtection": False, "ApplyImmediately": True},
        )
        stub.add_response("delete_db_instance", {"DBInstance": {}}, delete)
        assert _delete(rds) == "deleted"
        # an AWS Backup restore is tagged only when its job ends: the run-unique name suffices
        stub.add_response("describe_db_instances", _instance({}), one)
        stub.add_response("delete_db_instance", {"DBInstance": {}}, delete)
        assert _delete(rds, untagged_ok=True) == "deleted"
        stub.add_client_error("describe_db_instances", "DBInstanceNotFound", expected_params=one)
        assert _delete(rds) == "absent"
        stub.assert_no_pending_responses()
