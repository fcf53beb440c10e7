"""Faults: throttling and 5xx are retried; a switchover that fails or times out leaves blue
serving and exits 1 with the deployment's state; an interrupted promote or rollback finishes on
re-run; `--dry-run` of every subcommand changes nothing in AWS.

Faults are injected with botocore event hooks on an in-process session. moto completes a
switchover at once and can neither fail nor time one out, so those answers are made by the
hooks, in the shape RDS returns them, and said so at each place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from dbplatform.bluegreen.model import short_id
from infra.naming import rds_identifier
from tests.ops.support import (
    AwsEnv,
    Burst,
    FakeClock,
    _Body,
    no_backoff_sleep,
    query_error,
    session_with,
)

pytestmark = pytest.mark.moto

PRIMARY = "dbplatform-staging-pg"
RDS_NS = "http://rds.amazonaws.com/doc/2014-10-31/"


def _switchover_accepted(request: Any = None, **_: Any) -> AWSResponse:
    """RDS's answer to SwitchoverBlueGreenDeployment, without moto performing the switch."""
    body = (
        f'<SwitchoverBlueGreenDeploymentResponse xmlns="{RDS_NS}">'
        "<SwitchoverBlueGreenDeploymentResult><BlueGreenDeployment>"
        "<BlueGreenDeploymentIdentifier>bgd-x</BlueGreenDeploymentIdentifier>"
        "<Status>SWITCHOVER_IN_PROGRESS</Status>"
        "</BlueGreenDeployment></SwitchoverBlueGreenDeploymentResult>"
        "<ResponseMetadata><RequestId>test</RequestId></ResponseMetadata>"
        "</SwitchoverBlueGreenDeploymentResponse>"
    ).encode()
    return AWSResponse("http://127.0.0.1/", 200, {"Content-Type": "text/xml"}, _Body(body))


def _report_status(status: str) -> Any:
    def rewrite(parsed: dict[str, Any], **_: Any) -> None:
        for dep in parsed.get("BlueGreenDeployments", []):
            dep["Status"] = status
            dep["StatusDetails"] = f"injected {status}"
            for m in dep["SwitchoverDetails"]:
                m["Status"] = status

    return rewrite


def test_throttling_and_5xx_during_start_and_promote_are_retried(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")  # same retries, no real-time rate limiter
    aws.seed("staging")
    create = Burst([(400, "Throttling"), (503, "ServiceUnavailable")])
    describe = Burst([(400, "Throttling")] * 2 + [(500, "InternalFailure")])
    session = session_with(
        [
            ("before-send.rds.CreateBlueGreenDeployment", create),
            ("before-send.rds.DescribeDBInstances", describe),
        ]
    )
    backoff: list[float] = []
    with no_backoff_sleep(backoff):
        start = aws.main("start", "--stack", "staging", "--engine-version", "17.2", session=session)
        assert start.code == 0, start.text
        aws.report_green_lag()
        switch = Burst([(400, "Throttling"), (502, "BadGateway")])
        session = session_with([("before-send.rds.SwitchoverBlueGreenDeployment", switch)])
        promote = aws.main("promote", "--stack", "staging", "--yes", session=session)
    assert promote.code == 0, promote.text
    assert len(aws.deployments()) == 1  # retries created no second deployment
    assert aws.instances()[PRIMARY] == "17.2"
    assert create.seen == 3 and describe.seen > 3 and switch.seen == 3
    assert len(backoff) >= 7


@pytest.mark.parametrize(
    ("status", "says"),
    [("SWITCHOVER_FAILED", "switchover failed"), ("AVAILABLE", "rolled back by RDS")],
)
def test_a_failed_or_timed_out_switchover_leaves_blue_serving(
    aws: AwsEnv, status: str, says: str
) -> None:
    aws.started("staging")
    # The switchover call is answered as RDS does, but moto never switches; describes after
    # it report it failed (SWITCHOVER_FAILED) or rolled back after its timeout (AVAILABLE).
    armed: dict[str, bool] = {"on": False}

    def arm(**_: Any) -> None:
        armed["on"] = True

    def only_after_switchover(parsed: dict[str, Any], **kw: Any) -> None:
        if armed["on"]:
            _report_status(status)(parsed)

    hooks: list[tuple[str, Callable[..., Any]]] = [
        ("before-send.rds.SwitchoverBlueGreenDeployment", _switchover_accepted),
        ("before-call.rds.SwitchoverBlueGreenDeployment", arm),
        ("after-call.rds.DescribeBlueGreenDeployments", only_after_switchover),
    ]
    run = aws.main("promote", "--stack", "staging", "--yes", "--json", session=session_with(hooks))

    assert run.code == 1, run.text
    result = run.json
    assert says in result["message"] and "Blue is untouched" in result["message"]
    assert result["deployment"]["status"] == status  # the deployment's state is reported
    assert result["serving_version"] == "16.4"
    assert aws.instances()[PRIMARY] == "16.4"
    assert PRIMARY + "-old1" not in aws.instances()
    assert not aws.lock_held("staging")


def test_a_switchover_still_running_at_the_bound_fails_then_a_rerun_finishes(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws.started("staging")
    monkeypatch.setenv("DBPLATFORM_POLL_SECONDS", "300")  # few polls over the fake hour
    hooks = [
        ("before-send.rds.SwitchoverBlueGreenDeployment", _switchover_accepted),
        ("after-call.rds.DescribeBlueGreenDeployments", _report_status("SWITCHOVER_IN_PROGRESS")),
    ]
    clock = FakeClock()  # the wait's bound passes in no real time
    stuck = aws.main(
        "promote", "--stack", "staging", "--yes", session=session_with(hooks), clock=clock
    )
    assert stuck.code == 1, stuck.text
    assert "gave up waiting for switchover" in stuck.stderr
    assert "re-run promote" in stuck.stderr
    assert clock.slept >= 300  # waited at least the switchover timeout

    rerun = aws.main("promote", "--stack", "staging", "--yes")  # RDS answers normally now
    assert rerun.code == 0, rerun.text
    assert aws.instances()[PRIMARY] == "17.2"
    snaps = [s for s in aws.manual_snapshots() if s.startswith(PRIMARY + "-pre-switchover-")]
    assert len(snaps) == 1  # the snapshot of the first run was reused


def test_an_interrupted_promote_finishes_on_rerun(aws: AwsEnv) -> None:
    aws.started("staging")

    def interrupt(**_: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C right after RDS accepted the switchover

    session = session_with([("after-call.rds.SwitchoverBlueGreenDeployment", interrupt)])
    cut = aws.main("promote", "--stack", "staging", "--yes", session=session)
    assert cut.code == 130
    assert "re-run the same command to resume" in cut.stderr
    assert not aws.lock_held("staging")
    assert aws.record("staging")["phase"] == "switching"

    rerun = aws.main("promote", "--stack", "staging", "--yes")
    assert rerun.code == 0, rerun.text
    assert not rerun.stdout.startswith("nothing to do")
    assert aws.instances()[PRIMARY] == "17.2"
    assert aws.instances()[PRIMARY + "-old1"] == "16.4"
    assert aws.record("staging")["phase"] == "promoted"


def test_failed_post_checks_end_their_phase_failed_and_say_how_to_roll_back(
    aws: AwsEnv,
) -> None:
    aws.started("staging")
    alarm = "dbplatform-staging-pg-cpu-critical"

    def alarm_after_switchover(**_: Any) -> None:  # the application breaks on green
        aws.client("cloudwatch").set_alarm_state(
            AlarmName=alarm, StateValue="ALARM", StateReason="test"
        )

    session = session_with(
        [("after-call.rds.SwitchoverBlueGreenDeployment", alarm_after_switchover)]
    )
    run = aws.main("promote", "--stack", "staging", "--yes", session=session)
    assert run.code == 1, run.text
    # the phase that found it ends FAILED (it ended `done in` above the failure)
    assert "bluegreen promote staging: post-checks: FAILED (Failed) after " in run.stderr
    assert "post-checks: done" not in run.stderr
    assert f"alarms in ALARM after switchover: {alarm}" in run.stderr
    assert "dbplatform bluegreen rollback --stack staging" in run.stderr


def _interrupted_promote(aws: AwsEnv, when: str) -> str:
    """A promote cut by Ctrl-C before or after the switchover call; then the deployment is
    deleted (from the console, say), as RDS allows after a switchover without DeleteTarget and
    before one with or without it (botocore rds DeleteBlueGreenDeploymentRequest)."""
    aws.started("staging")

    def interrupt(**_: Any) -> None:
        raise KeyboardInterrupt

    session = session_with([(f"{when}.rds.SwitchoverBlueGreenDeployment", interrupt)])
    cut = aws.main("promote", "--stack", "staging", "--yes", session=session)
    assert cut.code == 130, cut.text
    assert aws.record("staging")["phase"] == "switching"
    (dep,) = aws.deployments()
    aws.client("rds").delete_blue_green_deployment(BlueGreenDeploymentIdentifier=dep)
    assert aws.deployments() == {}
    return str(dep)


@pytest.mark.parametrize("then", ["promote", "rollback"])
def test_a_switched_over_cycle_whose_deployment_was_deleted_still_finishes(
    aws: AwsEnv, then: str
) -> None:
    """SRE review: phase `switching`, switched over, deployment deleted: promote finishes from
    the instances, and rollback takes the reverse path; neither says "nothing to do"."""
    _interrupted_promote(aws, "after-call")
    assert aws.instances()[PRIMARY + "-old1"] == "16.4"
    if then == "promote":
        run = aws.main("promote", "--stack", "staging", "--yes")
        assert run.code == 0, run.text
        assert "the instances stand switched over" in run.stderr
        assert aws.record("staging")["phase"] == "promoted"
        rds = aws.client("rds")
        old = rds.describe_db_instances(DBInstanceIdentifier=PRIMARY + "-old1")["DBInstances"]
        tags = rds.list_tags_for_resource(ResourceName=old[0]["DBInstanceArn"])["TagList"]
        assert {"Key": "dbplatform:role", "Value": "retired-blue"} in tags  # finalize may go on
    else:
        refused = aws.main("rollback", "--stack", "staging", "--yes")
        assert refused.code == 3, refused.text
        assert "--accept-data-window" in refused.stderr  # the window is named first
        since = aws.record("staging")["switchover_requested_at"]
        run = aws.main("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
        assert run.code == 0, run.text
        assert (
            aws.instances()[PRIMARY] == "16.4" and aws.record("staging")["phase"] == "rolled-back"
        )


def test_a_cycle_whose_deployment_was_deleted_before_its_switchover_can_be_closed(
    aws: AwsEnv,
) -> None:
    dep = _interrupted_promote(aws, "before-call")  # the switchover was never sent
    before = aws.instances()
    assert before[PRIMARY] == "16.4" and PRIMARY + "-old1" not in before
    promote = aws.main("promote", "--stack", "staging", "--yes")
    assert promote.code == 3, promote.text
    assert "nothing to promote" in promote.stderr and "bluegreen rollback" in promote.stderr
    start = aws.main("start", "--stack", "staging", "--engine-version", "17.2")
    assert start.code == 3 and "switching" in start.stderr

    dry = aws.main("rollback", "--stack", "staging", "--dry-run")
    assert dry.code == 0 and "would close the cycle" in dry.stdout
    assert aws.record("staging")["phase"] == "switching"
    run = aws.main("rollback", "--stack", "staging", "--yes", "--json")
    assert run.code == 0, run.text
    assert dep in run.stdout and "serves unchanged (PostgreSQL 16.4)" in run.stdout
    assert aws.record("staging")["phase"] == "cancelled"
    assert aws.instances() == before  # the green the deleted deployment left is named, kept
    assert run.json["left"] == [i for i in before if i.startswith(PRIMARY + "-green")]
    again = aws.main("start", "--stack", "staging", "--engine-version", "17.2")
    assert again.code == 0, again.text


def test_names_alone_never_decide_a_cycle_whose_deployment_is_gone(aws: AwsEnv) -> None:
    """SRE review: a stale `<id>-old1` of an earlier cycle is no switchover, and a switched-over
    cycle whose `<id>-old1` was deleted by hand is not "never switched": the blue is known by
    its DbiResourceId (recorded at start), and anything else is refused, nothing changed."""
    _interrupted_promote(aws, "before-call")  # never switched ...
    stale = PRIMARY + "-old1"  # ... and an earlier cycle's old blue stands beside
    aws.client("rds").create_db_instance(
        DBInstanceIdentifier=stale, Engine="postgres", DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20, MasterUsername="x", MasterUserPassword="stale-password",
    )  # fmt: skip
    promote = aws.main("promote", "--stack", "staging", "--yes")
    assert promote.code == 3 and "never switched over" in promote.stderr, promote.text
    rds = aws.client("rds")
    tags = rds.list_tags_for_resource(
        ResourceName=rds.describe_db_instances(DBInstanceIdentifier=stale)["DBInstances"][0][
            "DBInstanceArn"
        ]
    )["TagList"]
    assert not [t for t in tags if t["Key"] == "dbplatform:role"]  # never taken for old blue
    closed = aws.main("rollback", "--stack", "staging", "--yes")
    assert closed.code == 0 and aws.record("staging")["phase"] == "cancelled", closed.text
    assert stale in aws.instances()


def test_a_switched_cycle_missing_its_old_blue_is_refused_not_closed(aws: AwsEnv) -> None:
    _interrupted_promote(aws, "after-call")
    rds = aws.client("rds")
    rds.delete_db_instance(DBInstanceIdentifier=PRIMARY + "-old1", SkipFinalSnapshot=True)
    record = aws.parameters()["/dbplatform/staging/ops/bluegreen"]
    for op in ("promote", "rollback"):
        run = aws.main(op, "--stack", "staging", "--yes")
        assert run.code == 3, (op, run.text)
        assert "neither switched over nor as before" in run.stderr and "Nothing was changed" in (
            run.stderr
        )
    assert aws.parameters()["/dbplatform/staging/ops/bluegreen"] == record
    assert aws.instances()[PRIMARY] == "17.2"


def test_a_start_cut_short_still_lets_a_deleted_deployment_be_told_apart(aws: AwsEnv) -> None:
    """Re-review: a start interrupted before green was ready recorded no members; promote
    records them, and the blues' resource ids, from the live deployment before switching."""
    aws.seed("staging")

    created: list[bool] = []

    def cut(**_: Any) -> None:
        if created:
            raise KeyboardInterrupt  # while start waits for green

    session = session_with(
        [
            ("after-call.rds.CreateBlueGreenDeployment", lambda **_: created.append(True)),
            ("before-call.rds.DescribeBlueGreenDeployments", cut),
        ]
    )
    started = aws.main("start", "--stack", "staging", "--engine-version", "17.2", session=session)
    assert started.code == 130, started.text
    assert aws.record("staging")["members"] == []
    aws.report_green_lag(1.0)

    def interrupt(**_: Any) -> None:
        raise KeyboardInterrupt

    session = session_with([("after-call.rds.SwitchoverBlueGreenDeployment", interrupt)])
    assert aws.main("promote", "--stack", "staging", "--yes", session=session).code == 130
    record = aws.record("staging")
    assert record["members"] and [b for b, _ in record["blue_ids"]] == [PRIMARY]
    (dep,) = aws.deployments()
    aws.client("rds").delete_blue_green_deployment(BlueGreenDeploymentIdentifier=dep)
    done = aws.main("promote", "--stack", "staging", "--yes")
    assert done.code == 0, done.text
    assert aws.record("staging")["phase"] == "promoted"


@pytest.mark.parametrize("fault", ["aws-error", "ctrl-c", "ctrl-c-after-snapshot"])
def test_a_rollback_stopped_before_anything_changed_leaves_the_record_as_it_was(
    aws: AwsEnv, fault: str
) -> None:
    """Re-review: an AWS error or Ctrl-C at the pre-rollback snapshot (nothing fenced, nothing
    renamed) left the record `rolling-back`, and promote then called it half done."""
    aws.promoted("staging")
    since = aws.record("staging")["switchover_at"]
    record = aws.parameters()["/dbplatform/staging/ops/bluegreen"]

    def snapshot_fails(**_: Any) -> AWSResponse:
        if fault == "ctrl-c":
            raise KeyboardInterrupt
        return query_error(400, "SnapshotQuotaExceeded")

    def taken(**_: Any) -> None:
        raise KeyboardInterrupt  # the snapshot call went through; Ctrl-C right after

    hook = (
        ("after-call.rds.CreateDBSnapshot", taken)
        if fault == "ctrl-c-after-snapshot"
        else ("before-send.rds.CreateDBSnapshot", snapshot_fails)
    )
    args = ("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
    run = aws.main(*args, session=session_with([hook]))
    assert run.code == (1 if fault == "aws-error" else 130), run.text
    assert aws.parameters()["/dbplatform/staging/ops/bluegreen"] == record
    assert aws.instances()[PRIMARY] == "17.2" and PRIMARY + "-new1" not in aws.instances()
    again = aws.main("promote", "--stack", "staging", "--yes")
    assert again.code == 0 and again.stdout.startswith("nothing to do"), again.text
    if fault == "ctrl-c-after-snapshot":
        # the started snapshot is said and kept; a new rollback takes its own, fresh one
        (first,) = [s for s in aws.manual_snapshots() if "-pre-rollback-" in s]
        assert f"snapshot {first} was started and is kept" in run.stderr
        done = aws.main(*args)
        assert done.code == 0, done.text
        later = [s for s in aws.manual_snapshots() if "-pre-rollback-" in s]
        assert len(later) == 2 and first in later


def test_an_interrupted_rollback_finishes_on_rerun(aws: AwsEnv) -> None:
    aws.promoted("staging")
    since = aws.record("staging")["switchover_at"]
    renames: list[str] = []

    def interrupt_after_first_rename(params: dict[str, Any], **_: Any) -> None:
        if "NewDBInstanceIdentifier" in params:
            renames.append(params["NewDBInstanceIdentifier"])
            raise KeyboardInterrupt

    session = session_with(
        [("before-parameter-build.rds.ModifyDBInstance", interrupt_after_first_rename)]
    )
    args = ("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
    cut = aws.main(*args, session=session)
    assert cut.code == 130, cut.text
    assert renames == [PRIMARY + "-new1"]

    # a second interruption, after the first rename went through
    def interrupt_after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        raise KeyboardInterrupt

    session = session_with([("after-call.rds.ModifyDBInstance", interrupt_after)])
    cut = aws.main(*args, session=session)
    assert cut.code == 130, cut.text
    assert PRIMARY not in aws.instances()  # mid-way: the green stepped aside
    assert aws.record("staging")["phase"] == "rolling-back"

    rerun = aws.main(*args)
    assert rerun.code == 0, rerun.text
    after = aws.instances()
    assert after[PRIMARY] == "16.4" and after[PRIMARY + "-new1"] == "17.2"
    again = aws.main("rollback", "--stack", "staging")
    assert again.code == 0 and again.stdout.startswith("nothing to do")


def test_dry_run_of_every_subcommand_changes_nothing(aws: AwsEnv) -> None:
    """Through a whole cycle: before each real step, its dry run; AWS is compared after each."""
    aws.seed("staging")

    def dry(*args: str, would: str) -> None:
        before = aws.state()
        run = aws.main(*args, "--stack", "staging", "--dry-run")
        assert run.code == 0, run.text
        assert f"DRY-RUN would call {would}" in run.stderr
        assert aws.state() == before
        assert aws.audit()[-1]["outcome"] == "dry-run"

    dry("start", "--engine-version", "17.2", would="rds:CreateBlueGreenDeployment")
    assert aws.main("start", "--stack", "staging", "--engine-version", "17.2").code == 0
    aws.report_green_lag()
    dry("promote", would="rds:SwitchoverBlueGreenDeployment")
    dry("rollback", would="rds:DeleteBlueGreenDeployment")
    assert aws.main("promote", "--stack", "staging", "--yes").code == 0
    since = aws.record("staging")["switchover_at"]
    dry("rollback", "--accept-data-window", since, would="rds:ModifyDBInstance")
    dry("finalize", "--ignore-soak", would="rds:DeleteDBInstance")


def _final_snapshot(aws: AwsEnv, instance: str) -> str:
    return rds_identifier(instance, "final", short_id(aws.record("staging")["deployment_id"]))


def test_a_finalize_interrupted_after_the_delete_finishes_on_rerun(aws: AwsEnv) -> None:
    aws.promoted("staging")
    old = PRIMARY + "-old1"

    def interrupt(**_: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C once RDS accepted the deletion

    session = session_with([("after-call.rds.DeleteDBInstance", interrupt)])
    args = ("finalize", "--stack", "staging", "--yes", "--ignore-soak")
    cut = aws.main(*args, session=session)
    assert cut.code == 130, cut.text
    assert aws.record("staging")["phase"] == "promoted"

    rerun = aws.main(*args)
    assert rerun.code == 0, rerun.text
    record = aws.record("staging")
    assert record["phase"] == "finalized"
    # the final snapshot the first run asked for is recorded, not forgotten
    assert record["final_snapshots"] == [_final_snapshot(aws, old)]
    assert _final_snapshot(aws, old) in aws.manual_snapshots()


def test_a_finalize_rerun_while_rds_deletes_waits_instead_of_deleting_again(aws: AwsEnv) -> None:
    aws.promoted("staging")
    old = PRIMARY + "-old1"
    final = _final_snapshot(aws, old)
    # As after a finalize cut off while RDS deletes the old blue: moto deletes at once, so the
    # hook shows the instance 'deleting' and, a few describes later, finishes the deletion (with
    # the final snapshot the first run asked for) as RDS would.
    seen: list[str] = []
    deletes: list[str] = []

    def deleting(parsed: dict[str, Any], **_: Any) -> None:
        for inst in parsed.get("DBInstances", []):
            if inst["DBInstanceIdentifier"] == old:
                inst["DBInstanceStatus"] = "deleting"
                seen.append(old)
                if len(seen) == 3:
                    aws.client("rds").delete_db_instance(
                        DBInstanceIdentifier=old, FinalDBSnapshotIdentifier=final
                    )

    def record_delete(params: dict[str, Any], **_: Any) -> None:
        deletes.append(params["DBInstanceIdentifier"])

    session = session_with(
        [
            ("after-call.rds.DescribeDBInstances", deleting),
            ("before-parameter-build.rds.DeleteDBInstance", record_delete),
        ]
    )
    run = aws.main("finalize", "--stack", "staging", "--yes", "--ignore-soak", session=session)
    assert run.code == 0, run.text
    assert deletes == []  # RDS would refuse a second delete (InvalidDBInstanceState)
    assert old not in aws.instances()
    assert aws.record("staging")["final_snapshots"] == [final]
