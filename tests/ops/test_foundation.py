"""The operations foundation as a command author and an operator see it: flags, exit codes,
lock, audit record, dry run, confirmation, retries, AWS environment. A tiny command defined
here runs in-process against the moto server."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from dbplatform.ops import (
    Context,
    Operation,
    Poll,
    Refused,
    Result,
    add_operation,
    retry_config,
    run_command,
    session_for,
    touched_ids,
)
from dbplatform.ops.aws import region_note
from infra.config import load_stack
from tests.ops.support import ROOT, AwsEnv, Burst, FakeClock, no_backoff_sleep, session_with

LOCK = "/dbplatform/staging/ops/lock-testcmd"
MARK = "/dbplatform/staging/test-mark"
WEST = "us-west-2"
DB = "test-db"
SNAP = "test-db-snap"


def _act(ctx: Context) -> Result:
    what = ctx.args.do
    ssm = ctx.client("ssm")
    if what == "mark":
        ctx.confirm("write the mark") if ctx.args.confirm else None
        ctx.mutate(ssm, "put_parameter", {"Name": MARK, "Value": "x", "Type": "String"})
        return Result("marked", data={"mark": MARK})
    if what == "unrouted":  # a bug: a mutating call that bypasses ctx.mutate
        ssm.put_parameter(Name=MARK, Value="x", Type="String")
        return Result("should not get here")
    if what == "refuse":
        raise Refused("precondition unmet: do the thing first")
    if what == "aws-error":
        ctx.client("rds").describe_db_instances(DBInstanceIdentifier="no-such-db")
    if what == "interrupt":
        raise KeyboardInterrupt
    if what == "bug":
        return Result(str(1 / 0))
    if what == "read":
        ctx.client("rds").describe_db_instances()
        return Result("read ok")
    if what == "wait":  # AWS never gets there
        ctx.wait_for("the mark", lambda: Poll(False, "still creating"), timeout=3 * 3600)
    if what == "modify":
        params = {"DBInstanceIdentifier": DB, "BackupRetentionPeriod": 1, "ApplyImmediately": True}
        ctx.mutate(ctx.client("rds"), "modify_db_instance", params)
        return Result("modified")
    if what == "snapshot":
        params = {"DBSnapshotIdentifier": SNAP, "DBInstanceIdentifier": DB}
        ctx.mutate(ctx.client("rds"), "create_db_snapshot", params)
        return Result("snapshot taken")
    return Result("nothing to do", nothing_to_do=True)


def _elsewhere(ctx: Context) -> Result:
    """An operation that must not depend on the stack's region (as DR rebuilds)."""
    with ctx.lock(ctx.args.region):
        ctx.mutate(
            ctx.client("ssm", ctx.args.region),
            "put_parameter",
            {"Name": MARK, "Value": "x", "Type": "String"},
        )
    return Result("marked elsewhere")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.testcmd")
    sub = parser.add_subparsers(required=True)
    p = add_operation(sub, Operation("act", "act on the stack", _act))
    p.add_argument("--do", default="noop")
    p.add_argument("--confirm", action="store_true")
    add_operation(sub, Operation("look", "read only", _act, locks=False)).add_argument(
        "--do", default="read"
    )
    add_operation(
        sub, Operation("peek", "read only", _act, locks=False, read_only=True)
    ).add_argument("--do", default="read")
    p = add_operation(
        sub,
        Operation(
            "elsewhere",
            "lock in a region",
            _elsewhere,
            locks=False,
            who_region=lambda ctx: str(ctx.args.region),
        ),
    )
    p.add_argument("--region", default=WEST)
    return parser


def _main(
    argv: Sequence[str], *, session: boto3.Session | None = None, clock: object = None
) -> int:
    return run_command("testcmd", _parser(), argv, session=session, clock=clock)  # type: ignore[arg-type]


def _put_lock(aws: AwsEnv, owner: str, expires: datetime, region: str = "us-east-1") -> None:
    value = {
        "owner": owner,
        "operation": "bluegreen promote",
        "run_id": "other-run",
        "acquired": "2025-01-01T00:00:00Z",
        "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    aws.client("ssm", region).put_parameter(Name=LOCK, Value=json.dumps(value), Type="String")


def test_a_run_takes_and_releases_the_lock_and_appends_an_audit_record(aws: AwsEnv) -> None:
    seen: list[str] = []

    def watch(params: dict[str, object], **_: object) -> None:
        seen.append(str(params.get("Name")))

    session = session_with([("before-parameter-build.ssm.PutParameter", watch)])
    run = aws.main("act", "--stack", "staging", "--do", "mark", session=session, main=_main)

    assert run.code == 0, run.text
    assert run.stdout.strip() == "marked"
    assert seen[0] == LOCK  # the lock was taken before the handler ran
    assert not aws.lock_held("staging")  # and released after
    (record,) = aws.audit()
    assert record["command"] == "testcmd act"
    assert record["stack"] == "staging"
    assert record["outcome"] == "done"
    assert record["exit_code"] == 0
    assert "@" in record["user"]
    assert record["aws_identity"].startswith("arn:aws:")
    assert f"ssm:{MARK}" in record["aws_ids"]
    assert record["args"]["do"] == "mark"


def test_a_held_lock_refuses_naming_owner_and_operation(aws: AwsEnv) -> None:
    _put_lock(aws, "alice@laptop", datetime.now(UTC) + timedelta(minutes=30))
    run = aws.main("act", "--stack", "staging", "--do", "mark", "--break-lock", main=_main)

    assert run.code == 3
    assert "alice@laptop" in run.stderr and "bluegreen promote" in run.stderr
    assert MARK not in aws.parameters()  # the handler never ran
    assert json.loads(aws.parameters()[LOCK])["owner"] == "alice@laptop"  # never broken


def test_a_stale_lock_is_broken_only_with_break_lock(aws: AwsEnv) -> None:
    _put_lock(aws, "bob@ci", datetime.now(UTC) - timedelta(minutes=1))

    refused = aws.main("act", "--stack", "staging", "--do", "mark", main=_main)
    assert refused.code == 3
    assert "stale" in refused.stderr and "--break-lock" in refused.stderr
    assert MARK not in aws.parameters()

    broken = aws.main("act", "--stack", "staging", "--do", "mark", "--break-lock", main=_main)
    assert broken.code == 0, broken.text
    assert "breaking stale lock" in broken.stderr
    assert MARK in aws.parameters()
    assert not aws.lock_held("staging")


def test_a_read_only_operation_has_no_flags_that_would_do_nothing_and_cannot_change_aws(
    aws: AwsEnv,
) -> None:
    aws.seed("staging")
    for flag in ("--dry-run", "--yes", "--break-lock"):
        run = aws.main("peek", "--stack", "staging", flag, main=_main)
        assert run.code == 2 and "unrecognized arguments" in run.stderr, (flag, run.text)
    assert aws.main("peek", "--stack", "staging", main=_main).code == 0
    before = aws.state()
    run = aws.main("peek", "--stack", "staging", "--do", "modify", main=_main)
    assert run.code == 1 and "read-only" in run.stderr, run.text
    assert aws.state() == before


def test_read_only_operations_do_not_lock(aws: AwsEnv) -> None:
    _put_lock(aws, "alice@laptop", datetime.now(UTC) + timedelta(minutes=30))
    run = aws.main("look", "--stack", "staging", main=_main)
    assert run.code == 0, run.text


@pytest.mark.parametrize(
    ("do", "code", "outcome", "says"),
    [
        ("refuse", 3, "refused", "refused: precondition unmet"),
        ("aws-error", 1, "failed", "DBInstanceNotFound"),
        ("interrupt", 130, "interrupted", "re-run the same command to resume"),
        ("bug", 1, "failed", "internal error (ZeroDivisionError"),
        ("noop", 0, "nothing-to-do", "nothing to do"),
    ],
)
def test_every_outcome_maps_to_its_exit_code_without_a_traceback(
    aws: AwsEnv, do: str, code: int, outcome: str, says: str
) -> None:
    run = aws.main("act", "--stack", "staging", "--do", do, main=_main)

    assert run.code == code
    assert says in run.text
    assert "Traceback" not in run.text
    (record,) = aws.audit()
    assert (record["outcome"], record["exit_code"]) == (outcome, code)
    if do == "bug":
        assert "ZeroDivisionError" in record["error"]  # the details go to the audit log
    assert not aws.lock_held("staging")


def test_an_interrupted_read_only_operation_does_not_promise_a_resume(aws: AwsEnv) -> None:
    """It changed nothing, so there is nothing to resume (UX review: every interruption said
    "re-run the same command to resume")."""
    run = aws.main("peek", "--stack", "staging", "--do", "interrupt", main=_main)
    assert run.code == 130
    assert run.stderr.splitlines()[-1] == "interrupted: It changes nothing, so re-run it"


def test_bad_config_and_bad_usage_exit_2(
    aws: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = aws.main("act", "--stack", "nosuch", main=_main)
    assert missing.code == 2
    assert "Pulumi.nosuch.yaml not found" in missing.stderr and "prod" in missing.stderr

    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  aws:region: us-east-1\n  dbplatform:owner: x\n"
        "  dbplatform:database:\n    port: 99999999999\n    engineVersion: 16.4\n"
    )
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(tmp_path))
    broken = aws.main("act", "--stack", "broken", main=_main)
    assert broken.code == 2
    assert "dbplatform:database.engineVersion" in broken.stderr  # every problem is listed
    assert "Traceback" not in broken.text

    usage = aws.main("act", "--stack", "staging", "--no-such-flag", main=_main)
    assert usage.code == 2


def test_dry_run_prints_mutations_and_makes_none(aws: AwsEnv) -> None:
    run = aws.main("act", "--stack", "staging", "--do", "mark", "--dry-run", "--json", main=_main)

    assert run.code == 0, run.text
    result = run.json
    assert result["dry_run"] is True and result["outcome"] == "dry-run"
    ops = [(c["service"], c["operation"], c.get("Name")) for c in result["planned_calls"]]
    assert ("ssm", "PutParameter", LOCK) in ops and ("ssm", "PutParameter", MARK) in ops
    assert "DRY-RUN would call ssm:PutParameter" in run.stderr
    assert aws.parameters() == {}  # neither the lock nor the mark exists


def test_dry_run_stops_a_mutating_call_that_bypasses_mutate(aws: AwsEnv) -> None:
    run = aws.main("act", "--stack", "staging", "--do", "unrouted", "--dry-run", main=_main)
    assert run.code == 1
    assert "dry run attempted mutating call PutParameter" in run.stderr
    assert aws.parameters() == {}


def test_destructive_steps_need_yes_without_a_terminal(aws: AwsEnv) -> None:
    refused = aws.main("act", "--stack", "staging", "--do", "mark", "--confirm", main=_main)
    assert refused.code == 3
    assert "add --yes" in refused.stderr.lower()
    assert MARK not in aws.parameters()

    confirmed = aws.main(
        "act", "--stack", "staging", "--do", "mark", "--confirm", "--yes", main=_main
    )
    assert confirmed.code == 0
    assert MARK in aws.parameters()


def test_throttling_and_5xx_are_retried_with_backoff(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Standard mode: the same retries and backoff as the default adaptive mode, without its
    # client-side rate limiter, which would make this test wait in real time.
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    burst = Burst([(400, "Throttling"), (400, "ThrottlingException"), (503, "ServiceUnavailable")])
    session = session_with([("before-send.rds.DescribeDBInstances", burst)])
    backoff: list[float] = []
    with no_backoff_sleep(backoff):
        run = aws.main("look", "--stack", "staging", session=session, main=_main)

    assert run.code == 0, run.text
    assert burst.seen == 4  # three failed attempts, then through to the server
    assert len(backoff) == 3  # botocore backed off before each retry


def test_an_exhausted_retry_budget_fails_with_the_aws_error_code(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    burst = Burst([(400, "Throttling")] * 10)
    session = session_with([("before-send.rds.DescribeDBInstances", burst)])
    with no_backoff_sleep([]):
        run = aws.main("look", "--stack", "staging", session=session, main=_main)
    assert run.code == 1
    assert "Throttling" in run.stderr
    assert burst.seen == 2  # AWS_MAX_ATTEMPTS counts every attempt


def test_sessions_follow_the_standard_aws_environment(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_stack("prod")
    session = session_for(cfg)
    assert session.region_name == cfg.region
    # boto3 itself honors AWS_ENDPOINT_URL: that is how the tests reach moto
    assert session.client("rds").meta.endpoint_url == aws.server.url
    assert retry_config().retries == {"mode": "adaptive", "total_max_attempts": 8}
    assert session_for(cfg, region="us-west-2").region_name == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    note = region_note(cfg)
    assert note is not None and "eu-west-1" in note and "us-east-1" in note
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    run = aws.main("look", "--stack", "staging", main=_main, own_session=True)
    assert run.code == 2 and "no-such-profile" in run.stderr
    assert "set AWS_PROFILE to a profile in your AWS config" in run.stderr  # the setting to fix


def test_a_wait_is_bounded_and_extends_the_lock_while_it_runs(aws: AwsEnv) -> None:
    puts: list[bool] = []

    def watch(params: dict[str, object], **_: object) -> None:
        if params.get("Name") == LOCK:
            puts.append(bool(params["Overwrite"]))

    clock = FakeClock()  # three hours of waiting in no time
    session = session_with([("before-parameter-build.ssm.PutParameter", watch)])
    run = aws.main(
        "act", "--stack", "staging", "--do", "wait", session=session, clock=clock, main=_main
    )

    assert run.code == 1, run.text
    assert "gave up waiting for the mark after 10800s (last status: still creating)" in run.stderr
    assert "re-run the same command to keep waiting" in run.stderr
    assert clock.slept == 3 * 3600
    # taken once, then extended during the wait (the one-hour lock would have expired)
    assert puts[0] is False and puts.count(True) >= 3
    assert not aws.lock_held("staging")


def test_the_audit_record_lists_what_a_call_changed_not_what_it_read(aws: AwsEnv) -> None:
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier=DB, Engine="postgres", DBInstanceClass="db.t4g.micro"
    )
    for do in ("modify", "snapshot"):
        run = aws.main("act", "--stack", "staging", "--do", do, main=_main)
        assert run.code == 0, run.text
    modify, snapshot = aws.audit()
    assert modify["aws_ids"] == [f"rds:{DB}"]  # not its CA certificate (in the response)
    assert snapshot["aws_ids"] == [f"rds:{SNAP}"]  # not the instance it copies


@pytest.mark.parametrize(
    ("operation", "params", "response", "ids"),
    [
        (
            "RestoreDBInstanceToPointInTime",
            {"SourceDBInstanceIdentifier": "src", "TargetDBInstanceIdentifier": "new",
             "DBSubnetGroupName": "subnets", "DBParameterGroupName": "params"},
            {"DBInstance": {"DBInstanceIdentifier": "new", "CACertificateIdentifier": "rds-ca",
                            "ReadReplicaSourceDBInstanceIdentifier": "src"}},
            ["rds:new"],
        ),
        (
            "RestoreDBInstanceFromDBSnapshot",
            {"DBInstanceIdentifier": "new", "DBSnapshotIdentifier": "snap", "KmsKeyId": "key"},
            {"DBInstance": {"DBInstanceIdentifier": "new"}},
            ["rds:new"],
        ),
        (
            "StartRestoreJob",
            {"RecoveryPointArn": "arn:aws:rds:us-west-2:1:snapshot:awsbackup:x",
             "IamRoleArn": "arn:aws:iam::1:role/r", "Metadata": {"DBInstanceIdentifier": "new"}},
            {"RestoreJobId": "job-1"},
            [],
        ),
        (
            "ModifyDBParameterGroup",
            {"DBParameterGroupName": "params", "Parameters": []},
            {"DBParameterGroupName": "params"},
            ["rds:params"],
        ),
        (
            "DeleteDBInstance",
            {"DBInstanceIdentifier": "old", "FinalDBSnapshotIdentifier": "old-final"},
            {"DBInstance": {"DBInstanceIdentifier": "old"}},
            ["rds:old", "rds:old-final"],
        ),
    ],
)  # fmt: skip
def test_touched_ids_skip_sources_keys_roles_and_certificates(
    operation: str, params: dict[str, object], response: dict[str, object], ids: list[str]
) -> None:
    assert touched_ids("rds", operation, params, response) == ids


def test_an_operation_can_hold_the_lock_in_another_region(aws: AwsEnv) -> None:
    regions: list[str] = []

    def identity_region(context: dict[str, str], **_: object) -> None:
        regions.append(context["client_region"])

    session = session_with([("before-call.sts.GetCallerIdentity", identity_region)])
    # the stack's own lock (us-east-1) is held: it does not stop work in us-west-2
    _put_lock(aws, "alice@laptop", datetime.now(UTC) + timedelta(minutes=30))
    run = aws.main("elsewhere", "--stack", "staging", session=session, main=_main)
    assert run.code == 0, run.text
    west = aws.client("ssm", WEST).describe_parameters()["Parameters"]
    assert [p["Name"] for p in west] == [MARK]  # and the lock taken there was released
    assert regions == [WEST]  # the principal was asked once, in the region worked in
    assert aws.audit()[-1]["aws_identity"].startswith("arn:aws:")

    _put_lock(aws, "bob@ci", datetime.now(UTC) + timedelta(minutes=30), region=WEST)
    held = aws.main("elsewhere", "--stack", "staging", main=_main)
    assert held.code == 3
    assert f"stack staging ({WEST}) is locked by bob@ci" in held.stderr
