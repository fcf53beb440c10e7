"""devtools/inprocess.py: a command's main() in this process leaves the process as it found it."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from devtools.inprocess import run_main


@pytest.fixture
def fake_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("fake_command")

    def main(argv: list[str]) -> int:
        print(f"argv={sys.argv} cwd={os.getcwd()} X={os.environ.get('X')}")
        if argv == ["boom"]:
            raise RuntimeError("boom")
        if argv == ["say"]:
            raise SystemExit("stopped: reason")
        return 7

    mod.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_command", mod)
    return mod


def test_env_argv_cwd_and_stdin_are_the_calls_and_come_back(
    fake_module: types.ModuleType, tmp_path: Path
) -> None:
    before = (dict(os.environ), list(sys.argv), os.getcwd(), sys.stdin)
    code, out, _ = run_main("fake_command", ["a"], env={"X": "1"}, cwd=tmp_path)
    assert code == 7
    assert out.strip() == f"argv=['fake_command', 'a'] cwd={tmp_path} X=1"
    assert (dict(os.environ), list(sys.argv), os.getcwd(), sys.stdin) == before
    with pytest.raises(RuntimeError):
        run_main("fake_command", ["boom"], env={"X": "2"}, cwd=tmp_path)
    assert (dict(os.environ), list(sys.argv), os.getcwd(), sys.stdin) == before


def test_a_value_the_environment_refuses_changes_nothing(fake_module: types.ModuleType) -> None:
    before = dict(os.environ), os.getcwd()
    with pytest.raises(ValueError):
        run_main("fake_command", [], env={"X": "a\0b"}, cwd="/")
    assert (dict(os.environ), os.getcwd()) == before


def test_a_systemexit_message_is_printed_and_exits_1(fake_module: types.ModuleType) -> None:
    code, _, err = run_main("fake_command", ["say"], env={})
    assert code == 1 and err.strip() == "stopped: reason"
