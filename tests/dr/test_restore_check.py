"""`python -m scripts.restore_check`: restore into a temporary instance placed with the stack's own
groups, verify, always delete it (also on failure and on Ctrl-C), publish the metric."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from dbplatform.dr import metrics
from dbplatform.dr.restore import TAG_RUN
from dbplatform.dr.verify import Connection, Query, sql_checks
from infra.naming import Names
from scripts.restore_check import main
from tests.dr.conftest import ROOT, DrEnv

RC_PREFIX = Names("staging").restore_check_instance("")


def _temporary(dr: DrEnv) -> list[str]:
    return [
        i["DBInstanceIdentifier"]
        for i in dr.client("rds").describe_db_instances()["DBInstances"]
        if i["DBInstanceIdentifier"].startswith(RC_PREFIX)
    ]


def _metric(dr: DrEnv, name: str) -> list[float]:
    now = datetime.now(UTC)
    stats = dr.client("cloudwatch").get_metric_statistics(
        Namespace=metrics.NAMESPACE,
        MetricName=name,
        Dimensions=[{"Name": "Stack", "Value": "staging"}],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Minimum"],
    )
    return [d["Minimum"] for d in stats["Datapoints"]]


def _recording_session(calls: list[tuple[str, dict[str, Any]]]) -> boto3.Session:
    session = boto3.Session(region_name="us-east-1")

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    session.events.register("provide-client-params.rds", record)
    return session


def test_restores_with_the_stacks_groups_verifies_deletes_and_publishes(dr: DrEnv) -> None:
    seeded = dr.seed("staging")
    # another run's temporary instance, still being verified: never this run's to delete
    neighbour = f"{RC_PREFIX}20260301t091700z-a1b2c3"
    dr.client("rds").create_db_instance(
        DBInstanceIdentifier=neighbour,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="dbadmin",
        MasterUserPassword="another-runs-instance",
        Tags=[{"Key": TAG_RUN, "Value": "20260301T091700Z-a1b2c3"}],
    )
    primary_before = dr.source_view(seeded.primary)
    calls: list[tuple[str, dict[str, Any]]] = []
    run = dr.main(main, "--stack", "staging", "--json", session=_recording_session(calls))

    assert run.code == 0, run.text
    (restore,) = [p for name, p in calls if name == "RestoreDBInstanceToPointInTime"]
    # a restore otherwise gets the default subnet, security and parameter groups
    assert restore["SourceDBInstanceIdentifier"] == seeded.primary
    assert restore["DBSubnetGroupName"] == seeded.subnet_group
    assert restore["VpcSecurityGroupIds"] == [seeded.security_group_id]
    assert restore["DBParameterGroupName"] == seeded.parameter_group
    assert restore["UseLatestRestorableTime"] is True
    temp = restore["TargetDBInstanceIdentifier"]
    assert temp.startswith(RC_PREFIX)
    (delete,) = [p for name, p in calls if name == "DeleteDBInstance"]
    assert delete == {
        "DBInstanceIdentifier": temp,
        "SkipFinalSnapshot": True,
        "DeleteAutomatedBackups": True,
    }
    assert _temporary(dr) == [neighbour]
    assert dr.source_view(seeded.primary) == primary_before
    assert dr.client("rds").describe_db_snapshots(SnapshotType="manual")["DBSnapshots"] == []
    result = run.json
    assert result["ok"] is True and result["cleanup"] == "deleted"
    assert {c["name"] for c in result["checks"]} >= {
        "engine version",
        "storage encrypted",
        "subnet group",
        "security groups",
        "parameter group",
    }
    assert _metric(dr, metrics.SUCCESS) == [1.0]
    assert len(_metric(dr, metrics.DURATION)) == 1


def test_a_failed_verification_still_deletes_the_instance_and_publishes_zero(dr: DrEnv) -> None:
    dr.seed("staging", encrypted=False)  # the config says encrypted: the backup is not
    run = dr.main(main, "--stack", "staging")

    assert run.code == 1
    assert "storage encrypted: expected True, got False" in run.stderr
    assert "was deleted" in run.stderr
    assert _temporary(dr) == []
    assert _metric(dr, metrics.SUCCESS) == [0.0]


def test_sigint_during_verification_deletes_the_instance_and_exits_130(
    dr: DrEnv, tmp_path: Path
) -> None:
    dr.seed("staging")
    started = tmp_path / "psql-started"
    fake_psql = tmp_path / "psql"
    fake_psql.write_text(f"#!/bin/sh\ntouch {started}\nexec sleep 30\n")
    fake_psql.chmod(0o755)
    env = {**dr.env, "DBPLATFORM_PROJECT_DIR": str(dr.project)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.restore_check",
            "--stack",
            "staging",
            "--sql-check",
            "--query",
            "SELECT count(*) FROM accounts",
            "--psql",
            str(fake_psql),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the check never reached its SQL step"
        assert len(_temporary(dr)) == 1  # restored and being verified
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert _temporary(dr) == []


def test_no_recovery_point_or_missing_groups_refuse_with_nothing_created(dr: DrEnv) -> None:
    nothing = dr.main(main, "--stack", "staging")
    assert nothing.code == 3
    assert "no restorable recovery point in us-east-1" in nothing.stderr
    assert "nothing was created" in nothing.stderr

    seeded = dr.seed("staging")
    dr.client("rds").delete_db_subnet_group(DBSubnetGroupName=seeded.subnet_group)
    missing = dr.main(main, "--stack", "staging")
    assert missing.code == 3
    assert f"DB subnet group {seeded.subnet_group}" in missing.stderr
    assert _temporary(dr) == []


def test_dry_run_prints_the_restore_with_its_groups_and_creates_nothing(dr: DrEnv) -> None:
    seeded = dr.seed("staging")
    run = dr.main(
        main, "--stack", "staging", "--dry-run", "--json", "--instance-class", "db.t4g.micro"
    )
    assert run.code == 0, run.text
    planned = {c["operation"]: c for c in run.json["planned_calls"]}
    restore = planned["RestoreDBInstanceToPointInTime"]
    assert restore["DBSubnetGroupName"] == seeded.subnet_group
    assert restore["DBParameterGroupName"] == seeded.parameter_group
    # a temporary instance: as small as asked, single-AZ, deletable
    assert restore["DBInstanceClass"] == "db.t4g.micro"
    assert restore["MultiAZ"] is False and restore["DeletionProtection"] is False
    assert set(planned) == {"RestoreDBInstanceToPointInTime", "DeleteDBInstance", "PutMetricData"}
    assert _temporary(dr) == []


def test_bad_usage_exits_2_before_anything_happens(dr: DrEnv, tmp_path: Path) -> None:
    no_query = dr.main(main, "--stack", "staging", "--sql-check")
    assert no_query.code == 2 and "--query" in no_query.stderr
    bad_file = tmp_path / "q.yaml"
    bad_file.write_text("queries: [{name: x}]\n")
    broken = dr.main(main, "--stack", "staging", "--queries", str(bad_file))
    assert broken.code == 2 and "needs a 'sql' string" in broken.stderr


def test_sql_checks_pass_the_password_only_in_the_environment_and_compare_minimums() -> None:
    seen: list[tuple[list[str], dict[str, str]]] = []
    answers = iter(["42\n", "0\n", ""])

    def runner(argv: list[str], env: dict[str, str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append((argv, env))
        out = next(answers)
        code = 0 if out else 2
        return subprocess.CompletedProcess(argv, code, out, "" if out else "FATAL: no route")

    conn = Connection(host="db.example", port=5432, user="dbadmin", password="s3cret", dbname="app")
    checks = sql_checks(
        conn,
        [
            Query(name="accounts", sql="SELECT count(*) FROM accounts", min=1),
            Query(name="orders", sql="SELECT count(*) FROM orders", min=1),
            Query(name="ping", sql="SELECT 1"),
        ],
        psql="/usr/bin/psql",
        runner=runner,
    )
    assert [(c.ok, c.actual) for c in checks] == [
        (True, "42"),
        (False, "0"),
        (False, "error: FATAL: no route"),
    ]
    argv, env = seen[0]
    assert "s3cret" not in " ".join(argv)
    assert env["PGPASSWORD"] == "s3cret"
    assert env["PGSSLMODE"] == os.environ.get("PGSSLMODE", "require")
    assert argv[-2:] == ["-c", "SELECT count(*) FROM accounts"]
