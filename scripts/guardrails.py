"""Check a stack against the guardrail catalogue offline: the same rules the CrossGuard pack in
policy/ enforces during `pulumi preview`, run on the synthesised manifest.

Usage: python -m scripts.guardrails --stack S | --manifest FILE [--json] [--set-level RULE=LEVEL]
Exit 0 when no mandatory rule fails, 1 when one does, 2 on bad usage or bad config.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dbplatform.cmdline import parse_args
from dbplatform.entry import prog, run_main
from dbplatform.ops.errors import ExitCode
from infra.config import ConfigError, project_dir
from policy.manifest import Manifest, ManifestError, load
from policy.rules import BY_ID, CATALOGUE, Level, Report, evaluate


def _level_override(text: str) -> tuple[str, Level]:
    rule, sep, level = text.partition("=")
    if not sep or rule not in BY_ID or level not in {lv.value for lv in Level}:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not RULE=mandatory|advisory with a known rule id (see --list-rules)"
        )
    return rule, Level(level)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("guardrails"),
        description=(
            "Run the guardrail rules (AWS Foundational Security Best Practices controls and the "
            "project's stack rules) on what a stack declares, without a cloud."
        ),
        epilog=(
            "exit codes: 0 no mandatory rule fails (advisory failures are listed); 1 a mandatory "
            "rule fails; 2 bad usage, bad stack config or an unreadable manifest."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--stack", help="synthesise Pulumi.<stack>.yaml and check it")
    src.add_argument("--manifest", type=Path, help="check a manifest from scripts.synth")
    src.add_argument("--list-rules", action="store_true", help="print the catalogue and exit")
    p.add_argument(
        "--tier",
        choices=("production", "non-production"),
        help="levels as for this tier (default: the stack's tier)",
    )
    p.add_argument(
        "--set-level",
        action="append",
        type=_level_override,
        default=[],
        metavar="RULE=LEVEL",
        help="override one rule's level (repeatable), e.g. rds-multi-az=advisory",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.add_argument("-v", "--verbose", action="store_true", help="also list passing rules' counts")
    p.add_argument("-q", "--quiet", action="store_true", help="only failures")
    p.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def report_json(report: Report) -> dict[str, object]:
    return {
        "stack": report.stack,
        "tier": report.tier,
        "ok": not report.mandatory_failures,
        "rules": [
            {
                "id": r.rule.id,
                "control": r.rule.control,
                "description": r.rule.description,
                "level": r.level.value,
                "status": r.status,
                "checked": r.checked,
                "violations": [
                    {"resource": v.resource, "urn": v.urn, "message": v.message}
                    for v in r.violations
                ],
            }
            for r in report.results
        ],
    }


def report_text(report: Report, *, verbose: bool = False, quiet: bool = False) -> str:
    width = max(len(r.rule.id) for r in report.results)
    lines = [f"guardrails for stack '{report.stack}' (tier {report.tier})", ""]
    lines.append(f"  {'rule':<{width}}  {'control':<16}  {'level':<9}  result")
    for r in report.results:
        if quiet and not r.violations:
            continue
        result = {"pass": "pass", "n/a": "n/a (nothing to check)", "fail": "FAIL"}[r.status]
        if r.status == "fail":
            result = f"FAIL ({len(r.violations)})"
        elif verbose and r.status == "pass":
            result = f"pass ({r.checked} checked)"
        lines.append(
            f"  {r.rule.id:<{width}}  {r.rule.control or '-':<16}  {r.level.value:<9}  {result}"
        )
        for v in r.violations:
            # not "name: message": the comment's redaction reads "<...secret>: <word>" as a
            # credential, and "vault-app-webhook-secret: not protected" read "[secret] protected"
            where = f"{v.resource} — " if v.resource else ""
            lines.append(f"      - {where}{v.message}")
        if r.violations:
            lines.append(f"        fix: {r.rule.remediation}")
    failed = report.mandatory_failures
    advisory = [r for r in report.results if r.violations and r.level is Level.ADVISORY]
    lines.append("")
    if failed:
        lines.append(
            f"FAILED: {len(failed)} mandatory rule(s) fail: " + ", ".join(r.rule.id for r in failed)
        )
    else:
        lines.append(f"OK: no mandatory rule fails ({len(advisory)} advisory rule(s) fail)")
    return "\n".join(lines) + "\n"


def _catalogue_text() -> str:
    width = max(len(r.id) for r in CATALOGUE)
    lines = []
    for r in CATALOGUE:
        kind = "stack" if r.is_stack_rule else "resource"
        extra = " (advisory everywhere)" if r.advisory_only else ""
        lines.append(f"{r.id:<{width}}  {r.control or '-':<16}  {kind:<8}  {r.description}{extra}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    if args.list_rules:
        sys.stdout.write(_catalogue_text())
        return ExitCode.OK
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
    report = evaluate(manifest, tier=args.tier, overrides=dict(args.set_level))
    if args.json:
        sys.stdout.write(json.dumps(report_json(report), indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(report_text(report, verbose=args.verbose, quiet=args.quiet))
    return ExitCode.FAILED if report.mandatory_failures else ExitCode.OK


if __name__ == "__main__":
    run_main(main, "guardrails")
