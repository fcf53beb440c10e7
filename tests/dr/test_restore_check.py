"""`python -m scripts.restore_check`: restore into a temporary instance placed with the stack's own
groups, verify its metadata and (by default) its data with SQL, always delete it (also on failure
and on Ctrl-C), publish the metrics. moto's instances hold no data: the restored data is a
database on the suite's real PostgreSQL server, reached through the command's `connect`."""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from dbplatform.dr import metrics
from dbplatform.dr.restore import TAG_RUN
from infra.naming import Names
from scripts.restore_check import main
from tests.dr.conftest import (
    CA_BUNDLE,
    ROOT,
    DrEnv,
    not_allowed_to_the_drills_role,
    record_calls,
    restored_database,
)
from tests.ops.support import new_session
from tests.postgres import PgServer

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
    session = new_session()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    session.events.register("provide-client-params.rds", record)
    return session


def test_restores_with_the_stacks_groups_verifies_deletes_and_publishes(
    dr: DrEnv, postgres: PgServer, pg_database: str
) -> None:
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
    connect = restored_database(postgres, pg_database, source="staging")
    session = _recording_session(calls)
    made = record_calls(session)
    run = dr.main(
        functools.partial(main, connect=connect),
        "--stack",
        "staging",
        "--json",
        session=session,
    )

    assert run.code == 0, run.text
    assert not_allowed_to_the_drills_role(made) == []  # what CI's drills job may do
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
    # the data was read: the committed restore-checks.yaml (heartbeat, row counts) passed
    assert result["data_verified"] is True and result["verified"] == "metadata and data"
    sql = {c["name"]: c for c in result["checks"] if c["name"].startswith(("sql", "heartbeat"))}
    assert sql["heartbeat fresh"]["ok"] is True
    assert sql["sql: rows in dbplatform.heartbeat"]["actual"] == "1"
    assert result["heartbeat"] is not None and result["rpo_from_data_seconds"] is not None
    assert _metric(dr, metrics.DATA_VERIFIED) == [1.0]
    # the fresh master password set on the temporary instance is what it logged in with
    (modify,) = [p for name, p in calls if name == "ModifyDBInstance"]
    assert connect.seen[0].password == modify["MasterUserPassword"]  # type: ignore[attr-defined]
    assert modify["MasterUserPassword"] not in run.stdout + run.stderr


def test_a_failed_verification_still_deletes_the_instance_and_publishes_zero(dr: DrEnv) -> None:
    dr.seed("staging", encrypted=False)  # the config says encrypted: the backup is not
    run = dr.main(main, "--stack", "staging", "--skip-sql-checks")

    assert run.code == 1
    assert "storage encrypted: expected True, got False" in run.stderr
    assert "was deleted" in run.stderr
    assert _temporary(dr) == []
    assert _metric(dr, metrics.SUCCESS) == [0.0]


def test_data_that_does_not_reach_the_restore_point_fails_the_check(
    dr: DrEnv, postgres: PgServer, pg_database: str
) -> None:
    dr.seed("staging")
    connect = restored_database(postgres, pg_database, source="staging")
    with postgres.connect(pg_database) as conn:  # the newest beat is an hour before the data
        conn.execute("UPDATE dbplatform.heartbeat SET beat_at = now() - interval '1 hour'")
    run = dr.main(functools.partial(main, connect=connect), "--stack", "staging", "--json")

    assert run.code == 1
    assert "heartbeat fresh: expected data time - 5 min <= newest beat" in run.json["message"]
    assert _temporary(dr) == []
    assert _metric(dr, metrics.SUCCESS) == [0.0]
    assert _metric(dr, metrics.DATA_VERIFIED) == [0.0]


def test_no_reach_to_the_data_fails_and_says_the_data_was_not_verified(dr: DrEnv) -> None:
    dr.seed("staging")

    def unreachable(endpoint: Any) -> Any:
        raise OSError(f"connection to {endpoint.host} refused")

    run = dr.main(functools.partial(main, connect=unreachable), "--stack", "staging", "--json")
    assert run.code == 1
    assert "sql: connect" in run.json["message"] and "OSError" in run.json["message"]
    assert run.json["data_verified"] is False
    assert _temporary(dr) == []


def test_skip_sql_checks_says_plainly_that_only_metadata_was_checked(dr: DrEnv) -> None:
    dr.seed("staging")
    run = dr.main(main, "--stack", "staging", "--skip-sql-checks")
    assert run.code == 0, run.text
    assert "checked METADATA ONLY" in run.stdout and "data was NOT read" in run.stdout
    assert _metric(dr, metrics.SUCCESS) == [1.0]
    assert _metric(dr, metrics.DATA_VERIFIED) == [0.0]


def test_sigint_during_verification_deletes_the_instance_and_exits_130(
    dr: DrEnv, tmp_path: Path
) -> None:
    dr.seed("staging")
    assert _temporary(dr) == []  # also builds this test's rds client before the clock starts
    # A server that accepts the TCP connection and never answers: the check blocks in its SQL
    # step (connect, up to its 10 s timeout) until the signal arrives.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    silent.settimeout(30)
    env = {
        **dr.env,
        "DBPLATFORM_PROJECT_DIR": str(dr.project),
        "PGSSLROOTCERT": str(dr.project / CA_BUNDLE),
        # libpq's first message must be its SSLRequest whatever this machine's settings (a
        # Kerberos cache with PGGSSENCMODE=prefer sends a GSSENCRequest first)
        "PGGSSENCMODE": "disable",
        "PGSSLNEGOTIATION": "postgres",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scripts.restore_check",
            "--stack",
            "staging",
            "--sql-host",
            "127.0.0.1",
            "--sql-port",
            str(silent.getsockname()[1]),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client: socket.socket | None = None
    try:
        client, _ = silent.accept()
        accepted = time.monotonic()
        client.settimeout(10)
        # libpq's SSLRequest (length 8, code 80877103): the check itself reached its SQL step,
        # not some other process that found this port free
        assert client.recv(8, socket.MSG_WAITALL) == bytes.fromhex("0000000804d2162f")
        assert len(_temporary(dr)) == 1  # restored and being verified
        waited = time.monotonic() - accepted
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        silent.close()
        if client is not None:
            client.close()
    # the check's own connect timeout is 10 s: a signal sent later than that finds it past SQL
    assert proc.returncode == 130, f"signal sent {waited:.1f}s after the connect\n{err}"
    assert "interrupted" in err
    # true of a restore check: a re-run starts anew (it said "re-run ... to resume")
    assert "A restore check has nothing to resume: a re-run starts a new one" in err
    assert "to resume from the state in AWS" not in err
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
    # the lookup's own end line says it refused (it said `done in` above the refusal), under
    # the command's name as typed (it said `restore_check run staging:`)
    lookup = "restore-check staging: look up the stack's subnet, security and parameter groups"
    assert f"{lookup}: refused after " in missing.stderr
    assert f"{lookup}: done" not in missing.stderr
    assert "restore_check" not in missing.stderr


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
    bad_file = tmp_path / "q.yaml"
    bad_file.write_text("queries: [{name: x}]\n")
    broken = dr.main(main, "--stack", "staging", "--queries", str(bad_file))
    assert broken.code == 2 and "queries[0].sql must be a string" in broken.stderr
    bad_lag = tmp_path / "lag.yaml"
    bad_lag.write_text("heartbeat: {maxLagMinutes: 0}\n")
    lag = dr.main(main, "--stack", "staging", "--queries", str(bad_lag))
    assert lag.code == 2 and "heartbeat.maxLagMinutes 0 must be a whole number >= 1" in lag.stderr
    # flags are checked before any AWS call (docs/config.md): a missing file too, said plainly
    calls: list[str] = []
    dr.aws.session.events.register("before-call", lambda model, **_: calls.append(model.name))
    missing = dr.main(main, "--stack", "staging", "--queries", str(tmp_path / "absent.yaml"))
    assert missing.code == 2, missing.text
    assert "absent.yaml: cannot read it (No such file or directory)" in missing.stderr
    assert calls == [] and "[Errno" not in missing.stderr
    assert _temporary(dr) == []


def test_a_failed_connect_keeps_the_whole_cause_and_the_verify_phase_ends_failed(
    dr: DrEnv,
) -> None:
    dr.seed("staging")
    cause = "[Errno -2] Name or service not known"

    def unresolvable(endpoint: Any) -> Any:
        # a libpq error as psycopg raises it: long, on two lines, the cause at the end
        raise OSError(
            f"connection is bad: connection to server at postgresql://dbadmin@{endpoint.host}"
            f".{'x' * 120}.us-east-1.rds.amazonaws.com:5432/app: failed to resolve host "
            f"'{endpoint.host}': {cause}\nIs the server running on that host?"
        )

    run = dr.main(functools.partial(main, connect=unresolvable), "--stack", "staging", "--json")
    assert run.code == 1, run.text
    (connect,) = [c for c in run.json["checks"] if c["name"] == "sql: connect"]
    for where in (run.json["message"], connect["actual"], dr.aws.audit()[-1]["message"]):
        assert f"{cause} Is the server running on that host?" in where
    assert "staging: verify: FAILED (Failed) after" in run.stderr
    assert "verify: done" not in run.stderr
    assert _temporary(dr) == []

    plain = dr.main(functools.partial(main, connect=unresolvable), "--stack", "staging")
    assert plain.code == 1
    assert f"{cause} Is the server running on that host?" in plain.stderr


def test_failed_metadata_checks_end_the_verify_phase_failed(dr: DrEnv) -> None:
    dr.seed("staging", encrypted=False)
    run = dr.main(main, "--stack", "staging", "--skip-sql-checks")
    assert run.code == 1
    assert "verify: FAILED (Failed) after" in run.stderr
    assert "storage encrypted: expected True, got False" in run.stderr


def test_no_recovery_point_advice_is_about_the_home_region_and_its_command_runs(
    dr: DrEnv,
) -> None:
    import re
    import shlex

    from scripts.dr import main as dr_main

    nothing = dr.main(main, "--stack", "staging")
    assert nothing.code == 3
    # restore-check looks in the stack's own region: its own backups, not DR replication
    assert "backup.retentionDays" in nothing.stderr and "backup.plan" in nothing.stderr
    assert "dr.backupReplication" not in nothing.stderr and "copyToDr" not in nothing.stderr
    (command,) = re.findall(r"`(dbplatform [^`]+)`", nothing.stderr)
    assert command == "dbplatform dr restore-points --stack staging --region us-east-1"
    pasted = dr.main(dr_main, *shlex.split(command)[2:])  # as pasted, after `dbplatform dr`
    assert pasted.code == 0, pasted.text
    assert "Restore points of staging in us-east-1" in pasted.stdout
