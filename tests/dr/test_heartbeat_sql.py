"""The heartbeat and the data checks against the suite's real PostgreSQL server.

Exercised here: the install SQL (idempotent, run twice), `dbplatform.beat()`, reading the newest
committed beat, the verification queries and their refusals, and `heartbeat install`'s
pg_cron precondition as the real server answers it. NOT exercised: pg_cron itself (the test
server has no pg_cron, and RDS's build cannot be installed here): the `cron.schedule` call is
pinned as text, and a server without pg_cron is refused before anything is changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dbplatform.dr.heartbeat import pg_cron_problem
from dbplatform.dr.sql import (
    JOB,
    Queries,
    Query,
    QueryFileError,
    data_checks,
    install,
    load_queries,
    read_heartbeat,
    schedule_sql,
)
from tests.postgres import PgServer


def test_install_is_idempotent_and_a_beat_is_the_newest_committed_row(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        assert read_heartbeat(conn).at is None
        assert "install it with `dbplatform heartbeat install`" in read_heartbeat(conn).why
        install(conn, "prod")
        install(conn, "prod")  # again: nothing fails, nothing duplicated
        first = read_heartbeat(conn, "prod").at
        conn.execute("SELECT dbplatform.beat('prod')")
        rows = conn.execute("SELECT source, beats FROM dbplatform.heartbeat").fetchall()
        newest = read_heartbeat(conn, "prod").at
    assert rows == [("prod", 3)]  # one row per source, three beats
    assert first is not None and newest is not None and newest >= first
    assert abs(datetime.now(UTC) - newest) < timedelta(minutes=1)


def test_an_uncommitted_beat_is_not_read(postgres: PgServer, pg_database: str) -> None:
    with postgres.connect(pg_database) as setup:
        install(setup, "prod")
        setup.execute("UPDATE dbplatform.heartbeat SET beat_at = now() - interval '1 hour'")
    writer = psycopg.connect(**postgres.conninfo(pg_database))  # a transaction left open
    try:
        writer.execute("SELECT dbplatform.beat('prod')")  # not committed
        with postgres.connect(pg_database) as reader:
            beat = read_heartbeat(reader, "prod")
        assert beat.at is not None
        assert datetime.now(UTC) - beat.at > timedelta(minutes=59)
    finally:
        writer.rollback()
        writer.close()


def test_data_checks_record_a_number_or_pass_fail_never_row_contents(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        install(conn, "prod")
        conn.execute("CREATE TABLE accounts (id int, email text)")
        conn.execute("INSERT INTO accounts VALUES (1, 'alice@example.com')")
        queries = Queries(
            heartbeat_max_lag=timedelta(minutes=5),
            queries=(
                Query(name="rows in accounts", sql="SELECT count(*) FROM accounts", min=1),
                Query(name="rows in orders", sql="SELECT count(*) FROM orders", min=1),
                Query(name="leak", sql="SELECT email FROM accounts", min=0),
                Query(name="empty", sql="SELECT count(*) FROM accounts WHERE id > 1", min=1),
            ),
        )
        checks = data_checks(conn, queries, data_time=datetime.now(UTC))
    got = {c.name: (c.ok, c.actual) for c in checks}
    assert got["heartbeat fresh"][0] is True
    assert got["sql: rows in accounts"] == (True, "1")
    assert got["sql: rows in orders"] == (False, "error: UndefinedTable")
    assert got["sql: leak"] == (False, "not one whole number (result not recorded)")
    assert got["sql: empty"] == (False, "0")
    assert "alice" not in repr(checks)


def test_a_heartbeat_older_than_the_data_time_fails(postgres: PgServer, pg_database: str) -> None:
    with postgres.connect(pg_database) as conn:
        install(conn, "prod")
        conn.execute("UPDATE dbplatform.heartbeat SET beat_at = now() - interval '20 minutes'")
        (check,) = data_checks(
            conn,
            Queries(heartbeat_max_lag=timedelta(minutes=5), queries=()),
            data_time=datetime.now(UTC),
        )
    assert not check.ok and check.name == "heartbeat fresh"


def test_a_server_without_pg_cron_is_refused_before_anything_changes(
    postgres: PgServer, pg_database: str
) -> None:
    with postgres.connect(pg_database) as conn:
        problem = pg_cron_problem(conn)
        tables = conn.execute("SELECT to_regclass('dbplatform.heartbeat')").fetchone()
    assert problem is not None
    assert "pg_cron" in problem
    assert tables == (None,)


def test_the_schedule_call_names_the_job_every_minute_and_the_beat() -> None:
    sql, params = schedule_sql("prod")
    # pg_cron: cron.schedule(job_name, schedule, command) replaces a job of the same name
    assert sql == "SELECT cron.schedule(%s, %s, %s)"
    assert params == (JOB, "* * * * *", "SELECT dbplatform.beat('prod')")
    assert schedule_sql("o'brien")[1][2] == "SELECT dbplatform.beat('o''brien')"


def test_the_committed_queries_file_loads(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    queries = load_queries(root / "restore-checks.yaml")
    assert queries.heartbeat_max_lag == timedelta(minutes=5)
    assert any(q.sql == "SELECT count(*) FROM dbplatform.heartbeat" for q in queries.queries)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n", "expected a mapping"),
        ("colour: red\n", "unknown key(s) colour"),
        ("heartbeat: {maxLagMinutes: true}\n", "heartbeat.maxLagMinutes True"),
        ("tables: [{name: 'accounts; DROP TABLE x'}]\n", "tables[0].name"),
        ("tables: [{name: accounts, min: -1}]\n", "tables[0].min -1"),
        ("queries: [{sql: SELECT 1, min: 1.5}]\n", "queries[0].min 1.5"),
    ],
)
def test_a_bad_queries_file_names_the_key_and_the_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(text)
    with pytest.raises(QueryFileError) as exc:
        load_queries(path)
    assert message in str(exc.value)


@settings(max_examples=40, deadline=None)
@given(name=st.text(min_size=1, max_size=20))
def test_table_names_are_identifiers_or_refused(
    tmp_path_factory: pytest.TempPathFactory, name: str
) -> None:
    path = tmp_path_factory.mktemp("q") / "q.yaml"
    path.write_text(yaml.safe_dump({"tables": [{"name": name}]}))
    try:
        queries = load_queries(path)
    except QueryFileError as exc:
        assert "tables[0].name" in str(exc)
        return
    (q,) = queries.queries
    table = q.sql.removeprefix("SELECT count(*) FROM ")
    assert table == name and all(c.isalnum() or c in "._" for c in table)
