"""`dbplatform restore-check` (also `python -m scripts.restore_check`): the daily restore test.
The operation lives in `dbplatform.dr.restore_check`; this module is the command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import boto3

from dbplatform import argtypes
from dbplatform.database import add_sql_flags
from dbplatform.dr import metrics
from dbplatform.dr.restore_check import (
    COMMAND,
    DEFAULT_TIMEOUT_MINUTES,
    INTERRUPT,
    check,
    queries_of,
)
from dbplatform.dr.sql import DEFAULT_QUERIES, Connect, sql_ready
from dbplatform.entry import prog
from dbplatform.ops import (
    BadUsage,
    Clock,
    Context,
    Operation,
    run_command,
    set_operation,
    timeout_minutes,
)


def _validate(ctx: Context) -> None:
    """Before any AWS call: no flags that contradict each other, then what the SQL checks need."""
    if ctx.args.queries is not None and ctx.args.skip_sql_checks:
        raise BadUsage(
            "--queries and --skip-sql-checks contradict each other: the queries are SQL checks; "
            "drop one"
        )
    queries_of(ctx)  # a missing or broken file is exit 2 before the first AWS call
    sql_ready(ctx)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("restore-check"),
        description=(
            "Restore the stack's newest recovery point into a temporary instance with the "
            "stack's subnet, security and parameter groups, verify it, delete it (no final "
            "snapshot) and publish "
            f"{metrics.NAMESPACE} {metrics.SUCCESS}/{metrics.DATA_VERIFIED}/{metrics.DURATION}. "
            "The data is read with SQL by default (restore-checks.yaml)."
        ),
        epilog="exit codes: 0 verified; 1 failed; 2 bad usage/config; 3 refused; 130 interrupted",
    )
    # A restore check creates and deletes only its own uniquely named instance and changes
    # nothing of the stack's, so it does not take the stack lock: a daily check must never
    # hold off an operator's promote or rollback.
    op = Operation(
        "run",
        "restore, verify, delete",
        check,
        locks=False,
        validate=_validate,
        on_interrupt=INTERRUPT,
    )
    set_operation(parser, op)
    parser.add_argument(
        "--instance-class",
        type=argtypes.instance_class,
        help="class of the temporary instance (default: the stack's)",
    )
    parser.add_argument(
        "--timeout",
        type=timeout_minutes,
        default=DEFAULT_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help="one deadline for the whole run, the deletion of the temporary instance "
        f"included (default {DEFAULT_TIMEOUT_MINUTES})",
    )
    parser.add_argument(
        "--backup-role-arn",
        type=argtypes.role_arn,
        help="IAM role for AWS Backup restores (default: the stack's <prefix>-backup role)",
    )
    g = parser.add_argument_group(
        "data verification (SQL, by default; needs network reach to the restored instance)"
    )
    g.add_argument(
        "--queries",
        type=Path,
        metavar="FILE",
        help=f"verification file (default: {DEFAULT_QUERIES} at the project root): heartbeat "
        "freshness, tables: [{name, min}], queries: [{name, sql, min}]",
    )
    add_sql_flags(
        parser,
        skip_help=f"check metadata only (said plainly; {metrics.DATA_VERIFIED} 0 is published)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
    connect: Connect | None = None,
) -> int:
    """`connect` opens the SQL connection to the restored instance (tests: the suite's server;
    default: dbplatform.dr.sql.default_connect, TLS verified)."""
    parser = build_parser()
    parser.set_defaults(_connect=connect)
    return run_command(COMMAND, parser, argv, session=session, clock=clock)


if __name__ == "__main__":
    from dbplatform.entry import run_operation

    run_operation(main)
