"""Blue/green promotion and rollback of a stack's database, phase by phase (docs/bluegreen.md).

`start` creates the green copy and waits for it, `status` shows where things stand, `promote`
gates, snapshots and switches over, `rollback` cancels or reverses, `finalize` deletes what the
soak kept. Every subcommand is resumable and idempotent.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import boto3

from dbplatform import argtypes
from dbplatform.bluegreen.checks import version_key
from dbplatform.database import add_sql_flags
from dbplatform.database.connect import ca_bundle
from dbplatform.entry import prog
from dbplatform.ops import (
    BadUsage,
    Clock,
    Context,
    Operation,
    Result,
    add_operation,
    run_command,
    timeout_minutes,
)
from dbplatform.ops.cli import EXIT_CODES

PROG = prog("bluegreen")
DEFAULT_SOAK_DAYS = 7
DEFAULT_START_TIMEOUT_MINUTES = 240
# How far (MB of WAL, 1 MB = 2^20 bytes) green's logical replication may trail blue at
# switchover: the unit the RDS console shows OldestReplicationSlotLag in; RDS sends it to
# CloudWatch in bytes (Amazon RDS User Guide, "Amazon CloudWatch metrics for Amazon RDS").
DEFAULT_MAX_SLOT_LAG_MB = 64.0


def _start(ctx: Context) -> Result:
    from dbplatform.bluegreen import start

    return start.run(ctx)


def _status(ctx: Context) -> Result:
    from dbplatform.bluegreen import status

    return status.run(ctx)


def _promote(ctx: Context) -> Result:
    from dbplatform.bluegreen import promote

    if ctx.args.max_lag is None:  # the stack's replica-lag warning threshold, one default
        ctx.args.max_lag = ctx.stack.config.alarms.thresholds.replica_lag_seconds.warning
    return promote.run(ctx)


def _rollback(ctx: Context) -> Result:
    from dbplatform.bluegreen import rollback

    return rollback.run(ctx)


def _finalize(ctx: Context) -> Result:
    from dbplatform.bluegreen import finalize

    return finalize.run(ctx)


def _sql_ready(ctx: Context) -> None:
    """Before any AWS call: --engine-version is no downgrade of the stack's version (RDS
    cannot downgrade; preflight compares with the running version too), and the CA bundle the
    SQL checks need, unless they are skipped."""
    target = getattr(ctx.args, "engine_version", None)  # start only; promote shares the hook
    current = ctx.stack.config.database.engine_version
    if target and version_key(target) < version_key(current)[: len(version_key(target))]:
        raise BadUsage(
            f"--engine-version {target} is older than the stack's database.engineVersion "
            f"{current}: RDS cannot downgrade"
        )
    if not ctx.args.skip_sql_checks:
        ca_bundle(ctx.args)


# RDS SwitchoverBlueGreenDeployment SwitchoverTimeout: 30..3600 seconds (botocore rds model).
_switchover_timeout = argtypes.integer(30, 3600, unit="seconds (the RDS limits)")
# A week of replica lag and ten years of soak are past any sensible gate; NaN never is one.
_max_lag = argtypes.number(0, 7 * 24 * 3600, low_open=True, unit="seconds")
_soak_days = argtypes.number(0, 3650, low_open=True, unit="days")
# A slot lag beyond 1 TiB of WAL is no gate; NaN never is one.
_slot_lag_mb = argtypes.number(0, 1024 * 1024, low_open=True, unit="MB")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=PROG,
        description=__doc__,
        epilog=EXIT_CODES,
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND", title="commands")

    p = add_operation(
        sub,
        Operation(
            "start",
            "preflight, create the deployment, wait until green is ready",
            _start,
            validate=_sql_ready,
        ),
    )
    add_sql_flags(p)
    p.add_argument(
        "--engine-version",
        type=argtypes.engine_version,
        metavar="V",
        help="green's PostgreSQL version, e.g. 17.2",
    )
    p.add_argument(
        "--parameter-group",
        metavar="G",
        help="green's DB parameter group (default: the stack's group of the target family)",
    )
    p.add_argument(
        "--instance-class", type=argtypes.instance_class, metavar="C", help="green's instance class"
    )
    p.add_argument(
        "--timeout",
        type=timeout_minutes,
        default=DEFAULT_START_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help=f"how long to wait for green (default {DEFAULT_START_TIMEOUT_MINUTES})",
    )

    add_operation(
        sub,
        Operation(
            "status",
            "deployment, members, versions, replica lag, record",
            _status,
            locks=False,
            strict_config=False,
            read_only=True,
        ),
    )

    p = add_operation(
        sub,
        Operation(
            "promote",
            "gates, snapshot of blue, switchover, post-checks; keep old blue",
            _promote,
            validate=_sql_ready,
        ),
    )
    add_sql_flags(p)
    p.add_argument(
        "--max-slot-lag-mb",
        type=_slot_lag_mb,
        default=DEFAULT_MAX_SLOT_LAG_MB,
        metavar="MB",
        help="major upgrade (logical replication): refuse if blue's replication slot lags more "
        "(OldestReplicationSlotLag, or the slot LSN distance in SQL; "
        f"default {DEFAULT_MAX_SLOT_LAG_MB:g})",
    )
    p.add_argument(
        "--ignore-lag",
        action="store_true",
        help="switch over without a replication-lag measurement (recorded in the audit log)",
    )
    p.add_argument(
        "--switchover-timeout",
        type=_switchover_timeout,
        default=300,
        metavar="SEC",
        help="RDS rolls the switchover back if it takes longer (30..3600, default 300)",
    )
    p.add_argument(
        "--max-lag",
        type=_max_lag,
        default=None,
        metavar="SEC",
        help="refuse if green lags more (default: the stack's replicaLagSeconds warning)",
    )
    p.add_argument(
        "--health-url",
        type=argtypes.http_url,
        metavar="URL",
        help="application readiness URL, checked before and after (2xx within 5 s)",
    )
    p.add_argument(
        "--check-endpoint",
        action="store_true",
        help="also open a TCP connection to the endpoint after switchover (from inside the VPC)",
    )
    p.add_argument(
        "--soak-days",
        type=_soak_days,
        default=DEFAULT_SOAK_DAYS,
        metavar="D",
        help=f"keep the old blue this long before finalize (default {DEFAULT_SOAK_DAYS})",
    )
    p.add_argument(
        "--update-config",
        action="store_true",
        help="write the new engine version into Pulumi.<stack>.yaml",
    )

    p = add_operation(
        sub,
        Operation(
            "rollback",
            "cancel before switchover, or reverse it after",
            _rollback,
            validate=_sql_ready,
            strict_config=False,
        ),
    )
    add_sql_flags(p)
    p.add_argument(
        "--accept-data-window",
        type=argtypes.utc_time,
        metavar="SINCE",
        help="after switchover: the window start rollback reports (ISO time); accepts losing, "
        "from the serving database, the writes made since then (they are kept aside)",
    )
    p.add_argument(
        "--soak-days",
        type=_soak_days,
        default=DEFAULT_SOAK_DAYS,
        metavar="D",
        help=f"keep the former green this long before finalize (default {DEFAULT_SOAK_DAYS})",
    )
    p.add_argument(
        "--update-config",
        action="store_true",
        help="write the restored engine version into Pulumi.<stack>.yaml",
    )

    p = add_operation(
        sub,
        Operation("finalize", "after the soak: final snapshot, delete the old blue", _finalize),
    )
    p.add_argument(
        "--ignore-soak", action="store_true", help="finalize before the soak period ends"
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
) -> int:
    """Run one command line; returns the exit code."""
    return run_command("bluegreen", build_parser(), argv, session=session, clock=clock)


if __name__ == "__main__":
    from dbplatform.entry import run_operation

    run_operation(main)
