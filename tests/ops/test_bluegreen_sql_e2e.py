"""Blue/green against moto for AWS and the real test PostgreSQL for SQL, as an operator runs it
through a tunnel: `--sql-host 127.0.0.1 --sql-port P --sql-ca-bundle CA`. The server's
certificate names moto's endpoint (`*.aaaaaaaaaa.us-east-1.rds.amazonaws.com`), so verify-full
checks it against the RDS endpoint name while connecting to 127.0.0.1."""

from __future__ import annotations

import json
import secrets

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
    with app_role(postgres, pg_database) as (role, _):
        with postgres.connect() as conn:
            conn.execute(f"ALTER ROLE {role} SET default_transaction_read_only = off")
        run = aws.main(
            "rollback", "--stack", "staging", "--accept-data-window", since, "--yes",
            "--sql-ca-bundle", str(tls["ca"]), "--sql-host", "127.0.0.1",
            "--sql-port", str(postgres.port),
        )  # fmt: skip
    assert run.code == 3, run.text
    assert "the write fence cannot hold" in run.stderr and role in run.stderr
    assert aws.record("staging")["phase"] == "promoted"
    assert aws.instances() == before
    again = aws.main("promote", "--stack", "staging", "--yes")
    assert again.code == 0 and again.stdout.startswith("nothing to do"), again.text
