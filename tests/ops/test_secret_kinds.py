"""Secret kinds against moto's Secrets Manager: an encryption key never loses its last label and
needs a re-encryption plan; a compromised signing key can revoke its previous value; master
rotation is refused during a major-version blue/green; a stale AWSPENDING fails fast."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest

from dbplatform.cmdline import parse_args
from infra.naming import Names
from scripts.bluegreen import build_parser
from tests.ops.support import AwsEnv, FakeClock, Run, session_with
from tests.ops.test_rotate_secret import MASTER, MASTER_VALUE, labels, seed_master

pytestmark = pytest.mark.moto
PROD = Names("prod")
DEK = PROD.app_secret("data-encryption-key")
JWT = PROD.app_secret("jwt-signing-key")
KEY0 = "OriginalDataKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"


def rotate(aws: AwsEnv, *args: str) -> Run:
    from scripts.rotate_secret import main

    return aws.main("--stack", "prod", "--yes", *args, clock=FakeClock(), main=main)


def seed(aws: AwsEnv, name: str) -> str:
    sm = aws.client("secretsmanager")
    sm.create_secret(Name=name, SecretString=KEY0)
    (v,) = [k for k, s in labels(aws, name).items() if "AWSCURRENT" in s]
    return v


def test_an_encryption_key_needs_a_reencryption_plan(aws: AwsEnv) -> None:
    first = seed(aws, DEK)
    run = rotate(aws, "--secret", "data-encryption-key")
    assert run.code == 3, run.text
    assert "re-encrypt" in run.stderr and "--reencryption-planned" in run.stderr
    assert labels(aws, DEK) == {first: ["AWSCURRENT"]}  # nothing changed
    # the audit record says which secret the refused rotation was about (a name, not a value)
    assert aws.audit()[-1]["args"]["secret"] == "data-encryption-key"


def test_rotating_an_encryption_key_twice_leaves_no_version_unlabeled(aws: AwsEnv) -> None:
    original = seed(aws, DEK)
    for _ in range(2):
        run = rotate(aws, "--secret", "data-encryption-key", "--reencryption-planned", "--json")
        assert run.code == 0, run.text
        assert run.json["retired_label"].startswith("DBPLATFORM-RETIRED-")
    seen = labels(aws, DEK)
    assert len(seen) == 3
    assert all(seen.values()), seen  # every version keeps a label: none is deprecated
    assert any(lbl.startswith("DBPLATFORM-RETIRED-") for lbl in seen[original])
    sm = aws.client("secretsmanager")
    assert sm.get_secret_value(SecretId=DEK, VersionId=original)["SecretString"] == KEY0


def _interrupt(**_: Any) -> None:
    raise KeyboardInterrupt  # Ctrl-C, or SIGTERM, at that very call


def test_an_encryption_rotation_interrupted_at_its_write_is_safe_to_re_run(aws: AwsEnv) -> None:
    """Interrupted just before the write, then re-run as the message says: the original key
    was labeled retired first, and never loses its last label."""
    from scripts.rotate_secret import main

    original = seed(aws, DEK)
    session = session_with([("before-call.secrets-manager.PutSecretValue", _interrupt)])
    args = ("--stack", "prod", "--yes", "--secret", "data-encryption-key", "--reencryption-planned")
    first = aws.main(*args, session=session, clock=FakeClock(), main=main)
    assert first.code == 130, first.text
    assert "ANOTHER new value" in first.stderr  # the rotation's own interrupt text
    assert "Nothing is lost" not in first.stderr
    seen = labels(aws, DEK)
    retired = [lbl for lbl in seen[original] if lbl.startswith("DBPLATFORM-RETIRED-")]
    assert len(retired) == 1 and "AWSCURRENT" in seen[original], seen  # labeled before
    again = rotate(aws, *args[3:])
    assert again.code == 0, again.text
    seen = labels(aws, DEK)
    assert sorted(seen[original]) == sorted(["AWSPREVIOUS", retired[0]]), seen  # label kept
    assert all(seen.values()), seen
    sm = aws.client("secretsmanager")
    assert sm.get_secret_value(SecretId=DEK, VersionId=original)["SecretString"] == KEY0


def test_a_re_run_after_an_interruption_past_the_write_never_strips_the_old_key(
    aws: AwsEnv,
) -> None:
    """Interrupted after the write, before the retired label is checked again. moto resets the
    old version's labels to [AWSPREVIOUS] on PutSecretValue (AWS documents no such removal), so
    here the old key is left with AWSPREVIOUS alone: the re-run refuses (3) with the command
    that labels it, instead of moving AWSPREVIOUS off it."""
    from scripts.rotate_secret import main

    original = seed(aws, DEK)
    session = session_with([("after-call.secrets-manager.PutSecretValue", _interrupt)])
    args = ("--stack", "prod", "--yes", "--secret", "data-encryption-key", "--reencryption-planned")
    first = aws.main(*args, session=session, clock=FakeClock(), main=main)
    assert first.code == 130, first.text
    before = labels(aws, DEK)
    assert "AWSPREVIOUS" in before[original]
    again = rotate(aws, *args[3:])
    if any(lbl.startswith("DBPLATFORM-RETIRED-") for lbl in before[original]):
        assert again.code == 0, again.text  # the label survived the write (as AWS documents)
    else:
        assert again.code == 3, again.text
        assert f"--move-to-version-id {original}" in again.stderr
        assert labels(aws, DEK) == before  # nothing changed
    assert labels(aws, DEK)[original], labels(aws, DEK)  # never unlabeled


def test_an_encryption_key_whose_previous_version_is_unretired_is_refused(aws: AwsEnv) -> None:
    original = seed(aws, DEK)
    sm = aws.client("secretsmanager")
    sm.put_secret_value(SecretId=DEK, SecretString=KEY0[::-1])  # e.g. a manual update
    before = labels(aws, DEK)
    assert before[original] == ["AWSPREVIOUS"]
    run = rotate(aws, "--secret", "data-encryption-key", "--reencryption-planned")
    assert run.code == 3, run.text
    assert original in run.stderr
    assert f"--move-to-version-id {original}" in run.stderr
    assert "update-secret-version-stage" in run.stderr
    assert labels(aws, DEK) == before  # nothing changed


def test_a_compromised_signing_key_can_revoke_its_previous_value(aws: AwsEnv) -> None:
    old = seed(aws, JWT)
    run = rotate(aws, "--secret", "jwt-signing-key", "--revoke-previous", "--json")
    assert run.code == 0, run.text
    assert run.json["revoked_previous"] is True
    seen = labels(aws, JWT)
    assert seen[old] == []  # verifiers that accept AWSPREVIOUS no longer get the leaked value
    assert sorted(label for ls in seen.values() for label in ls) == ["AWSCURRENT"]


def test_revoke_previous_is_refused_for_an_encryption_key(aws: AwsEnv) -> None:
    seed(aws, DEK)
    run = rotate(aws, "--secret", "data-encryption-key", "--revoke-previous")
    assert run.code == 2
    assert "--revoke-previous" in run.stderr and "encryption" in run.stderr


def _record(aws: AwsEnv, phase: str, source: str, target: str) -> None:
    state: dict[str, Any] = {
        "phase": phase,
        "deployment_id": "bgd-test",
        "deployment_name": "dbplatform-prod-pg-to-17",
        "source_version": source,
        "target_version": target,
    }
    aws.client("ssm").put_parameter(
        Name=PROD.bluegreen_state_parameter, Value=json.dumps(state), Type="String"
    )


def test_master_rotation_is_refused_during_a_major_blue_green(aws: AwsEnv) -> None:
    before = seed_master(aws)
    _record(aws, "started", "16.4", "17.2")
    run = rotate(aws, "--secret", "master")
    assert run.code == 3, run.text
    assert "logical replication does not carry the password" in run.stderr
    assert [k for k, s in labels(aws, MASTER).items() if "AWSCURRENT" in s] == [before]


@pytest.mark.parametrize("phase", ["switched-over", "promoted", "rolling-back"])
@pytest.mark.parametrize("target", ["16.5", "17.2"])
def test_master_rotation_is_refused_until_finalize(aws: AwsEnv, phase: str, target: str) -> None:
    """After the switchover the old blue keeps its password (nothing replicates): a rotation
    now would make a rollback bring back a database the secret cannot log in to."""
    before = seed_master(aws)
    _record(aws, phase, "16.4", target)
    run = rotate(aws, "--secret", "master")
    assert run.code == 3, run.text
    assert "`dbplatform bluegreen finalize --stack prod`" in run.stderr and phase in run.stderr
    assert [k for k, s in labels(aws, MASTER).items() if "AWSCURRENT" in s] == [before]
    # each way on is a whole command line its parser accepts (it said `dbplatform bluegreen
    # promote, then finalize --stack prod`: no --stack on promote, exit 2 as pasted)
    steps = re.findall(r"`(dbplatform bluegreen [^`]+)`", run.stderr)
    assert steps and steps[-1] == "dbplatform bluegreen finalize --stack prod", steps
    for step in steps:
        args = parse_args(build_parser(), shlex.split(step)[2:])
        assert args.stack == "prod"


def test_a_stale_pending_version_fails_fast_with_the_command(aws: AwsEnv) -> None:
    seed_master(aws, rotation=False)
    sm = aws.client("secretsmanager")
    sm.put_secret_value(
        SecretId=MASTER,
        ClientRequestToken="11111111-1111-1111-1111-111111111111",
        SecretString=json.dumps({**MASTER_VALUE, "password": "half-rotated"}),
        VersionStages=["AWSPENDING"],
    )
    clock = FakeClock()
    from scripts.rotate_secret import main

    run = aws.main("--stack", "prod", "--yes", "--secret", "master", clock=clock, main=main)
    assert run.code == 3, run.text
    assert "stale AWSPENDING" in run.stderr and "rotation is not enabled" in run.stderr
    assert "--remove-from-version-id 11111111-1111-1111-1111-111111111111" in run.stderr
    assert clock.slept == 0  # no wait for a rotation nobody runs
