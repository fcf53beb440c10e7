"""The change to `Pulumi.<stack>.yaml` that follows a switchover, shown or written in place.

After a promote the database runs the green version; the stack file must say so, or the next
`pulumi up` would try to take the instance back (and `allowMajorVersionUpgrade` is off, so it
would fail half way). The edit is textual, keeping comments and layout, and is validated by
loading the edited config before the file is replaced.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dbplatform.ops import StackRef
from infra.config import load_stack

_HEADER = re.compile(r"^(\s*)dbplatform:database:\s*$")


@dataclass(frozen=True)
class ConfigChange:
    """`dbplatform:database.<key>` from `old` to `new`."""

    key: str
    old: str
    new: str

    def describe(self, stack: str) -> str:
        return f"Pulumi.{stack}.yaml: dbplatform:database.{self.key}: {self.old!r} -> {self.new!r}"


def changes_for(
    stack: StackRef, engine_version: str, instance_class: str | None
) -> list[ConfigChange]:
    """What must change in the stack file for it to describe the database as it now runs."""
    db = stack.config.database
    out = []
    # The provider keeps a configured version that is a dotted prefix of the running one
    # (terraform-provider-aws compareActualEngineVersion); with automatic minor upgrades only
    # the major may be written, or RDS's next minor upgrade reads as a downgrade (infra/aws_rules).
    if engine_version != db.engine_version and not engine_version.startswith(
        f"{db.engine_version}."
    ):
        wanted = (
            engine_version.split(".", maxsplit=1)[0]
            if db.auto_minor_version_upgrade
            else engine_version
        )
        out.append(ConfigChange("engineVersion", db.engine_version, wanted))
    if instance_class and db.instance_class != instance_class:
        out.append(ConfigChange("instanceClass", db.instance_class, instance_class))
    return out


def _render(key: str, value: str) -> str:
    return f'"{value}"' if key == "engineVersion" else value


def edit_text(text: str, changes: list[ConfigChange]) -> str:
    """`text` with each change applied under `dbplatform:database:` (created if absent)."""
    lines = text.splitlines()
    for ch in changes:
        header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
        if header is None:
            lines += ["  dbplatform:database:", f"    {ch.key}: {_render(ch.key, ch.new)}"]
            continue
        indent = len(_HEADER.match(lines[header]).group(1))  # type: ignore[union-attr]
        end = header + 1
        child_indent = None
        while end < len(lines):
            line = lines[end]
            if line.strip() and not line.lstrip().startswith("#"):
                width = len(line) - len(line.lstrip())
                if width <= indent:
                    break
                child_indent = child_indent or width
            end += 1
        pad = " " * (child_indent or indent + 2)
        key_line = re.compile(rf"^{pad}{re.escape(ch.key)}:\s*(\S.*)?$")
        for i in range(header + 1, end):
            if key_line.match(lines[i]):
                lines[i] = f"{pad}{ch.key}: {_render(ch.key, ch.new)}"
                break
        else:
            lines.insert(header + 1, f"{pad}{ch.key}: {_render(ch.key, ch.new)}")
    return "\n".join(lines) + "\n"


def apply_changes(stack: StackRef, changes: list[ConfigChange]) -> None:
    """Write `changes` into the stack file, after checking the edited file loads and validates.

    Raises ConfigError (the edited config would be invalid) or ValueError; the file is then
    left untouched.
    """
    path = stack.config_path
    new_text = edit_text(path.read_text(encoding="utf-8"), changes)
    with tempfile.TemporaryDirectory() as scratch:
        shutil.copy(stack.root / "Pulumi.yaml", scratch)
        (Path(scratch) / path.name).write_text(new_text, encoding="utf-8")
        loaded = load_stack(stack.name, Path(scratch))
    for ch in changes:
        attr = "engine_version" if ch.key == "engineVersion" else "instance_class"
        if getattr(loaded.database, attr) != ch.new:
            raise ValueError(f"editing {path.name} would not set {ch.key} to {ch.new}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=stack.root)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
