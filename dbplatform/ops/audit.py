"""The audit log: one JSON line per command run, appended to a local file.

Default `.dbplatform/audit.jsonl` under the project directory (git-ignored); the environment
variable `DBPLATFORM_AUDIT_LOG` names another file (CI keeps it as a job artifact). A record
says who ran what, when, with which arguments, the outcome and exit code, and the AWS ids the
run touched. Secrets never reach it: arguments are redacted like printed AWS calls.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

AUDIT_ENV = "DBPLATFORM_AUDIT_LOG"


def local_user() -> str:
    """`alice@laptop`: who runs the command on this machine (audit record, lock owner)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"{name}@{socket.gethostname()}"


def audit_log_path(root: Path) -> Path:
    """Where records go: `$DBPLATFORM_AUDIT_LOG`, else `<root>/.dbplatform/audit.jsonl`."""
    override = os.environ.get(AUDIT_ENV)
    return Path(override) if override else root / ".dbplatform" / "audit.jsonl"


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """One run of one command."""

    time: str
    """Start of the run, ISO 8601 UTC."""
    finished: str
    """End of the run, ISO 8601 UTC."""
    run_id: str
    """Id of the run; also in the lock and in AWS tags the run writes."""
    command: str
    """`bluegreen promote`, `dr rebuild`, ..."""
    stack: str | None
    """The `--stack` argument."""
    user: str
    """Local user and host, `alice@laptop`."""
    aws_identity: str | None
    """The caller's AWS principal ARN (sts:GetCallerIdentity), when it could be read."""
    args: dict[str, Any]
    """Command-line arguments, redacted."""
    dry_run: bool
    """True for `--dry-run`: nothing was changed."""
    outcome: str
    """done | nothing-to-do | dry-run | refused | failed | bad-usage | interrupted."""
    exit_code: int
    """The process exit code."""
    message: str
    """The result line shown to the operator."""
    aws_account: str | None = None
    """The AWS account the run acted in (sts:GetCallerIdentity), or "unknown"."""
    aws_region: str | None = None
    """The region the run asked STS in: the stack's, or the one a DR operation works in."""
    aws_ids: list[str] = field(default_factory=list)
    """AWS ids the run created, changed or deleted (`rds:db:<id>`, `rds:snapshot:<id>`, ...)."""
    error: str | None = None
    """For an internal error: the exception and traceback (never shown on the terminal)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


def append_record(record: AuditRecord, path: Path) -> str | None:
    """Append `record` as one line; returns an error text instead of raising (never fatal)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        line = (record.to_json() + "\n").encode()
        # One write on an O_APPEND descriptor: concurrent runs never interleave inside a line.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        return f"could not write the audit record to {path}: {exc}"
    return None


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of an audit log (for tests and reports)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
