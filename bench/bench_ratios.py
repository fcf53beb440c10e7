"""Speed as ratios to a floor, measured in one run (`make bench`): each figure against its target.

Absolute seconds move by ±30 % on a shared machine; a ratio of two processes started in turn
(A B A B ...) does not, so each target is a ratio (../shared/reviews/perf.md, "How everything
was measured"). The figure is the median over rounds of A's CPU time (user + sys of the child,
from `wait4`) over B's in the same round; wall ratios are printed beside it.

Figures (A / B, target):
- cold `python -m scripts.synth --stack prod` / `python -c "import pulumi, pulumi_aws"`: <= 4.5
- the same / `python bench/floor.py`, the stack-shaped floor of perf.md §1: <= 1.1
- `guardrails --manifest prod.json` / cold synth: <= 0.5
- `critical-path --manifest prod.json` / cold synth: <= 0.5
- `bluegreen status` on moto / one `describe_db_instances` with boto3 on the same server: <= 1.3
- `bluegreen promote --dry-run` / the same boto3 call: <= 1.3

Run from the repository root: `python bench/bench_ratios.py [--rounds N]`. Exit 1 when a target
is missed (the table says which). BENCH_ROUNDS sets the default round count (5).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = sys.executable
STACK = "prod"


@dataclass(frozen=True)
class Timing:
    cpu: float
    wall: float


def run(argv: list[str], env: dict[str, str] | None = None) -> Timing:
    """One process: its own CPU (user + sys, children included) and wall time."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err.strip()[-400:]}")
    return Timing(usage.ru_utime + usage.ru_stime, wall)


@dataclass
class Figure:
    label: str
    target: float
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def add(self, a: Timing, b: Timing) -> None:
        self.cpu.append(a.cpu / b.cpu)
        self.wall.append(a.wall / b.wall)

    @property
    def ok(self) -> bool:
        return statistics.median(self.cpu) <= self.target


def offline(rounds: int, tmp: Path) -> list[Figure]:
    manifest = tmp / f"{STACK}.json"
    synth = [PY, "-m", "scripts.synth", "--stack", STACK, "--out", str(manifest)]
    bare = [PY, "-c", "import pulumi, pulumi_aws"]
    guard = [PY, "-m", "scripts.guardrails", "--manifest", str(manifest)]
    path = [PY, "-m", "scripts.critical_path", "--manifest", str(manifest)]
    figures = {
        "bare": Figure("cold synth prod / `import pulumi, pulumi_aws`", 4.5),
        "floor": Figure("cold synth prod / stack-shaped floor (bench/floor.py)", 1.1),
        "guard": Figure("guardrails --manifest / cold synth prod", 0.5),
        "path": Figure("critical-path --manifest / cold synth prod", 0.5),
    }
    run(synth)  # warms the file cache, unmeasured, and gives prod's resource count
    # The floor declares as many resources as prod does today (the program grows; a fixed count
    # went stale at 168 while prod reached 214 and made the floor figure look worse than it is).
    count = len(json.loads(manifest.read_text(encoding="utf-8"))["resources"])
    floor = [PY, str(ROOT / "bench" / "floor.py"), str(count)]
    for cmd in (bare, floor):
        run(cmd)
    for _ in range(rounds):
        s = run(synth)
        figures["bare"].add(s, run(bare))
        figures["floor"].add(s, run(floor))
        figures["guard"].add(run(guard), s)
        figures["path"].add(run(path), s)
    return list(figures.values())


def operations(rounds: int, tmp: Path) -> list[Figure]:
    import boto3

    from devtools import moto_server
    from devtools.seed import (
        create_parameter_group,
        report_replica_lag,
        report_slot_lag,
        seed_stack,
    )
    from infra.config import load_stack
    from infra.naming import Names

    server = moto_server.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(server.client_env())
        env["DBPLATFORM_AUDIT_LOG"] = str(tmp / "audit.jsonl")
        saved = dict(os.environ)
        os.environ.update(server.client_env())
        try:
            cfg = load_stack(STACK)
            session = boto3.Session(region_name=cfg.region)
            seed_stack(session, cfg)
            create_parameter_group(session, cfg, "postgres17")
            # moto's instances have no database behind them: the SQL checks are skipped here.
            start = [
                "start",
                "--stack",
                STACK,
                "-q",
                "--engine-version",
                "17.2",
                "--skip-sql-checks",
            ]
            run([PY, "-m", "scripts.bluegreen", *start], env)
            rds = session.client("rds")
            for dep in rds.describe_blue_green_deployments()["BlueGreenDeployments"]:
                for member in dep["SwitchoverDetails"]:
                    green = member["TargetMember"].rsplit(":db:", 1)[-1]
                    report_replica_lag(session, cfg.region, green, 1.0)
            # A major-version upgrade is gated on blue's logical slot lag (docs/bluegreen.md).
            report_slot_lag(session, cfg.region, Names(STACK).primary, 1.0)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        floor = [
            PY,
            "-c",
            f"import boto3; boto3.client('rds', region_name='{cfg.region}')"
            ".describe_db_instances()",
        ]
        cases = {
            "status": (
                Figure("bluegreen status / one boto3 call (same moto)", 1.3),
                [PY, "-m", "scripts.bluegreen", "status", "--stack", STACK, "-q"],
            ),
            "promote": (
                Figure("bluegreen promote --dry-run / one boto3 call", 1.3),
                [
                    PY,
                    "-m",
                    "scripts.bluegreen",
                    "promote",
                    "--stack",
                    STACK,
                    "--dry-run",
                    "-q",
                    "--skip-sql-checks",
                ],
            ),
        }
        for _, cmd in cases.values():
            run(cmd, env)
        run(floor, env)
        for _ in range(rounds):
            for figure, cmd in cases.values():
                figure.add(run(cmd, env), run(floor, env))
        return [figure for figure, _ in cases.values()]
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "5")))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        figures = offline(args.rounds, Path(tmp)) + operations(args.rounds, Path(tmp))
    width = max(len(f.label) for f in figures)
    print(
        f"{'ratio (CPU, median of ' + str(args.rounds) + ' rounds)':<{width}}  "
        f"{'cpu':>5} {'min':>5} {'max':>5}  {'wall':>5}  target"
    )
    for f in figures:
        verdict = "ok" if f.ok else "MISSED"
        print(
            f"{f.label:<{width}}  {statistics.median(f.cpu):5.2f} {min(f.cpu):5.2f} "
            f"{max(f.cpu):5.2f}  {statistics.median(f.wall):5.2f}  <= {f.target:g}: {verdict}"
        )
    load = os.getloadavg()[0]
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs")
    missed = [f.label for f in figures if not f.ok]
    if missed:
        print(f"MISSED: {'; '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
