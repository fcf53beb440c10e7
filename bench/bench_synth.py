"""Medians of the offline pipeline: synth of every committed stack (cold process and warm
in-process), guardrails, infra diff and critical path on a generated environment with 50
replicas' worth of resources. Targets: cold synth of prod < 3 s, warm synth of a stack < 0.3 s.

Run from the repository root: `python bench/bench_synth.py` (part of `make bench`).
Exit 1 when a target is missed (the table says which).
"""

from __future__ import annotations

import functools
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbplatform.manifest.diff import diff, to_markdown
from dbplatform.manifest.synthetic import environment
from dbplatform.manifest.timing import critical_path
from infra.config import committed_stacks
from policy.rules import evaluate
from scripts.synth import build_manifest

ROOT = Path(__file__).resolve().parent.parent
COLD_RUNS = 5
WARM_RUNS = 7
COLD_TARGET_S = 3.0
WARM_TARGET_S = 0.3
REPLICAS = 50


def median_of(runs: int, fn: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def synth_json(stack: str) -> str:
    return build_manifest(stack).to_json()


def cold(stack: str, out: Path) -> float:
    def once() -> None:
        subprocess.run(
            [sys.executable, "-m", "scripts.synth", "--stack", stack, "--out", str(out), "-q"],
            cwd=ROOT,
            check=True,
        )

    return median_of(COLD_RUNS, once)


def main() -> int:
    rows: list[tuple[str, float, str]] = []
    missed: list[str] = []

    def row(label: str, seconds: float, target: float | None = None) -> None:
        verdict = ""
        if target is not None:
            ok = seconds < target
            verdict = f"target < {target:g} s: {'ok' if ok else 'MISSED'}"
            if not ok:
                missed.append(label)
        rows.append((label, seconds, verdict))

    stacks = committed_stacks(ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        for stack in stacks:
            target = COLD_TARGET_S if stack == "prod" else None
            row(f"synth {stack}, cold process", cold(stack, Path(tmp) / f"{stack}.json"), target)
    manifests = {}
    for stack in stacks:
        manifests[stack] = build_manifest(stack)  # warm-up: imports, first program run
        count = len(manifests[stack].resources)
        row(
            f"synth {stack} ({count} resources), warm in-process",
            median_of(WARM_RUNS, functools.partial(synth_json, stack)),
            WARM_TARGET_S,
        )
    for stack in stacks:
        row(
            f"guardrails {stack}",
            median_of(WARM_RUNS, functools.partial(evaluate, manifests[stack])),
        )

    base = environment(REPLICAS)
    head = environment(REPLICAS + 1, instance_class="db.r6g.2xlarge")
    size = f"{len(base.resources)} -> {len(head.resources)} resources"
    row(
        f"guardrails generated ({len(base.resources)} resources)",
        median_of(WARM_RUNS, lambda: evaluate(base)),
    )
    row(
        f"infra diff generated ({size}), markdown",
        median_of(WARM_RUNS, lambda: to_markdown(diff(base, head))),
    )
    row(
        f"critical path generated ({len(base.resources)} resources), both scenarios",
        median_of(WARM_RUNS, lambda: [critical_path(base, s) for s in ("fresh", "dr-rebuild")]),
    )

    width = max(len(label) for label, _, _ in rows)
    print(f"{'median of runs':<{width}}  seconds")
    for label, seconds, verdict in rows:
        print(f"{label:<{width}}  {seconds:7.3f}  {verdict}")
    if missed:
        print(f"MISSED: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
