"""Progress of a command on stderr: a live spinner on a terminal; in a log (CI, a pipe, a file)
one line when a phase starts and one when it ends, with its duration or how it failed.

stdout is kept for the result (`--json` or the final message), so progress never mixes with
what a script parses. `-q` silences progress; `-v` adds detail lines (AWS calls).

A log reads (each line starts with the command as typed after `dbplatform`, and its stack)::

    restore-check staging: verify ...
    restore-check staging: verify: done in 4.2s
    restore-check staging: wait until ... is available: FAILED (Failed) after 28m 03s

A phase ends as its body does: a check phase raises its refusal or failure inside itself, so
its end line is never `done in` just above the command's `refused:` line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from dbplatform.ops.clock import Clock, SystemClock
from dbplatform.ops.errors import Refused

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

# On a non-terminal, a long wait prints its status at most this often, so CI logs show life
# without one line per poll.
PLAIN_UPDATE_SECONDS = 60.0


def duration(seconds: float) -> str:
    """`4.2s`, `28m 03s`, `2h 05m`: exact enough to compare phases, short enough for a log."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def ending(error: BaseException | None) -> str:
    """How a phase ended, as the words before its duration."""
    if error is None:
        return "done in"
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, and SIGTERM through the runner
        return "interrupted after"
    if isinstance(error, Refused):
        return "refused after"
    return f"FAILED ({type(error).__name__}) after"


class Progress:
    """Phases, updates and notes of one command run."""

    def __init__(
        self,
        *,
        label: str,
        verbosity: int = 0,
        stream: TextIO | None = None,
        live: bool | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.label = label
        self.verbosity = verbosity
        self.stream = stream or sys.stderr
        self.clock = clock or SystemClock()
        self.live = self._is_terminal() if live is None else live
        self.current: str | None = None
        self._console: Console | None = None
        self._status: Status | None = None
        self._last_plain = -PLAIN_UPDATE_SECONDS
        self._last_text = ""

    def _is_terminal(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self.stream, highlight=False)
        return self._console

    # --- phases ------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A named step: a spinner then `✓ name (1.2s)` live; a start and an end line in a log.

        The end line says how the phase ended: `done in`, `FAILED (<error type>) after`,
        `refused after` or `interrupted after`, so a CI log shows which phase of a drill took
        28 minutes and which one failed, without a terminal.
        """
        previous, self.current = self.current, name
        started = self.clock.monotonic()
        shown = self.verbosity >= 0
        if shown:
            if self.live:
                self._status = self.console.status(f"{name}...")
                self._status.start()
            else:
                self._write(f"{self.label}: {name} ...")
        outcome: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            outcome = exc
            raise
        finally:
            took = self.clock.monotonic() - started
            if self._status is not None:
                self._status.stop()
                self._status = None
                mark = "[green]✓[/green]" if outcome is None else "[red]✗[/red]"
                self.console.print(f"{mark} {name} [dim]({duration(took)})[/dim]", markup=True)
            elif shown and not self.live:
                self._write(f"{self.label}: {name}: {ending(outcome)} {duration(took)}")
            if outcome is not None:  # the runner names the innermost phase a failure hit
                self.interrupted_phase = getattr(self, "interrupted_phase", None) or name
            self.current = previous

    def update(self, text: str) -> None:
        """Status inside a phase (a wait's latest state)."""
        if self.verbosity < 0 or text == self._last_text:
            return
        self._last_text = text
        if self._status is not None:
            self._status.update(f"{self.current}: {text}")
            return
        now = self.clock.monotonic()
        if now - self._last_plain >= PLAIN_UPDATE_SECONDS or self.verbosity > 0:
            self._last_plain = now
            self._write(f"{self.label}:   {text}")

    # --- notes ---------------------------------------------------------------------------
    def info(self, text: str) -> None:
        """A line the operator should see (not with -q)."""
        if self.verbosity >= 0:
            self._print(text)

    def notice(self, text: str) -> None:
        """A line kept even with -q: what a confirmed step costs (the log's record of it)."""
        self._print(text, style="bold")

    def warn(self, text: str) -> None:
        """A warning, shown even with -q."""
        self._print(f"warning: {text}", style="yellow")

    def debug(self, text: str) -> None:
        """Detail for -v."""
        if self.verbosity > 0:
            self._print(text, style="dim")

    def _print(self, text: str, style: str | None = None) -> None:
        if self.live:
            self.console.print(text, style=style, markup=False)
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
