"""The exit-code table of every command and the exceptions that map onto it."""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """One exit code per outcome, the same for every command (docs/operations.md)."""

    OK = 0
    """Done, or nothing to do."""
    FAILED = 1
    """The operation failed (an AWS error, a timeout, a failed check)."""
    USAGE = 2
    """Bad usage or bad config: fix the command line or Pulumi.<stack>.yaml."""
    REFUSED = 3
    """A precondition is not met; nothing was changed."""
    INTERRUPTED = 130
    """Interrupted (Ctrl-C, SIGTERM); re-running resumes from the state in AWS."""


class OpsError(Exception):
    """An expected end of a command: a message for the operator and an exit code.

    `message` says what is wrong and what to do next; `data` is added to the `--json` result.
    """

    exit_code: ExitCode = ExitCode.FAILED
    outcome: str = "failed"

    def __init__(self, message: str, *, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = dict(data or {})


class Failed(OpsError):
    """The operation was attempted and did not succeed (exit 1)."""


class Refused(OpsError):
    """A precondition is not met and nothing was changed (exit 3)."""

    exit_code = ExitCode.REFUSED
    outcome = "refused"


class BadUsage(OpsError):
    """The command line or the environment is wrong (exit 2)."""

    exit_code = ExitCode.USAGE
    outcome = "bad-usage"
