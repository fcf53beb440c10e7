"""What an operational command's own process loads, reads and starts (docs/speed.md): a run that
never opens a database connection does not import psycopg, botocore's endpoint data is read
once, and a run that takes no lock starts no heartbeat thread. Each run is a real child process
(`python -m scripts.bluegreen` as an operator runs it) against the moto server; the child writes
what it imported, opened and started to a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ops.support import ROOT, AwsEnv, run_module

pytestmark = pytest.mark.moto

# The command's own entry (`python -m scripts.bluegreen`), then a report of the process.
_PROBE = """
import builtins, json, os, runpy, sys, threading

report, sys.argv = sys.argv[1], ["scripts.bluegreen", *sys.argv[2:]]
started, opened = [], []
_start, _open = threading.Thread.start, builtins.open


def start(self):
    started.append(self.name)
    _start(self)


def open_(file, *args, **kwargs):
    opened.append(os.path.basename(str(file)))
    return _open(file, *args, **kwargs)


threading.Thread.start, builtins.open = start, open_
try:
    runpy.run_module("scripts.bluegreen", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(report, "w") as fh:
    json.dump(
        {"code": code, "modules": sorted(sys.modules), "threads": started, "opened": opened}, fh
    )
"""


def _probe(aws: AwsEnv, tmp_path: Path, *args: str) -> dict[str, Any]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(report), *args],
        cwd=ROOT,
        env=aws.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert report.exists(), proc.stderr
    found: dict[str, Any] = json.loads(report.read_text())
    assert found["code"] == 0, proc.stdout + proc.stderr
    found["stderr"] = proc.stderr
    return found


def _psycopg(found: dict[str, Any]) -> list[str]:
    return [m for m in found["modules"] if m.split(".")[0] in ("psycopg", "psycopg_binary")]


# What an operation that opens no database connection never runs: the SQL checks, and the
# offline manifest model and program runner (the project's source is compiled on every run
# where bytecode is not written, as in CI: each module costs its size in CPU).
NOT_WITHOUT_SQL = ("dbplatform.database.checks", "infra.offline", "policy.manifest")


def test_status_loads_no_database_code_nor_the_lock_and_starts_no_thread(
    aws: AwsEnv, tmp_path: Path
) -> None:
    aws.started("prod")
    found = _probe(aws, tmp_path, "status", "--stack", "prod")
    assert "as arn:aws:" in found["stderr"]  # the identity is still asked and shown
    assert _psycopg(found) == []
    assert [m for m in (*NOT_WITHOUT_SQL, "dbplatform.ops.lock") if m in found["modules"]] == []
    assert found["threads"] == []  # read-only: no lock, so no heartbeat
    # the stack file's region check and the clients share one parse of the 1.2 MB file
    assert found["opened"].count("endpoints.json") == 1


def test_a_dry_run_without_sql_checks_loads_no_database_code_and_starts_no_thread(
    aws: AwsEnv, tmp_path: Path
) -> None:
    aws.started("prod")
    found = _probe(aws, tmp_path, "promote", "--stack", "prod", "--dry-run", "--skip-sql-checks")
    assert "DRY-RUN read ssm:GetParameter" in found["stderr"]  # the lock is still read
    assert _psycopg(found) == []
    assert [m for m in NOT_WITHOUT_SQL if m in found["modules"]] == []
    assert found["threads"] == []  # a dry run only reads the lock: nothing to renew


def test_a_run_that_changes_things_keeps_its_lock_alive_with_a_heartbeat_thread(
    aws: AwsEnv, tmp_path: Path
) -> None:
    aws.started("prod")
    found = _probe(aws, tmp_path, "promote", "--stack", "prod", "--yes", "--skip-sql-checks")
    assert [t for t in found["threads"] if t.startswith("lock-heartbeat-")] != []
    assert _psycopg(found) == []  # --skip-sql-checks: no connection, so no driver either
    assert not aws.lock_held("prod")


# Loaded by the child before anything else (site imports `sitecustomize` from PYTHONPATH): it
# notes, for each cyclic collection, how many objects were frozen out of the collector by then.
_WATCH_COLLECTOR = """
import atexit, gc, json, os

seen = []
gc.callbacks.append(lambda phase, info: phase == "start" and seen.append(gc.get_freeze_count()))


def report():
    with open(os.environ["COLLECTIONS_REPORT"], "w") as fh:
        json.dump(seen, fh)


atexit.register(report)
"""


def test_an_operation_collects_nothing_while_it_starts_and_collects_after(
    aws: AwsEnv, tmp_path: Path
) -> None:
    aws.started("prod")
    (tmp_path / "sitecustomize.py").write_text(_WATCH_COLLECTOR, encoding="utf-8")
    report = tmp_path / "collections.json"
    env = {**aws.env, "PYTHONPATH": str(tmp_path), "COLLECTIONS_REPORT": str(report)}
    run = run_module("scripts.bluegreen", ["status", "--stack", "prod"], env=env, process=True)
    assert run.code == 0, run.stderr
    frozen_at_each = json.loads(report.read_text())
    assert frozen_at_each, "the collector runs while the command works"
    # none before the imported modules were frozen: the imports themselves were not collected
    assert min(frozen_at_each) > 0
