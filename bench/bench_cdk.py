"""Our offline synth of prod against `cdk synth` of an equivalent AWS CDK app, in one run.

The peer app (`../shared/peers/cdk`, or BENCH_CDK_PEER) declares what prod declares, in plain
JavaScript CDK (142 CloudFormation resources; see its README). Its npm packages (aws-cdk-lib,
constructs, the aws-cdk CLI, at the peer's pinned versions) are installed into a temporary
folder, or BENCH_CDK_DIR to reuse one; nothing of the peer or of node_modules enters this
repository. Rounds alternate ours and theirs; the figure is the median of per-round ratios.

No target: this is a comparison for the docs (docs/pictures.md "Speed"), reported, never
failing `make bench`. Skipped, with the reason, when node/npm or the peer folder is absent.

Run from the repository root: `python bench/bench_cdk.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ratios import PY, ROOT, Timing, run

PEER = Path(os.environ.get("BENCH_CDK_PEER", ROOT.parent / "shared" / "peers" / "cdk"))
PEER_FILES = ("app.js", "cdk.json", "package.json")


def prepare(folder: Path) -> str | None:
    """Copy the peer into `folder` and install its packages; the reason when it cannot."""
    if not all((PEER / f).is_file() for f in PEER_FILES):
        return f"the peer CDK app is not at {PEER} (set BENCH_CDK_PEER)"
    npm, node = shutil.which("npm"), shutil.which("node")
    if not npm or not node:
        return "node and npm are needed for `cdk synth` and are not installed"
    for f in PEER_FILES:
        shutil.copy(PEER / f, folder / f)
    if not (folder / "node_modules" / ".bin" / "cdk").exists():
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            return f"npm install of the peer failed: {done.stderr.strip()[-300:]}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", "3")))
    args = parser.parse_args(argv)
    keep = os.environ.get("BENCH_CDK_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(keep) if keep else Path(tmp) / "peer"
        folder.mkdir(parents=True, exist_ok=True)
        reason = prepare(folder)
        if reason:
            print(f"cdk comparison skipped: {reason}")
            return 0
        cdk = str(folder / "node_modules" / ".bin" / "cdk")
        node = shutil.which("node") or "node"
        env = {**os.environ, "CDK_DISABLE_VERSION_CHECK": "1", "CI": "1"}
        fast = {**env, "CDK_VALIDATION": "false", "CDK_OUTDIR": str(folder / "out")}
        ours_cmd = [PY, "-m", "scripts.synth", "--stack", "prod", "--out", f"{tmp}/prod.json"]
        theirs = {
            "cdk synth (as shipped, template validation on)": (
                [cdk, "synth", "--quiet", "--output", str(folder / "cdk.out")],
                env,
            ),
            "cdk synth, CDK_VALIDATION=false": (
                [cdk, "synth", "--quiet", "--output", str(folder / "cdk.out")],
                fast,
            ),
            "node app.js alone, CDK_VALIDATION=false": ([node, "app.js"], fast),
        }
        ratios: dict[str, list[tuple[float, float, Timing]]] = {k: [] for k in theirs}
        ours_all: list[Timing] = []
        for cmd, e in [(ours_cmd, None), *theirs.values()]:  # warm-up, unmeasured
            run_in(cmd, e, folder)
        for _ in range(args.rounds):
            for label, (cmd, e) in theirs.items():
                ours = run(ours_cmd)
                other = run_in(cmd, e, folder)
                ours_all.append(ours)
                ratios[label].append((ours.cpu / other.cpu, ours.wall / other.wall, other))
    print(
        f"ours: `dbplatform synth --stack prod`, cold: cpu "
        f"{statistics.median(t.cpu for t in ours_all):.2f} s, wall "
        f"{statistics.median(t.wall for t in ours_all):.2f} s (median)"
    )
    print(f"{'CDK (peer app, 142 resources)':<48} {'cpu s':>6} {'wall s':>6}  ours/CDK cpu  wall")
    for label, rows in ratios.items():
        print(
            f"{label:<48} {statistics.median(r[2].cpu for r in rows):6.2f} "
            f"{statistics.median(r[2].wall for r in rows):6.2f}  "
            f"{statistics.median(r[0] for r in rows):12.2f}  "
            f"{statistics.median(r[1] for r in rows):4.2f}"
        )
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


def run_in(cmd: list[str], env: dict[str, str] | None, folder: Path) -> Timing:
    """`run` with the peer folder as the working directory for the CDK commands."""
    if cmd[0] == PY:
        return run(cmd, env)
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {folder}")
    return Timing(usage.ru_utime + usage.ru_stime, wall)


if __name__ == "__main__":
    sys.exit(main())
