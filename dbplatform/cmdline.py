"""Reading a command line: argparse's `parse_args`, with a mistyped flag named before a missing one.

argparse checks required arguments before it looks at what it did not recognise, so
`bluegreen status --sta prod` answered "the following arguments are required: --stack" and never
said that `--sta` is not a flag (prefixes are never taken: every parser sets allow_abbrev=False).
`parse_args` reads the line once with nothing required; a leftover that looks like a flag is then
the error, as argparse words it when nothing is missing. Otherwise the line is parsed as usual.

The first reading has no effects of its own: the commands' argument types only convert and check
text (none opens a file or reads stdin), and what it would print (help, version, another usage
error) is dropped and said by the full reading instead.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Iterator, Sequence


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share one parser
                yield from _parsers(sub)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """`parser.parse_args(argv)`, except that an unknown flag is reported before a missing one
    (exit 2 through `parser.error`, like every other usage error)."""
    parsers = list(_parsers(parser))
    # required flags and positionals, and required either-or groups (`--stack | --all-stacks`)
    required: list[argparse.Action | argparse._MutuallyExclusiveGroup] = [
        a for p in parsers for a in p._actions if a.required
    ]
    required += [g for p in parsers for g in p._mutually_exclusive_groups if g.required]
    for item in required:
        item.required = False
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _, extras = parser.parse_known_args(argv)
    except SystemExit:
        # --help, --version or another usage error: said by the full reading below, whose usage
        # line marks the required arguments (this reading's would show them optional)
        extras = []
    finally:
        for item in required:
            item.required = True
    if any(x.startswith("-") and x != "-" for x in extras):
        # said by the subcommand's parser, whose usage line shows the flags it does have
        _chosen(parser, list(argv) if argv is not None else sys.argv[1:]).error(
            "unrecognized arguments: " + " ".join(extras)
        )
    return parser.parse_args(argv)


def _chosen(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the subcommand `argv` names (the first word that is one, level by level)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for i, word in enumerate(argv):
                if word in action.choices:
                    return _chosen(action.choices[word], argv[i + 1 :])
    return parser
