"""Connecting to a stack's PostgreSQL with psycopg 3, and the SQL checks the commands run.

API (small on purpose; `dbplatform.dr` uses it for restore verification):

    from dbplatform.database import SqlTarget, add_sql_flags, connect, target_from_args

    add_sql_flags(parser)       # --sql-host/--sql-port/--sql-ca-bundle/--skip-sql-checks
    target = target_from_args(args, host=endpoint_address, port=endpoint_port,
                              dbname="postgres", user=master_user, password=secret)
    with connect(target) as conn:              # TLS verify-full against the RDS CA bundle
        conn.execute("SELECT 1")

`connect` raises `Refused` (exit 3) when the database cannot be reached from this host (naming
the tunnel flags and `--skip-sql-checks`), and `BadUsage` (exit 2) when no CA bundle is given.
TLS verification is on by default: `sslmode=verify-full` with the RDS CA bundle
(https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem, AWS "Using SSL/TLS to
encrypt a connection to a DB instance"). Through a tunnel the certificate still names the RDS
endpoint, so `verify-full` checks it against `tls_server_name` (the endpoint), not the tunnel's
127.0.0.1 (libpq `sslsni` + `hostaddr`).

`dbplatform.database.checks` holds the blue/green SQL: `preflight`, `slot_lag_bytes`,
`prove_writable`.
"""

from __future__ import annotations

from dbplatform.database.connect import (
    CA_BUNDLE_ENV,
    RDS_CA_BUNDLE_URL,
    SqlTarget,
    add_sql_flags,
    connect,
    target_from_args,
)

__all__ = [
    "CA_BUNDLE_ENV",
    "RDS_CA_BUNDLE_URL",
    "SqlTarget",
    "add_sql_flags",
    "connect",
    "target_from_args",
]
