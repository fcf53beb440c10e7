"""What a pull request changes in the declared infrastructure, without the cloud: compare the
manifests `scripts.synth` writes for the base and the head of the PR.

Usage: python -m scripts.infra_diff BASE.json HEAD.json [--format markdown|json] [--out FILE]
The Markdown's first line is hidden: its counts, which `scripts.preview_report --infra-diff` reads.
Exit 0 when nothing is flagged (whatever else changes); 3 when a stateful resource would be
destroyed, replaced or irreversibly changed, a step would be refused by AWS or by `protect`, or a
protection is weakened (CI then requires an explicit approval); 2 when an input cannot be read or
--out cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dbplatform.cmdline import parse_args
from dbplatform.entry import prog, run_main
from dbplatform.manifest.diff import diff, to_json, to_markdown, verdict
from dbplatform.ops.errors import ExitCode
from policy.manifest import ManifestError, load


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("infra-diff"),
        description=(
            "Compare two synth manifests (base and head of a PR): resources added, removed, "
            "changed (property paths, old → new, secrets redacted) and, on top, every stateful "
            "resource that would be destroyed, renamed or replaced, every step AWS or `protect` "
            "would refuse, and every protection weakened."
        ),
        epilog=(
            "exit codes: 0 nothing flagged; 2 unreadable input or --out; 3 a stateful resource "
            "would be destroyed, replaced or irreversibly changed, a step would be refused, or a "
            "protection is weakened."
        ),
    )
    p.add_argument(
        "base", type=Path, metavar="BASE.json", help="manifest of the base branch (- for stdin)"
    )
    p.add_argument(
        "head", type=Path, metavar="HEAD.json", help="manifest of the PR head (- for stdin)"
    )
    p.add_argument(
        "--format",
        choices=("markdown", "json"),
        default="markdown",
        help="markdown (default): the report a reviewer reads; json: the verdict, the summary and "
        "every change as one object",
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument("--out", type=Path, help="write the report to FILE (- or none: stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if str(args.base) == str(args.head) == "-":
        print(
            "error: BASE.json and HEAD.json are both '-': only one can be standard input",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    try:
        base, head = load(args.base), load(args.head)
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if base.stack != head.stack:
        print(
            f"error: {args.base} is stack '{base.stack}' and {args.head} is '{head.stack}': "
            "compare two manifests of the same stack",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    d = diff(base, head)
    if args.json or args.format == "json":
        text = json.dumps(to_json(d), indent=2, sort_keys=True) + "\n"
    else:
        text = to_markdown(d)
    if args.out is None or str(args.out) in ("-", "none"):
        sys.stdout.write(text)
    else:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.USAGE
    if not args.quiet:
        risky = d.at_risk
        parts = [
            f"AT RISK: {', '.join(c.name for c in risky)} ({len(risky)} stateful resource(s))"
            if risky
            else "no stateful resource at risk"
        ]
        if d.refused:
            parts.append(f"REFUSED: {', '.join(c.name for c in d.refused)}")
        if d.weakened:
            parts.append(f"WEAKENED: {len(d.weakened)} protection(s)")
        print(
            f"{len(d.changes)} resource change(s); {'; '.join(parts)}; pulumi up: {verdict(d)}",
            file=sys.stderr,
        )
    return ExitCode.REFUSED if d.flagged else ExitCode.OK


if __name__ == "__main__":
    run_main(main, "infra_diff")
