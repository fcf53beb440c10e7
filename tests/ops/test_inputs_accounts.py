"""`aws:allowedAccountIds` / `aws:forbiddenAccountIds` in a stack file: an operation run with
credentials of another account is refused (exit 3, naming the key) before it takes the lock or
changes anything, as pulumi-aws refuses `pulumi up` there. Runs against the moto server, whose
STS answers GetCallerIdentity with its account."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest

from dbplatform.ops import Context, Operation, Result, add_operation, run_command
from tests.ops.support import ROOT, AwsEnv

MARK = "/dbplatform/staging/accounts-mark"


def _mark(ctx: Context) -> Result:
    ctx.mutate(ctx.client("ssm"), "put_parameter", {"Name": MARK, "Value": "x", "Type": "String"})
    return Result("marked")


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="testcmd")
    sub = parser.add_subparsers(required=True)
    add_operation(sub, Operation("act", "change something", _mark))
    return run_command("testcmd", parser, argv)


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: str) -> None:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    text = (ROOT / "Pulumi.staging.yaml").read_text(encoding="utf-8")
    assert "  aws:region: us-east-1\n" in text
    text = text.replace("  aws:region: us-east-1\n", f"  aws:region: us-east-1\n{lines}", 1)
    (root / "Pulumi.staging.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(root))


def _marked(aws: AwsEnv) -> bool:
    names = aws.client("ssm").describe_parameters()["Parameters"]
    return any(p["Name"] == MARK for p in names)


@pytest.mark.parametrize(
    "case",
    [
        ("  aws:allowedAccountIds: ['000000000001']\n", "is not in aws:allowedAccountIds"),
        ("  aws:forbiddenAccountIds: ['{account}']\n", "is in aws:forbiddenAccountIds"),
    ],
    ids=["not allowed", "forbidden"],
)
def test_another_accounts_credentials_are_refused_before_any_change(
    aws: AwsEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: tuple[str, str],
) -> None:
    lines, text = case
    account = aws.client("sts").get_caller_identity()["Account"]
    _project(tmp_path, monkeypatch, lines.format(account=account))
    assert _run(["act", "--stack", "staging", "--yes"]) == 3
    err = capsys.readouterr().err
    assert f"account {account} {text}" in err and "Pulumi.staging.yaml" in err
    assert not _marked(aws)


def test_the_allowed_account_runs(
    aws: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = aws.client("sts").get_caller_identity()["Account"]
    _project(tmp_path, monkeypatch, f"  aws:allowedAccountIds: ['{account}']\n")
    assert _run(["act", "--stack", "staging", "--yes"]) == 0
    assert _marked(aws)
