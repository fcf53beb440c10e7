"""`dbplatform heartbeat` (also `python -m scripts.heartbeat`): the heartbeat inside a stack's
database that lets every restore measure its RPO from the data. The operations live in
`dbplatform.dr.heartbeat`; this module is the command line (docs/dr.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import boto3

from dbplatform.database import add_sql_flags
from dbplatform.dr.heartbeat import COMMAND, install_op, status_op
from dbplatform.dr.sql import Connect, sql_ready
from dbplatform.entry import prog
from dbplatform.ops import Clock, Operation, add_operation, run_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("heartbeat"),
        description="The dbplatform.heartbeat row pg_cron writes every minute, read after a "
        "restore to measure the RPO from the data.",
        epilog="exit codes: 0 done; 1 failed (no or stale heartbeat); 2 bad usage/config; "
        "3 refused (pg_cron not loaded: nothing changed); 130 interrupted",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    # Installing is idempotent SQL in the stack's database: it takes the stack lock like any
    # change to the stack.
    p = add_operation(
        sub,
        Operation(
            "install",
            "create the heartbeat table and function, schedule the beat with pg_cron",
            install_op,
            locks=True,
            validate=sql_ready,
        ),
    )
    p.add_argument(
        "--no-schedule",
        action="store_true",
        help="install the table and function only (no pg_cron job)",
    )
    add_sql_flags(p, skip_help=None)
    p = add_operation(
        sub,
        Operation(
            "status",
            "the newest beat and its age",
            status_op,
            locks=False,
            validate=sql_ready,
            read_only=True,
        ),
    )
    add_sql_flags(p, skip_help=None)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
    connect: Connect | None = None,
) -> int:
    """`connect` opens the SQL connection (tests: the suite's server; default TLS verified)."""
    parser = build_parser()
    parser.set_defaults(_connect=connect)
    return run_command(COMMAND, parser, argv, session=session, clock=clock)


if __name__ == "__main__":
    from dbplatform.entry import run_operation

    run_operation(main)
