"""Medians of `bluegreen status` and a dry-run `bluegreen promote` against a local moto server,
each a fresh `python -m scripts.bluegreen` process as an operator runs it. The wall time
includes Python start-up, imports, config loading, lock and AWS calls to the emulator (which
answers in milliseconds), so it bounds the commands' own overhead. Target: < 2 s each.

Run from the repository root: `python bench/bench_bluegreen.py` (part of `make bench`).
Exit 1 when a target is missed.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from devtools import moto_server  # noqa: E402
from devtools.seed import create_parameter_group, report_replica_lag, seed_stack  # noqa: E402
from infra.config import load_stack  # noqa: E402

RUNS = 5
TARGET_S = 2.0
STACK = "prod"


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "scripts.bluegreen", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"bluegreen {' '.join(argv)} exited {done.returncode}: {done.stderr}")
    return took


def main() -> int:
    server = moto_server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(server.client_env())
            env["DBPLATFORM_AUDIT_LOG"] = str(Path(tmp) / "audit.jsonl")
            os.environ.update(server.client_env())
            cfg = load_stack(STACK)
            session = boto3.Session(region_name=cfg.region)
            seed_stack(session, cfg)
            create_parameter_group(session, cfg, "postgres17")
            _time(["start", "--stack", STACK, "--engine-version", "17.2", "-q"], env)
            rds = session.client("rds")
            for dep in rds.describe_blue_green_deployments()["BlueGreenDeployments"]:
                for member in dep["SwitchoverDetails"]:
                    green = member["TargetMember"].rsplit(":db:", 1)[-1]
                    report_replica_lag(session, cfg.region, green, 1.0)
            cases = {
                "status": ["status", "--stack", STACK, "-q"],
                "promote --dry-run": ["promote", "--stack", STACK, "--dry-run", "-q"],
            }
            missed = False
            print(f"{'command':<22} {'median s':>9} {'min s':>7} {'target s':>9}")
            for name, argv in cases.items():
                _time(argv, env)  # warm the emulator's code paths once
                runs = [_time(argv, env) for _ in range(RUNS)]
                median = statistics.median(runs)
                ok = median < TARGET_S
                missed |= not ok
                mark = "ok" if ok else "MISSED"
                print(f"{name:<22} {median:>9.2f} {min(runs):>7.2f} {TARGET_S:>9.1f}  {mark}")
    finally:
        server.stop()
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
