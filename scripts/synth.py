"""Show what a stack declares without the Pulumi CLI or a cloud: run the real program under mocks
with the committed `Pulumi.<stack>.yaml` and write a deterministic manifest (JSON), a reviewer's
summary (Markdown) or a drawing of the environment (Mermaid).

Usage: dbplatform synth --stack S [--format json|markdown|mermaid] [--out FILE]
       dbplatform synth --all-stacks --out-dir DIR   (DIR/<stack>.json, .md, .mmd)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from dbplatform.cmdline import parse_args
from dbplatform.entry import prog, run_main
from dbplatform.ops.errors import ExitCode
from infra.config import PROJECT_DIR_ENV, ROOT, ConfigError, committed_stacks, project_dir
from policy.manifest import Manifest

FORMATS = ("json", "markdown", "mermaid")
SUFFIX = {"json": "json", "markdown": "md", "mermaid": "mmd"}


def build_manifest(stack: str, root: Path = ROOT) -> Manifest:
    """Run the program for `stack` under mocks; ConfigError when its config is invalid."""
    from infra.offline import from_recording, run_program

    return from_recording(run_program(stack, root=root))


def render(manifest: Manifest, fmt: str) -> str:
    from dbplatform.manifest import render as r

    renderers: dict[str, Callable[[Manifest], str]] = {
        "json": Manifest.to_json,
        "markdown": r.markdown,
        "mermaid": r.mermaid,
    }
    return renderers[fmt](manifest)


def write_all(manifest: Manifest, out_dir: Path) -> list[Path]:
    """Write `<stack>.json`, `.md` and `.mmd` into out_dir; only files whose bytes change."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in FORMATS:
        path = out_dir / f"{manifest.stack}.{SUFFIX[fmt]}"
        text = render(manifest, fmt)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("synth"),
        description=(
            "Run the Pulumi program for a stack offline (mocks, committed config) and write "
            "what it declares: every resource with its options and inputs (secrets redacted), "
            "the stack exports and the maintenance calendar."
        ),
        epilog="exit codes: 0 written; 1 the program failed; 2 bad usage or bad stack config.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml")
    target.add_argument(
        "--all-stacks", action="store_true", help="every committed Pulumi.<stack>.yaml"
    )
    p.add_argument("--format", choices=FORMATS, default="json", help="output (default json)")
    # Missing parent folders are created: documented here and in docs/synth-guardrails.md, so
    # scripts and CI jobs may rely on it (infra-diff and preview-report do not create them).
    p.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write to FILE instead of stdout (with --stack; - is stdout); missing parent "
        "directories are created",
    )
    p.add_argument(
        "--out-dir",
        type=Path,
        metavar="DIR",
        help="write <stack>.json, .md and .mmd for each stack into DIR, created with its "
        "parents if missing (ignores --format)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"directory holding Pulumi.yaml and the stack files (default: ${PROJECT_DIR_ENV}, "
        "else the checkout dbplatform is installed from, whatever the working directory)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    if args.all_stacks and args.out_dir is None:
        parser.error("--all-stacks needs --out-dir DIR")
    if args.out is not None and args.out_dir is not None:
        parser.error("--out and --out-dir are exclusive")
    root: Path = (args.root or project_dir()).resolve()
    stacks = committed_stacks(root) if args.all_stacks else [args.stack]
    if not stacks:
        print(f"error: no Pulumi.<stack>.yaml in {root}", file=sys.stderr)
        return ExitCode.USAGE

    status = ExitCode.OK
    for stack in stacks:
        try:
            manifest = build_manifest(stack, root)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = ExitCode.USAGE
            continue
        except Exception as exc:  # the program itself failed: say so, without a traceback
            print(f"failed: the program for stack '{stack}' raised {exc!r}", file=sys.stderr)
            return ExitCode.FAILED
        try:
            written = _write(manifest, args)
        except OSError as exc:
            where = exc.filename or args.out or args.out_dir
            print(f"error: cannot write {where}: {exc.strerror or exc}", file=sys.stderr)
            return ExitCode.USAGE
        if not args.quiet:
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
    return status


def _write(manifest: Manifest, args: argparse.Namespace) -> list[Path]:
    """Write what the flags ask for; the files written (none for stdout)."""
    if args.out_dir is not None:
        return write_all(manifest, args.out_dir)
    text = render(manifest, args.format)
    if args.out is None or str(args.out) == "-":  # `--out -` is standard output
        sys.stdout.write(text)
        return []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return [args.out]


if __name__ == "__main__":
    run_main(main, "synth")
