"""Medians of the offline pipeline in one process: warm synth of every committed stack (per
resource), guardrails, infra diff and critical path on a generated environment with 50
replicas' worth of resources. Informational: the targets are ratios to a floor, held by
bench/bench_ratios.py, because absolute seconds move by a third on a shared machine (the old
"cold synth < 3 s" and "warm < 0.3 s" were at or below the SDK's own per-resource floor,
../shared/reviews/perf.md §5).

Run from the repository root: `python bench/bench_synth.py` (part of `make bench`).
"""

from __future__ import annotations

import functools
import statistics
import sys
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
WARM_RUNS = 7
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


def main() -> int:
    rows: list[tuple[str, float, str]] = []

    def row(label: str, seconds: float, note: str = "") -> None:
        rows.append((label, seconds, note))

    stacks = committed_stacks(ROOT)
    manifests = {}
    for stack in stacks:
        manifests[stack] = build_manifest(stack)  # warm-up: imports, first program run
        count = len(manifests[stack].resources)
        seconds = median_of(WARM_RUNS, functools.partial(synth_json, stack))
        row(
            f"synth {stack} ({count} resources), warm in-process",
            seconds,
            f"{seconds / count * 1000:.1f} ms per resource",
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
