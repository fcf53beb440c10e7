"""How an offline command (synth, guardrails, diffs, reports) ends when the operator hits Ctrl-C.

These commands read files and write reports, never AWS, so an interruption loses nothing: exit
130 with one line saying so, not a traceback. (The AWS commands get the same from dbplatform.ops,
which this module does not import: it would cost every offline run boto3's import time.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

USAGE = 2
INTERRUPTED = 130


def prog(command: str) -> str:
    """How usage lines name a command (the same runs as `python -m scripts.<module>`)."""
    return f"dbplatform {command}"


def run_main(main: Callable[[], int], command: str) -> NoReturn:
    """`raise SystemExit(main())`, with Ctrl-C answered as exit 130 and one line on stderr."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{command}: interrupted; it changes nothing, so re-run it", file=sys.stderr)
        code = INTERRUPTED
    raise SystemExit(code)


STDIN = "-"


def read_text(path: str | Path) -> str:
    """A file argument's text; `-` is standard input. Raises OSError or UnicodeDecodeError."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read().decode("utf-8")
    return Path(path).read_text(encoding="utf-8")
