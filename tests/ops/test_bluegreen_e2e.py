"""Blue/green end to end, as an operator runs it: each subcommand is a subprocess talking to a
moto server through AWS_ENDPOINT_URL, and the AWS state is checked after every step.

moto makes green available at once and greens only the primary (no green replicas); the
member-by-member paths of real AWS are covered with Stubber in test_bluegreen_units.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from infra.naming import Names
from tests.ops.support import AwsEnv, session_with

pytestmark = pytest.mark.moto

PRIMARY = "dbplatform-prod-pg"


def test_start_status_promote_finalize(aws: AwsEnv) -> None:
    seeded = aws.seed("prod")

    # start: preflight, create, wait for green
    start = aws.cli("start", "--stack", "prod", "--engine-version", "17.2")
    assert start.code == 0, start.text
    assert "green environment ready" in start.stdout
    (dep_id, status), *_ = aws.deployments().items()
    assert status == "AVAILABLE"
    green = [i for i in aws.instances() if i.startswith(PRIMARY + "-green-")]
    assert [aws.instances()[g] for g in green] == ["17.2"]
    assert aws.instances()[PRIMARY] == "16.4"
    assert not aws.lock_held("prod")
    assert aws.record("prod")["phase"] == "started"

    # status, machine-readable
    aws.report_green_lag(2.0)
    status_run = aws.cli("status", "--stack", "prod", "--json")
    assert status_run.code == 0, status_run.text
    report = status_run.json
    assert report["deployment"]["id"] == dep_id
    assert report["phase"] == "started"
    (member,) = report["members"]
    assert member["blue"]["engine_version"] == "16.4"
    assert member["green"]["engine_version"] == "17.2"
    assert member["replica_lag_s"] == 2.0

    # promote: gates, snapshot, switchover, post-checks, soak
    promote = aws.cli("promote", "--stack", "prod", "--yes")
    assert promote.code == 0, promote.text
    after = aws.instances()
    assert after[PRIMARY] == "17.2"  # green took the identifier
    assert after[PRIMARY + "-old1"] == "16.4"  # old blue kept
    assert set(seeded.replicas) <= set(after)
    snapshots = aws.manual_snapshots()
    assert any(s.startswith(PRIMARY + "-pre-switchover-") for s in snapshots)
    tags = {
        t["Key"]: t["Value"]
        for t in aws.client("rds").describe_db_instances(DBInstanceIdentifier=PRIMARY + "-old1")[
            "DBInstances"
        ][0]["TagList"]
    }
    assert tags["dbplatform:role"] == "retired-blue" and tags["dbplatform:soak-until"]
    record = aws.record("prod")
    assert record["phase"] == "promoted"
    assert record["retired"] == [PRIMARY + "-old1"]
    assert "engineVersion: '16' -> '17'" in promote.stdout  # the major: minors come by themselves
    assert "pulumi refresh --stack prod" in promote.stdout
    assert not aws.lock_held("prod")

    # idempotent: a second promote has nothing to do
    again = aws.cli("promote", "--stack", "prod")
    assert again.code == 0, again.text
    assert again.stdout.startswith("nothing to do")
    assert aws.instances() == after
    # during the soak status offers both ways on (UX review: only finalize was named)
    soaking = aws.cli("status", "--stack", "prod")
    assert "`dbplatform bluegreen finalize --stack prod`; until then" in soaking.stdout
    assert "`dbplatform bluegreen rollback --stack prod` returns to the old version" in (
        soaking.stdout
    )

    # finalize (the soak is skipped explicitly): final snapshot, old blue and deployment gone
    final = aws.cli("finalize", "--stack", "prod", "--yes", "--ignore-soak")
    assert final.code == 0, final.text
    remaining = aws.instances()
    assert PRIMARY + "-old1" not in remaining
    assert remaining[PRIMARY] == "17.2"
    assert aws.deployments() == {}
    snapshots = aws.manual_snapshots()
    assert any(s.startswith(PRIMARY + "-old1-final-") for s in snapshots)
    assert any(s.startswith(PRIMARY + "-pre-switchover-") for s in snapshots)  # kept
    assert aws.record("prod")["phase"] == "finalized"

    # the audit log holds one record per run, with what each touched
    records = aws.audit()
    assert [(r["command"], r["exit_code"]) for r in records] == [
        ("bluegreen start", 0),
        ("bluegreen status", 0),
        ("bluegreen promote", 0),
        ("bluegreen promote", 0),
        ("bluegreen status", 0),
        ("bluegreen finalize", 0),
    ]
    assert [r["outcome"] for r in records][3] == "nothing-to-do"
    (pre_switchover,) = [s for s in snapshots if "-pre-switchover-" in s]
    (final_snapshot,) = [s for s in snapshots if s.startswith(PRIMARY + "-old1-final-")]
    touched = [{i.rsplit(":", 1)[-1] for i in r["aws_ids"]} for r in records]  # ids, not ARNs
    assert touched == [
        {"dbplatform-prod-pg-bg-17-2", dep_id},  # the deployment, not the blue it copies
        set(),  # status is read-only
        {pre_switchover, dep_id, PRIMARY + "-old1"},  # snapshot, switchover, tag on old blue
        set(),  # nothing to do
        set(),  # status during the soak
        {dep_id, PRIMARY + "-old1", final_snapshot},
    ]


def test_rollback_after_switchover_names_the_window_then_swaps_back(aws: AwsEnv) -> None:
    aws.promoted("staging")
    primary = "dbplatform-staging-pg"
    before = aws.state()

    refused = aws.cli("rollback", "--stack", "staging", "--yes")
    assert refused.code == 3
    since = aws.record("staging")["switchover_at"]
    assert f"--accept-data-window {since}" in refused.stderr
    assert "Nothing was changed" in refused.stderr
    assert aws.state() == before
    # a time that is not the window's start is named back; text that is no time is exit 2
    wrong = aws.cli(
        "rollback", "--stack", "staging", "--accept-data-window", "2020-01-01T00:00:00Z", "--yes"
    )
    assert wrong.code == 3
    assert f"--accept-data-window 2020-01-01T00:00:00Z is not the window's start ({since})" in (
        wrong.stderr
    )
    for text in ("yesterday", "2026-13-01"):
        bad = aws.cli("rollback", "--stack", "staging", "--accept-data-window", text, "--yes")
        assert bad.code == 2 and f"--accept-data-window: '{text}'" in bad.stderr, bad.text
    assert aws.state() == before

    done = aws.cli("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
    assert done.code == 0, done.text
    after = aws.instances()
    assert after[primary] == "16.4"  # the old blue serves again under its name
    assert after[primary + "-new1"] == "17.2"  # the former green, with the window's writes
    assert primary + "-old1" not in after
    assert any(s.startswith(primary + "-pre-rollback-") for s in aws.manual_snapshots())
    assert aws.deployments() == {}
    record = aws.record("staging")
    assert record["phase"] == "rolled-back"
    assert record["data_window"][0] == since
    assert record["retired"] == [primary + "-new1"]
    assert f"Writes between {since}" in done.stdout
    assert not aws.lock_held("staging")


def test_status_after_switchover_reads_every_instance_in_one_request(aws: AwsEnv) -> None:
    aws.promoted("prod")
    requests: list[dict[str, Any]] = []

    def seen(params: dict[str, Any], **_: Any) -> None:
        requests.append(params)

    session = session_with([("before-call.rds.DescribeDBInstances", seen)])
    run = aws.main("status", "--stack", "prod", "--json", session=session)
    assert run.code == 0, run.text
    report = run.json
    assert report["primary"]["engine_version"] == "17.2"  # green took the name
    assert [r["identifier"] for r in report["retired"]] == [PRIMARY + "-old1"]  # kept to soak
    # the primary, the members, the kept instances and an unrecorded -new1: one request, in
    # which an instance that does not exist is simply not listed
    assert len(requests) == 1, requests


def test_a_dry_run_promote_reads_each_thing_once(aws: AwsEnv) -> None:
    aws.started("prod")
    calls: list[str] = []

    def seen(model: Any, **_: Any) -> None:
        calls.append(model.name)

    session = session_with([("before-call.rds", seen)])
    run = aws.main("promote", "--stack", "prod", "--dry-run", session=session)
    assert run.code == 0, run.text
    assert "would call rds:CreateDBSnapshot" in run.stderr
    # the pre-switchover snapshot looked up once (reused or not), the primary (it exists) and
    # green (ready) once each; with --skip-sql-checks blue's endpoint is not needed
    assert calls.count("DescribeDBSnapshots") == 1, calls
    assert calls.count("DescribeDBInstances") == 2, calls


def test_status_says_where_it_looked_for_a_primary_that_is_gone(aws: AwsEnv) -> None:
    """status reads every instance it shows in one filtered DescribeDBInstances call; an absent
    one is no error for that call, and status still names it and where it looked."""
    aws.seed("staging")
    rds = aws.client("rds")
    primary = Names("staging").primary
    rds.modify_db_instance(
        DBInstanceIdentifier=primary, DeletionProtection=False, ApplyImmediately=True
    )
    rds.delete_db_instance(DBInstanceIdentifier=primary, SkipFinalSnapshot=True)

    run = aws.cli("status", "--stack", "staging")

    assert run.code == 0, run.text  # status reports; it changes nothing and refuses nothing
    assert f"{primary}: not found in us-east-1" in run.stdout
    assert "no blue/green deployment" in run.stdout
    # UX review: the hint was to start a cycle; with no database it is nearly always the wrong
    # account or region
    assert (
        f"next: no database {primary} in us-east-1 (account 123456789012): check that the "
        "credentials are for the stack's account" in run.stdout
    )
    assert "bluegreen start" not in run.stdout
