"""The docs a newcomer reads are current and runnable: README's generated blocks match their
sources, every `python -m scripts.X ...` shown in README.md and docs/*.md names a module whose
parser accepts the subcommand and flags shown, and every `make X` shown is a Makefile target.

Commands are parsed in-process (the module runs as `__main__` and is stopped right after
argparse accepted its arguments), so nothing reaches AWS and the check takes milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import re
import runpy
import shlex
import shutil
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbplatform.cli import BY_NAME, COMMANDS
from devtools import gen_docs

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
INVOCATION = re.compile(
    r"(?:\bpython3?\s+-m\s+((?:scripts|devtools)\.[A-Za-z_]\w*)"
    rf"|(?<![\w:/.-])dbplatform\s+({'|'.join(c.name for c in COMMANDS)})(?![\w-]))([^\n`]*)"
)
MAKE = re.compile(r"(?:^|[\s;&|(])make\s+([a-z][\w.-]*)")
FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
# A config key as a whole code span (`dbplatform:backup.window`); tag keys such as
# `dbplatform:run-id` or `dbplatform:purpose = ...` are not config.
CONFIG_REF = re.compile(r"`(dbplatform:[A-Za-z]\w*(?:\.[A-Za-z]\w*)*)`")
# Tokens that end a command on a shell line: what follows is another command or a redirect.
SHELL_BREAKS = {"|", "||", "&&", ";", ">", ">>", "2>", "2>&1", "&", "#", ")"}
# Usage syntax (optional parts, alternatives, placeholders): checked against --help, not parsed.
SUBCOMMANDS = re.compile(r"[a-z][\w-]*(?:\|[a-z][\w-]*)*")
USAGE_SYNTAX = re.compile(r"[\[\]|<>{}…]|\.\.\.")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_texts(markdown: str) -> Iterator[tuple[bool, str]]:
    """The code in a Markdown text: (True, line) per fenced block line, (False, span) per inline
    code span. A fenced line is a command to copy and run; a span may just name a command.
    """
    fences = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for block in fences.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            yield True, line
    prose = fences.sub("", markdown)
    for span in re.findall(r"`([^`\n]+)`", prose):
        yield False, span


@dataclass(frozen=True)
class Invocation:
    """One `python -m <module> ...` shown in a doc."""

    where: str
    module: str
    args: tuple[str, ...]
    fenced: bool
    """In a fenced code block (a full command line), not an inline mention."""

    @property
    def usage_syntax(self) -> bool:
        return any(USAGE_SYNTAX.search(a) for a in self.args)

    def __str__(self) -> str:
        return f"{self.where}: python -m {self.module} {' '.join(self.args)}".rstrip()


def _split(rest: str) -> tuple[str, ...]:
    try:
        tokens = shlex.split(rest, comments=False)
    except ValueError:
        tokens = rest.split()
    out = []
    for token in tokens:
        if token in SHELL_BREAKS or token.startswith(("#", ">", "2>")):
            break
        out.append(token)
    return tuple(out)


def invocations() -> list[Invocation]:
    found = []
    for path in DOC_FILES:
        for fenced, code in code_texts(path.read_text(encoding="utf-8")):
            for m in INVOCATION.finditer(code):
                module = (
                    m.group(1) or BY_NAME[m.group(2)].module
                )  # `dbplatform synth` is scripts.synth
                found.append(Invocation(_relative(path), module, _split(m.group(3)), fenced))
    return found


class _Accepted(BaseException):
    """argparse accepted the command line; raised instead of running the command.

    A BaseException so a command's own `except Exception`/`except SystemExit` cannot swallow it.
    """


class _Captured(BaseException):
    """The module's top-level parser, caught as the module was about to parse its arguments."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _intercept_parse(*, capture: bool) -> Iterator[None]:
    """While active, the outermost `parse_known_args` of a run ends it instead of the command.

    `capture`: raise `_Captured` with the parser before parsing. Otherwise parse, report extra
    arguments as `parse_args` would (exit 2), and raise `_Accepted` once the line is accepted.
    Subparsers call `parse_known_args` recursively, so only the outermost call decides.
    """
    original = argparse.ArgumentParser.parse_known_args
    depth = 0

    def patched(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> Any:
        nonlocal depth
        if capture and not depth:
            raise _Captured(self)
        depth += 1
        try:
            namespace, extras = original(self, *a, **kw)
        finally:
            depth -= 1
        if depth:
            return namespace, extras
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        raise _Accepted

    argparse.ArgumentParser.parse_known_args = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]


@dataclass(frozen=True)
class Run:
    accepted: bool
    code: int | None
    out: str


def _run_as_main(module: str, args: list[str], *, capture: bool) -> None:
    # The module's `__main__` block sets the collector for a command's own process (offline:
    # off); this test process keeps its own setting.
    saved_argv, collecting = sys.argv, gc.isenabled()
    sys.argv = [module, *args]
    try:
        with _intercept_parse(capture=capture), warnings.catch_warnings():
            # Other tests may have imported the module already; runpy warns, harmlessly: it
            # runs a fresh copy as __main__ all the same.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        sys.argv = saved_argv
        (gc.enable if collecting else gc.disable)()


def parse_only(module: str, args: list[str]) -> Run:
    """`python -m module args` in this process, stopped once argparse accepted (or refused) it."""
    out = io.StringIO()
    accepted, code = False, None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            _run_as_main(module, args, capture=False)
    except _Accepted:
        accepted = True
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return Run(accepted, code, out.getvalue())


_PARSERS: dict[str, argparse.ArgumentParser] = {}


def parser_of(module: str) -> argparse.ArgumentParser:
    """The argparse parser `python -m module` builds, caught before it parses anything."""
    if module not in _PARSERS:
        # Running a module without a parser would run it for real (start a server, call AWS):
        # a command shown in the docs must have an argparse command line, so that is the check.
        spec = importlib.util.find_spec(module)
        source = Path(spec.origin).read_text(encoding="utf-8") if spec and spec.origin else ""
        if "ArgumentParser(" not in source:
            pytest.fail(f"python -m {module} has no argparse command line: --help would not work")
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                _run_as_main(module, [], capture=True)
        except _Captured as caught:
            _PARSERS[module] = caught.parser
        else:
            pytest.fail(f"python -m {module} never parsed a command line")
    return _PARSERS[module]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommands(module: str) -> set[str]:
    return set(_subparsers(parser_of(module)))


def help_text(module: str, *sub: str) -> str:
    """What `python -m module [sub] --help` prints."""
    parser = parser_of(module)
    for name in sub:
        parser = _subparsers(parser)[name]
    return parser.format_help()


def _shown_flag(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


# ---------------------------------------------------------------------------------------------
# Generated README blocks
# ---------------------------------------------------------------------------------------------


def readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_config_reference_is_generated_from_pulumi_yaml() -> None:
    expected = gen_docs.render_config_reference(gen_docs.load_keys(ROOT)).strip()
    assert gen_docs.current_block(readme(), gen_docs.CONFIG_BLOCK) == expected, (
        "README.md config reference is stale: run `make docs`"
    )


def test_config_reference_names_every_key_and_default_field() -> None:
    block = gen_docs.current_block(readme(), gen_docs.CONFIG_BLOCK)
    with open(ROOT / "Pulumi.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh)["config"]
    for key, spec in config.items():
        assert f"`{key}`" in block, f"{key} missing from the README config reference"
        first_words = " ".join(str(spec["description"]).split()[:6])
        assert first_words in block, f"description of {key} missing"
        default = spec["default"]
        if isinstance(default, dict) and default:
            for path, value in gen_docs.flatten(default):
                assert f"| `{path}` | {gen_docs.scalar(value)} |" in block, f"{key}.{path}"


def test_readme_architecture_is_the_overview_and_the_full_graph_is_in_docs() -> None:
    block = gen_docs.current_block(readme(), gen_docs.ARCHITECTURE_BLOCK)
    assert block == gen_docs.overview_block(ROOT).strip(), "README.md is stale: run `make docs`"
    pictures = (ROOT / gen_docs.PICTURES).read_text(encoding="utf-8")
    full = gen_docs.render_architecture(gen_docs.architecture_mermaid(ROOT)).strip()
    assert gen_docs.current_block(pictures, "full-graph") == full


def test_replacing_a_block_touches_nothing_outside_its_markers() -> None:
    text = "intro\n<!-- x:start -->\nold\n<!-- x:end -->\noutro\n"
    new = gen_docs.replace_block(text, "x", "new line")
    assert new == "intro\n<!-- x:start -->\nnew line\n<!-- x:end -->\noutro\n"
    with pytest.raises(gen_docs.DocsError, match="x:start"):
        gen_docs.replace_block("no markers here", "x", "new")


def test_gen_docs_check_reports_a_stale_file_and_a_run_fixes_only_the_blocks(
    tmp_path: Path,
) -> None:
    for rel in ("README.md", "Pulumi.yaml", "docs/pictures.md", "docs/bluegreen.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    shutil.copytree(ROOT / "tests" / "golden", tmp_path / "tests" / "golden")
    readme_file = tmp_path / "README.md"
    text = readme_file.read_text(encoding="utf-8")
    readme_file.write_text(
        text.replace("| `dbplatform:tier`", "| `dbplatform:tierX`", 1), encoding="utf-8"
    )
    pictures = tmp_path / "docs" / "pictures.md"
    pictures.write_text(
        gen_docs.replace_block(pictures.read_text(encoding="utf-8"), "calendar", "old"),
        encoding="utf-8",
    )
    root = ["--root", str(tmp_path)]
    with contextlib.redirect_stderr(io.StringIO()) as err:
        assert gen_docs.main(["--check", *root]) == 1
    assert "make docs" in err.getvalue() and "docs/pictures.md" in err.getvalue()
    assert "tierX" in readme_file.read_text(encoding="utf-8"), "--check must not write"

    with contextlib.redirect_stdout(io.StringIO()):
        assert gen_docs.main(root) == 0
        assert gen_docs.main(["--check", *root]) == 0
    assert readme_file.read_text(encoding="utf-8") == text
    assert pictures.read_text(encoding="utf-8") == (ROOT / "docs" / "pictures.md").read_text(
        encoding="utf-8"
    )


# ---------------------------------------------------------------------------------------------
# Commands shown in the docs
# ---------------------------------------------------------------------------------------------

INVOCATIONS = invocations()


def test_docs_show_the_operational_commands() -> None:
    shown = {i.module for i in INVOCATIONS}
    assert {"scripts.synth", "scripts.bluegreen", "scripts.dr"} <= shown, shown


@pytest.mark.parametrize("inv", INVOCATIONS, ids=str)
def test_shown_command_exists_and_lists_its_flags(inv: Invocation) -> None:
    assert importlib.util.find_spec(inv.module) is not None, f"{inv}: no module {inv.module}"
    subs = subcommands(inv.module)
    # A subcommand, or alternatives `a|b|c`, comes first; anything else is a flag or positional.
    head = inv.args[0] if inv.args and SUBCOMMANDS.fullmatch(inv.args[0]) else None
    chosen: list[str | None] = [None]
    if subs and head is not None:
        chosen = list(head.split("|"))
        unknown = [s for s in chosen if s not in subs]
        assert not unknown, f"{inv}: no subcommand {unknown} (has {sorted(subs)})"
    flags = {f for a in inv.args for f in FLAG.findall(a)}
    for sub in chosen:
        text = help_text(inv.module, *([sub] if sub else []))
        missing = sorted(f for f in flags if not _shown_flag(f, text))
        assert not missing, f"{inv}: --help of {sub or inv.module} lists no {missing}"


@pytest.mark.parametrize(
    "inv", [i for i in INVOCATIONS if i.fenced and not i.usage_syntax], ids=str
)
def test_shown_command_line_parses(inv: Invocation) -> None:
    run = parse_only(inv.module, list(inv.args))
    assert run.accepted or run.code == 0, f"{inv}: rejected (exit {run.code}): {run.out}"


def test_make_targets_shown_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets: set[str] = set()
    for m in re.finditer(r"^([A-Za-z0-9_. -]+?)\s*:(?!=)", makefile, re.MULTILINE):
        targets.update(m.group(1).split())
    shown = {
        (_relative(path), target)
        for path in DOC_FILES
        for _, code in code_texts(path.read_text(encoding="utf-8"))
        for target in MAKE.findall(code)
    }
    assert ("README.md", "demo") in shown
    missing = sorted(f"{where}: make {t}" for where, t in shown if t not in targets)
    assert not missing, f"not Makefile targets: {missing}"


def _config_path_exists(path: str, config: dict[str, Any]) -> bool:
    key, *fields = path.split(".")
    spec = config.get(key)
    if not isinstance(spec, dict):
        return False
    node: Any = spec.get("default")
    for name in fields:
        if isinstance(node, dict) and name in node:
            node = node[name]
        elif isinstance(node, list):
            # List items have no defaults of their own; their fields are named in the description.
            items = [i for i in node if isinstance(i, dict)]
            if not (any(name in i for i in items) or name in str(spec.get("description"))):
                return False
            node = next((i[name] for i in items if name in i), None)
        else:
            return False
    return True


def test_config_keys_shown_in_docs_exist() -> None:
    with open(ROOT / "Pulumi.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh)["config"]
    shown = {
        (_relative(path), ref)
        for path in DOC_FILES
        for ref in CONFIG_REF.findall(path.read_text(encoding="utf-8"))
    }
    assert any(where == "docs/runbooks.md" for where, _ in shown)
    missing = sorted(f"{w}: {ref}" for w, ref in shown if not _config_path_exists(ref, config))
    assert not missing, f"config keys not in Pulumi.yaml: {missing}"


def test_parse_check_rejects_an_unknown_flag() -> None:
    # The checker itself must be able to fail: a flag no parser has is reported with exit 2.
    run = parse_only("scripts.preview_report", ["p.json", "--no-such-flag"])
    assert not run.accepted and run.code == 2, run
    assert "--no-such-flag" in run.out


def test_flag_check_finds_subcommands_and_their_flags() -> None:
    # The checker must see a subcommand's own flags and miss flags that no parser declares.
    assert {"start", "promote", "rollback"} <= subcommands("scripts.bluegreen")
    assert _shown_flag("--switchover-timeout", help_text("scripts.bluegreen", "promote"))
    assert not _shown_flag("--switchover-timeout", help_text("scripts.bluegreen", "status"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_relative_links_in_docs_point_at_existing_files_and_headings() -> None:
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for path in DOC_FILES:
        text = path.read_text(encoding="utf-8")
        for target in link.findall(text):
            if re.match(r"[a-z]+:", target):
                continue  # an external URL
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{_relative(path)}: {target} (no such file)")
                continue
            if anchor and dest.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{_relative(path)}: {target} (no such heading)")
    assert not broken, broken
