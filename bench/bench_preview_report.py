"""Median time of preview_report (parse + render) on a generated 2,000-step preview; target < 1 s.

Run from the repository root: `python bench/bench_preview_report.py` (part of `make bench`).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dbplatform.preview.digest import load_preview
from dbplatform.preview.markdown import GITHUB_COMMENT_LIMIT, render, width
from dbplatform.preview.synthetic import big_preview

STEPS = 2000
RUNS = 7
TARGET_SECONDS = 1.0


def main() -> int:
    text = json.dumps(big_preview(STEPS))
    timings = []
    size = 0
    for _ in range(RUNS):
        start = time.perf_counter()
        report = render(load_preview(text, "bench"), allow_destructive=False)
        timings.append(time.perf_counter() - start)
        size = width(report.markdown)
    median = statistics.median(timings)
    verdict = "ok" if median < TARGET_SECONDS and size <= GITHUB_COMMENT_LIMIT else "SLOW"
    print(
        f"preview_report: {STEPS} steps ({len(text) / 1e6:.1f} MB JSON) -> {size:,} characters; "
        f"median {median * 1000:.0f} ms over {RUNS} runs (target < {TARGET_SECONDS:.0f} s): "
        f"{verdict}"
    )
    return 0 if verdict == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
