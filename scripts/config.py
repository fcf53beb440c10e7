"""Print a stack's effective config: Pulumi.yaml's defaults with the stack file's values over them,
validated, secrets as their ciphertext; or the JSON Schema of a stack file.

`pulumi config get dbplatform:database` shows only what the stack file sets; this shows what the
program and every command work from. Usage: dbplatform config --stack prod [--json] | --schema
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from dbplatform.cmdline import parse_args
from dbplatform.entry import USAGE, prog, run_main
from infra.config import NAMESPACE, ConfigError, Secret, StackConfig, camel, load_stack, project_dir


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        allow_abbrev=False,
        prog=prog("config"),
        description=(
            "Print a stack's effective config (Pulumi.yaml defaults merged with the stack file, "
            "validated, secrets as ciphertext), or the JSON Schema of a stack file."
        ),
        epilog="exit codes: 0 printed; 2 the stack's config is invalid or unreadable.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--stack", help="stack name: reads Pulumi.<stack>.yaml")
    what.add_argument(
        "--schema",
        action="store_true",
        help="print the JSON Schema of Pulumi.<stack>.yaml (editor completion and validation)",
    )
    p.add_argument("--json", action="store_true", help="JSON instead of YAML")
    p.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)
    return p


def _plain(value: Any) -> Any:
    """Config values as YAML/JSON data, camelCase keys, secrets as Pulumi writes them
    (`{secure: <ciphertext>}`: the ciphertext is not the secret, and the output stays a stack
    file Pulumi and `load_stack` read back)."""
    if isinstance(value, Secret):
        return {"secure": value.ciphertext}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def effective(cfg: StackConfig) -> dict[str, Any]:
    """The stack file that would say everything explicitly: `{config: {key: value}}`."""
    config: dict[str, Any] = {"aws:region": cfg.region}
    for f in dataclasses.fields(cfg):
        if f.name not in ("stack", "region"):
            config[f"{NAMESPACE}:{camel(f.name)}"] = _plain(getattr(cfg, f.name))
    return {"config": config}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    root = args.root or project_dir()
    try:
        if args.schema:
            from infra.schema import stack_schema

            sys.stdout.write(json.dumps(stack_schema(root), indent=2) + "\n")
            return 0
        cfg = load_stack(args.stack, root)
    except ConfigError as exc:
        print(f"config: {exc}", file=sys.stderr)
        return USAGE
    data = effective(cfg)
    if args.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        sys.stdout.write(f"# effective config of stack {cfg.stack} (defaults merged, secrets ")
        sys.stdout.write("as their ciphertext)\n")
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    run_main(main, "config")
