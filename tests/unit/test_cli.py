"""The `dbplatform` command: one entry point, from any folder, with completion and stdin."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from dbplatform import __version__
from dbplatform.cli import COMMANDS, main
from dbplatform.completion import table

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _dbplatform() -> str:
    """The installed console script (make setup installs the checkout editable)."""
    path = shutil.which("dbplatform", path=str(VENV_BIN))
    assert path, f"no dbplatform console script in {VENV_BIN}: run make setup"
    return path


def test_the_console_script_runs_from_any_folder(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBPLATFORM_PROJECT_DIR"}
    done = subprocess.run(
        [_dbplatform(), "--help"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    for command in COMMANDS:
        assert f"  {command.name} " in done.stdout
    version = subprocess.run(
        [_dbplatform(), "--version"], cwd=tmp_path, capture_output=True, text=True, env=env
    )
    assert version.stdout == f"dbplatform {__version__}\n"
    # A real command, away from the checkout: the stack files are the checkout's.
    listed = subprocess.run(
        [_dbplatform(), "guardrails", "--list-rules"], cwd=tmp_path, capture_output=True, text=True
    )
    assert listed.returncode == 0 and "stateful-protected" in listed.stdout


def test_unknown_command_and_no_command_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sinth"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'sinth'" in err and "synth" in err
    assert main([]) == 2
    assert "usage: dbplatform" in capsys.readouterr().out
    # Muscle memory: the module name works as the command name.
    with pytest.raises(SystemExit) as shown:
        main(["critical_path", "--help"])
    assert shown.value.code == 0
    assert "usage: dbplatform critical-path" in capsys.readouterr().out


def test_every_command_is_also_a_module_with_the_same_parser() -> None:
    # One child runs each module as `python -m` does (runpy, run_name "__main__"), so a module
    # without its `__main__` block, or one that builds another parser, fails here; one
    # interpreter start-up instead of one per command. The project's modules are forgotten
    # before each, so a module that works only because an earlier one imported something for it
    # fails as it would alone.
    probe = textwrap.dedent(
        """
        import contextlib, io, json, runpy, sys
        OURS = ("scripts", "dbplatform", "infra", "policy", "devtools")
        out = {}
        for module in sys.argv[1:]:
            for name in [n for n in sys.modules if n.split(".")[0] in OURS]:
                del sys.modules[name]
            sys.argv = [module, "--help"]
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                    code = None
                except SystemExit as exc:
                    code = exc.code
            out[module] = [code, buf.getvalue()]
        print(json.dumps(out))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *(c.module for c in COMMANDS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    ran = json.loads(done.stdout)
    for command in COMMANDS:
        code, usage = ran[command.module]
        assert code in (0, None), (command, code)
        assert f"usage: dbplatform {command.name}" in usage, (command, usage)


def test_bash_completion_completes_commands_subcommands_and_flags() -> None:
    script = subprocess.run(
        [_dbplatform(), "completion", "bash"], capture_output=True, text=True, check=True
    ).stdout

    def complete(*words: str) -> list[str]:
        line = " ".join(words)
        probe = textwrap.dedent(
            f"""
            {script}
            COMP_WORDS=({line})
            COMP_CWORD={len(words) - 1}
            _dbplatform
            printf '%s\\n' "${{COMPREPLY[@]}}"
            """
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert complete("dbplatform", "re") == ["restore-check"]
    assert set(complete("dbplatform", "dr", "re")) == {"rebuild", "restore-points"}
    assert "--restore-time" in complete("dbplatform", "dr", "rebuild", "--stack", "prod", "--re")
    assert complete("dbplatform", "completion", "z") == ["zsh"]
    # Values: choices, committed stacks, and aliases complete like their command.
    assert complete("dbplatform", "synth", "--format", "m") == ["markdown", "mermaid"]
    assert set(complete("dbplatform", "guardrails", "--stack", "")) == {"prod", "staging"}
    assert complete("dbplatform", "restore_check", "--ti") == ["--timeout"]


def test_completion_table_matches_the_parsers() -> None:
    words, values = table()
    assert set(words[""]) >= {c.name for c in COMMANDS}
    assert {"start", "status", "promote", "rollback", "finalize"} <= set(words["bluegreen"])
    assert "--max-lag" in words["bluegreen promote"]
    assert values["synth|--out-dir"] == ["@files"]
    assert main(["completion", "fish"]) == 2


def test_dash_reads_standard_input(tmp_path: Path) -> None:
    manifest = ROOT / "tests" / "golden" / "prod.json"
    text = manifest.read_text(encoding="utf-8")
    done = subprocess.run(
        [_dbplatform(), "infra-diff", str(manifest), "-", "--json"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["changes"] == []
    checked = subprocess.run(
        [_dbplatform(), "guardrails", "--manifest", "-", "--json"],
        input=text,
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["stack"] == "prod"


def test_a_python_without_the_dependencies_gets_exit_2_and_what_to_run(tmp_path: Path) -> None:
    # A bare interpreter: the base Python behind the venv, without its site-packages.
    bare = Path(sys.base_prefix) / "bin" / "python3"
    if not bare.exists():
        pytest.skip(f"no base interpreter at {bare}")
    done = subprocess.run(
        [str(bare), "-S", "-m", "scripts.guardrails", "--stack", "prod"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "make setup" in done.stderr and "Traceback" not in done.stderr


def test_the_policy_pack_is_self_contained(tmp_path: Path) -> None:
    """`pulumi policy publish` ships policy/ alone: it must run with nothing of the repository."""
    pack = tmp_path / "published-pack-0.1.0"
    shutil.copytree(ROOT / "policy", pack, ignore=shutil.ignore_patterns("__pycache__", "venv"))
    probe = textwrap.dedent(
        f"""
        import importlib.abc, runpy, sys
        class NoRepository(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("infra", "scripts", "dbplatform", "devtools"):
                    raise ImportError("the pack imported " + name)
                return None
        sys.meta_path.insert(0, NoRepository())
        import pulumi_policy
        seen = {{}}
        pulumi_policy.PolicyPack = lambda name, policies: seen.update(name=name, n=len(policies))
        runpy.run_path({str(pack / "__main__.py")!r}, run_name="__main__")
        import policy
        assert policy.__file__.startswith({str(pack)!r}), policy.__file__
        print(seen["name"], seen["n"])
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=pack, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    name, count = done.stdout.split()
    assert name == "dbplatform-guardrails" and int(count) >= 20


def test_the_docs_say_the_command_and_the_pack_run_from_anywhere() -> None:
    """UX review: docs said the commands run "from the repository root" and the CrossGuard pack
    "imports the rules from the repository, so run it from a checkout"; the installed command
    runs from any folder (test_the_console_script_runs_from_any_folder) and the pack is
    self-contained (test_the_policy_pack_is_self_contained)."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = " ".join(doc.read_text(encoding="utf-8").split())
        assert "from the repository root" not in text, doc.name
        assert "imports the rules from the repository" not in text, doc.name
    guardrails = " ".join((ROOT / "docs" / "synth-guardrails.md").read_text().split())
    assert "The pack is self-contained (`policy/__main__.py`)" in guardrails
    assert "from any folder" in guardrails


def test_another_checkout_is_refused_not_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run from inside another checkout, the command would use this checkout's program with
    that one's stack files (a base-branch synth describing the head's code): exit 2 instead."""
    from infra.config import ROOT as CHECKOUT
    from infra.config import ProjectError, project_dir

    monkeypatch.delenv("DBPLATFORM_PROJECT_DIR", raising=False)
    other = tmp_path / "other-checkout"
    (other / "infra").mkdir(parents=True)
    (other / "Pulumi.yaml").write_text("name: dbplatform\nruntime: python\n", encoding="utf-8")
    (other / "deep" / "er").mkdir(parents=True)
    with pytest.raises(
        ProjectError, match=r"another checkout.*other-checkout/\.venv/bin/dbplatform"
    ):
        project_dir(other / "deep" / "er")
    monkeypatch.chdir(other / "deep")
    assert main(["synth", "--stack", "prod"]) == 2
    assert "another checkout" in capsys.readouterr().err
    # Another Pulumi project is not ours, and the checkout itself is fine.
    foreign = tmp_path / "foreign"
    (foreign / "infra").mkdir(parents=True)
    (foreign / "Pulumi.yaml").write_text("name: billing\n", encoding="utf-8")
    assert project_dir(foreign) == CHECKOUT
    assert project_dir(CHECKOUT / "docs") == CHECKOUT
    # Saying so on purpose is allowed.
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(other))
    assert project_dir(other) == other


def test_help_command_shows_the_commands_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as shown:
        main(["help", "synth"])
    assert shown.value.code == 0
    assert "usage: dbplatform synth" in capsys.readouterr().out


def _parsers(parser: Any, name: str) -> Iterator[tuple[str, Any]]:
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, child in action.choices.items():
                yield from _parsers(child, f"{name} {sub}")


def test_no_parser_takes_a_prefix_for_a_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """UX review: `promote --ign` read as --ignore-lag and skipped a gate. A flag is spelled
    out in full everywhere (argparse's allow_abbrev off); an unknown prefix is exit 2."""
    import importlib

    seen = 0
    for command in COMMANDS:
        top = importlib.import_module(command.module).build_parser()
        for name, parser in _parsers(top, command.name):
            assert parser.allow_abbrev is False, name
            seen += 1
    assert seen > len(COMMANDS)  # subcommands were walked too
    code = main(["bluegreen", "promote", "--stack", "staging", "--ign", "--dry-run"])
    assert code == 2 and "unrecognized arguments: --ign" in capsys.readouterr().err


def test_completion_has_help_and_names_what_it_wants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "--help"]) == 0
    assert "usage: dbplatform completion {bash|zsh}" in capsys.readouterr().out
    assert main(["completion", "fish"]) == 2
    assert "error: a shell, one of bash, zsh (got fish)" in capsys.readouterr().err


def test_with_json_a_usage_error_is_a_json_object_too(capsys: pytest.CaptureFixture[str]) -> None:
    """UX review: `status --stack nope --json` gave JSON, `--timeout 0 --json` nothing."""
    assert main(["restore-check", "--stack", "prod", "--json", "--timeout", "0"]) == 2
    out, err = capsys.readouterr()
    got = json.loads(out)
    assert got["outcome"] == "bad-usage" and got["exit_code"] == 2
    assert "--timeout" in got["message"] and "--timeout" in err  # and still said on stderr
    assert main(["restore-check", "--stack", "prod", "--timeout", "0"]) == 2
    assert capsys.readouterr().out == ""  # without --json, stdout stays empty


def test_every_commands_help_lists_its_exit_codes() -> None:
    import importlib

    for command in COMMANDS:
        top = importlib.import_module(command.module).build_parser()
        for name, parser in _parsers(top, command.name):  # subcommands' --help too
            text = " ".join(parser.format_help().split())
            assert "exit codes: 0 " in text and " 2 " in text, name


def _with_something_required() -> list[tuple[str, set[str]]]:
    """Every (sub)command that requires an argument, with the flags it knows."""
    import importlib

    found = []
    for command in COMMANDS:
        top = importlib.import_module(command.module).build_parser()
        for name, parser in _parsers(top, command.name):
            needs = any(a.required for a in parser._actions) or any(
                g.required for g in parser._mutually_exclusive_groups
            )
            if needs and not any(
                isinstance(a, argparse._SubParsersAction) for a in parser._actions
            ):
                found.append((name, {s for a in parser._actions for s in a.option_strings}))
    return found


REQUIRING = _with_something_required()


def _exit_code(argv: list[str]) -> int:
    """What the command line exits with: the operations return it, the offline commands'
    argparse raises it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_a_mistyped_flag_is_named_before_a_missing_one(capsys: pytest.CaptureFixture[str]) -> None:
    """UX review: `bluegreen status --sta prod` said "--stack is required", never that --sta is
    no flag. Every command that requires something names the unknown flag first (exit 2)."""
    assert len(REQUIRING) >= 10  # the operations' subcommands, synth, infra-diff, ...
    for name, _ in REQUIRING:
        assert _exit_code([*name.split(), "--sta", "prod"]) == 2, name
        err = capsys.readouterr().err
        assert "unrecognized arguments: --sta" in err, (name, err)
        assert "required" not in err, (name, err)
    # the usage line is the subcommand's, which shows the flag meant
    assert _exit_code(["bluegreen", "status", "--sta", "prod"]) == 2
    assert "usage: dbplatform bluegreen status [-h] --stack NAME" in capsys.readouterr().err
    # with nothing mistyped, what is missing is still named
    assert _exit_code(["bluegreen", "status"]) == 2
    assert "the following arguments are required: --stack" in capsys.readouterr().err
    assert _exit_code(["synth"]) == 2
    assert "one of the arguments --stack --all-stacks is required" in capsys.readouterr().err


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(REQUIRING),
    flag=st.from_regex(r"--[a-z][a-z0-9-]{0,14}", fullmatch=True),
)
def test_any_unknown_flag_is_a_usage_error_naming_it(
    which: tuple[str, set[str]], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, known = which
    assume(flag not in known)
    assert _exit_code([*name.split(), flag]) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag}" in err and "Traceback" not in err


def test_help_and_usage_errors_still_mark_what_is_required(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Review of the change above: its first reading, with nothing required, printed the help
    and a bad value's usage line with every required flag shown optional."""
    assert _exit_code(["bluegreen", "status", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--stack NAME" in out and "[--stack NAME]" not in out
    assert _exit_code(["rotate-secret", "--stack", "prod", "--secret", "x", "--timeout", "0"]) == 2
    err = capsys.readouterr().err
    assert "--timeout" in err and "[--stack NAME]" not in err and "--stack NAME" in err
    assert _exit_code(["synth", "--format", "pdf"]) == 2
    err = capsys.readouterr().err
    assert "(--stack STACK | --all-stacks)" in err and "invalid choice: 'pdf'" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (
            ["synth", "--stack", "prod"],
            "dbplatform synth: interrupted; it changes nothing, so re-run it",
        ),
        (["config", "--stack", "prod"], "dbplatform config: interrupted; it changes nothing"),
        (["--help"], "dbplatform: interrupted; it changes nothing, so re-run it"),
        (
            ["restore-check", "--stack", "prod"],
            "dbplatform restore-check: interrupted before the operation began or after it ended",
        ),
    ],
)
def test_ctrl_c_in_the_console_script_says_what_is_true_of_the_command(
    argv: list[str],
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """UX review: Ctrl-C during `synth` said "re-run the same command to resume"; synth has
    nothing to resume. (An operation that runs answers Ctrl-C itself: tests/ops.)"""
    from dbplatform import cli

    def interrupted(process: bool = False) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "main", interrupted)
    monkeypatch.setattr(cli, "exit_now", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    monkeypatch.setattr(sys, "argv", ["dbplatform", *argv])
    with pytest.raises(SystemExit) as ended:
        cli.run()
    assert ended.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith(says), err
    assert err.count("\n") == 1 and "resume" not in err


def test_synth_out_creates_missing_folders_and_its_help_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI relies on it; undocumented, it surprised a reviewer (infra-diff and preview-report
    do not create them: docs/synth-guardrails.md)."""
    from scripts import synth
    from tests.test_synth import _manifest

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--out FILE write to FILE instead of stdout" in shown
    assert "missing parent directories are created" in shown
    assert "DIR, created with its parents if missing" in shown

    monkeypatch.setattr(synth, "build_manifest", lambda stack, root: _manifest(stack))
    out = tmp_path / "not" / "yet" / "staging.json"
    assert synth.main(["--stack", "staging", "--out", str(out)]) == 0
    assert json.loads(out.read_text(encoding="utf-8"))["stack"] == "staging"


def test_a_missing_stack_file_says_how_the_project_folder_was_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """UX review: run from a folder with its own Pulumi.yaml, `config --stack t1` answered
    "Pulumi.t1.yaml not found in <checkout>" and left the user to guess why there."""
    from infra.config import ROOT as CHECKOUT

    monkeypatch.delenv("DBPLATFORM_PROJECT_DIR", raising=False)
    (tmp_path / "Pulumi.yaml").write_text("name: billing\nruntime: python\n", encoding="utf-8")
    (tmp_path / "Pulumi.t1.yaml").write_text("config: {}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "--stack", "t1"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"Pulumi.t1.yaml not found in {CHECKOUT}" in err
    assert (
        "the checkout dbplatform is installed from: the working directory does not choose it"
        in (err)
    )
    assert f"({tmp_path / 'Pulumi.yaml'} is not read)" in err
    assert "set DBPLATFORM_PROJECT_DIR=FOLDER" in err

    # the way out it names works, and then the message names that way
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(tmp_path))
    assert main(["config", "--stack", "t2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"Pulumi.t2.yaml not found in {tmp_path}" in err
    assert "That folder is the one DBPLATFORM_PROJECT_DIR names" in err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert main(["synth", "--stack", "t2", "--root", str(elsewhere)]) == 2
    assert "That folder was given with --root" in capsys.readouterr().err
