"""`dbplatform rotate-secret` (also `python -m scripts.rotate_secret`): emergency rotation of one
of a stack's secrets. The operation lives in `dbplatform.secrets.rotation`; this module is the
command line.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import boto3

from dbplatform.entry import prog
from dbplatform.ops import Clock, Operation, run_command, set_operation, timeout_minutes
from dbplatform.secrets.rotation import (
    COMMAND,
    DEFAULT_TIMEOUT_MINUTES,
    INTERRUPT,
    check_secret_name,
    rotate,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("rotate-secret"),
        description=(
            "Rotate one of the stack's secrets now: the master credential through its rotation "
            "function, an application secret by writing a new generated value (the old one "
            "kept as AWSPREVIOUS). Waits, verifies, never prints a value."
        ),
        epilog="exit codes: 0 rotated; 1 failed; 2 bad usage/config; 3 refused; 130 interrupted",
    )
    set_operation(
        parser,
        Operation(
            "rotate",
            "rotate a secret now",
            rotate,
            validate=check_secret_name,
            on_interrupt=INTERRUPT,
        ),
    )
    parser.add_argument(
        "--secret",
        required=True,
        metavar="NAME",
        help="'master', or an application secret's name from dbplatform:vault.appSecrets",
    )
    parser.add_argument(
        "--reencryption-planned",
        action="store_true",
        help="rotate an encryption key: the old key stays labeled DBPLATFORM-RETIRED-<time> "
        "until the data is re-encrypted (docs/operations.md)",
    )
    parser.add_argument(
        "--revoke-previous",
        action="store_true",
        help="signing or token secret compromised: drop the previous value's label too, so "
        "verifiers that accept AWSPREVIOUS stop accepting it",
    )
    parser.add_argument(
        "--timeout",
        type=timeout_minutes,
        default=DEFAULT_TIMEOUT_MINUTES,
        metavar="MINUTES",
        help=f"give up waiting after this long (default {DEFAULT_TIMEOUT_MINUTES})",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    session: boto3.Session | None = None,
    clock: Clock | None = None,
) -> int:
    return run_command(COMMAND, build_parser(), argv, session=session, clock=clock)


if __name__ == "__main__":
    from dbplatform.entry import run_operation

    run_operation(main)
