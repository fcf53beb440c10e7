"""Progress of a command on stderr: a live spinner on a terminal, one plain line per phase else.

stdout is kept for the result (`--json` or the final message), so progress never mixes with
what a script parses. `-q` silences progress; `-v` adds detail lines (AWS calls).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from dbplatform.ops.clock import Clock, SystemClock

if TYPE_CHECKING:
    from rich.console import Console
    from rich.status import Status

# On a non-terminal, a long wait prints its status at most this often, so CI logs show life
# without one line per poll.
PLAIN_UPDATE_SECONDS = 60.0


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
        """A named step; the live display shows a spinner, a log shows one line."""
        previous, self.current = self.current, name
        started = self.clock.monotonic()
        if self.verbosity >= 0:
            if self.live:
                self._status = self.console.status(f"{name}...")
                self._status.start()
            else:
                self._write(f"{self.label}: {name}")
        ok = False
        try:
            yield
            ok = True
        finally:
            if self._status is not None:
                self._status.stop()
                self._status = None
                took = self.clock.monotonic() - started
                mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
                self.console.print(f"{mark} {name} [dim]({took:.1f}s)[/dim]")
            if not ok:  # the runner names the innermost phase an interrupt or failure hit
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
