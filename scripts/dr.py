"""`dbplatform dr` (also `python -m scripts.dr`): list restore points, rebuild a stack's
environment in another region, drill that rebuild end to end. The operations live in
`dbplatform.dr.operations`; this module is the command line (docs/dr.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import boto3

from dbplatform import argtypes
from dbplatform.database import add_sql_flags
from dbplatform.dr.continuity import secrets_op
from dbplatform.dr.janitor import DEFAULT_OLDER_THAN_HOURS, janitor
from dbplatform.dr.operations import (
    COMMAND,
    DEFAULT_TIMEOUT_MINUTES,
    DRILL_INTERRUPT,
    check_drill_flags,
    dr_region,
    drill,
    rebuild,
    restore_points,
)
from dbplatform.dr.pitr import DEFAULT_TIMEOUT_MINUTES as PITR_TIMEOUT_MINUTES
from dbplatform.dr.pitr import INTERRUPT as PITR_INTERRUPT
from dbplatform.dr.pitr import pitr
from dbplatform.dr.sql import DEFAULT_QUERIES, Connect, sql_ready
from dbplatform.entry import prog
from dbplatform.ops import (
    Clock,
    Operation,
    add_operation,
    run_command,
    timeout_minutes,
)


def _rebuild_flags(p: argparse.ArgumentParser, *, drill: bool) -> None:
    p.add_argument(
        "--region", type=argtypes.region, help="target region (default: the stack's dr.region)"
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--restore-time",
        type=argtypes.utc_time,
        metavar="T",
        help="restore the data as of T (ISO 8601, UTC); never restores past T",
    )
    when.add_argument(
        "--latest", action="store_true", help="the freshest restore point (the default)"
    )
    p.add_argument(
        "--max-gap",
        type=argtypes.integer(0, 35 * 24 * 60, unit="minutes (PITR keeps at most 35 days)"),
        metavar="MINUTES",
        help="with --restore-time: accept a restore point up to this much older than T"
        + (
            " (default: the stack's dr.rpoMinutes)"
            if drill
            else "; with --latest: resume an earlier rebuild whose data is at most this much "
            "older than the newest point, the RPO then measured from that data (default: the "
            "stack's dr.rpoMinutes)"
        ),
    )
    if not drill:
        p.add_argument(
            "--as",
            dest="as_stack",
            metavar="NEW_STACK",
            help="name of the DR stack (default: <stack>-<short region>, e.g. prod-usw2)",
        )
    p.add_argument("--subnet-group", help="DB subnet group in the target region")
    p.add_argument(
        "--security-group",
        type=argtypes.security_group,
        help="security group (name or sg- id) in the target region",
    )
    p.add_argument("--parameter-group", help="DB parameter group in the target region")
    p.add_argument(
        "--instance-class",
        type=argtypes.instance_class,
        help="class of the restored instance (default: the stack's)",
    )
    p.add_argument(
        "--backup-role-arn", type=argtypes.role_arn, help="IAM role for AWS Backup restores"
    )
    p.add_argument("--report-dir", help="where the report goes (default .dbplatform/dr/<run id>)")
    p.add_argument(
        "--timeout",
        type=timeout_minutes,
        default=DEFAULT_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help="one deadline for the whole run"
        + (", the teardown of the throwaway stack included" if drill else "")
        + f" (default {DEFAULT_TIMEOUT_MINUTES})",
    )
    p.add_argument(
        "--no-pulumi",
        action="store_true",
        help="do not run `pulumi up` even if the Pulumi CLI is installed",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("dr"),
        description="Disaster recovery: restore points, rebuild in another region, drills.",
        epilog="exit codes: 0 done; 1 failed; 2 bad usage/config; 3 refused (nothing created); "
        "130 interrupted",
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    p = add_operation(
        sub,
        Operation(
            "restore-points",
            "every way to recover the stack's database in a region, freshest first",
            restore_points,
            who_region=dr_region,
            locks=False,
            read_only=True,
        ),
    )
    p.add_argument(
        "--region", type=argtypes.region, help="region to look in (default: the stack's dr.region)"
    )
    p.add_argument(
        "--require-objective",
        action="store_true",
        help="exit 1 when no restorable point meets the RPO objective (for monitoring)",
    )
    # Rebuild and drill take a DR lock in the target region themselves (the stack's usual lock
    # lives in the source region, which may be down).
    p = add_operation(
        sub,
        Operation(
            "rebuild",
            "rebuild the stack's environment in another region from a restore point",
            rebuild,
            who_region=dr_region,
            locks=False,
        ),
    )
    _rebuild_flags(p, drill=False)
    p = add_operation(
        sub,
        Operation(
            "drill",
            "rebuild into a throwaway stack, verify, report, tear everything down",
            drill,
            who_region=dr_region,
            validate=check_drill_flags,
            locks=False,
            on_interrupt=DRILL_INTERRUPT,
        ),
    )
    _rebuild_flags(p, drill=True)
    p = add_operation(
        sub,
        Operation(
            "secrets",
            "give a rebuilt stack the source's application secrets and a master secret that "
            "matches its restored instance",
            secrets_op,
            who_region=dr_region,
            locks=False,  # takes the DR lock in the target region itself
        ),
    )
    p.add_argument(
        "--region",
        type=argtypes.region,
        help="the DR stack's region (default: the stack's dr.region)",
    )
    p.add_argument(
        "--as",
        dest="as_stack",
        metavar="NEW_STACK",
        help="the DR stack (default: <stack>-<short region>, as rebuild names it)",
    )
    _timeout(p, 60)
    p = add_operation(
        sub,
        Operation(
            "pitr",
            "restore the database as of T into a new instance beside the primary, verify it, "
            "print the cut-over (the primary is never touched)",
            pitr,
            locks=True,
            validate=sql_ready,
            on_interrupt=PITR_INTERRUPT,
        ),
    )
    p.add_argument(
        "--restore-time",
        metavar="T",
        required=True,
        help="the data as of T (ISO 8601, UTC); never restores past T",
    )
    p.add_argument(
        "--max-gap",
        type=argtypes.integer(0, 35 * 24 * 60, unit="minutes (PITR keeps at most 35 days)"),
        metavar="MINUTES",
        help="accept a snapshot up to this much older than T when no PITR window covers T "
        "(default 0)",
    )
    p.add_argument(
        "--as",
        dest="as_instance",
        metavar="NEW_ID",
        help="identifier of the copy (default: <prefix>-pitr-<yyyymmddhhmm of T>)",
    )
    p.add_argument("--instance-class", help="class of the copy (default: the stack's)")
    p.add_argument("--backup-role-arn", help="IAM role for an AWS Backup recovery point")
    p.add_argument(
        "--queries",
        type=Path,
        metavar="FILE",
        help=f"data verification file (default: {DEFAULT_QUERIES} at the project root)",
    )
    add_sql_flags(p, skip_help="check metadata only (said plainly)")
    _timeout(p, PITR_TIMEOUT_MINUTES)
    p = add_operation(
        sub,
        Operation(
            "janitor",
            "remove restore-check and drill instances, drill parameter groups and expired "
            "locks an interrupted run left, by tag and age",
            janitor,
            locks=False,  # it may be a stale lock it removes
            who_region=lambda ctx: ctx.args.region[0] if ctx.args.region else None,
        ),
    )
    p.add_argument(
        "--older-than",
        type=argtypes.number(0, 24 * 400, low_open=True, unit="hours"),
        default=DEFAULT_OLDER_THAN_HOURS,
        metavar="HOURS",
        help=f"only what is older than this (default {DEFAULT_OLDER_THAN_HOURS:g}; below the "
        "longest tool deadline plus an hour it is refused unless --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="accept an --older-than below the longest tool deadline plus an hour",
    )
    p.add_argument(
        "--region",
        action="append",
        type=argtypes.region,
        help="look here (repeatable; default: the stack's region and its dr.region)",
    )
    return parser


def _timeout(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument(
        "--timeout",
        type=timeout_minutes,
        default=default,
        metavar="MINUTES",
        help=f"one deadline for the whole run, cleanup included (default {default})",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
    connect: Connect | None = None,
) -> int:
    """`connect` opens SQL connections (tests: the suite's server; default TLS verified)."""
    parser = build_parser()
    parser.set_defaults(_connect=connect)
    return run_command(COMMAND, parser, argv, session=session, clock=clock)


if __name__ == "__main__":
    from dbplatform.entry import run_operation

    run_operation(main)
