"""`python -m scripts.rotate_secret` against a moto server: resulting Secrets Manager state, exit
codes, messages, and that no secret value is ever printed.

moto quirk: moto does not run a rotation Lambda (RotateSecret with a function it
cannot invoke fails, without one it marks an empty version current). So the master-secret
rotation is tested in-process with a botocore hook that plays the rotation function's part:
it captures the exact RotateSecret request, then writes the new version as AWSPENDING and
finishes it (AWSCURRENT) a few polls later, as the function's createSecret/finishSecret steps
would. Everything else (application secrets, refusals, dry runs) runs as an operator runs it,
with its own session built from the environment (`run_module`): in this process, except the
tests that a secret value never reaches the output, which need a child's whole stdout/stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from infra.config import load_stack
from infra.naming import Names
from tests.ops.support import ROOT, AwsEnv, FakeClock, Run, new_session, run_module

pytestmark = pytest.mark.moto

PROD = Names("prod")
JWT = PROD.app_secret("jwt-signing-key")
MASTER = PROD.master_secret
OLD_APP_VALUE = "OldValueThatWasLeaked0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
OLD_PASSWORD = "OldMasterPassword#1234"
MASTER_VALUE = {
    "engine": "postgres",
    "host": "dbplatform-prod-pg.abc.us-east-1.rds.amazonaws.com",
    "port": 5432,
    "username": "dbadmin",
    "password": OLD_PASSWORD,
    "dbname": "app",
}


def run(aws: AwsEnv, *args: str, process: bool = False) -> Run:
    """The command as an operator runs it: `python -m scripts.rotate_secret ARGS` with the test's
    environment (its own session, the real clock, no terminal). `process=True` for a test that a
    value never reaches the output: a child's captured fds see every write, including one through
    a handler bound to the real stderr at import time, which an in-process capture would miss."""
    return run_module("scripts.rotate_secret", args, env=aws.env, process=process)


def run_in_process(aws: AwsEnv, *args: str, session: boto3.Session | None = None) -> Run:
    """The same command in this process (cheap): for hooks, and where a subprocess adds nothing."""
    from scripts.rotate_secret import main

    return aws.main(*args, session=session, clock=FakeClock(), main=main)


def seed_app(aws: AwsEnv, *, replica: bool = True) -> str:
    """prod's jwt signing key as the program leaves it (with its DR replica); its version id."""
    sm = aws.client("secretsmanager")
    extra: dict[str, Any] = {"AddReplicaRegions": [{"Region": "us-west-2"}]} if replica else {}
    sm.create_secret(Name=JWT, SecretString=OLD_APP_VALUE, **extra)
    return current_version(aws, JWT)


def seed_master(aws: AwsEnv, *, rotation: bool = True) -> str:
    sm = aws.client("secretsmanager")
    sm.create_secret(Name=MASTER, SecretString=json.dumps(MASTER_VALUE))
    if rotation:
        # moto: the only way to record RotationEnabled without a Lambda it could invoke
        sm.rotate_secret(
            SecretId=MASTER,
            RotationRules={"AutomaticallyAfterDays": 90},
            RotateImmediately=False,
        )
        sm.put_secret_value(SecretId=MASTER, SecretString=json.dumps(MASTER_VALUE))
    return current_version(aws, MASTER)


def labels(aws: AwsEnv, secret_id: str) -> dict[str, list[str]]:
    desc = aws.client("secretsmanager").describe_secret(SecretId=secret_id)
    return {k: sorted(v) for k, v in desc["VersionIdsToStages"].items()}


def current_version(aws: AwsEnv, secret_id: str) -> str:
    (v,) = [k for k, s in labels(aws, secret_id).items() if "AWSCURRENT" in s]
    return v


def value(aws: AwsEnv, secret_id: str, stage: str = "AWSCURRENT", region: str = "us-east-1") -> str:
    sm = aws.client("secretsmanager", region)
    return str(sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])


def secret_calls(result: Run) -> list[dict[str, Any]]:
    """The Secrets Manager calls a dry run planned (the stack lock is planned too)."""
    return [c for c in result.json["planned_calls"] if c["service"] == "secretsmanager"]


def secrets_state(aws: AwsEnv) -> dict[str, Any]:
    sm = aws.client("secretsmanager")
    return {
        s["Name"]: (labels(aws, s["Name"]), value(aws, s["Name"]))
        for s in sm.list_secrets()["SecretList"]
    }


# --- application secrets ---------------------------------------------------------------------


def test_app_secret_gets_a_new_current_value_and_keeps_the_old_as_previous(aws: AwsEnv) -> None:
    old_version = seed_app(aws)
    result = run(
        aws, "--stack", "prod", "--secret", "jwt-signing-key", "--yes", "--json", process=True
    )
    assert result.code == 0, result.text
    out = result.json
    new_version = out["new_version"]
    assert out["previous_version"] == old_version and new_version != old_version
    assert out["replicas"] == {"us-west-2": "InSync"}
    assert labels(aws, JWT) == {old_version: ["AWSPREVIOUS"], new_version: ["AWSCURRENT"]}
    new_value = value(aws, JWT)
    assert value(aws, JWT, "AWSPREVIOUS") == OLD_APP_VALUE
    assert new_value != OLD_APP_VALUE
    (spec,) = [s for s in load_stack("prod", ROOT).vault.app_secrets if s.name == "jwt-signing-key"]
    assert len(new_value) == spec.length and new_value.isalnum()
    assert value(aws, JWT, region="us-west-2") == new_value, "the DR replica follows"
    # never printed, never audited
    for text in (result.text, json.dumps(aws.audit())):
        assert new_value not in text and OLD_APP_VALUE not in text
    (record,) = aws.audit()
    assert record["outcome"] == "done" and JWT in " ".join(record["aws_ids"])
    assert not aws.lock_held("prod")
    # progress names the command as the operator types it (UX review: `rotate_secret rotate`)
    assert "rotate-secret prod: write the new value: done in " in result.stderr
    assert "rotate_secret" not in result.stderr


def test_rotating_twice_moves_previous_along(aws: AwsEnv) -> None:
    seed_app(aws)
    first = run_in_process(aws, "--stack", "prod", "--secret", JWT, "--yes", "--json")
    assert first.code == 0, first.text
    between = value(aws, JWT)
    second = run_in_process(aws, "--stack", "prod", "--secret", "jwt-signing-key", "--yes")
    assert second.code == 0, second.text
    assert value(aws, JWT, "AWSPREVIOUS") == between
    assert value(aws, JWT) not in (between, OLD_APP_VALUE)
    assert len(labels(aws, JWT)) == 3


def test_without_yes_and_no_terminal_it_refuses_and_changes_nothing(aws: AwsEnv) -> None:
    seed_app(aws)
    before = secrets_state(aws)
    result = run(aws, "--stack", "prod", "--secret", "jwt-signing-key")
    assert result.code == 3, result.text
    assert "--yes" in result.stderr and "nothing was changed" in result.stderr
    assert secrets_state(aws) == before


def test_dry_run_prints_the_call_without_the_value_and_changes_nothing(aws: AwsEnv) -> None:
    seed_app(aws)
    before = secrets_state(aws)
    result = run(
        aws, "--stack", "prod", "--secret", "jwt-signing-key", "--dry-run", "--json", process=True
    )
    assert result.code == 0, result.text
    (call,) = secret_calls(result)
    assert call["operation"] == "PutSecretValue" and call["SecretId"] == JWT
    assert call["SecretString"] == "[secret]"
    assert call["VersionStages"] == ["AWSCURRENT"]
    assert secrets_state(aws) == before
    assert OLD_APP_VALUE not in result.text


# --- refusals ------------------------------------------------------------------------------


def test_a_secret_missing_in_aws_is_refused_with_what_to_do(aws: AwsEnv) -> None:
    result = run(aws, "--stack", "prod", "--secret", "jwt-signing-key", "--yes")
    assert result.code == 3, result.text
    assert f"secret {JWT} does not exist" in result.stderr
    assert "pulumi up --stack prod" in result.stderr and "nothing was changed" in result.stderr
    # the region is the stack's, never AWS_REGION's: only the account can be the wrong one
    assert "the stack's own region, whatever AWS_REGION says" in result.stderr
    assert aws.client("secretsmanager").list_secrets()["SecretList"] == []
    assert "Traceback" not in result.text


def test_an_unknown_secret_name_is_bad_usage_listing_the_known_ones(aws: AwsEnv) -> None:
    seed_app(aws)
    before = secrets_state(aws)
    result = run(aws, "--stack", "prod", "--secret", "stripe-key", "--yes")
    assert result.code == 2, result.text
    assert "'stripe-key' is not a secret of stack prod" in result.stderr
    assert "master, jwt-signing-key, data-encryption-key, webhook-secret" in result.stderr
    assert secrets_state(aws) == before


def test_a_secret_scheduled_for_deletion_is_refused(aws: AwsEnv) -> None:
    seed_app(aws, replica=False)
    aws.client("secretsmanager").delete_secret(SecretId=JWT, RecoveryWindowInDays=7)
    result = run_in_process(aws, "--stack", "prod", "--secret", "jwt-signing-key", "--yes")
    assert result.code == 3, result.text
    assert "scheduled for deletion" in result.stderr and "restore-secret" in result.stderr


def test_master_without_rotation_configured_is_refused(aws: AwsEnv) -> None:
    seed_master(aws, rotation=False)
    before = secrets_state(aws)
    result = run_in_process(aws, "--stack", "prod", "--secret", "master", "--yes")
    assert result.code == 3, result.text
    assert "no rotation configured" in result.stderr and "pulumi up --stack prod" in result.stderr
    assert secrets_state(aws) == before


def test_master_dry_run_plans_an_immediate_rotation_only(aws: AwsEnv) -> None:
    seed_master(aws)
    before = secrets_state(aws)
    result = run_in_process(aws, "--stack", "prod", "--secret", "master", "--dry-run", "--json")
    assert result.code == 0, result.text
    assert secret_calls(result) == [
        {"service": "secretsmanager", "operation": "RotateSecret", "SecretId": MASTER,
         "RotateImmediately": True}
    ]  # fmt: skip
    assert secrets_state(aws) == before


# --- master rotation with a stand-in for the rotation function -----------------------------


@dataclass
class FakeRotationFunction:
    """Plays AWS's rotation Lambda against moto: pending version now, current after `polls`."""

    aws: AwsEnv
    polls: int = 2
    new_password: str = "NewMasterPassword#98765"
    requests: list[dict[str, Any]] = field(default_factory=list)
    pending: str | None = None
    seen: int = 0

    def session(self) -> boto3.Session:
        session = new_session()
        session.events.register("before-call.secrets-manager.RotateSecret", self.rotate)
        session.events.register("before-call.secrets-manager.DescribeSecret", self.tick)
        return session

    def rotate(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        self.requests.append(json.loads(params["body"]))
        token = "22222222-2222-2222-2222-222222222222"
        self.start(token)
        return (AWSResponse("https://secretsmanager", 200, {}, None),
                {"ARN": MASTER, "Name": MASTER, "VersionId": token})  # fmt: skip

    def start(self, token: str) -> None:
        """createSecret: the new password as AWSPENDING."""
        self.pending = token
        self.aws.client("secretsmanager").put_secret_value(
            SecretId=MASTER,
            ClientRequestToken=token,
            SecretString=json.dumps({**MASTER_VALUE, "password": self.new_password}),
            VersionStages=["AWSPENDING"],
        )

    def tick(self, **_: Any) -> None:
        """finishSecret, a few polls later: AWSCURRENT moves to the pending version."""
        self.seen += 1
        if self.pending and self.seen == self.polls:
            sm = self.aws.client("secretsmanager")
            current = current_version(self.aws, MASTER)
            sm.update_secret_version_stage(
                SecretId=MASTER,
                VersionStage="AWSCURRENT",
                MoveToVersionId=self.pending,
                RemoveFromVersionId=current,
            )
            sm.update_secret_version_stage(
                SecretId=MASTER, VersionStage="AWSPENDING", RemoveFromVersionId=self.pending
            )


def test_master_rotation_runs_the_configured_function_waits_and_verifies(aws: AwsEnv) -> None:
    old_version = seed_master(aws)
    fn = FakeRotationFunction(aws, polls=3)
    result = run_in_process(
        aws, "--stack", "prod", "--secret", "master", "--yes", "--json", session=fn.session()
    )
    assert result.code == 0, result.text
    # exactly one immediate rotation, through the function configured on the secret: no
    # function ARN or schedule passed (those belong to the program); the token is botocore's
    (request,) = fn.requests
    assert request.pop("ClientRequestToken")
    assert request == {"SecretId": MASTER, "RotateImmediately": True}
    new_version = result.json["new_version"]
    assert labels(aws, MASTER)[new_version] == ["AWSCURRENT"]
    assert labels(aws, MASTER)[old_version] == ["AWSPREVIOUS"]
    assert json.loads(value(aws, MASTER))["password"] == fn.new_password
    assert json.loads(value(aws, MASTER, "AWSPREVIOUS"))["password"] == OLD_PASSWORD
    assert fn.new_password not in result.text and OLD_PASSWORD not in result.text


def test_a_rotation_already_in_progress_is_waited_for_not_restarted(aws: AwsEnv) -> None:
    old_version = seed_master(aws)
    fn = FakeRotationFunction(aws, polls=3)
    fn.start("33333333-3333-3333-3333-333333333333")  # e.g. an interrupted earlier run
    result = run_in_process(
        aws, "--stack", "prod", "--secret", "master", "--yes", "--json", session=fn.session()
    )
    assert result.code == 0, result.text
    assert fn.requests == [], "RotateSecret must not be called again"
    assert result.json["resumed"] is True
    assert labels(aws, MASTER)[old_version] == ["AWSPREVIOUS"]


def test_a_rotation_that_never_finishes_fails_with_the_next_steps(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_version = seed_master(aws)
    monkeypatch.setenv("DBPLATFORM_POLL_SECONDS", "20")  # the fake clock makes waits free
    fn = FakeRotationFunction(aws, polls=10**9)
    result = run_in_process(
        aws, "--stack", "prod", "--secret", "master", "--yes", "--timeout", "1",
        session=fn.session(),
    )  # fmt: skip
    assert result.code == 1, result.text
    assert "gave up waiting" in result.stderr
    assert "/aws/lambda/dbplatform-prod-rotate-master" in result.stderr
    assert "update-secret-version-stage" in result.stderr
    # the old password is still the one in use
    assert labels(aws, MASTER)[old_version] == ["AWSCURRENT"]
    assert json.loads(value(aws, MASTER))["password"] == OLD_PASSWORD


def test_an_unknown_secret_name_is_refused_before_any_aws_call(tmp_path: Path) -> None:
    # No AWS at all (an endpoint nothing listens on): the typo must be answered from config.
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_MAX_ATTEMPTS": "1",
        "DBPLATFORM_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "scripts.rotate_secret",
            "--stack",
            "prod",
            "--secret",
            "stripe-key",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "'stripe-key' is not a secret of stack prod" in proc.stderr
    assert "Could not connect" not in proc.stderr
