"""The command runner: common flags, one top-level handler, exit codes, lock and audit.

A command module declares its operations and calls `run_command`; the runner parses the
arguments, loads the stack, builds the AWS session and context, takes the stack lock for
operations that change things, runs the handler, maps every outcome onto the exit-code table
(no traceback reaches the user), prints the result (text or `--json`) and appends the audit
record.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import signal
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigParseError,
    InvalidConfigError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    SSOError,
    TokenRetrievalError,
    UnauthorizedSSOTokenError,
)

from dbplatform.cmdline import parse_args
from dbplatform.entry import prog
from dbplatform.ops.audit import AuditRecord, append_record, audit_log_path, local_user
from dbplatform.ops.aws import (
    SecretLogFilter,
    botocore_session,
    check_aws_environment,
    data_loader,
    describe_error,
    error_code,
    is_read_only,
    redact,
    region_note,
    session_for,
)
from dbplatform.ops.clock import Clock, SystemClock, iso
from dbplatform.ops.context import Context, Result, is_credential_error, poll_seconds
from dbplatform.ops.errors import BadUsage, ExitCode, Failed, OpsError, Refused
from dbplatform.ops.progress import Progress
from dbplatform.ops.stack import StackRef, project_root, resolve_stack
from infra.config import AwsSettings, ConfigError, aws_settings, read_endpoints_with

Handler = Callable[[Context], Result]
_PREFIX = prog("")
"""`dbplatform `: how every command's usage line (its parser's `prog`) begins."""


@dataclass(frozen=True)
class Operation:
    """One subcommand: its name, help, handler, and whether it takes the stack lock."""

    name: str
    help: str
    handler: Handler
    locks: bool = True
    """Operations that change AWS take the lock; read-only ones (status) do not."""
    validate: Callable[[Context], None] | None = None
    """Checks of the arguments against the stack's config, run before any AWS call (raise
    BadUsage): an operator's typo is answered at once, not after taking the lock."""
    strict_config: bool = True
    """False for read-only operations and rollback: a stack file that breaks a validation rule
    (added in a newer checkout) is accepted with warnings; synth and pulumi up stay strict."""
    who_region: Callable[[Context], str | None] | None = None
    """The region to ask STS in when it is not the stack's (a DR operation around an outage:
    the region it works in), from the run's arguments and stack config."""
    read_only: bool = False
    """Changes nothing in AWS (status, restore points): it has no --dry-run, --yes or lock
    flags, which would do nothing there."""
    on_interrupt: str | None = None
    """What the operator reads after Ctrl-C, for a command with nothing to resume (a restore
    check, a drill) or more to say (rotate-secret); by default `interrupt_advice`'s."""

    def interrupt_advice(self) -> str:
        """What is true after Ctrl-C: a read-only operation changed nothing; the others resume
        from the state in AWS unless they say otherwise (`on_interrupt`)."""
        if self.on_interrupt is not None:
            return self.on_interrupt
        if self.read_only:
            return "It changes nothing, so re-run it"
        return "Nothing is lost: re-run the same command to resume from the state in AWS"


def add_common_flags(parser: argparse.ArgumentParser, *, read_only: bool = False) -> None:
    """The flags every command has (docs/operations.md); a read-only operation gets no
    --dry-run, --yes, --break-lock or --force-unlock (it changes nothing and takes no lock)."""
    g = parser.add_argument_group("common options")
    g.add_argument("--stack", required=True, metavar="NAME", help="stack (reads Pulumi.NAME.yaml)")
    g.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    g.add_argument("-v", "--verbose", action="count", default=0, help="more detail (-vv: botocore)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress, only the result")
    if read_only:
        parser.set_defaults(dry_run=False, yes=False, break_lock=False, force_unlock=None)
        return
    g.add_argument(
        "--dry-run",
        action="store_true",
        help="print every AWS call that would change something; change nothing",
    )
    g.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="confirm destructive steps (required when stdin is not a terminal)",
    )
    g.add_argument(
        "--break-lock",
        action="store_true",
        help="take over the stack's lock if it is stale (expired); a live lock is never broken",
    )
    g.add_argument(
        "--force-unlock",
        metavar="RUN_ID",
        help="take over the lock held by run RUN_ID (dead but not yet expired); only that run's "
        "lock, named exactly",
    )


def add_operation(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], op: Operation
) -> argparse.ArgumentParser:
    """Add `op` as a subcommand with the common flags; returns its parser for extra flags."""
    # allow_abbrev off: `--ign` must not read as --ignore-lag (a gate skipped by a prefix)
    parser = subparsers.add_parser(
        op.name, help=op.help, description=op.help, allow_abbrev=False, epilog=EXIT_CODES
    )
    add_common_flags(parser, read_only=op.read_only)
    parser.set_defaults(_operation=op, _shown=_shown(parser))
    return parser


def _shown(parser: argparse.ArgumentParser) -> str | None:
    """The command as the operator types it after `dbplatform` (`bluegreen promote`,
    `restore-check`), for progress lines and warnings; None for a parser outside it (tests)."""
    return parser.prog.removeprefix(_PREFIX) if parser.prog.startswith(_PREFIX) else None


def set_operation(parser: argparse.ArgumentParser, op: Operation) -> argparse.ArgumentParser:
    """Make `parser` run `op` (a command without subcommands) with the common flags; returns it
    for extra flags."""
    add_common_flags(parser, read_only=op.read_only)
    parser.set_defaults(_operation=op, _shown=_shown(parser))
    return parser


MAX_TIMEOUT_MINUTES = 7 * 24 * 60


EXIT_CODES = (
    "exit codes: 0 done or nothing to do; 1 failed; 2 bad usage/config; 3 refused (nothing "
    "changed); 130 interrupted (the message says what a re-run does: most operations resume)"
)
"""Every operation's exit codes (`ExitCode`), at the end of its --help."""


def timeout_minutes(text: str) -> int:
    """The one unit of every `--timeout`: whole minutes, 1 to a week."""
    # ASCII digits only: str.isdigit() admits '²', which int() refuses with a traceback.
    if not re.fullmatch(r"\s*[0-9]{1,7}\s*", text) or not 1 <= int(text) <= MAX_TIMEOUT_MINUTES:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a whole number of minutes (1..{MAX_TIMEOUT_MINUTES})"
        )
    return int(text)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _new_run_id(clock: Clock) -> str:
    return f"{clock.now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def run_command(
    command: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
    stdout: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run one command line; returns the exit code (never raises, never prints a traceback).

    `session`, `clock`, `stdout` and `stdin` are for tests (fault-injecting event hooks, a fast
    clock); by default the standard AWS environment and the real clock are used.
    """
    clock = clock or SystemClock()
    stdout = stdout or sys.stdout
    said = io.StringIO()
    try:
        with contextlib.redirect_stderr(said):
            args = parse_args(parser, argv)
    except SystemExit as exc:  # argparse printed the usage error (2) or the help (0)
        sys.stderr.write(said.getvalue())
        status = int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
        if status == ExitCode.USAGE and "--json" in (sys.argv[1:] if argv is None else argv):
            # --json: every outcome is one JSON object on stdout, a usage error too
            lines = said.getvalue().strip().splitlines()
            said_last = lines[-1].split("error: ", 1)[-1] if lines else "bad usage"
            payload = {"outcome": "bad-usage", "exit_code": status, "message": said_last}
            stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        return status
    op: Operation | None = getattr(args, "_operation", None)
    if op is None:
        parser.print_usage(sys.stderr)
        return ExitCode.USAGE

    started = clock.now()
    run_id = _new_run_id(clock)
    # Progress and warnings name the command as typed (`restore-check staging: verify ...`);
    # the audit record, the lock and --json keep `command` (`restore_check run`): a stable key
    # for what reads them (log queries over older records, the janitor's `dr drill`).
    shown = getattr(args, "_shown", None) or f"{command} {op.name}"
    label = f"{shown} {args.stack}"
    out = Progress(label=label, verbosity=-1 if args.quiet else args.verbose, clock=clock)
    _quiet_botocore(args.verbose)
    if threading.current_thread() is threading.main_thread():
        previous_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    else:
        previous_term = None

    ctx: Context | None = None
    stack: StackRef | None = None
    code: ExitCode = ExitCode.OK
    outcome = "done"
    message = ""
    data: dict[str, Any] = {}
    error: str | None = None
    hooks: list[tuple[str, Callable[..., Any], str]] = []
    try:
        # The run's botocore session is made first: the stack file's region check reads
        # botocore's endpoint data through its loader, and the clients then reuse that parse.
        core = None if session else botocore_session()
        if core is not None:
            read_endpoints_with(data_loader(core))
        warnings: list[str] | None = None if op.strict_config else []
        stack = resolve_stack(args.stack, warnings=warnings)
        for warning in warnings or []:
            out.warn(f"config (not enforced by {shown}): {warning}")
        note = region_note(stack.config)
        if note:
            out.debug(note)
        # Every setting of the environment read once, before any AWS call and under --dry-run
        # too: a typo is exit 2 naming the variable, not a traceback at the first client.
        poll_seconds()
        check_aws_environment()
        aws = aws_settings(stack.name, stack.root)
        if aws.assume_role_key:
            raise BadUsage(
                f"{aws.assume_role_key} is set in {stack.config_path.name}: the operations do "
                "not assume roles; run them as that role (AWS_PROFILE naming a profile with "
                "role_arn) and see docs/config.md"
            )
        session = session or session_for(stack.config, profile=aws.profile, core=core)
        check_aws_environment(session)
        ctx = Context(
            command=f"{command} {op.name}",
            operation=op.name,
            args=args,
            stack=stack,
            session=session,
            out=out,
            clock=clock,
            run_id=run_id,
            dry_run=args.dry_run,
            yes=args.yes,
            stdin=stdin or sys.stdin,
        )
        if op.validate is not None:
            op.validate(ctx)
        hooks = _install_hooks(ctx, run_id, read_only=op.read_only)
        who = ctx.whoami(op.who_region(ctx) if op.who_region else None)
        out.info(f"as {who['arn']} (account {who['account']}) in {who['region']}")
        check_account(
            who["account"],
            aws,
            stack.config_path.name,
            strict=op.locks and not args.dry_run,
            out=out,
        )
        if args.dry_run:
            out.info(f"DRY-RUN: {label}: reads AWS, changes nothing")
        if op.locks:
            with ctx.lock():
                result = op.handler(ctx)
        else:
            result = op.handler(ctx)
        message, data = result.message, dict(result.data)
        outcome = (
            "dry-run" if args.dry_run else ("nothing-to-do" if result.nothing_to_do else "done")
        )
    except ConfigError as exc:
        code, outcome, message = ExitCode.USAGE, "bad-usage", str(exc)
    except OpsError as exc:
        code, outcome, message, data = exc.exit_code, exc.outcome, exc.message, exc.data
    except ClientError as exc:
        code, outcome, message = ExitCode.FAILED, "failed", describe_error(exc)
        data = {"aws_error_code": error_code(exc)}
        if is_credential_error(exc):
            code, outcome = ExitCode.USAGE, "bad-usage"
            message = (
                f"AWS rejected the credentials ({error_code(exc)}): refresh them (aws sso login, "
                "or new keys for AWS_PROFILE) and re-run; nothing was changed by this call"
            )
        elif error_code(exc).startswith("AccessDenied"):
            code, outcome = ExitCode.USAGE, "bad-usage"
            message = (
                f"{describe_error(exc)}: the principal lacks this permission; run as the "
                "operator role (AWS_PROFILE), re-running as the same principal will not help"
            )
    except (TokenRetrievalError, UnauthorizedSSOTokenError, SSOError) as exc:
        code, outcome = ExitCode.USAGE, "bad-usage"
        message = f"{exc}: the AWS session expired; refresh it (aws sso login) and re-run"
    except (NoCredentialsError, PartialCredentialsError, NoRegionError, ProfileNotFound) as exc:
        code, outcome = ExitCode.USAGE, "bad-usage"
        message = f"{exc}: configure AWS credentials (AWS_PROFILE, or the standard variables)"
    except (ConfigParseError, InvalidConfigError) as exc:  # the AWS config file or a setting
        code, outcome = ExitCode.USAGE, "bad-usage"
        message = f"{exc}: fix the AWS configuration (AWS_CONFIG_FILE, AWS_* variables)"
    except BotoCoreError as exc:
        code, outcome, message = ExitCode.FAILED, "failed", f"AWS call failed: {exc}"
    except KeyboardInterrupt:
        code, outcome = ExitCode.INTERRUPTED, "interrupted"
        phase = out.current or getattr(out, "interrupted_phase", None)
        where = f" during '{phase}'" if phase else ""
        message = f"interrupted{where}. {op.interrupt_advice()}"
    except Exception as exc:  # a bug: say so plainly, keep the traceback for the audit log
        code, outcome = ExitCode.FAILED, "failed"
        message = f"internal error ({type(exc).__name__}: {exc}); details in the audit log"
        error = traceback.format_exc()
    finally:
        out.close()
        if ctx is not None:
            for event, handler, unique in hooks:
                ctx.session.events.unregister(event, handler, unique_id=unique)
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)

    _print_result(
        stdout,
        args=args,
        command=command,
        operation=op.name,
        run_id=run_id,
        code=code,
        outcome=outcome,
        message=message,
        data=data,
        ctx=ctx,
    )
    record = AuditRecord(
        time=iso(started),
        finished=iso(clock.now()),
        run_id=run_id,
        command=f"{command} {op.name}",
        stack=args.stack,
        user=local_user(),
        aws_identity=ctx.known_identity() if ctx is not None else None,
        aws_account=ctx.known_whoami().get("account") if ctx is not None else None,
        aws_region=ctx.known_whoami().get("region") if ctx is not None else None,
        args=_audit_args(args, stack),
        dry_run=bool(args.dry_run),
        outcome=outcome,
        exit_code=int(code),
        message=message,
        aws_ids=list(ctx.touched) if ctx else [],
        error=error,
    )
    problem = append_record(record, audit_log_path(stack.root if stack else project_root()))
    if problem:
        out.warn(problem)
    return int(code)


def check_account(
    account: str, aws: AwsSettings, source: str, *, strict: bool, out: Progress
) -> None:
    """Refuse (exit 3) to act in an account the stack file's `aws:allowedAccountIds` leaves out
    or `aws:forbiddenAccountIds` names, as pulumi-aws refuses `pulumi up` there. An unknown
    account (STS unreachable) is refused for changes and warned about for reads."""
    if aws.allowed_accounts is None and not aws.forbidden_accounts:
        return
    if account == "unknown":
        text = (
            f"cannot check the account against aws:allowedAccountIds in {source}: STS did "
            "not answer"
        )
        if strict:
            raise Refused(f"{text}; nothing was changed, re-run when STS answers")
        out.warn(text)
        return
    if aws.allowed_accounts is not None and account not in aws.allowed_accounts:
        raise Refused(
            f"account {account} is not in aws:allowedAccountIds "
            f"({', '.join(aws.allowed_accounts)}) of {source}: wrong credentials for this "
            "stack; nothing was changed"
        )
    if account in aws.forbidden_accounts:
        raise Refused(
            f"account {account} is in aws:forbiddenAccountIds of {source}: wrong credentials "
            "for this stack; nothing was changed"
        )


def _install_hooks(
    ctx: Context, run_id: str, *, read_only: bool = False
) -> list[tuple[str, Callable[..., Any], str]]:
    """Session hooks: log AWS calls at -v; under --dry-run, stop any unrouted mutation; in a
    read-only operation, stop any mutation at all (it has no --dry-run or --yes to guard it)."""

    def before_call(model: Any, params: Any, **_: Any) -> None:
        if read_only and not is_read_only(model.name):
            raise Failed(f"internal error: read-only {ctx.command} attempted {model.name}")
        ctx.guard_read_only(model.name)
        if ctx.dry_run:
            ctx.out.info(f"DRY-RUN read {model.service_model.service_name}:{model.name}")
        else:
            ctx.out.debug(f"aws {model.service_model.service_name}:{model.name}")

    unique = f"dbplatform-{run_id}"
    ctx.session.events.register("before-call", before_call, unique_id=unique)
    return [("before-call", before_call, unique)]


def _quiet_botocore(verbose: int) -> None:
    level = logging.DEBUG if verbose >= 2 else logging.WARNING
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(level)
    if verbose >= 2:
        # botocore's DEBUG log holds request parameters and response bodies (secret values):
        # every record passes the redaction filter on the way to stderr.
        root = logging.getLogger()
        if not any(isinstance(h, _RedactingHandler) for h in root.handlers):
            root.addHandler(_RedactingHandler())
        root.setLevel(min(root.level or logging.WARNING, logging.DEBUG))


class _RedactingHandler(logging.StreamHandler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(SecretLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # the stderr of this run (tests swap it)
        super().emit(record)


def _audit_args(args: argparse.Namespace, stack: StackRef | None) -> dict[str, Any]:
    shown = redact({k: v for k, v in vars(args).items() if not k.startswith("_")})
    # `--secret NAME` names a secret, it is not one: kept when it is one of the stack's secret
    # names (a refused rotation must still say which secret it was about); anything else (a
    # value pasted by mistake) stays hidden.
    name = getattr(args, "secret", None)
    if isinstance(name, str) and stack is not None:
        names = stack.names
        known = {"master", names.master_secret}
        for spec in stack.config.vault.app_secrets:
            known |= {spec.name, names.app_secret(spec.name)}
        if name in known:
            shown["secret"] = name
    return shown


def _print_result(
    stdout: TextIO,
    *,
    args: argparse.Namespace,
    command: str,
    operation: str,
    run_id: str,
    code: ExitCode,
    outcome: str,
    message: str,
    data: dict[str, Any],
    ctx: Context | None,
) -> None:
    if args.json:
        payload: dict[str, Any] = {
            "command": f"{command} {operation}",
            "stack": args.stack,
            "run_id": run_id,
            "outcome": outcome,
            "exit_code": int(code),
            "message": message,
            "dry_run": bool(args.dry_run),
            **data,
        }
        if ctx is not None:
            payload["aws_ids"] = list(ctx.touched)
            if args.dry_run:
                payload["planned_calls"] = list(ctx.planned)
        stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
        stdout.flush()
        return
    if code == ExitCode.OK:
        stdout.write(message + "\n")
        stdout.flush()
    else:
        prefix = {ExitCode.REFUSED: "refused", ExitCode.USAGE: "error"}.get(code, "failed")
        if code == ExitCode.INTERRUPTED:
            prefix = "interrupted"
            message = message.removeprefix("interrupted").lstrip(". ")
        sys.stderr.write(f"{prefix}: {message}\n")
        sys.stderr.flush()
