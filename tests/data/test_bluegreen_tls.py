"""`dbplatform.database.connect`: TLS verify-full by default, checked for real against the test
server with a CA and a server certificate made here (`cryptography`), and the refusals an
operator sees when the bundle is missing or the database cannot be reached."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from dbplatform.database import RDS_CA_BUNDLE_URL, SqlTarget, connect, target_from_args
from dbplatform.database.connect import add_sql_flags
from dbplatform.ops import BadUsage, Refused
from tests.postgres import PgServer
from tests.tls import SERVER_NAME, enable_tls


@pytest.fixture(scope="module")
def tls(postgres: PgServer) -> dict[str, Path]:
    """TLS on in the test server, with a certificate for SERVER_NAME from a CA made here."""
    return enable_tls(postgres)


def _target(server: PgServer, db: str, ca: Path, name: str = SERVER_NAME) -> SqlTarget:
    return SqlTarget(
        server_name=name,
        port=server.port,
        dbname=db,
        user=server.user,
        password=server.password,
        tunnel_host=server.host,  # the tunnel end; the certificate names the endpoint
        ca_bundle=str(ca),
        connect_timeout=5,
    )


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sql_flags(parser)
    return parser.parse_args(argv)


def test_verify_full_with_the_ca_bundle_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("x")
    target = target_from_args(
        _args("--sql-ca-bundle", str(bundle), "--sql-host", "127.0.0.1", "--sql-port", "6543"),
        host="db.abc.eu-west-1.rds.amazonaws.com",
        port=5432,
        dbname="postgres",
        user="admin",
        password="pw",
    )
    info = target.conninfo()
    assert info["sslmode"] == "verify-full"
    assert info["sslrootcert"] == str(bundle)
    # a GSSAPI-encrypted session would carry no TLS, so no certificate check: never tried
    assert info["gssencmode"] == "disable"
    # Through a tunnel: connect to 127.0.0.1, check the certificate against the endpoint name.
    assert info["host"] == "db.abc.eu-west-1.rds.amazonaws.com"
    assert info["hostaddr"] == "127.0.0.1" and info["port"] == 6543


def test_missing_ca_bundle_is_refused_naming_the_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    with pytest.raises(BadUsage) as no_flag:
        target_from_args(_args(), host="h", port=5432, dbname="d", user="u", password=None)
    assert RDS_CA_BUNDLE_URL in no_flag.value.message
    assert "--sql-ca-bundle" in no_flag.value.message and "PGSSLROOTCERT" in no_flag.value.message
    monkeypatch.setenv("PGSSLROOTCERT", str(tmp_path / "absent.pem"))
    with pytest.raises(BadUsage) as absent:
        target_from_args(_args(), host="h", port=5432, dbname="d", user="u", password=None)
    assert "absent.pem" in absent.value.message and "no such file" in absent.value.message


def test_tls_verified_connection(
    postgres: PgServer, pg_database: str, tls: dict[str, Path]
) -> None:
    with connect(_target(postgres, pg_database, tls["ca"])) as conn:
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    assert row == (True,)


def test_a_certificate_from_another_ca_is_refused(
    postgres: PgServer, pg_database: str, tls: dict[str, Path]
) -> None:
    with pytest.raises(Refused) as refused:
        connect(_target(postgres, pg_database, tls["other"]))
    assert "certificate" in refused.value.message
    assert "--sql-ca-bundle" in refused.value.message


def test_a_certificate_for_another_name_is_refused(
    postgres: PgServer, pg_database: str, tls: dict[str, Path]
) -> None:
    with pytest.raises(Refused) as refused:
        connect(_target(postgres, pg_database, tls["ca"], name="impostor.dbplatform.test"))
    assert "impostor.dbplatform.test" in refused.value.message


def test_unreachable_database_says_what_to_do(tmp_path: Path, postgres: PgServer) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("unused")
    target = SqlTarget(
        server_name="db.dbplatform.test",
        port=1,  # nothing listens on port 1 of 127.0.0.1
        dbname="postgres",
        user="u",
        tunnel_host="127.0.0.1",
        ca_bundle=str(bundle),
        connect_timeout=2,
    )
    with pytest.raises(Refused) as refused:
        connect(target)
    text = refused.value.message
    assert "not reachable from this host" in text
    assert "--sql-host" in text and "--skip-sql-checks" in text


@pytest.mark.parametrize(
    "argv",
    [
        ("scripts.heartbeat", ["status", "--stack", "prod"]),
        ("scripts.heartbeat", ["install", "--stack", "prod"]),
        ("scripts.bluegreen", ["start", "--stack", "prod", "--engine-version", "16.6"]),
        ("scripts.restore_check", ["--stack", "prod"]),
    ],
    ids=lambda a: " ".join([a[0], *a[1][:1]]),
)
def test_the_missing_bundle_message_names_only_flags_the_command_has(
    monkeypatch: pytest.MonkeyPatch, argv: tuple[str, list[str]]
) -> None:
    """UX review: heartbeat was told to pass --skip-sql-checks, which it does not have."""
    import importlib

    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    module, args = argv
    parser = importlib.import_module(module).build_parser()
    parsed = parser.parse_args(args)
    with pytest.raises(BadUsage) as refused:
        target_from_args(parsed, host="h", port=5432, dbname="d", user="u", password=None)
    has_skip = hasattr(parsed, "skip_sql_checks")
    assert has_skip is (module != "scripts.heartbeat")  # heartbeat's SQL is its whole work
    assert ("--skip-sql-checks" in refused.value.message) is has_skip
    if has_skip:  # the flag the message names parses
        parser.parse_args([*args, "--skip-sql-checks"])
