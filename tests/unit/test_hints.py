"""Every command line a message suggests names a command that exists and only flags it has.

An operator pastes `dbplatform bluegreen rollback --stack prod ...` from a refusal at 3 a.m.; a
flag the command does not have turns the way out into a usage error (the UX review found hints
naming flags their command lacks). The messages are read from the source: each string the
operational and offline commands can print (f-strings with their values left as placeholders),
each `dbplatform <command> [<subcommand>] ...` in it, checked against the real parser of that
(sub)command. Hints built at run time (the rollback's re-run line with this run's SQL flags, a
drill's refusal, rotate-secret's steps) are parsed from real runs in tests/ops.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbplatform.cli import BY_NAME, COMMANDS

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [
        *(
            p
            for folder in ("bluegreen", "dr", "secrets", "ops", "database")
            for p in (ROOT / "dbplatform" / folder).glob("*.py")
        ),
        *(ROOT / "scripts").glob("*.py"),
        ROOT / "dbplatform" / "cli.py",
        ROOT / "infra" / "config.py",
    ]
)
PLACEHOLDER = "{}"
"""What an f-string's value reads as here: it is neither a subcommand nor a flag."""
SUGGESTION = re.compile(
    rf"(?<![\w/.-])dbplatform ({'|'.join(sorted((c.name for c in COMMANDS), key=len)[::-1])})"
    # the command line ends where the sentence goes on: a code span's end, a clause, a comment
    r"(?![\w-])([^`;,()\n]*?)(?=`|;|,|\(|\)|\n| # | or | to | then |\. |$)"
)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


@dataclass(frozen=True)
class Suggestion:
    where: str
    command: str
    words: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.where}: dbplatform {self.command} {' '.join(self.words)}".rstrip()


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else PLACEHOLDER for v in node.values)
    return None


def _docstrings(tree: ast.AST) -> set[int]:
    """Docstrings describe usage for the reader of the code; they are never printed."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
        else:
            continue
        if body and isinstance(body[0], ast.Expr) and _text(body[0].value) is not None:
            found.add(id(body[0].value))
    return found


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in skip or id(node) in inner:
            continue
        text = _text(node)
        if text:
            yield node.lineno, text


def suggestions() -> list[Suggestion]:
    found = []
    for path in SOURCES:
        for line, text in _strings(path):
            for m in SUGGESTION.finditer(text):
                where = f"{path.relative_to(ROOT)}:{line}"
                found.append(Suggestion(where, m.group(1), tuple(m.group(2).split())))
    return found


SUGGESTIONS = suggestions()


def _parser(command: str) -> argparse.ArgumentParser:
    module = importlib.import_module(BY_NAME[command].module)
    parser: argparse.ArgumentParser = module.build_parser()
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_the_messages_suggest_commands_and_the_scan_finds_them() -> None:
    # The scan must see the suggestions it is about, with their flags and placeholders.
    shown = {str(s).split(": ", 1)[1] for s in SUGGESTIONS}
    assert "dbplatform bluegreen rollback --stack {} --accept-data-window {} --yes{}" in shown
    assert "dbplatform dr restore-points --stack {} --region {}" in shown
    assert "dbplatform bluegreen finalize --stack {}" in shown
    assert len(SUGGESTIONS) > 30


@pytest.mark.parametrize("hint", SUGGESTIONS, ids=str)
def test_a_suggested_command_line_names_only_flags_its_command_has(hint: Suggestion) -> None:
    parser = _parser(hint.command)
    words = list(hint.words)
    subs = _subparsers(parser)
    while subs and words and not words[0].startswith("-"):
        if PLACEHOLDER in words[0]:  # `dbplatform dr {kind}`: whichever the run is
            return
        assert words[0] in subs, f"{hint}: no subcommand {words[0]!r} (has {sorted(subs)})"
        parser = subs[words.pop(0)]
        subs = _subparsers(parser)
    flags = {f for w in words for f in FLAG.findall(w)}
    unknown = sorted(flags - set(parser._option_string_actions))
    assert not unknown, f"{hint}: {parser.prog} has no {unknown}"


def test_the_check_fails_on_a_flag_the_command_lacks() -> None:
    # The flags the UX review found offered where they do not exist must be caught.
    finalize = Suggestion("x", "bluegreen", ("finalize", "--stack", "{}", "--skip-sql-checks"))
    rebuild = Suggestion("x", "dr", ("rebuild", "--stack", "{}", "--skip-sql-checks"))
    drill = Suggestion("x", "dr", ("drill", "--stack", "{}", "--as", "NEW"))
    for bad in (finalize, rebuild, drill):
        with pytest.raises(AssertionError, match="has no"):
            test_a_suggested_command_line_names_only_flags_its_command_has(bad)
