"""Ctrl-C in an offline command: exit 130 and one line, never a traceback."""

from __future__ import annotations

import ast
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbplatform.entry import INTERRUPTED, run_main

ROOT = Path(__file__).resolve().parents[2]
OFFLINE = ["synth", "guardrails", "infra_diff", "critical_path", "preview_report"]


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """run_main sets the collector for an offline process (off); this test process gets its
    own setting back, so no later test on this worker runs without collection."""
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_an_interrupted_command_exits_130_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as done:
        run_main(interrupted, "synth")
    assert done.value.code == INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err == "synth: interrupted; it changes nothing, so re-run it\n"


def test_a_finished_command_keeps_its_exit_code() -> None:
    with pytest.raises(SystemExit) as done:
        run_main(lambda: 3, "infra_diff")
    assert done.value.code == 3


@pytest.mark.parametrize("command", OFFLINE)
def test_every_offline_command_ends_through_run_main(command: str) -> None:
    tree = ast.parse((ROOT / "scripts" / f"{command}.py").read_text(encoding="utf-8"))
    (guard,) = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert ast.unparse(guard.body[0]) == f"run_main(main, '{command}')"
