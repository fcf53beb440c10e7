"""How an offline command (synth, guardrails, diffs, reports) ends when the operator hits Ctrl-C.

These commands read files and write reports, never AWS, so an interruption loses nothing: exit
130 with one line saying so, not a traceback. (The AWS commands get the same from scripts._ops,
which this module does not import: it would cost every offline run boto3's import time.)
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

INTERRUPTED = 130


def run_main(main: Callable[[], int], command: str) -> NoReturn:
    """`raise SystemExit(main())`, with Ctrl-C answered as exit 130 and one line on stderr."""
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{command}: interrupted; it changes nothing, so re-run it", file=sys.stderr)
        code = INTERRUPTED
    raise SystemExit(code)
