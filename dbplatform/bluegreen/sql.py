"""The blue/green commands' SQL: where to connect (the instance's endpoint, or a tunnel), as whom
(the stack's master secret, AWSCURRENT), and the checks of `dbplatform.database.checks`.

`--skip-sql-checks` turns them off; the command says so, the `--json` result carries
`sql_checks: "skipped"`, and the audit record holds the flag.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from dbplatform.database.connect import connect, target_from_args, with_database
from dbplatform.ops import Context, Refused

if TYPE_CHECKING:
    import psycopg

    from dbplatform.database.checks import Connect


def skipped(ctx: Context, what: str) -> bool:
    """True (and a warning) when the operator chose `--skip-sql-checks`."""
    if getattr(ctx.args, "skip_sql_checks", False):
        ctx.out.warn(f"SQL checks skipped (--skip-sql-checks): {what} not checked in the database")
        return True
    return False


def flags_given(ctx: Context) -> str:
    """The SQL flags of this run, for a command line the operator is told to re-run."""
    args = ctx.args
    if getattr(args, "skip_sql_checks", False):
        return " --skip-sql-checks"
    out = ""
    for flag, value in (
        ("--sql-ca-bundle", getattr(args, "sql_ca_bundle", None)),
        ("--sql-host", getattr(args, "sql_host", None)),
        ("--sql-port", getattr(args, "sql_port", None)),
    ):
        if value:
            out += f" {flag} {value}"
    return out


def _master(ctx: Context) -> tuple[str, str]:
    secret = ctx.stack.names.master_secret
    raw = ctx.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]
    try:
        value = json.loads(raw)
        return str(value["username"]), str(value["password"])
    except (ValueError, KeyError, TypeError):
        raise Refused(
            f"master secret {secret} is not the RDS JSON shape (username, password): the SQL "
            "checks cannot log in; fix the secret or pass --skip-sql-checks"
        ) from None


def connector(ctx: Context, instance: dict[str, Any]) -> Connect:
    """A connection factory (database name -> connection) to `instance` as the master user."""
    endpoint = instance.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise Refused(
            f"{instance.get('DBInstanceIdentifier')} has no endpoint yet "
            f"({instance.get('DBInstanceStatus')}); wait, or pass --skip-sql-checks"
        )
    user, password = _master(ctx)
    target = target_from_args(
        ctx.args,
        host=str(endpoint["Address"]),
        port=int(endpoint.get("Port") or ctx.stack.config.database.port),
        dbname="postgres",
        user=user,
        password=password,
    )

    @contextmanager
    def open_db(dbname: str) -> Iterator[psycopg.Connection[Any]]:
        with connect(with_database(target, dbname)) as conn:
            yield conn

    return open_db
