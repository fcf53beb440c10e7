"""Blue/green against moto for AWS and the real test PostgreSQL for SQL, as an operator runs it
through a tunnel: `--sql-host 127.0.0.1 --sql-port P --sql-ca-bundle CA`. The server's
certificate names moto's endpoint (`*.aaaaaaaaaa.us-east-1.rds.amazonaws.com`), so verify-full
checks it against the RDS endpoint name while connecting to 127.0.0.1."""

from __future__ import annotations

import json
import secrets
from typing import Any

from tests.data.test_bluegreen_sql import app_role
from tests.ops.support import AwsEnv
from tests.postgres import PgServer
from tests.tls import enable_tls


def _point_master_at(aws: AwsEnv, server: PgServer) -> None:
    sm = aws.client("secretsmanager")
    sm.put_secret_value(
        SecretId="dbplatform/staging/db/master",
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": "dbplatform-staging-pg.aaaaaaaaaa.us-east-1.rds.amazonaws.com",
                "username": server.user,
                "password": server.password,
            }
        ),
    )


def test_start_refuses_on_what_sql_finds_through_a_verified_tunnel(
    aws: AwsEnv, postgres: PgServer, pg_database: str
) -> None:
    tls = enable_tls(postgres)
    aws.seed("staging")
    _point_master_at(aws, postgres)
    table = f"no_key_{secrets.token_hex(3)}"
    with postgres.connect(pg_database) as conn:
        conn.execute(f"CREATE TABLE {table} (note text)")
    tunnel = ("--sql-host", "127.0.0.1", "--sql-port", str(postgres.port))
    run = aws.main(
        "start", "--stack", "staging", "--engine-version", "17.2",
        "--sql-ca-bundle", str(tls["ca"]), *tunnel,
    )  # fmt: skip
    assert run.code == 3, run.text
    assert f"{pg_database}: " in run.stderr and f"public.{table}" in run.stderr
    assert aws.deployments() == {}  # nothing created

    wrong_ca = aws.main(
        "start", "--stack", "staging", "--engine-version", "17.2",
        "--sql-ca-bundle", str(tls["other"]), *tunnel,
    )  # fmt: skip
    assert wrong_ca.code == 3
    assert "certificate" in wrong_ca.stderr and "--sql-ca-bundle" in wrong_ca.stderr


def _rollback_through_the_tunnel(aws: AwsEnv, since: str, server: PgServer, ca: Any) -> Any:
    return aws.main(
        "rollback", "--stack", "staging", "--accept-data-window", since, "--yes",
        "--sql-ca-bundle", str(ca), "--sql-host", "127.0.0.1", "--sql-port", str(server.port),
    )  # fmt: skip


def test_a_rollback_the_fence_refuses_changes_nothing_and_leaves_the_cycle_as_it_was(
    aws: AwsEnv, postgres: PgServer, pg_database: str
) -> None:
    """SRE review: the record said `rolling-back` before the fence refused, so exit 3 changed
    something and promote, finalize and start then refused a rollback that never began."""
    tls = enable_tls(postgres)
    aws.promoted("staging")
    _point_master_at(aws, postgres)
    since = aws.record("staging")["switchover_at"]
    before = aws.instances()
    record = aws.parameters()["/dbplatform/staging/ops/bluegreen"]
    with app_role(postgres, pg_database) as (role, _):
        with postgres.connect() as conn:
            conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = off")
        run = _rollback_through_the_tunnel(aws, since, postgres, tls["ca"])
    assert run.code == 3, run.text
    assert "the write fence cannot hold" in run.stderr and role in run.stderr
    assert aws.parameters()["/dbplatform/staging/ops/bluegreen"] == record  # verbatim
    assert aws.instances() == before
    again = aws.main("promote", "--stack", "staging", "--yes")
    assert again.code == 0 and again.stdout.startswith("nothing to do"), again.text


def test_a_rollback_cut_after_the_fence_is_set_says_so_and_stays_recorded(
    aws: AwsEnv, postgres: PgServer, pg_database: str, monkeypatch: Any
) -> None:
    """SRE review: the tunnel dropping after the fence was set read as a refusal (exit 3,
    record put back) while every database stayed read-only."""
    from dbplatform.database import checks as database_checks
    from dbplatform.ops import Refused

    tls = enable_tls(postgres)
    aws.promoted("staging")
    _point_master_at(aws, postgres)
    since = aws.record("staging")["switchover_at"]

    def dropped(*_: Any, **__: Any) -> Any:
        raise Refused("cannot connect to PostgreSQL at the tunnel: connection refused")

    # the connection drops inside the fence itself (after its first ALTER, say): the databases
    # may be read-only, so the rollback stays recorded
    fence_writes = database_checks.fence_writes

    def half_fenced(conn: Any) -> None:
        fence_writes(conn)
        dropped()

    monkeypatch.setattr(database_checks, "fence_writes", half_fenced)
    try:
        run = _rollback_through_the_tunnel(aws, since, postgres, tls["ca"])
        assert run.code == 1, run.text
        assert "are fenced read-only and the rollback is recorded: re-run it" in run.stderr
        assert aws.record("staging")["phase"] == "rolling-back"
        with postgres.connect(pg_database) as conn:
            assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
    finally:
        with postgres.connect() as conn:  # the server is shared by this process's tests
            conn.execute("SET default_transaction_read_only = off")
            for name in database_checks.databases(conn):
                conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
