"""Operations foundation shared by every `python -m scripts.<name>` command.

API summary (import from `dbplatform.ops`):

Writing a command::

    from dbplatform.ops import Context, Operation, Result, Refused, add_operation, run_command

    def _status(ctx: Context) -> Result:
        rds = ctx.client("rds")                       # retrying client, stack's region
        db = rds.describe_db_instances(DBInstanceIdentifier=ctx.stack.names.primary)
        return Result("primary is available", data={"status": ...})

    def _snapshot(ctx: Context) -> Result:
        ctx.confirm("snapshot the primary")           # --yes, TTY prompt, or Refused (exit 3)
        with ctx.out.phase("snapshot"):                # spinner on a TTY, one line otherwise
            ctx.mutate(ctx.client("rds"), "create_db_snapshot", {...})  # printed in --dry-run
        return Result("snapshot taken")

    def build_parser() -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="dbplatform mycmd")
        sub = parser.add_subparsers(required=True, metavar="COMMAND")
        add_operation(sub, Operation("status", "show state", _status, locks=False))
        p = add_operation(sub, Operation("snapshot", "take one", _snapshot))  # takes the lock
        p.add_argument("--label")
        return parser

    def main(argv=None, *, session=None, clock=None) -> int:
        return run_command("mycmd", build_parser(), argv, session=session, clock=clock)

    if __name__ == "__main__":
        raise SystemExit(main())

A command without subcommands: `set_operation(argparse.ArgumentParser(...), Operation(...))`.

What the runner (`run_command`) does for every operation:
- common flags (`add_common_flags`): --stack, --dry-run, -y/--yes, --json, -v/-q, --break-lock;
- `resolve_stack(name) -> StackRef(name, config: StackConfig, names: Names, root)`; a bad or
  missing `Pulumi.<stack>.yaml` -> exit 2 with every problem listed;
- `session_for(stack_config, region=None)`: boto3 session in the stack's region (standard
  AWS_PROFILE / credentials / AWS_ENDPOINT_URL); clients from `ctx.client(service, region)`
  retry throttling and 5xx (adaptive mode; AWS_RETRY_MODE, AWS_MAX_ATTEMPTS override);
- `StackLock` (SSM parameter `<Names.lock_parameter>-<scope>`, scope from the command:
  bluegreen, secrets, dr, restore-check; no-overwrite create, JSON owner/operation/run_id/
  expires, 10-minute TTL renewed by a heartbeat thread for the whole run; `--break-lock` and
  `--force-unlock RUN_ID` take it over through a no-overwrite claim parameter) around
  operations with `locks=True`; an operation that must not depend on the stack's region (DR)
  sets `locks=False` and takes `with ctx.lock(region):` itself. A lost lock raises `LockLost`
  (exit 1) at the next `ctx.mutate` or poll;
- who and where: `ctx.whoami(region)` (STS, asked once; printed first, audited as
  `aws_account`/`aws_region`/`aws_identity`); `Operation(who_region=lambda ctx: ...)` asks STS
  in another region (DR); credential errors exit 2;
- `Operation(strict_config=False)` (read-only commands, rollback): validation problems of the
  stack file are warnings; `Operation(on_interrupt=...)`: the text after Ctrl-C;
- exit codes (`ExitCode`): 0 done/nothing to do, 1 failed (`Failed`, AWS errors with their code),
  2 bad usage/config (`BadUsage`, `ConfigError`), 3 refused (`Refused`, nothing changed),
  130 interrupted (Ctrl-C/SIGTERM; message says re-running resumes). No traceback is printed;
- result: `Result.message` on stdout (or the `--json` object with `Result.data`, `aws_ids`,
  and under --dry-run `planned_calls`); errors on stderr prefixed refused:/failed:/error:;
- one audit record per run (`AuditRecord`) appended to `.dbplatform/audit.jsonl` or
  `$DBPLATFORM_AUDIT_LOG`, with the AWS ids `ctx.mutate` touched (and `ctx.touch(...)`).

Context (`ctx`) helpers: `client`, `mutate(client, method, params)` (the only way to change AWS;
under --dry-run prints `DRY-RUN would call svc:Op {...}` and returns {}; any other mutating
call is stopped; records the ids the call changes, not those it only reads, `touched_ids`),
`confirm(action)`, `wait_for(what, poll -> Poll(done, status, value), timeout=...)` (bounded,
progress, lock heartbeat, endpoint failures tolerated for 5 minutes; `Failed` on timeout),
`touch(*ids)`, `identity(region=None)` (asked once), `whoami(region=None)`, `check_lock()`,
`lock(region=None)`, `out` (`Progress`: phase/update/info/warn/debug), `clock` (`Clock`),
`run_id`.
Helpers: `error_code(ClientError)` (match on it), `iso(datetime)`, `parse_iso(text)`;
`dbplatform.ops.rds`: `describe_instance(rds, id)` (None when absent), `wait_instance_gone`.
Tests pass `session=` (with botocore event hooks for faults) and `clock=` (fast waits) to main.
Contract details for operators: docs/operations.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbplatform.ops.audit import AuditRecord, audit_log_path, local_user, read_records
    from dbplatform.ops.aws import error_code, is_read_only, make_client, retry_config, session_for
    from dbplatform.ops.cli import (
        Operation,
        add_common_flags,
        add_operation,
        run_command,
        set_operation,
        timeout_minutes,
    )
    from dbplatform.ops.clock import Clock, SystemClock, iso, parse_iso
    from dbplatform.ops.context import Context, Poll, Result, touched_ids
    from dbplatform.ops.errors import BadUsage, ExitCode, Failed, OpsError, Refused
    from dbplatform.ops.lock import LockInfo, StackLock
    from dbplatform.ops.progress import Progress
    from dbplatform.ops.stack import StackRef, project_root, resolve_stack

# Where each public name lives. Resolved on first use (PEP 562), so importing one light module
# (`dbplatform.ops.errors` for the exit codes, `dbplatform.ops.progress`) does not import boto3
# through this package: the offline commands pay for what they run, not for the AWS stack.
_WHERE = {
    "AuditRecord": "dbplatform.ops.audit",
    "BadUsage": "dbplatform.ops.errors",
    "Clock": "dbplatform.ops.clock",
    "Context": "dbplatform.ops.context",
    "ExitCode": "dbplatform.ops.errors",
    "Failed": "dbplatform.ops.errors",
    "LockInfo": "dbplatform.ops.lock",
    "Operation": "dbplatform.ops.cli",
    "OpsError": "dbplatform.ops.errors",
    "Poll": "dbplatform.ops.context",
    "Progress": "dbplatform.ops.progress",
    "Refused": "dbplatform.ops.errors",
    "Result": "dbplatform.ops.context",
    "StackLock": "dbplatform.ops.lock",
    "StackRef": "dbplatform.ops.stack",
    "SystemClock": "dbplatform.ops.clock",
    "add_common_flags": "dbplatform.ops.cli",
    "add_operation": "dbplatform.ops.cli",
    "audit_log_path": "dbplatform.ops.audit",
    "error_code": "dbplatform.ops.aws",
    "is_read_only": "dbplatform.ops.aws",
    "iso": "dbplatform.ops.clock",
    "local_user": "dbplatform.ops.audit",
    "make_client": "dbplatform.ops.aws",
    "parse_iso": "dbplatform.ops.clock",
    "project_root": "dbplatform.ops.stack",
    "read_records": "dbplatform.ops.audit",
    "resolve_stack": "dbplatform.ops.stack",
    "retry_config": "dbplatform.ops.aws",
    "run_command": "dbplatform.ops.cli",
    "session_for": "dbplatform.ops.aws",
    "set_operation": "dbplatform.ops.cli",
    "timeout_minutes": "dbplatform.ops.cli",
    "touched_ids": "dbplatform.ops.context",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AuditRecord",
    "BadUsage",
    "Clock",
    "Context",
    "ExitCode",
    "Failed",
    "LockInfo",
    "Operation",
    "OpsError",
    "Poll",
    "Progress",
    "Refused",
    "Result",
    "StackLock",
    "StackRef",
    "SystemClock",
    "add_common_flags",
    "add_operation",
    "audit_log_path",
    "error_code",
    "is_read_only",
    "iso",
    "local_user",
    "make_client",
    "parse_iso",
    "project_root",
    "read_records",
    "resolve_stack",
    "retry_config",
    "run_command",
    "session_for",
    "set_operation",
    "timeout_minutes",
    "touched_ids",
]
