"""Report the slowest chain of a fresh `pulumi up` and of a DR rebuild of a stack, from its
offline manifest weighted by typical creation minutes (table in dbplatform/manifest/timing.py).

Usage: python -m scripts.critical_path --stack S | --manifest FILE
           [--scenario fresh|dr-rebuild|both] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dbplatform.cmdline import parse_args
from dbplatform.entry import prog, run_main
from dbplatform.manifest.timing import SCENARIOS, CycleError, critical_path, to_json, to_text
from dbplatform.ops.errors import ExitCode
from infra.config import ConfigError, project_dir
from policy.manifest import Manifest, ManifestError, load


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("critical-path"),
        description=(
            "The slowest dependency chain of a fresh `pulumi up` and of a DR rebuild (the primary "
            "restored from a recovery point, everything else recreated), in typical minutes."
        ),
        epilog="exit codes: 0 reported; 1 the dependencies form a cycle; 2 bad usage or config.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", help="synthesise Pulumi.<stack>.yaml and report on it")
    src.add_argument("--manifest", type=Path, help="a manifest from scripts.synth")
    p.add_argument(
        "--scenario",
        choices=(*SCENARIOS, "both"),
        default="both",
        help="fresh: a first `pulumi up`; dr-rebuild: the primary restored from a recovery point "
        "in the DR region, everything else recreated there; both (default)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        manifest: Manifest
        if args.manifest is not None:
            manifest = load(args.manifest)
        else:
            from scripts.synth import build_manifest

            manifest = build_manifest(args.stack, (args.root or project_dir()).resolve())
    except (ConfigError, ManifestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    scenarios = SCENARIOS if args.scenario == "both" else (args.scenario,)
    try:
        paths = [critical_path(manifest, s) for s in scenarios]
    except CycleError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    if args.json:
        out = {"stack": manifest.stack, "paths": [to_json(p) for p in paths]}
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write("\n".join(to_text(p) for p in paths))
    return ExitCode.OK


if __name__ == "__main__":
    run_main(main, "critical_path")
