"""Demo harness for `make demo`: the whole of dbplatform against an emulated AWS in one command.

It starts a moto server on 127.0.0.1 (free port), seeds there the prod environment's stateful
resources as the program declares them (`devtools.seed`: a stand-in for `pulumi up`, which needs
the Pulumi CLI and an AWS account; never a deploy path), runs the operational commands as an
operator would, each a subprocess with `AWS_ENDPOINT_URL` pointing at the server, prints a
summary table, and stops the server by its own pid. Exit 0 when every step did what it should.

Where a step depends on something AWS does by itself and moto does not (publishing ReplicaLag,
replicating backups to the DR region), the harness does it just before that step and says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from dbplatform.entry import INTERRUPTED
from devtools import moto_server
from devtools.inprocess import run_main
from devtools.seed import report_replica_lag
from infra.config import ConfigError, StackConfig, load_stack
from infra.naming import Names

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "prod"
STEP_TIMEOUT_SECONDS = 180
# The commands poll AWS for state changes; moto makes everything `available` at once, so a
# short poll keeps the demo fast without changing what the commands do.
POLL_SECONDS = "0.2"
OUTCOMES = {0: "done", 1: "failed", 2: "bad usage", 3: "refused", 130: "interrupted"}
MISSING = -1
# What a command's message advises: `dbplatform <command> ...` (the commands name themselves so).
ADVICE = re.compile(r"dbplatform ([a-z][\w-]*)((?: [^\s`'\"]+)*)")


class DemoError(RuntimeError):
    """The demo could not set up the emulated environment; no command was run."""


@dataclass(frozen=True)
class Emulated:
    """The emulated AWS, reachable from this process and from the commands' subprocesses."""

    cfg: StackConfig
    env: Mapping[str, str]
    """Environment of every command: the server's endpoint, dummy credentials, demo paths."""

    @contextmanager
    def session(self) -> Iterator[boto3.Session]:
        """A boto3 session on the server, for the harness's own emulation of AWS behaviour."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            yield boto3.Session(region_name=self.cfg.region)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


Emulation = Callable[[Emulated], str]
"""Something real AWS does on its own that moto does not; returns what it did, for the log."""


@dataclass(frozen=True)
class Step:
    """One operator action: `python -m <module> <args>` and the exit code it must end with."""

    title: str
    module: str
    args: tuple[str, ...]
    expect: int = 0
    emulate: Emulation | None = None
    """Run first: AWS behaviour moto lacks that this step depends on."""
    follow_advice: bool = False
    """Run the `python -m <module> ...` line the previous step's message told the operator to
    run, instead of `args` (which then only documents the intent)."""


@dataclass(frozen=True)
class StepResult:
    """What one step did: the command line it ran, its exit code, time and output."""

    step: Step
    command: str
    exit_code: int
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.exit_code == self.step.expect

    @property
    def outcome(self) -> str:
        said = OUTCOMES.get(self.exit_code, f"exit {self.exit_code}")
        if self.exit_code == MISSING:
            said = "command missing"
        if self.ok:
            return said
        return f"{said}, expected {OUTCOMES.get(self.step.expect, self.step.expect)}"


# ---------------------------------------------------------------------------------------------
# What moto does not do by itself
# ---------------------------------------------------------------------------------------------


def green_replica_lag(world: Emulated) -> str:
    """RDS publishes ReplicaLag for a green instance every minute; moto publishes no metrics."""
    primary = Names(world.cfg.stack).primary
    with world.session() as session:
        deployments = session.client("rds").describe_blue_green_deployments()
        greens = [
            m["TargetMember"].rsplit(":", 1)[-1]
            for d in deployments["BlueGreenDeployments"]
            if d.get("Source", "").endswith(f":db:{primary}")
            for m in d.get("SwitchoverDetails", [])
            if m.get("TargetMember")
        ]
        for green in greens:
            report_replica_lag(session, world.cfg.region, green, 1.0)
    return f"RDS would report ReplicaLag 1s for {', '.join(greens) or 'no green instance'}"


def dr_restore_point(world: Emulated) -> str:
    """What a DR drill finds in the DR region on AWS, made by hand because moto lacks it.

    On AWS, automated-backup replication (`dr.backupReplication`) and the backup plan's
    `copyToDr` rules put restore points there; moto has neither, so a snapshot of the primary
    is copied over, as a copy job would.
    """
    cfg, names = world.cfg, Names(world.cfg.stack)
    dr = cfg.dr.region
    if dr is None:
        return "no DR region configured"
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    with world.session() as session:
        rds = session.client("rds")
        snap = f"{names.primary}-demo-copy-{stamp}"
        arn = rds.create_db_snapshot(DBInstanceIdentifier=names.primary, DBSnapshotIdentifier=snap)[
            "DBSnapshot"
        ]["DBSnapshotArn"]
        session.client("rds", region_name=dr).copy_db_snapshot(
            SourceDBSnapshotIdentifier=arn,
            TargetDBSnapshotIdentifier=snap,
            SourceRegion=cfg.region,
            KmsKeyId="alias/aws/rds",
        )
    return f"snapshot {snap} copied to {dr}, as backup replication would"


# ---------------------------------------------------------------------------------------------
# The operator's steps
# ---------------------------------------------------------------------------------------------


def steps_for(cfg: StackConfig, work: Path) -> list[Step]:
    """What an operator's first hour looks like, in an order the commands accept.

    `work` receives what the commands leave behind (the DR drill's report).
    """
    s = ("--stack", cfg.stack)
    dr = ("--region", cfg.dr.region) if cfg.dr.region else ()
    app_secret = cfg.vault.app_secrets[0].name if cfg.vault.app_secrets else "master"
    # A later minor release of the configured major (16.4 -> 16.6): an upgrade blue/green makes
    # without a new parameter group.
    from devtools.seed import concrete_version

    major, minor = concrete_version(cfg.database.engine_version).split(".")[:2]
    upgrade = f"{major}.{int(minor) + 2}"
    # moto's RDS has no PostgreSQL behind it: the SQL checks are skipped, explicitly.
    no_sql = ("--skip-sql-checks",)
    return [
        # Synthesise once (<stack>.json, .md, .mmd) and check the manifest it wrote, as CI does
        # (docs/speed.md, "CI never synthesises twice").
        Step(
            "synthesize the manifest",
            "scripts.synth",
            (*s, "--out-dir", _shown_path(work)),
        ),
        Step(
            "check the guardrails",
            "scripts.guardrails",
            ("--manifest", _shown_path(work / f"{cfg.stack}.json")),
        ),
        # moto's instances hold no data and its endpoints are not on 127.0.0.1: the demo checks
        # metadata only, and the command says so (docs/dr.md).
        Step("verify a restore", "scripts.restore_check", (*s, "--skip-sql-checks")),
        Step(
            "blue/green: start an upgrade",
            "scripts.bluegreen",
            ("start", *s, "--engine-version", upgrade, *no_sql),
        ),
        Step("blue/green: status", "scripts.bluegreen", ("status", *s)),
        Step(
            "blue/green: promote",
            "scripts.bluegreen",
            ("promote", *s, "--yes", *no_sql),
            emulate=green_replica_lag,
        ),
        Step(
            "blue/green: rollback (refused)",
            "scripts.bluegreen",
            ("rollback", *s, *no_sql),
            expect=3,
        ),
        Step(
            "blue/green: rollback (accepted)",
            "scripts.bluegreen",
            (
                "rollback",
                *s,
                "--accept-data-window",
                "<the time the refusal names>",
                "--yes",
                *no_sql,
            ),
            follow_advice=True,
        ),
        Step(
            "blue/green: finalize", "scripts.bluegreen", ("finalize", *s, "--ignore-soak", "--yes")
        ),
        Step("rotate a secret", "scripts.rotate_secret", (*s, "--secret", app_secret, "--yes")),
        Step(
            "DR: restore points",
            "scripts.dr",
            ("restore-points", *s, *dr),
            emulate=dr_restore_point,
        ),
        Step(
            "DR: drill",
            "scripts.dr",
            ("drill", *s, *dr, "--report-dir", _shown_path(work / "dr"), "--yes"),
        ),
    ]


def _shown_path(path: Path) -> str:
    """A path as short as the commands (run from the repository root) accept it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def advised_command(output: str, module: str) -> list[str] | None:
    """The last `dbplatform <command> ...` line a command's message advised for `module`, as
    argv for `python -m` (the module, then the arguments)."""
    from dbplatform.cli import resolve

    found = [
        m
        for m in ADVICE.finditer(output)
        if (cmd := resolve(m.group(1))) is not None and cmd.module == module
    ]
    if not found:
        return None
    return [module, *found[-1].group(2).split()]


def run_step(
    step: Step,
    world: Emulated,
    previous: StepResult | None,
    echo: Callable[[str], None],
    *,
    index: int,
    total: int,
    in_process: bool = False,
) -> StepResult:
    """Run one step as a subprocess, echoing its output as it comes (`in_process`: the command's
    `main(argv)` in this process, its output echoed when it ends; devtools/inprocess.py)."""
    argv = [step.module, *step.args]
    if step.follow_advice:
        advised = advised_command(previous.output if previous else "", step.module)
        # Follow only advice to run the same subcommand (e.g. rollback again, with its window).
        if advised is None or advised[1:2] != list(step.args[:1]):
            echo(f"[{index}/{total}] {step.title}: the previous step advised no such command")
            return StepResult(step, shlex.join(["python", "-m", *argv]), 1, 0.0, "")
        argv = advised
    command = shlex.join(["python", "-m", *argv])
    echo(f"[{index}/{total}] {step.title}")
    if not module_exists(step.module):
        echo(f"    $ {command}\n    {step.module} does not exist in this checkout")
        return StepResult(step, command, MISSING, 0.0, "")
    if step.emulate is not None:
        echo(f"    (emulating AWS: {step.emulate(world)})")
    echo(f"    $ {command}")
    started = time.monotonic()
    if in_process:
        code, output, _ = run_main(argv[0], argv[1:], env=world.env, merge_output=True, cwd=ROOT)
        for line in output.splitlines():
            echo(f"    | {line}")
        return _finished(StepResult(step, command, code, time.monotonic() - started, output), echo)
    lines: list[str] = []
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=dict(world.env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            lines.append(line)
            echo(f"    | {line.rstrip()}")
        code = proc.wait(timeout=STEP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = 1
        lines.append(f"demo: no answer within {STEP_TIMEOUT_SECONDS}s; stopped\n")
    return _finished(
        StepResult(step, command, code, time.monotonic() - started, "".join(lines)), echo
    )


def _finished(result: StepResult, echo: Callable[[str], None]) -> StepResult:
    echo(f"    -> {'ok' if result.ok else 'FAILED'}: {result.outcome} in {result.seconds:.1f}s")
    return result


def summary(results: Sequence[StepResult]) -> str:
    """The table printed at the end: step, exit code, outcome, seconds."""
    width = max([len("step"), *(len(r.step.title) for r in results)])
    outcome_width = max([len("outcome"), *(len(r.outcome) + 5 for r in results)])
    rows = [
        f"{'step':<{width}}  exit  {'outcome':<{outcome_width}}  seconds",
        f"{'-' * width}  ----  {'-' * outcome_width}  -------",
    ]
    for r in results:
        said = f"{'ok' if r.ok else 'FAIL'}: {r.outcome}"
        rows.append(
            f"{r.step.title:<{width}}  {r.exit_code:>4}  {said:<{outcome_width}}  {r.seconds:>7.1f}"
        )
    total = sum(r.seconds for r in results)
    passed = sum(r.ok for r in results)
    rows.append(f"{passed}/{len(results)} steps ok, {total:.1f}s in commands")
    return "\n".join(rows)


def seed_environment(
    stack: str, env: Mapping[str, str], *, in_process: bool = False
) -> dict[str, object]:
    """Seed the stack's stateful resources with `python -m devtools.seed` against the server."""
    if in_process:
        code, out, err = run_main("devtools.seed", ["--stack", stack], env=env, cwd=ROOT)
        if code != 0:
            raise DemoError(f"devtools.seed exited {code}: {err.strip()}")
        return dict(json.loads(out))
    done = subprocess.run(
        [sys.executable, "-m", "devtools.seed", "--stack", stack],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=STEP_TIMEOUT_SECONDS,
    )
    if done.returncode != 0:
        raise DemoError(f"devtools.seed exited {done.returncode}: {done.stderr.strip()}")
    seeded: dict[str, object] = json.loads(done.stdout)
    return seeded


def run_demo(
    stack: str = DEFAULT_STACK,
    *,
    work: Path,
    steps: Sequence[Step] | None = None,
    echo: Callable[[str], None] = print,
    in_process: bool = False,
) -> list[StepResult]:
    """Start the emulator, seed `stack`, run the steps, stop the emulator; returns each result.

    `work` receives the commands' audit log and the DR drill's report. `in_process` runs each
    command in this process instead of a child (devtools/inprocess.py); the emulator is a
    server process either way.
    """
    cfg = load_stack(stack)
    work.mkdir(parents=True, exist_ok=True)
    plan = list(steps) if steps is not None else steps_for(cfg, work)
    echo(f"demo: starting a moto server on {moto_server.HOST} (an emulated AWS; no account used)")
    try:
        server = moto_server.start()
    except RuntimeError as exc:
        raise DemoError(f"the moto server did not start: {exc}") from None
    echo(f"demo: moto server at {server.url}, pid {server.process.pid}")
    results: list[StepResult] = []
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k != "AWS_PROFILE"},
            **server.client_env(cfg.region),
            # The demo's audit trail stays out of the checkout's own log.
            "DBPLATFORM_AUDIT_LOG": str(work / "audit.jsonl"),
            "DBPLATFORM_POLL_SECONDS": POLL_SECONDS,
            "PYTHONUNBUFFERED": "1",
        }
        world = Emulated(cfg=cfg, env=env)
        echo(f"demo: seeding {stack}'s stateful resources (a test harness, not a deploy path)")
        started = time.monotonic()
        for key, value in seed_environment(stack, env, in_process=in_process).items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            echo(f"    {key}: {shown}")
        echo(f"    seeded in {time.monotonic() - started:.1f}s")
        for i, step in enumerate(plan, 1):
            previous = results[-1] if results else None
            results.append(
                run_step(
                    step, world, previous, echo, index=i, total=len(plan), in_process=in_process
                )
            )
            if results[-1].exit_code == INTERRUPTED:
                # The command answered Ctrl-C (exit 130): an in-process command catches it
                # before the demo could, so the demo stops here itself.
                raise KeyboardInterrupt
    finally:
        pid = server.process.pid
        server.stop()
        echo(f"demo: moto server (pid {pid}) stopped")
    echo(f"demo: audit log {_shown_path(work / 'audit.jsonl')}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.demo",
        description="Run dbplatform end to end against a local moto server (make demo).",
        epilog="exit codes: 0 every step did what it should; 1 a step failed; 2 bad stack; "
        "130 interrupted (Ctrl-C; the moto server is stopped either way).",
    )
    parser.add_argument("--stack", default=DEFAULT_STACK, help="stack to seed and operate")
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "build" / "demo",
        help="where the commands' audit log and the DR report go (default build/demo)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only the steps and the summary")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run each command inside the demo's process instead of as `python -m` (no start-up "
        "per step; what the test suite does). Steps then have no time limit",
    )
    args = parser.parse_args(argv)

    def echo(line: str) -> None:
        if not (args.quiet and line.startswith("    ")):
            print(line, flush=True)

    try:
        results = run_demo(args.stack, work=args.work, echo=echo, in_process=args.in_process)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"demo failed before the first command: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted; the moto server is stopped", file=sys.stderr)
        return INTERRUPTED
    print()
    print(summary(results))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"FAILED: {r.command} -> {r.outcome}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
