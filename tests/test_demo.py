"""`make demo` end to end: the same steps, against a moto server on 127.0.0.1 the demo starts and
stops itself. Asserts what the newcomer sees: every step's outcome in the summary, the exit code,
the server gone afterwards, and what the commands leave behind (audit log, manifest, DR report).
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from devtools import demo, moto_server
from infra.config import load_stack

pytestmark = pytest.mark.moto


def _server_pid(output: str) -> int:
    m = re.search(r"moto server at http://127\.0\.0\.1:\d+, pid (\d+)", output)
    assert m, output
    return int(m.group(1))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_demo_runs_an_operators_first_hour_and_every_step_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process: the same steps and output without an interpreter start-up per step (the
    # test below runs commands as child processes, as `make demo` does).
    code = demo.main(["--stack", "prod", "--work", str(tmp_path), "--quiet", "--in-process"])
    out, err = capsys.readouterr()
    assert code == 0, out + err

    steps = demo.steps_for(load_stack("prod"), tmp_path)
    # The capabilities a newcomer must see work, in the order the issue names them.
    assert [s.module for s in steps if s.module != "scripts.bluegreen"] == [
        "scripts.synth",
        "scripts.guardrails",
        "scripts.restore_check",
        "scripts.rotate_secret",
        "scripts.dr",
        "scripts.dr",
    ]
    bluegreen = [s.args[0] for s in steps if s.module == "scripts.bluegreen"]
    assert bluegreen == ["start", "status", "promote", "rollback", "rollback", "finalize"]
    for step in steps:
        row = rf"^{re.escape(step.title)}\s+{step.expect}\s+ok: "
        assert re.search(row, out, re.MULTILINE), f"no ok row for {step.title!r}:\n{out}"
    assert f"{len(steps)}/{len(steps)} steps ok" in out
    assert "FAIL" not in out

    assert _gone(_server_pid(out)), "the demo's moto server still runs"

    # What the commands left for the operator to read: each run in the audit log with its
    # outcome (the refused rollback, then the accepted one), the manifest and the drill report.
    audit = [
        json.loads(line)
        for line in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["command"].split()[0], r["outcome"]) for r in audit] == [
        ("restore_check", "done"),
        ("bluegreen", "done"),
        ("bluegreen", "done"),
        ("bluegreen", "done"),
        ("bluegreen", "refused"),
        ("bluegreen", "done"),
        ("bluegreen", "done"),
        ("rotate_secret", "done"),
        ("dr", "done"),
        ("dr", "done"),
    ]
    assert all(r["stack"] == "prod" for r in audit)
    assert (tmp_path / "prod.md").read_text(encoding="utf-8").startswith("# `prod`")
    assert json.loads((tmp_path / "prod.json").read_text(encoding="utf-8"))["stack"] == "prod"
    assert list((tmp_path / "dr").glob("*.md")), "the DR drill wrote no report"


def test_a_failing_or_missing_step_fails_the_demo_and_still_stops_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default path, as `make demo` runs it: the seed and each step are child processes,
    # and the server a fresh `python -m devtools.moto_server --serve` (no zygote outside the
    # suite). Seeded but never started, promote has no deployment to act on and refuses (exit 3).
    monkeypatch.delenv(moto_server.ZYGOTE_ENV, raising=False)
    servers: list[moto_server.MotoServer] = []
    real_start = moto_server.start
    monkeypatch.setattr(moto_server, "start", lambda: servers.append(real_start()) or servers[-1])
    steps = [
        demo.Step(
            "promote",
            "scripts.bluegreen",
            ("promote", "--stack", "prod", "--yes", "--skip-sql-checks"),
        ),
        demo.Step("a command that does not exist", "scripts.no_such_command", ()),
    ]
    monkeypatch.setattr(demo, "steps_for", lambda cfg, work: steps)

    code = demo.main(["--stack", "prod", "--work", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()

    assert code == 1
    assert re.search(r"^promote\s+3\s+FAIL: refused, expected done", out, re.MULTILINE), out
    assert re.search(r"^a command that does not exist\s+-1\s+FAIL: command missing", out, re.M)
    assert "0/2 steps ok" in out
    assert "FAILED: python -m scripts.bluegreen promote --stack prod --yes --skip-sql" in err
    assert _gone(_server_pid(out))
    assert [type(s.process) for s in servers] == [subprocess.Popen]


def test_an_invalid_stack_is_bad_usage_before_anything_starts(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert demo.main(["--stack", "nosuch", "--work", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "nosuch" in err
    assert "moto server" not in out


def test_ctrl_c_in_a_step_stops_the_demo_with_130_and_stops_the_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process, the command answers Ctrl-C itself (exit 130, as every command does): the demo
    # must stop there, not carry on with the next step, and still stop its server.
    # `find_spec` must see them, as the demo asks whether a step's module exists
    interrupted = types.ModuleType("interrupted_command")
    interrupted.__spec__ = importlib.machinery.ModuleSpec("interrupted_command", None)
    interrupted.main = lambda argv: 130  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interrupted_command", interrupted)
    ran_after: list[str] = []
    never = types.ModuleType("never_reached")
    never.__spec__ = importlib.machinery.ModuleSpec("never_reached", None)
    never.main = lambda argv: ran_after.append("ran") or 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "never_reached", never)
    steps = [
        demo.Step("interrupted", "interrupted_command", ()),
        demo.Step("next", "never_reached", ()),
    ]
    monkeypatch.setattr(demo, "steps_for", lambda cfg, work: steps)
    monkeypatch.setattr(demo, "seed_environment", lambda *a, **k: {})  # not what this is about

    code = demo.main(["--stack", "prod", "--work", str(tmp_path), "--in-process"])
    out, err = capsys.readouterr()

    assert code == 130
    assert "demo interrupted; the moto server is stopped" in err
    assert ran_after == []
    assert _gone(_server_pid(out))
