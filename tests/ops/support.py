"""Helpers for the operations tests: a moto-backed AWS environment, fault hooks, a fast clock."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from dbplatform.ops.audit import read_records
from dbplatform.ops.aws import session_for
from devtools.inprocess import run_main
from devtools.moto_server import MotoServer
from devtools.seed import (
    Seeded,
    create_parameter_group,
    report_replica_lag,
    report_slot_lag,
    seed_stack,
)
from infra.config import StackConfig, load_stack

ROOT = Path(__file__).resolve().parents[2]
SQL_SUBCOMMANDS = ("start", "promote", "rollback")


def new_session() -> boto3.Session:
    """A session from the standard environment (credentials, AWS_ENDPOINT_URL), with the
    process's shared botocore loader, as the commands build theirs (`session_for`)."""
    return session_for(None, "us-east-1")


class FakeClock:
    """A clock whose sleep returns at once and moves time forward (waits cost nothing)."""

    def __init__(self) -> None:
        self._now = datetime.now(UTC)
        self._mono = 0.0
        self.slept = 0.0

    def now(self) -> datetime:
        return self._now + timedelta(seconds=self._mono)

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self._mono += seconds
        self.slept += seconds


def run_module(
    module: str,
    args: Sequence[str],
    *,
    env: dict[str, str],
    stdin: str = "",
    process: bool = False,
    cwd: Path = ROOT,
    timeout: float = 120,
) -> Run:
    """`python -m <module> ARGS` with `env`, as an operator runs it; exit code and output.

    By default in this process, which costs milliseconds instead of a second of interpreter
    start-up and imports per call (../shared/reviews/perf.md §4: 35 child processes were a
    quarter of the suite's time): the module's `main(argv)` runs with stdout and stderr
    captured, stdin a non-terminal holding `stdin`, os.environ replaced by `env` and the working
    directory `cwd` for the call, so the command builds its own AWS session from that
    environment as a process would.
    `process=True` starts a real child instead, for a test about the process itself (signals,
    the interpreter's exit, imports).
    """
    if process:
        proc = subprocess.run(
            [sys.executable, "-m", module, *args],
            check=False,
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)
    return Run(*run_main(module, args, env=env, stdin=stdin, cwd=cwd))


@dataclass
class Run:
    """A finished command run: exit code and output."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.stdout))

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@dataclass
class AwsEnv:
    """One test's view of the shared moto server (reset before the test)."""

    server: MotoServer
    audit_log: Path
    env: dict[str, str]
    session: boto3.Session = field(init=False)
    _clients: dict[tuple[str, str], Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.session = new_session()

    def client(self, service: str, region: str = "us-east-1") -> Any:
        """A client of the test's own session (cached: creating clients is not free)."""
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self.session.client(service, region_name=region)
        return self._clients[key]

    # --- arranging ---
    def config(self, stack: str) -> StackConfig:
        return load_stack(stack, ROOT)

    def seed(
        self, stack: str, *, target_family: str | None = "postgres17", network: bool = False
    ) -> Seeded:
        """The stack's resources as the program names them (network only when asked: speed)."""
        cfg = self.config(stack)
        seeded = seed_stack(self.session, cfg, with_network=network)
        if target_family:
            create_parameter_group(self.session, cfg, target_family)
        return seeded

    def report_green_lag(self, seconds: float = 1.0) -> list[str]:
        """Publish ReplicaLag for every green target, as RDS would; returns their ids."""
        rds = self.client("rds")
        greens = []
        for d in rds.describe_blue_green_deployments()["BlueGreenDeployments"]:
            for m in d["SwitchoverDetails"]:
                ident = m["TargetMember"].rsplit(":db:", 1)[-1]
                report_replica_lag(self.session, "us-east-1", ident, seconds)
                # a major upgrade is measured on blue: its slot lag (as many MB, sent in bytes)
                blue = m["SourceMember"].rsplit(":db:", 1)[-1]
                report_slot_lag(self.session, "us-east-1", blue, seconds)
                greens.append(ident)
        return greens

    def started(self, stack: str, *, version: str = "17.2", lag: float | None = 1.0) -> Seeded:
        """Seeded, with an available green environment (started in-process)."""
        seeded = self.seed(stack)
        run = self.main("start", "--stack", stack, "--engine-version", version)
        assert run.code == 0, run.text
        if lag is not None:
            self.report_green_lag(lag)
        return seeded

    def promoted(self, stack: str) -> Seeded:
        """Seeded, started and switched over (in-process)."""
        seeded = self.started(stack)
        run = self.main("promote", "--stack", stack, "--yes")
        assert run.code == 0, run.text
        return seeded

    def record(self, stack: str) -> dict[str, Any]:
        """The blue/green state record in SSM."""
        return dict(json.loads(self.parameters()[f"/dbplatform/{stack}/ops/bluegreen"]))

    # --- acting ---
    def cli(self, *args: str, stdin: str | None = None, process: bool = False) -> Run:
        """`python -m scripts.bluegreen ARGS` as an operator runs it: its own session from the
        environment, the real clock, no terminal (`run_module`; in this process unless
        `process=True`). The SQL checks are skipped unless a test gives a CA bundle."""
        if args and args[0] in SQL_SUBCOMMANDS and "--sql-ca-bundle" not in args:
            args = (*args, "--skip-sql-checks")
        return run_module(
            "scripts.bluegreen", args, env=self.env, stdin=stdin or "", process=process
        )

    def main(
        self,
        *args: str,
        session: boto3.Session | None = None,
        clock: Any = None,
        main: Callable[..., int] | None = None,
        own_session: bool = False,
    ) -> Run:
        """Run the command in-process (cheap), with an optional fault-injecting session.

        `own_session=True` lets the command build its session from the environment itself.
        """
        if main is None:
            from scripts.bluegreen import main as bluegreen_main

            main = bluegreen_main
            # moto's RDS has no database behind it: the blue/green runs here skip the SQL
            # checks the way an operator would, explicitly (tests/data covers the SQL).
            sql_flags = ("--skip-sql-checks", "--sql-ca-bundle", "--sql-host")
            if args and args[0] in SQL_SUBCOMMANDS and not set(args) & set(sql_flags):
                args = (*args, "--skip-sql-checks")
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            if session is None and not own_session:
                session = new_session()
            code = main(list(args), session=session, clock=clock or FakeClock())
        return Run(code, out.getvalue(), err.getvalue())

    # --- asserting ---
    def audit(self) -> list[dict[str, Any]]:
        return read_records(self.audit_log)

    def instances(self) -> dict[str, str]:
        """identifier -> engine version of every DB instance."""
        rds = self.client("rds")
        return {
            i["DBInstanceIdentifier"]: i["EngineVersion"]
            for i in rds.describe_db_instances()["DBInstances"]
        }

    def manual_snapshots(self) -> set[str]:
        rds = self.client("rds")
        snaps = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
        return {s["DBSnapshotIdentifier"] for s in snaps}

    def deployments(self) -> dict[str, str]:
        rds = self.client("rds")
        return {
            d["BlueGreenDeploymentIdentifier"]: d["Status"]
            for d in rds.describe_blue_green_deployments()["BlueGreenDeployments"]
        }

    def parameters(self) -> dict[str, str]:
        """Every SSM parameter under /dbplatform (locks, records) -> value."""
        pages = self.client("ssm").get_paginator("get_parameters_by_path")
        return {
            p["Name"]: p["Value"]
            for page in pages.paginate(Path="/dbplatform", Recursive=True)
            for p in page["Parameters"]
        }

    def state(self) -> dict[str, Any]:
        """Everything a command could change, to compare before and after."""
        rds = self.client("rds")
        instances = {
            i["DBInstanceIdentifier"]: (
                i["EngineVersion"],
                i["DBInstanceStatus"],
                i.get("DeletionProtection"),
                i.get("BackupRetentionPeriod"),
                tuple(sorted((t["Key"], t["Value"]) for t in i.get("TagList", []))),
            )
            for i in rds.describe_db_instances()["DBInstances"]
        }
        alarms = {
            a["AlarmName"]: a["StateValue"]
            for a in self.client("cloudwatch").describe_alarms()["MetricAlarms"]
        }
        return {
            "instances": instances,
            "snapshots": self.manual_snapshots(),
            "deployments": self.deployments(),
            "parameters": self.parameters(),
            "alarms": alarms,
        }

    def lock_held(self, stack: str) -> bool:
        """True when any scope of the stack's lock is held (`.../ops/lock-<scope>`)."""
        return any(n.startswith(f"/dbplatform/{stack}/ops/lock-") for n in self.parameters())


# --- fault injection (botocore event hooks on an in-process session) ---------------------------


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def query_error(status: int, code: str, message: str = "injected") -> AWSResponse:
    """An AWS query-protocol (RDS) error response."""
    kind = "Sender" if status < 500 else "Receiver"
    body = (
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error><RequestId>test</RequestId></ErrorResponse>"
    ).encode()
    return AWSResponse("http://127.0.0.1/", status, {"Content-Type": "text/xml"}, _Body(body))


@dataclass
class Burst:
    """Answer the first calls of an operation with the given errors, then let calls through.

    Registered on `before-send.<service>.<Operation>`: the request never reaches the server
    while the burst lasts, as with a real throttling or 5xx answer.
    """

    errors: list[tuple[int, str]]
    seen: int = 0

    def __call__(self, **_: Any) -> AWSResponse | None:
        self.seen += 1
        if self.seen <= len(self.errors):
            status, code = self.errors[self.seen - 1]
            return query_error(status, code)
        return None


def session_with(hooks: Sequence[tuple[str, Callable[..., Any]]]) -> boto3.Session:
    """A session (env credentials and endpoint) with botocore event hooks registered."""
    session = new_session()
    for event, handler in hooks:
        session.events.register(event, handler)
    return session


@contextmanager
def no_backoff_sleep(recorded: list[float]) -> Iterator[None]:
    """Record botocore's retry backoff instead of sleeping it (the test stays fast)."""
    import types

    import botocore.endpoint

    real = botocore.endpoint.time
    botocore.endpoint.time = types.SimpleNamespace(sleep=recorded.append)
    try:
        yield
    finally:
        botocore.endpoint.time = real


def client_env(server: MotoServer, audit_log: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(server.client_env())
    env.update(
        {
            "DBPLATFORM_AUDIT_LOG": str(audit_log),
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
        }
    )
    env.pop("DBPLATFORM_PROJECT_DIR", None)
    return env
