"""Locks (conditional break, holder-only renewal, heartbeat thread, lost lock stops the run,
--force-unlock, scopes) and who/where (principal printed and audited, credential errors exit 2,
transient endpoint failures tolerated in polls, -vv without secret values), against moto."""

from __future__ import annotations

import argparse
import io
import json
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import EndpointConnectionError

from dbplatform.ops import Context, Operation, Poll, Refused, Result, add_operation, run_command
from dbplatform.ops.clock import SystemClock
from dbplatform.ops.lock import DEFAULT_TTL, LockLost, StackLock
from dbplatform.ops.progress import Progress
from tests.ops.support import AwsEnv, FakeClock, new_session, query_error, session_with

LOCK = "/dbplatform/staging/ops/lock-lockcmd"
MARK = "/dbplatform/staging/lock-test-mark"


def _act(ctx: Context) -> Result:
    ssm = ctx.client("ssm")
    if ctx.args.steal:  # another run overwrites this run's lock mid-run
        ctx.client("ssm").put_parameter(
            Name=LOCK, Value=json.dumps({"run_id": "thief"}), Type="String", Overwrite=True
        ) if not ctx.dry_run else None
        lock = ctx._cache["lock"]
        lock._extend()  # what the heartbeat thread does on its next beat
    if ctx.args.wait_flaky:
        calls = {"n": 0}

        def poll() -> Poll[bool]:
            calls["n"] += 1
            if calls["n"] <= ctx.args.wait_flaky:
                raise EndpointConnectionError(endpoint_url="https://rds.us-east-1.amazonaws.com")
            return Poll(True, "ready", True)

        ctx.wait_for("the thing", poll, timeout=3600)
    ctx.mutate(ssm, "put_parameter", {"Name": MARK, "Value": "x", "Type": "String"})
    return Result("marked")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lockcmd")
    sub = parser.add_subparsers(required=True)
    p = add_operation(sub, Operation("act", "act", _act))
    p.add_argument("--steal", action="store_true")
    p.add_argument("--wait-flaky", type=int, default=0)
    return parser


def _main(argv: Sequence[str], *, session: boto3.Session | None = None, clock: Any = None) -> int:
    return run_command("lockcmd", _parser(), argv, session=session, clock=clock)


def _lock_value(run_id: str, expires: datetime) -> str:
    return json.dumps(
        {
            "owner": "bob@ci",
            "operation": "lockcmd act",
            "run_id": run_id,
            "acquired": "2026-01-01T00:00:00Z",
            "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


class _Host:
    """The smallest LockHost: real SSM calls, no dry run."""

    def __init__(self, aws: AwsEnv) -> None:
        self.aws = aws
        self.dry_run = False
        self.clock = SystemClock()
        self.out = Progress(label="t", verbosity=-1, clock=self.clock)

    def client(self, service: str, region: str | None = None) -> BaseClient:
        return self.aws.client(service, region or "us-east-1")

    def mutate(
        self,
        client: BaseClient,
        method: str,
        params: dict[str, Any],
        *,
        track: bool = True,
        lock_check: bool = True,
    ) -> dict[str, Any]:
        return getattr(client, method)(**params)


def _lock(aws: AwsEnv, run_id: str, **kw: Any) -> StackLock:
    return StackLock(
        _Host(aws),
        parameter=LOCK,
        stack="staging",
        owner=f"{run_id}@test",
        operation="lockcmd act",
        run_id=run_id,
        **kw,
    )


def _holder(aws: AwsEnv) -> str:
    return str(json.loads(aws.parameters()[LOCK])["run_id"])


def test_two_operators_breaking_one_stale_lock_cannot_both_hold_it(aws: AwsEnv) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=1)
    aws.client("ssm").put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    a = _lock(aws, "run-a", break_stale=True, heartbeat_thread=False)
    b = _lock(aws, "run-b", break_stale=True, heartbeat_thread=False)
    seen_by_b = b._read()  # B read the stale lock before A broke it
    assert seen_by_b is not None

    a.acquire()
    assert a.held and _holder(aws) == "run-a"
    with pytest.raises(Refused) as refused:
        b._refuse_or_break(seen_by_b)  # B acts on what it read: the lock changed since
    assert "changed while breaking it" in refused.value.message
    assert _holder(aws) == "run-a"  # A's lock is intact
    assert not any("-break-" in n for n in aws.parameters())  # the claim was cleaned up
    a.release()
    assert LOCK not in aws.parameters()


def test_a_breaker_that_finds_the_claim_taken_refuses(aws: AwsEnv) -> None:
    stale = datetime.now(UTC) - timedelta(minutes=1)
    aws.client("ssm").put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    # Another operator is in the middle of breaking it: its claim exists.
    aws.client("ssm").put_parameter(Name=f"{LOCK}-break-dead", Value="run-x", Type="String")
    b = _lock(aws, "run-b", break_stale=True, heartbeat_thread=False)
    with pytest.raises(Refused) as refused:
        b.acquire()
    assert "another operator is breaking the same lock" in refused.value.message
    assert f"delete-parameter --name {LOCK}-break-dead" in refused.value.message
    assert _holder(aws) == "dead"


def test_a_breaker_with_a_stale_read_never_breaks_a_new_live_lock(aws: AwsEnv) -> None:
    """ABA: the stale lock is broken and released, then a new run creates the lock again --
    at Version 1 again. A breaker acting on its old read of Version 1 must not take it."""
    ssm = aws.client("ssm")
    stale = datetime.now(UTC) - timedelta(minutes=1)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    b = _lock(aws, "run-b", break_stale=True, heartbeat_thread=False)
    seen_by_b = b._read()
    assert seen_by_b is not None and seen_by_b.version == 1
    a = _lock(aws, "run-a", break_stale=True, heartbeat_thread=False)
    a.acquire()
    a.release()
    c = _lock(aws, "run-c", heartbeat_thread=False)
    c.acquire()
    assert ssm.get_parameter(Name=LOCK)["Parameter"]["Version"] == 1  # the same Version
    with pytest.raises(Refused) as refused:
        b._refuse_or_break(seen_by_b)
    assert "run-c" in refused.value.message
    assert _holder(aws) == "run-c"
    c.check(reread=True)  # C still holds it
    c.release()


def test_a_breaker_never_breaks_a_lock_renewed_meanwhile(aws: AwsEnv) -> None:
    """The stale lock is deleted and created again by the same run id with a live expiry: same
    run id, same Version 1, but no longer stale: refused."""
    ssm = aws.client("ssm")
    stale = datetime.now(UTC) - timedelta(minutes=1)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    b = _lock(aws, "run-b", break_stale=True, heartbeat_thread=False)
    seen_by_b = b._read()
    assert seen_by_b is not None
    ssm.delete_parameter(Name=LOCK)
    live = datetime.now(UTC) + timedelta(minutes=5)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", live), Type="String")
    with pytest.raises(Refused):
        b._refuse_or_break(seen_by_b)
    assert json.loads(aws.parameters()[LOCK])["expires"] == live.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("how", [{"break_stale": True}, {"force_unlock": "dead"}])
def test_a_claim_left_by_a_dead_breaker_does_not_block_later_breaks(
    aws: AwsEnv, how: dict[str, Any]
) -> None:
    ssm = aws.client("ssm")
    stale = datetime.now(UTC) - timedelta(minutes=1)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    old = (datetime.now(UTC) - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    claim = f"{LOCK}-break-dead"  # its breaker was SIGKILLed between creating and deleting it
    ssm.put_parameter(
        Name=claim, Value=json.dumps({"run_id": "run-crashed", "at": old}), Type="String"
    )
    z = _lock(aws, "run-z", heartbeat_thread=False, **how)
    z.acquire()
    assert _holder(aws) == "run-z"
    assert claim not in aws.parameters()
    z.release()


def test_a_fresh_claim_refuses_naming_it_and_how_to_remove_it(aws: AwsEnv) -> None:
    ssm = aws.client("ssm")
    stale = datetime.now(UTC) - timedelta(minutes=1)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", stale), Type="String")
    claim = f"{LOCK}-break-dead"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ssm.put_parameter(Name=claim, Value=json.dumps({"run_id": "x", "at": now}), Type="String")
    z = _lock(aws, "run-z", heartbeat_thread=False, force_unlock="dead")
    with pytest.raises(Refused) as refused:
        z.acquire()
    assert f"aws ssm delete-parameter --name {claim}" in refused.value.message
    assert _holder(aws) == "dead" and claim in aws.parameters()


def test_the_janitor_removes_a_dead_runs_lock_only_while_it_is_unchanged(aws: AwsEnv) -> None:
    """`remove_expired` (dr janitor): the --break-lock claim first, then the lock deleted only
    if it still holds what was listed; a lock an operator broke since, or one being broken, is
    left alone."""
    ssm = aws.client("ssm")
    old = datetime.now(UTC) - timedelta(hours=13)
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", old), Type="String")
    janitor = _lock(aws, "run-j", heartbeat_thread=False)
    listed = janitor.read()
    assert listed is not None and listed.run_id == "dead"

    # an operator broke it after the listing: the lock now holds their live run
    operator = _lock(aws, "run-op", break_stale=True, heartbeat_thread=False)
    operator.acquire()
    with pytest.raises(Refused) as refused:
        janitor.remove_expired(listed, older_than=timedelta(hours=12))
    assert (
        "changed since it was listed" in refused.value.message and "run-op" in refused.value.message
    )
    assert _holder(aws) == "run-op" and not any("-break-" in n for n in aws.parameters())
    operator.release()

    # another breaker holds the claim: refused, nothing changed
    ssm.put_parameter(Name=LOCK, Value=_lock_value("dead", old), Type="String")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    claim = f"{LOCK}-break-dead"
    ssm.put_parameter(Name=claim, Value=json.dumps({"run_id": "x", "at": now}), Type="String")
    with pytest.raises(Refused):
        janitor.remove_expired(listed, older_than=timedelta(hours=12))
    assert _holder(aws) == "dead" and claim in aws.parameters()
    ssm.delete_parameter(Name=claim)

    # expired, but not by the bound: left alone
    with pytest.raises(Refused):
        janitor.remove_expired(listed, older_than=timedelta(hours=14))
    assert _holder(aws) == "dead"

    janitor.remove_expired(listed, older_than=timedelta(hours=12))
    assert LOCK not in aws.parameters() and not any("-break-" in n for n in aws.parameters())
    janitor.remove_expired(listed, older_than=timedelta(hours=12))  # gone already: nothing to do


def test_a_suspended_holder_stops_before_its_next_change(aws: AwsEnv) -> None:
    """A holds; its process is frozen past the TTL (laptop lid, Ctrl-Z) and B breaks the stale
    lock. A wakes up: its heartbeat thread has not run, yet its next safe point stops it."""
    host = _Host(aws)
    host.clock = FakeClock()  # type: ignore[assignment]
    a = StackLock(
        host,
        parameter=LOCK,
        stack="staging",
        owner="a@test",
        operation="lockcmd act",
        run_id="run-a",
        heartbeat_thread=False,
    )
    a.acquire()
    a.check(reread=True)  # holds
    host.clock.sleep(DEFAULT_TTL.total_seconds())  # suspended for a whole TTL
    with pytest.raises(LockLost) as lost:
        a.check()
    assert "suspended" in lost.value.message


def test_a_holder_whose_lock_was_broken_stops_at_its_next_change(aws: AwsEnv) -> None:
    ssm = aws.client("ssm")
    a = _lock(aws, "run-a", heartbeat_thread=False)
    a.acquire()
    expired = datetime.now(UTC) - timedelta(seconds=1)  # A was frozen past its expiry
    ssm.put_parameter(Name=LOCK, Value=_lock_value("run-a", expired), Type="String", Overwrite=True)
    b = _lock(aws, "run-b", break_stale=True, heartbeat_thread=False)
    b.acquire()
    with pytest.raises(LockLost) as lost:
        a.check(reread=True)  # what Context.mutate does before each change
    assert "run-b" in lost.value.message
    b.release()


def test_only_the_holder_renews_and_a_lost_lock_is_noticed(aws: AwsEnv) -> None:
    a = _lock(aws, "run-a", ttl=timedelta(seconds=3))  # heartbeat thread every second
    a.acquire()
    try:
        first = aws.client("ssm").get_parameter(Name=LOCK)["Parameter"]["Version"]
        time.sleep(1.6)
        renewed = aws.client("ssm").get_parameter(Name=LOCK)["Parameter"]["Version"]
        assert renewed > first  # renewed by the thread, not by a wait loop
        aws.client("ssm").put_parameter(
            Name=LOCK, Value=_lock_value("run-b", datetime.now(UTC)), Type="String", Overwrite=True
        )
        deadline = time.monotonic() + 5
        while a.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert a.lost is not None and "run-b" in a.lost
        with pytest.raises(LockLost):
            a.check()
        assert _holder(aws) == "run-b"  # the thread did not write it back
    finally:
        a.release()
    assert _holder(aws) == "run-b"  # and release did not delete another run's lock


def test_a_run_that_loses_its_lock_stops_before_its_next_change(aws: AwsEnv) -> None:
    run = aws.main("act", "--stack", "staging", "--steal", main=_main)
    assert run.code == 1, run.text
    assert "lost the lock of stack staging" in run.stderr and "thief" in run.stderr
    assert MARK not in aws.parameters()  # the mutation after the loss was never made


def test_force_unlock_takes_only_the_named_runs_lock(aws: AwsEnv) -> None:
    live = datetime.now(UTC) + timedelta(minutes=8)
    aws.client("ssm").put_parameter(Name=LOCK, Value=_lock_value("r-crashed", live), Type="String")
    held = aws.main("act", "--stack", "staging", "--break-lock", main=_main)
    assert held.code == 3
    assert "--force-unlock r-crashed" in held.stderr  # the way out is named
    assert f"aws ssm delete-parameter --name {LOCK}" in held.stderr
    wrong = aws.main("act", "--stack", "staging", "--force-unlock", "r-other", main=_main)
    assert wrong.code == 3 and MARK not in aws.parameters()
    ok = aws.main("act", "--stack", "staging", "--force-unlock", "r-crashed", main=_main)
    assert ok.code == 0, ok.text
    assert "force-unlocking" in ok.stderr
    assert MARK in aws.parameters()
    assert LOCK not in aws.parameters()


def test_lock_scopes_do_not_block_each_other(aws: AwsEnv) -> None:
    live = datetime.now(UTC) + timedelta(minutes=8)
    aws.client("ssm").put_parameter(
        Name="/dbplatform/staging/ops/lock-bluegreen", Value=_lock_value("bg", live), Type="String"
    )
    run = aws.main("act", "--stack", "staging", main=_main)
    assert run.code == 0, run.text  # a blue/green build does not block this command's scope


def test_every_run_prints_and_audits_account_region_and_principal(aws: AwsEnv) -> None:
    run = aws.main("act", "--stack", "staging", main=_main)
    assert run.code == 0, run.text
    assert "as arn:aws:" in run.stderr and "(account 123456789012) in us-east-1" in run.stderr
    record = aws.audit()[-1]
    assert record["aws_account"] == "123456789012"
    assert record["aws_region"] == "us-east-1"
    assert record["aws_identity"].startswith("arn:aws:")


@pytest.mark.parametrize("code", ["InvalidClientTokenId", "ExpiredToken"])
def test_rejected_credentials_exit_2_saying_to_refresh(aws: AwsEnv, code: str) -> None:
    session = session_with(
        [("before-send.sts.GetCallerIdentity", lambda **_: query_error(403, code))]
    )
    run = aws.main("act", "--stack", "staging", session=session, main=_main)
    assert run.code == 2, run.text
    assert "refresh them" in run.stderr and code in run.stderr
    assert MARK not in aws.parameters()


def test_a_poll_survives_a_transient_endpoint_failure(aws: AwsEnv) -> None:
    clock = FakeClock()
    run = aws.main("act", "--stack", "staging", "--wait-flaky", "3", clock=clock, main=_main)
    assert run.code == 0, run.text
    assert "AWS did not answer" in run.stderr
    assert MARK in aws.parameters()


def test_a_poll_fails_once_the_grace_period_is_over(aws: AwsEnv) -> None:
    clock = FakeClock()  # 15 s per poll: 100 failures are far past the 5-minute grace
    run = aws.main("act", "--stack", "staging", "--wait-flaky", "100", clock=clock, main=_main)
    assert run.code == 1, run.text
    assert "Could not connect to the endpoint URL" in run.stderr
    assert not aws.lock_held("staging")  # and the lock was released


def test_debug_log_never_shows_secret_values(aws: AwsEnv) -> None:
    secret = "s3cr3t-value-Zq9"
    sm = aws.client("secretsmanager")
    sm.create_secret(Name="dbplatform/staging/test", SecretString=secret)
    from dbplatform.ops.cli import _quiet_botocore

    buffer = io.StringIO()
    import sys

    real = sys.stderr
    sys.stderr = buffer
    try:
        _quiet_botocore(2)
        session = new_session()
        session.client("secretsmanager").get_secret_value(SecretId="dbplatform/staging/test")
        session.client("secretsmanager").put_secret_value(
            SecretId="dbplatform/staging/test", SecretString=secret + "-new"
        )
    finally:
        sys.stderr = real
        _quiet_botocore(0)
        logging.getLogger().setLevel(logging.WARNING)
    text = buffer.getvalue()
    assert "SecretString" in text  # the log is there ...
    assert secret not in text  # ... without the values
