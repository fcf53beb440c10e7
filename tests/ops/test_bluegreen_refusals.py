"""Refusals of blue/green: each exits 3, changes nothing in AWS, and says what to do.

Runs in-process (`main(argv)`) against the moto server: the same code path as the command line
without a Python start-up per case.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.ops.support import AwsEnv, session_with

pytestmark = pytest.mark.moto

PRIMARY = "dbplatform-staging-pg"


def _refused(aws: AwsEnv, *args: str, says: str, session: Any = None) -> str:
    before = aws.state()
    run = aws.main(*args, session=session)
    assert run.code == 3, run.text
    assert says in run.stderr, run.stderr
    assert aws.state() == before  # nothing changed
    assert not aws.lock_held("staging")
    return run.stderr


# --- start preflight ---------------------------------------------------------------------------


def test_start_preflight_refuses_each_unsupported_setup(aws: AwsEnv) -> None:
    """One seeded stack, broken one way at a time (and repaired after each refusal)."""
    aws.seed("staging")
    rds = aws.client("rds")
    start = ("start", "--stack", "staging", "--engine-version", "17.2")

    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY, ManageMasterUserPassword=True, ApplyImmediately=True
    )
    text = _refused(aws, *start, says="RDS-managed master password")
    assert "self-managed master secret" in text
    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY,
        ManageMasterUserPassword=False,
        MasterUserPassword="a-new-password-1",
        ApplyImmediately=True,
    )

    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY, BackupRetentionPeriod=0, ApplyImmediately=True
    )
    _refused(aws, *start, says="automated backups are off")
    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY, BackupRetentionPeriod=3, ApplyImmediately=True
    )

    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="dbplatform-staging-pg-r1-sub",
        SourceDBInstanceIdentifier="dbplatform-staging-pg-r1",
    )
    _refused(aws, *start, says="(cascading)")
    rds.delete_db_instance(
        DBInstanceIdentifier="dbplatform-staging-pg-r1-sub", SkipFinalSnapshot=True
    )

    def set_logical(value: str) -> None:
        rds.modify_db_parameter_group(
            DBParameterGroupName="dbplatform-staging-postgres16",
            Parameters=[
                {
                    "ParameterName": "rds.logical_replication",
                    "ParameterValue": value,
                    "ApplyMethod": "pending-reboot",
                }
            ],
        )

    set_logical("0")
    _refused(aws, *start, says="rds.logical_replication is not 1")
    set_logical("1")

    rds.delete_db_parameter_group(DBParameterGroupName="dbplatform-staging-postgres17")
    text = _refused(aws, *start, says="dbplatform-staging-postgres17 (postgres17) does not exist")
    assert "--parameter-group" in text

    dr_arn = "arn:aws:rds:us-west-2:123456789012:db:dbplatform-staging-pg-dr"

    # moto's server fails (HTTP 500) creating a cross-Region replica of an instance with a
    # parameter group and KMS key; show the primary as RDS reports one: its ARN among replicas.
    def with_dr_replica(parsed: dict[str, Any], **_: Any) -> None:
        for inst in parsed.get("DBInstances", []):
            if inst["DBInstanceIdentifier"] == PRIMARY:
                inst.setdefault("ReadReplicaDBInstanceIdentifiers", []).append(dr_arn)

    session = session_with([("after-call.rds.DescribeDBInstances", with_dr_replica)])
    text = _refused(aws, *start, says="cross-Region read replica", session=session)
    assert dr_arn in text
    assert aws.deployments() == {}


def test_start_refuses_when_another_deployment_runs(aws: AwsEnv) -> None:
    aws.seed("staging")
    rds = aws.client("rds")
    arn = rds.describe_db_instances(DBInstanceIdentifier=PRIMARY)["DBInstances"][0]["DBInstanceArn"]
    rds.create_blue_green_deployment(
        BlueGreenDeploymentName="someone-else", Source=arn, TargetEngineVersion="16.6"
    )
    text = _refused(
        aws,
        "start",
        "--stack",
        "staging",
        "--engine-version",
        "17.2",
        says="another blue/green deployment exists",
    )
    assert "rollback --stack staging" in text


def test_start_twice_resumes_and_then_has_nothing_to_do(aws: AwsEnv) -> None:
    aws.started("staging")
    before = aws.state()
    run = aws.main("start", "--stack", "staging", "--engine-version", "17.2")
    assert run.code == 0, run.text
    assert run.stdout.startswith("nothing to do")
    assert aws.state()["deployments"] == before["deployments"]


# --- promote gates -----------------------------------------------------------------------------


def test_promote_gates_each_refuse(aws: AwsEnv) -> None:
    """One started stack; each gate fails in turn, and nothing changes."""
    aws.started("staging", lag=None)
    promote = ("promote", "--stack", "staging", "--yes")

    # 16 -> 17 is a major upgrade: logical replication, measured on blue (AWS "Monitoring
    # replica lag prior to switchover"), not by green's ReplicaLag.
    _refused(
        aws, *promote, says="no OldestReplicationSlotLag datapoint for blue dbplatform-staging-pg"
    )
    aws.report_green_lag(1.0)

    # moto makes green AVAILABLE at once: show the deployment as real RDS does while it
    # provisions (the status a promote must refuse on).
    def provisioning(parsed: dict[str, Any], **_: Any) -> None:
        for dep in parsed.get("BlueGreenDeployments", []):
            dep["Status"] = "PROVISIONING"
            for m in dep["SwitchoverDetails"]:
                m["Status"] = "PROVISIONING"

    session = session_with([("after-call.rds.DescribeBlueGreenDeployments", provisioning)])
    _refused(aws, *promote, says="green is not ready", session=session)

    _refused(aws, "promote", "--stack", "staging", says="Add --yes to confirm")

    with _http_server(503) as url:
        _refused(aws, *promote, "--health-url", url, says="application not ready before switchover")

    cw = aws.client("cloudwatch")
    cw.set_alarm_state(
        AlarmName="dbplatform-staging-pg-cpu-critical", StateValue="ALARM", StateReason="test"
    )
    _refused(aws, *promote, says="in ALARM: dbplatform-staging-pg-cpu-critical")
    cw.set_alarm_state(
        AlarmName="dbplatform-staging-pg-cpu-critical", StateValue="OK", StateReason="test"
    )

    aws.report_green_lag(600.0)
    _refused(
        aws,
        *promote,
        says="600.0 MB behind blue dbplatform-staging-pg (limit --max-slot-lag-mb 64)",
    )
    aws.report_green_lag(10.0)
    _refused(aws, *promote, "--max-slot-lag-mb", "5", says="(limit --max-slot-lag-mb 5)")


def _phase_end(stderr: str, phase: str) -> tuple[str, str]:
    """The end line of `phase` and the first `refused:`/`failed:` line after it."""
    lines = stderr.splitlines()
    # `<label>: <phase> ...` starts it; `<label>: <phase>: <how it ended> <duration>` ends it
    (at,) = [i for i, line in enumerate(lines) if line.startswith(f"{phase}: ")]
    verdict = next(line for line in lines[at + 1 :] if line.startswith(("refused:", "failed:")))
    return lines[at], verdict


def test_a_refused_preflight_or_gate_ends_its_phase_refused_not_done(aws: AwsEnv) -> None:
    """UX review: a refused promote printed `gates: done in 0.0s` (on a terminal `✓ gates`) just
    above `refused: ...`. A check phase ends as its verdict does (docs/operations.md)."""
    aws.seed("staging")
    rds = aws.client("rds")
    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY, BackupRetentionPeriod=0, ApplyImmediately=True
    )
    start = ("start", "--stack", "staging", "--engine-version", "17.2")
    text = _refused(aws, *start, says="automated backups are off")
    end, verdict = _phase_end(text, "bluegreen start staging: preflight")
    assert end.startswith("bluegreen start staging: preflight: refused after "), end
    assert verdict.startswith("refused: blue/green cannot start on dbplatform-staging-pg")
    assert "preflight: done" not in text

    rds.modify_db_instance(
        DBInstanceIdentifier=PRIMARY, BackupRetentionPeriod=3, ApplyImmediately=True
    )
    assert aws.main(*start).code == 0
    text = _refused(aws, "promote", "--stack", "staging", "--yes", says="datapoint")
    end, verdict = _phase_end(text, "bluegreen promote staging: gates")
    assert end.startswith("bluegreen promote staging: gates: refused after "), end
    assert verdict.startswith("refused: promote of dbplatform-staging-pg refused")
    assert "gates: done" not in text


def test_the_rollback_refusal_says_a_command_line_rollback_accepts(
    aws: AwsEnv, tmp_path: Path
) -> None:
    """The refusal to lose the data window says the command to accept it, carrying this run's
    SQL flags: each one is a flag of rollback, read back by its own parser (UX review)."""
    import shlex

    from dbplatform.cmdline import parse_args
    from scripts.bluegreen import build_parser

    aws.promoted("staging")
    bundle = tmp_path / "rds-ca.pem"
    bundle.write_text("not read before the refusal\n")
    for given in (
        ("--skip-sql-checks",),
        ("--sql-ca-bundle", str(bundle), "--sql-host", "127.0.0.1", "--sql-port", "15432"),
    ):
        text = _refused(aws, "rollback", "--stack", "staging", "--yes", *given, says="re-run: ")
        line = text.split("re-run: ", 1)[1].splitlines()[0]
        words = shlex.split(line)
        assert words[:3] == ["dbplatform", "bluegreen", "rollback"], line
        args = parse_args(build_parser(), words[2:])  # exit 2 on any flag rollback lacks
        assert args.accept_data_window == aws.record("staging")["switchover_at"]
        assert args.yes
        assert args.skip_sql_checks == ("--skip-sql-checks" in given)
        assert (args.sql_host, args.sql_port) == (
            (None, None) if "--sql-host" not in given else ("127.0.0.1", 15432)
        )


def test_the_slot_lag_gate_reads_the_metric_in_bytes_as_rds_sends_it(aws: AwsEnv) -> None:
    # RDS publishes OldestReplicationSlotLag in bytes (the console's "(MB)" is a display unit;
    # Amazon RDS User Guide, "Amazon CloudWatch metrics for Amazon RDS"): 3 MiB of WAL reads
    # 3.0 MB, not three million.
    aws.started("staging", lag=None)
    aws.client("cloudwatch").put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "OldestReplicationSlotLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": PRIMARY}],
                "Value": 3 * 1024 * 1024,
                "Unit": "Bytes",
            }
        ],
    )
    promote = ("promote", "--stack", "staging", "--yes")
    _refused(
        aws,
        *promote,
        "--max-slot-lag-mb",
        "2",
        says=f"green's logical replication is 3.0 MB behind blue {PRIMARY} (limit",
    )
    run = aws.main(*promote)  # the default limit, 64 MB
    assert run.code == 0, run.text
    assert aws.instances()[PRIMARY] == "17.2"


def test_promote_checks_a_ready_application_before_and_after(aws: AwsEnv) -> None:
    aws.started("staging")
    with _http_server(200) as url:
        run = aws.main("promote", "--stack", "staging", "--yes", "--health-url", url)
    assert run.code == 0, run.text
    assert aws.instances()[PRIMARY] == "17.2"


def test_commands_refuse_while_another_operator_holds_the_lock(aws: AwsEnv) -> None:
    aws.started("staging")
    aws.client("ssm").put_parameter(
        Name="/dbplatform/staging/ops/lock-bluegreen",
        Type="String",
        Value='{"owner": "carol@bastion", "operation": "bluegreen rollback", "run_id": "r", '
        '"acquired": "2025-01-01T00:00:00Z", "expires": "2999-01-01T00:00:00Z"}',
    )
    before = aws.state()
    run = aws.main("promote", "--stack", "staging", "--yes")
    assert run.code == 3
    assert "carol@bastion" in run.stderr and "bluegreen rollback" in run.stderr
    assert aws.state() == before


def test_promote_without_a_deployment_says_to_start(aws: AwsEnv) -> None:
    aws.seed("staging")
    _refused(aws, "promote", "--stack", "staging", "--yes", says="bluegreen start --stack staging")


def test_finalize_waits_for_the_soak(aws: AwsEnv) -> None:
    aws.promoted("staging")
    text = _refused(aws, "finalize", "--stack", "staging", "--yes", says="soak period")
    assert "--ignore-soak" in text


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _http_server(status: int) -> Iterator[str]:
    """An application readiness endpoint on 127.0.0.1 answering `status`."""
    handler = type("H", (_Handler,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ready"
    finally:
        server.shutdown()
        server.server_close()
