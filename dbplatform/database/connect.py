"""Where and how a command connects to PostgreSQL: flags, TLS that verifies the server, and
refusals that say what to do when the database cannot be reached from here.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbplatform.argtypes import hostname
from dbplatform.ops.errors import BadUsage, Refused

if TYPE_CHECKING:
    import psycopg  # loaded by `connect`: a run that opens no connection never imports it

CA_BUNDLE_ENV = "PGSSLROOTCERT"
"""libpq's own variable for the trusted CA file; `--sql-ca-bundle` wins over it."""
RDS_CA_BUNDLE_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
"""The RDS CA bundle for every commercial Region (AWS "Using SSL/TLS to encrypt a connection
to a DB instance or cluster", Certificate bundles for all AWS Regions)."""
DEFAULT_CONNECT_TIMEOUT = 10
# verify-full: encrypt, check the chain against the CA file AND that the certificate names the
# host (libpq "SSL Mode Descriptions"); the only mode that stops a man in the middle.
DEFAULT_SSLMODE = "verify-full"
SSLMODES = ("verify-full", "verify-ca", "require")


@dataclass(frozen=True)
class SqlTarget:
    """One database to connect to, and how."""

    server_name: str
    """The name the server's certificate carries (the RDS endpoint address)."""
    port: int
    dbname: str
    user: str
    password: str | None = None
    tunnel_host: str | None = None
    """`--sql-host`: connect here instead (an SSH/SSM tunnel); the certificate is still checked
    against `server_name`."""
    tunnel_port: int | None = None
    ca_bundle: str | None = None
    sslmode: str = DEFAULT_SSLMODE
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT

    @property
    def where(self) -> str:
        via = f" via {self.tunnel_host}:{self.tunnel_port or self.port}" if self.tunnel_host else ""
        return f"{self.server_name}:{self.port}/{self.dbname}{via}"

    def conninfo(self) -> dict[str, Any]:
        """Keyword arguments for `psycopg.connect` (libpq parameters)."""
        info: dict[str, Any] = {
            "host": self.server_name,
            "port": self.tunnel_port or self.port,
            "dbname": self.dbname,
            "user": self.user,
            "sslmode": self.sslmode,
            # libpq's default gssencmode=prefer tries GSSAPI encryption first whenever the
            # operator has Kerberos credentials, and a GSS-encrypted session uses no TLS at all,
            # so sslmode's certificate check would not apply (PostgreSQL docs, libpq connection
            # parameters: gssencmode, sslmode). The verified TLS is the only channel.
            "gssencmode": "disable",
            "connect_timeout": self.connect_timeout,
            "application_name": "dbplatform",
        }
        if self.password is not None:
            info["password"] = self.password
        if self.ca_bundle:
            info["sslrootcert"] = self.ca_bundle
        if self.tunnel_host:
            if _is_ip(self.tunnel_host):
                # libpq connects to hostaddr and verifies the certificate against host.
                info["hostaddr"] = self.tunnel_host
            else:  # a named tunnel end: its certificate must carry that name
                info["host"] = self.tunnel_host
        return info


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


SKIP_HELP = "do not connect to the database; the audit record says the SQL checks were skipped"


def add_sql_flags(parser: argparse.ArgumentParser, *, skip_help: str | None = SKIP_HELP) -> None:
    """The SQL connection flags every command that reads the database has; `skip_help=None`
    for a command that is nothing without SQL (no --skip-sql-checks then)."""
    g = parser.add_argument_group("SQL checks (docs/operations.md#sql-checks)")
    g.add_argument(
        "--sql-host",
        type=hostname,
        metavar="HOST",
        help="connect through this address (a tunnel) instead of the RDS endpoint; the "
        "certificate is still checked against the endpoint name",
    )
    g.add_argument("--sql-port", type=_port, metavar="PORT", help="port of --sql-host")
    g.add_argument(
        "--sql-ca-bundle",
        metavar="FILE",
        help=f"the RDS CA bundle (default ${CA_BUNDLE_ENV}); download {RDS_CA_BUNDLE_URL}",
    )
    if skip_help is not None:
        g.add_argument("--skip-sql-checks", action="store_true", help=skip_help)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1..65535)")
    return int(text)


def ca_bundle(args: argparse.Namespace) -> str:
    """The CA bundle file from `--sql-ca-bundle` or $PGSSLROOTCERT; BadUsage (exit 2) when none
    is given or the file is missing, naming what to download and where to put it."""
    given = getattr(args, "sql_ca_bundle", None) or os.environ.get(CA_BUNDLE_ENV)
    how = (
        f"download {RDS_CA_BUNDLE_URL} (e.g. to ~/.postgresql/rds-global-bundle.pem) and pass "
        f"--sql-ca-bundle FILE or set {CA_BUNDLE_ENV}=FILE"
    )
    if hasattr(args, "skip_sql_checks"):  # a command whose SQL is only a check (not heartbeat)
        how += (
            "; or pass --skip-sql-checks to run without the SQL checks (recorded in the audit log)"
        )
    if not given:
        raise BadUsage(
            "the SQL checks verify the database's TLS certificate and need the RDS CA bundle: "
            + how
        )
    if not Path(given).expanduser().is_file():
        source = "--sql-ca-bundle" if getattr(args, "sql_ca_bundle", None) else CA_BUNDLE_ENV
        raise BadUsage(f"{source} {given!r}: no such file; {how}")
    return str(Path(given).expanduser())


def target_from_args(
    args: argparse.Namespace,
    *,
    host: str,
    port: int,
    dbname: str,
    user: str,
    password: str | None,
) -> SqlTarget:
    """The SqlTarget for an RDS endpoint `host:port`, with the tunnel and CA flags applied."""
    return SqlTarget(
        server_name=host,
        port=port,
        dbname=dbname,
        user=user,
        password=password,
        tunnel_host=getattr(args, "sql_host", None),
        tunnel_port=getattr(args, "sql_port", None),
        ca_bundle=ca_bundle(args),
    )


def connect(target: SqlTarget, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """An open connection, or Refused (exit 3) saying why the database cannot be reached from
    here and what to do (a tunnel, or `--skip-sql-checks`)."""
    if target.sslmode not in SSLMODES:
        raise BadUsage(f"sslmode {target.sslmode!r} must be one of {', '.join(SSLMODES)}")
    import psycopg

    try:
        return psycopg.connect(**target.conninfo(), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "certificate" in text or "SSL" in text:
            advice = (
                "the server's TLS certificate was not accepted: check that --sql-ca-bundle is "
                f"the RDS bundle ({RDS_CA_BUNDLE_URL}) and that a tunnel is given as "
                "--sql-host 127.0.0.1 (the certificate is checked against the endpoint name)"
            )
        else:
            advice = (
                "the database is not reachable from this host (RDS in private subnets): open a "
                "tunnel (e.g. aws ssm start-session with AWS-StartPortForwardingSessionToRemoteHost"
                ") and pass --sql-host 127.0.0.1 --sql-port LOCALPORT, or pass --skip-sql-checks "
                "to go on without them (recorded in the audit log)"
            )
        raise Refused(
            f"cannot connect to PostgreSQL at {target.where}: {text}; {advice}",
            data={"sql_target": target.where},
        ) from None


def with_database(target: SqlTarget, dbname: str) -> SqlTarget:
    """The same server, another database (the preflight visits every database)."""
    return replace(target, dbname=dbname)
