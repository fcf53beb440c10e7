"""The AWS environment, the AWS config file and the stack file's `aws:` settings, as every
operation reads them: a wrong value is exit 2 naming the variable or key, before any AWS call
(also under --dry-run) and without a traceback.

Each command runs in-process (`main(argv)`) against a scratch project, with AWS pointed at a
closed port on 127.0.0.1: a command that reached AWS would fail with exit 1 "Could not connect"
(the baseline test shows it), so exit 2 with the variable's name proves the check came first.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbplatform.ops.aws import session_for
from dbplatform.ops.errors import BadUsage
from infra.config import load_stack
from scripts import bluegreen, dr, restore_check, rotate_secret
from tests.unit.conftest import offline_project

COMMANDS: list[tuple[str, Callable[[list[str]], int], list[str]]] = [
    ("rotate-secret", rotate_secret.main, ["--stack", "prod", "--secret", "master", "--dry-run"]),
    ("restore-check", restore_check.main, ["--stack", "prod", "--skip-sql-checks", "--dry-run"]),
    ("bluegreen status", bluegreen.main, ["status", "--stack", "prod"]),
    (
        "bluegreen start",
        bluegreen.main,
        ["start", "--stack", "prod", "--skip-sql-checks", "--dry-run"],
    ),
    ("dr restore-points", dr.main, ["restore-points", "--stack", "prod", "--region", "us-west-2"]),
    (
        "dr drill",
        dr.main,
        ["drill", "--stack", "prod", "--region", "us-west-2", "--latest", "--dry-run"],
    ),
]
IDS = [c[0] for c in COMMANDS]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = offline_project(tmp_path, monkeypatch, ("Pulumi.yaml", "Pulumi.prod.yaml"))
    monkeypatch.delenv("DBPLATFORM_POLL_SECONDS", raising=False)
    return root


def run(main: Callable[[list[str]], int], argv: list[str], capsys: Any) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


@pytest.mark.parametrize(("name", "main", "argv"), COMMANDS, ids=IDS)
def test_a_good_environment_reaches_aws(
    project: Path, name: str, main: Any, argv: list[str], capsys: Any
) -> None:
    code, text = run(main, argv, capsys)
    assert code == 1 and "Could not connect" in text, text


BAD_ENV = [
    ("AWS_MAX_ATTEMPTS", "0", "AWS_MAX_ATTEMPTS='0' must be a whole number 1..100"),
    ("AWS_MAX_ATTEMPTS", "²", "AWS_MAX_ATTEMPTS='²' must be a whole number"),
    ("AWS_RETRY_MODE", "fast", "AWS_RETRY_MODE='fast' must be adaptive, standard or legacy"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:99999", "AWS_ENDPOINT_URL='http://127.0.0.1:99999'"),
    ("AWS_ENDPOINT_URL_RDS", "localhost:4566", "AWS_ENDPOINT_URL_RDS='localhost:4566' must be"),
    ("DBPLATFORM_POLL_SECONDS", "nan", "DBPLATFORM_POLL_SECONDS='nan' must be a number"),
    ("DBPLATFORM_POLL_SECONDS", "-1", "seconds 0..3600"),
    ("AWS_USE_FIPS_ENDPOINT", "maybe", "AWS_USE_FIPS_ENDPOINT='maybe' must be true or false"),
    ("AWS_USE_DUALSTACK_ENDPOINT", "1", "AWS_USE_DUALSTACK_ENDPOINT='1' must be true or false"),
    ("AWS_STS_REGIONAL_ENDPOINTS", "bogus", "AWS_STS_REGIONAL_ENDPOINTS='bogus' must be one of"),
    ("AWS_CA_BUNDLE", "/nonexistent/ca.pem", "AWS_CA_BUNDLE='/nonexistent/ca.pem' is not a file"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=IDS)
@pytest.mark.parametrize("setting", BAD_ENV, ids=[f"{v}={x}" for v, x, _ in BAD_ENV])
def test_a_bad_environment_is_exit_2_before_any_aws_call(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    command: tuple[str, Any, list[str]],
    setting: tuple[str, str, str],
) -> None:
    (_, main, argv), (variable, value, text) = command, setting
    monkeypatch.setenv(variable, value)
    code, out = run(main, argv, capsys)
    assert code == 2, out
    assert text in out and "Traceback" not in out and "Could not connect" not in out


@pytest.mark.parametrize("value", ["true", "false", "TRUE", "False"])
def test_boolean_aws_settings_take_true_or_false(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any, value: str
) -> None:
    monkeypatch.setenv("AWS_USE_DUALSTACK_ENDPOINT", value)
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 1 and "Could not connect" in out, out


def test_a_malformed_aws_config_file_is_exit_2(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    bad = tmp_path / "config"
    bad.write_text("[default\nregion = us-east-1\n", encoding="utf-8")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(bad))
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 2, out
    assert str(bad) in out and "AWS_CONFIG_FILE" in out and "Traceback" not in out


# --- the stack file's aws: settings -------------------------------------------------------


def _with_aws(project: Path, lines: str) -> None:
    path = project / "Pulumi.prod.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("  aws:region: us-east-1\n", f"  aws:region: us-east-1\n{lines}", 1),
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("assumeRoles", "[{roleArn: 'arn:aws:iam::123456789012:role/deployer'}]"),
        ("assumeRoleWithWebIdentity", "{roleArn: 'arn:aws:iam::123456789012:role/ci'}"),
    ],
)
def test_a_role_to_assume_is_refused_naming_the_key(
    project: Path, capsys: Any, key: str, value: str
) -> None:
    _with_aws(project, f"  aws:{key}: {value}\n")
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 2, out
    assert f"aws:{key} is set in Pulumi.prod.yaml" in out and "Could not connect" not in out


def _profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"[profile {name}]\nregion = us-east-1\naws_access_key_id = AKIDEXAMPLE\n"
        "aws_secret_access_key = example\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


def test_the_stack_files_profile_is_used(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    _with_aws(project, "  aws:profile: data-ops\n")
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 2, out  # no such profile in the (absent) AWS config: named as the stack's
    assert "(data-ops) could not be found" in out and "aws:profile" in out
    _profile(tmp_path, monkeypatch, "data-ops")
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 1 and "Could not connect" in out, out  # the profile exists: AWS is asked


def test_an_explicit_aws_profile_wins_over_the_stack_files(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_stack("prod", project)
    _profile(tmp_path, monkeypatch, "data-ops")
    assert session_for(cfg, profile="data-ops").profile_name == "data-ops"
    monkeypatch.setenv("AWS_PROFILE", "break-glass")
    with pytest.raises(BadUsage, match=r"\(break-glass\) could not be found.*AWS_PROFILE"):
        session_for(cfg, profile="data-ops")


@pytest.mark.parametrize(
    ("lines", "text"),
    [
        ("  aws:allowedAccountIds: [12345]\n", "aws:allowedAccountIds[0] 12345 must be a 12-digit"),
        ("  aws:forbiddenAccountIds: '123456789012'\n", "aws:forbiddenAccountIds"),
        ("  aws:profile: ''\n", "aws:profile"),
    ],
)
def test_a_wrong_aws_setting_is_exit_2_naming_it(
    project: Path, capsys: Any, lines: str, text: str
) -> None:
    _with_aws(project, lines)
    code, out = run(bluegreen.main, ["status", "--stack", "prod"], capsys)
    assert code == 2, out
    assert text in out and "Could not connect" not in out


def test_an_engine_downgrade_is_exit_2_before_any_aws_call(project: Path, capsys: Any) -> None:
    current = load_stack("prod", project).database.engine_version
    older = str(int(current.split(".")[0]) - 1)
    argv = ["start", "--stack", "prod", "--engine-version", older, "--skip-sql-checks"]
    code, out = run(bluegreen.main, [*argv, "--dry-run"], capsys)
    assert code == 2, out
    assert f"--engine-version {older} is older than the stack's database.engineVersion" in out
    assert "Could not connect" not in out


def test_contradictory_restore_check_flags_are_named_together(
    project: Path, tmp_path: Path, capsys: Any
) -> None:
    queries = tmp_path / "queries.yaml"
    queries.write_text("queries: []\n", encoding="utf-8")
    argv = ["--stack", "prod", "--queries", str(queries), "--skip-sql-checks", "--dry-run"]
    code, out = run(restore_check.main, argv, capsys)
    assert code == 2, out
    assert "--queries and --skip-sql-checks contradict each other" in out
    assert "Could not connect" not in out
