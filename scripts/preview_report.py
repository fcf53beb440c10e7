"""Turn `pulumi preview --json` into a pull-request comment that puts danger on top, and refuse
(exit 3) when a stateful resource would be deleted or replaced, or a protection weakened, without
--allow-destructive.

Usage: python -m scripts.preview_report PREVIEW.json [--stack S] [--allow-destructive] [--out FILE]

Secrets are hidden and account ids in ARNs masked in everything it writes (comment, full report,
JSON summary, messages): these go to pull-request comments and job summaries.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from dbplatform import argtypes
from dbplatform.cmdline import parse_args
from dbplatform.entry import STDIN, prog, run_main
from dbplatform.manifest.redact import mask_accounts
from dbplatform.preview.digest import Preview, PreviewError, load_preview_bytes
from dbplatform.preview.markdown import ALLOW_LABEL, GITHUB_COMMENT_LIMIT, Context, Report, render

# Exit codes follow the table in the README; kept local so this reporter does not
# import the operations package (boto3). No 1: reading and rendering a file cannot half-succeed.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("preview-report"),
        description=(
            "Write a pull-request comment (Markdown) from the output of `pulumi preview --json`: "
            "verdict, stateful deletes/replacements, counts, policy violations, changes by "
            f"component, details; never over {GITHUB_COMMENT_LIMIT:,} characters."
        ),
        epilog=(
            "exit codes: 0 report written, nothing destructive (or allowed); 2 unreadable or "
            "invalid input; 3 a stateful resource would be deleted or replaced, or a protection "
            "weakened, and --allow-destructive was not given (the report is still written)."
        ),
    )
    p.add_argument(
        "preview",
        metavar="PREVIEW.json",
        help="stdout of `pulumi preview --json` (- for standard input)",
    )
    p.add_argument(
        "--stack",
        help="stack name for the heading; must match the stack in the preview's URNs "
        "(default: taken from the URNs)",
    )
    p.add_argument(
        "--allow-destructive",
        action="store_true",
        help=f"a deletion or replacement of stateful resources is approved (the {ALLOW_LABEL} "
        "label in CI): report it as a warning and exit 0",
    )
    p.add_argument("--out", metavar="FILE", help="write the comment to FILE instead of stdout")
    p.add_argument("--commit", metavar="SHA", help="the commit previewed, shown under the title")
    p.add_argument(
        "--run-url",
        type=argtypes.http_url,
        metavar="URL",
        help="the CI run that produced the report",
    )
    p.add_argument(
        "--time", metavar="TEXT", help="when the preview ran (e.g. 2026-12-01 23:00 UTC)"
    )
    p.add_argument(
        "--cloud-url",
        type=argtypes.http_url,
        metavar="URL",
        help="the update's page in Pulumi Cloud",
    )
    p.add_argument(
        "--full-report-url",
        type=argtypes.http_url,
        metavar="URL",
        help="where the untrimmed report is (linked when the comment is trimmed; default: "
        "--run-url)",
    )
    p.add_argument(
        "--guardrails",
        metavar="FILE",
        help="text output of the offline guardrails, in a collapsed section titled with how many "
        "rules fail; a failing mandatory rule is named in the verdict",
    )
    p.add_argument(
        "--infra-diff",
        metavar="FILE",
        help="the offline infra diff (Markdown), in a collapsed section titled with what it "
        "flags, which the verdict names too",
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="no size limit: every row and detail (for a CI artifact, not for a comment)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print a machine-readable summary (verdict, destructive resources, counts) instead "
        "of Markdown",
    )
    return p


def _summary_json(preview: Preview, report: Report, code: int) -> str:
    text = json.dumps(
        {
            "stack": preview.stack,
            "verdict": report.verdict,
            "exit_code": code,
            "counts": dict(preview.counts),
            "destructive": [
                {
                    "urn": r.urn,
                    "name": r.name,
                    "type": r.type,
                    "op": r.op,
                    "forced_by": list(r.replaced_because),
                    "protected": r.protected,
                }
                for r in preview.destructive
            ],
            "weakened": [
                {"urn": w.urn, "name": w.name, "type": w.type, "kind": w.kind}
                for w in preview.weakened
            ],
            "policy_violations": len(preview.policy_violations),
            "errors": len(preview.errors),
            "omitted": report.omitted,
        },
        indent=2,
        sort_keys=True,
    )
    return mask_accounts(text)  # as in the report: no account id in an ARN


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    source = args.preview
    try:
        data = sys.stdin.buffer.read() if source == STDIN else Path(source).read_bytes()
    except OSError as exc:
        print(f"preview_report: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        preview = load_preview_bytes(data, "stdin" if source == STDIN else source, args.stack)
    except PreviewError as exc:
        print(f"preview_report: {exc}", file=sys.stderr)
        return EXIT_USAGE

    extra: dict[str, str | None] = {}
    for flag in ("guardrails", "infra_diff"):
        path = getattr(args, flag)
        if path is None:
            continue
        try:
            extra[flag] = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(
                f"preview_report: cannot read --{flag.replace('_', '-')} {path}: {reason}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    context = Context(
        commit=args.commit,
        run_url=args.run_url,
        time=args.time,
        cloud_url=args.cloud_url,
        full_report_url=args.full_report_url,
        guardrails=extra.get("guardrails"),
        infra_diff=extra.get("infra_diff"),
    )
    limit = sys.maxsize if args.full else GITHUB_COMMENT_LIMIT
    report = render(preview, allow_destructive=args.allow_destructive, limit=limit, context=context)
    refused = preview.needs_approval and not args.allow_destructive
    code = EXIT_REFUSED if refused else EXIT_OK
    output = _summary_json(preview, report, code) + "\n" if args.json else report.markdown

    if args.out == "-":  # `--out -` is standard output, as without --out
        args.out = None
    if args.out:
        try:
            Path(args.out).write_text(output, encoding="utf-8")
        except OSError as exc:
            print(f"preview_report: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        print(f"preview_report: {report.verdict} (report: {args.out})", file=sys.stderr)
    else:
        sys.stdout.write(output)

    if refused:
        items = [f"{r.name} ({r.type}, {r.op})" for r in preview.destructive]
        items += [f"{w.name} ({w.kind} weakened)" for w in preview.weakened]
        names = mask_accounts(", ".join(items[:10]))
        more = len(items) - 10
        print(
            f"preview_report: refused: stateful resources would be deleted or replaced, or their "
            f"protection weakened, in {preview.stack}: "
            f"{names}{f' and {more} more' if more > 0 else ''}. If this is "
            f"intended, have a repository owner add the '{ALLOW_LABEL}' label to the pull "
            "request (or pass --allow-destructive); otherwise change the code so they are "
            "updated in place.",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    run_main(main, "preview_report")
