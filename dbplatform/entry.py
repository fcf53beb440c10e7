"""How an offline command (synth, guardrails, diffs, reports) ends when the operator hits Ctrl-C.

These commands read files and write reports, never AWS, so an interruption loses nothing: exit
130 with one line saying so, not a traceback. (The AWS commands get the same from dbplatform.ops,
which this module does not import: it would cost every offline run boto3's import time.)
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

USAGE = 2
INTERRUPTED = 130


def prog(command: str) -> str:
    """How usage lines name a command (the same runs as `python -m scripts.<module>`)."""
    return f"dbplatform {command}"


# The cyclic garbage collector was 39 % of a cold synth and 30 % of an operational command
# (../shared/reviews/perf.md §1.2, §6 E2): importing pulumi_aws's service packages leaves about
# 226 k tracked objects, the SDK's futures trigger five full collections per synth, and the
# interpreter's last collection at exit walks the whole heap again. These settings are per
# process, applied only on a command's own process path (`python -m scripts.X`, the
# `dbplatform` console script), never when tests call `main(argv)` in their own process.


def collector_for(kind: str) -> None:
    """Collector settings for a short-lived command process of `kind`
    (start-up|offline|operations).

    While a command process imports its modules (`start-up`) nothing is collected: imports
    make long-lived objects, not garbage. Offline commands allocate a bounded heap and exit
    within seconds: no cyclic collection at all (+13 MiB peak for a prod synth). Operational
    commands can wait for hours (a drill, a switchover), so they collect, but only what they
    allocate after start-up: the imported modules are frozen out of every later collection.
    """
    if kind in ("start-up", "offline"):
        gc.disable()
    else:
        gc.freeze()
        gc.enable()


def exit_now(code: int) -> NoReturn:
    """Exit with `code`, sparing the interpreter's final collection over a heap about to go."""
    gc.freeze()
    raise SystemExit(code)


def run_main(main: Callable[[], int], command: str) -> NoReturn:
    """`raise SystemExit(main())` for an offline command, with Ctrl-C answered as exit 130 and
    one line on stderr, and the collector settings of an offline process."""
    collector_for("offline")
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{command}: interrupted; it changes nothing, so re-run it", file=sys.stderr)
        code = INTERRUPTED
    exit_now(code)


def run_operation(main: Callable[[], int]) -> NoReturn:
    """`raise SystemExit(main())` for an operational command's own process (the runner in
    `dbplatform.ops` answers Ctrl-C and SIGTERM itself)."""
    collector_for("operations")
    exit_now(main())


STDIN = "-"


def read_text(path: str | Path) -> str:
    """A file argument's text; `-` is standard input. Raises OSError or UnicodeDecodeError."""
    if str(path) == STDIN:
        return sys.stdin.buffer.read().decode("utf-8")
    return Path(path).read_text(encoding="utf-8")
