"""The `dbplatform` command: one entry point over every operational and offline command.

`dbplatform <command> [args]` runs the command module `scripts.<module>` with the rest of the
line, so `dbplatform synth --stack prod` and `python -m scripts.synth --stack prod` are the same
command. Modules are imported only when their command runs: `dbplatform --help` and the offline
commands never pay for boto3, and the operational commands never pay for Pulumi.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from dbplatform import __version__
from dbplatform.entry import INTERRUPTED, USAGE, collector_for, exit_now

PROG = "dbplatform"


@dataclass(frozen=True)
class Command:
    """One subcommand: its name on the command line, its module and its one-line summary."""

    name: str
    module: str
    summary: str
    group: str


COMMANDS: tuple[Command, ...] = (
    Command(
        "synth",
        "scripts.synth",
        "what a stack declares, offline (JSON, Markdown, Mermaid)",
        "offline",
    ),
    Command(
        "config",
        "scripts.config",
        "a stack's effective config (defaults merged, secrets as ciphertext), or its JSON Schema",
        "offline",
    ),
    Command(
        "guardrails", "scripts.guardrails", "the safety rules over a stack or a manifest", "offline"
    ),
    Command(
        "infra-diff",
        "scripts.infra_diff",
        "what changes between two manifests, risk first",
        "offline",
    ),
    Command(
        "critical-path",
        "scripts.critical_path",
        "the longest chain of a deploy or rebuild",
        "offline",
    ),
    Command(
        "preview-report",
        "scripts.preview_report",
        "the pull-request comment from `pulumi preview --json`",
        "offline",
    ),
    Command(
        "bluegreen",
        "scripts.bluegreen",
        "blue/green upgrade: start, status, promote, rollback, finalize",
        "operations",
    ),
    Command(
        "restore-check",
        "scripts.restore_check",
        "restore the newest backup, verify it, delete it",
        "operations",
    ),
    Command(
        "dr",
        "scripts.dr",
        "disaster recovery: restore-points, rebuild, drill, secrets, pitr, janitor",
        "operations",
    ),
    Command(
        "heartbeat",
        "scripts.heartbeat",
        "the in-database heartbeat that measures the RPO from the data",
        "operations",
    ),
    Command(
        "rotate-secret",
        "scripts.rotate_secret",
        "rotate one of the stack's secrets now",
        "operations",
    ),
)
BY_NAME = {c.name: c for c in COMMANDS}
# What people type from muscle memory: the module names.
ALIASES = {c.module.removeprefix("scripts."): c.name for c in COMMANDS}


def usage() -> str:
    lines = [
        f"usage: {PROG} [--version] [--help] COMMAND [ARGS...]",
        "",
        "The data tier as code: offline checks of the Pulumi program and the operations beside it.",
        f"Every command takes --help; `{PROG} completion bash|zsh` prints shell completion.",
    ]
    for group in ("offline", "operations"):
        lines += ["", f"{group} commands:"]
        lines += [f"  {c.name:<16}{c.summary}" for c in COMMANDS if c.group == group]
    lines += [
        "",
        "exit codes: 0 done (or nothing to do); 1 failed; 2 bad usage or config; 3 refused",
        "(nothing changed); 130 interrupted (the message says what a re-run does).",
    ]
    return "\n".join(lines) + "\n"


def resolve(name: str) -> Command | None:
    return BY_NAME.get(name) or BY_NAME.get(ALIASES.get(name, ""))


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run `dbplatform ARGS`; `process=True` when this process exists only for the command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0] in ("-h", "--help", "help") and len(args) == 1):
        sys.stdout.write(usage())
        return 0 if args else USAGE
    head, rest = args[0], args[1:]
    if head == "--version":
        print(f"{PROG} {__version__}")
        return 0
    if head == "completion":
        from dbplatform.completion import main as completion

        return completion(rest)
    if head == "help" or (head in ("-h", "--help") and rest):
        head, rest = rest[0], [*rest[1:], "--help"]
    command = resolve(head)
    if command is None:
        close = difflib.get_close_matches(head, [c.name for c in COMMANDS], n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        print(f"{PROG}: unknown command {head!r}{hint}; see `{PROG} --help`", file=sys.stderr)
        return USAGE
    from infra.config import ProjectError, project_dir

    try:  # the one folder every command reads its stack files from, checked once
        project_dir()
    except ProjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    if process:  # the console script's own process, not a test calling main(argv)
        # before the import: its modules are not collected (pulumi's import would collect)
        collector_for("offline" if command.group == "offline" else "start-up")
        entry = command_main(command)
        if command.group != "offline":
            collector_for("operations")  # after it: the imported modules are frozen
        return entry(rest)
    return command_main(command)(rest)


def interrupted(argv: Sequence[str]) -> str:
    """The line after a Ctrl-C that reached the console script, true of what was cut short: an
    offline command (synth, config, ...), help or completion changes nothing and has nothing
    to resume. An operation answers Ctrl-C itself while it runs (what it did, what a re-run
    does), so one that reaches here came before it began or after it ended."""
    command = resolve(argv[0]) if argv else None
    if command is not None and command.group == "operations":
        return (
            f"{PROG} {command.name}: interrupted before the operation began or after it ended "
            "(it prints its result when it ends); re-run it if no result was printed"
        )
    name = f"{PROG} {command.name}" if command is not None else PROG
    return f"{name}: interrupted; it changes nothing, so re-run it"


def command_main(command: Command) -> Callable[[Sequence[str]], int]:
    """The module's `main(argv) -> int`, imported on demand."""
    module = importlib.import_module(command.module)
    entry: Callable[[Sequence[str]], int] = module.main
    return entry


def run() -> NoReturn:
    """Console-script entry point: exit with the command's code; Ctrl-C is exit 130."""
    try:
        code = main(process=True)
    except KeyboardInterrupt:
        print(interrupted(sys.argv[1:]), file=sys.stderr)
        code = INTERRUPTED
    except BrokenPipeError:  # `dbplatform synth ... | head`
        code = 0
    exit_now(code)
