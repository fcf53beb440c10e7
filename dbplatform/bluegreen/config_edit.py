"""The change to `Pulumi.<stack>.yaml` that follows a switchover, shown or written in place.

After a promote the database runs the green version; the stack file must say so, or the next
`pulumi up` would try to take the instance back (and `allowMajorVersionUpgrade` is off, so it
would fail half way). The edit is textual, keeping comments and layout; it is checked to change
exactly the intended keys (a layout the line editor cannot rewrite is refused, the file left as
it was) and validated by loading the edited config before the file is replaced.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbplatform.ops import StackRef
from infra.config import load_stack, load_yaml
from policy.inputs import InputError

# Block style only: the editor rewrites lines, so a flow-style `{...}` value or a quoted key is
# a layout it cannot edit (LayoutError).
_HEADER = re.compile(r"^(\s*)dbplatform:database:\s*(#.*)?$")
_CONFIG = re.compile(r"^config:\s*(#.*)?$")


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


class LayoutError(ValueError):
    """The stack file is valid, but laid out in a way the line editor cannot rewrite safely."""


def _render(key: str, value: str) -> str:
    return f'"{value}"' if key == "engineVersion" else value


def _block(lines: list[str], header: int) -> tuple[int, int | None]:
    """Where the block under line `header` ends, and the indent of its first child."""
    indent = len(lines[header]) - len(lines[header].lstrip())
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
    return end, child_indent


def edit_text(text: str, changes: list[ConfigChange]) -> str:
    """`text` with each change applied under `dbplatform:database:` (created if absent)."""
    lines = text.splitlines()
    for ch in changes:
        header = next((i for i, line in enumerate(lines) if _HEADER.match(line)), None)
        if header is None:
            # at the end of the `config:` block (or of the file: apply_changes checks the result)
            top = next((i for i, line in enumerate(lines) if _CONFIG.match(line)), None)
            at, width = _block(lines, top) if top is not None else (len(lines), None)
            pad = " " * (width or 2)
            lines[at:at] = [
                f"{pad}dbplatform:database:",
                f"{pad}{pad}{ch.key}: {_render(ch.key, ch.new)}",
            ]
            continue
        indent = len(_HEADER.match(lines[header]).group(1))  # type: ignore[union-attr]
        end, child_indent = _block(lines, header)
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

    Raises ConfigError (the edited config would be invalid), LayoutError (a ValueError: the
    editor cannot rewrite this layout; the user edits the key by hand) or ValueError; the file
    is then left untouched.
    """
    path = stack.config_path
    text = path.read_text(encoding="utf-8")
    new_text = edit_text(text, changes)
    _check_edit(path.name, text, new_text, changes)
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


def _check_edit(name: str, text: str, new_text: str, changes: list[ConfigChange]) -> None:
    """Refuse (LayoutError) an edit that does not change exactly `changes`.

    The file is valid (the command loaded it); if the edited text does not read back as the
    same data with just these keys changed, the fault is the editor's, not the file's: say it
    cannot edit this layout, and what to set by hand, instead of blaming the file's YAML.
    """
    old = load_yaml(text.encode("utf-8"), name)  # a file broken since: its own error names it
    config = old.get("config") if isinstance(old, dict) else None
    if not isinstance(config, dict):
        return  # not a stack file the loader reads: load_stack below names the problem
    expected = copy.deepcopy(old)
    db = expected["config"].get("dbplatform:database")
    db = dict(db) if isinstance(db, dict) else {}
    db.update({ch.key: ch.new for ch in changes})
    expected["config"]["dbplatform:database"] = db
    try:
        edited = load_yaml(new_text.encode("utf-8"), name)
    except InputError:
        edited = None
    if edited != expected:
        wanted = ", ".join(
            f"dbplatform:database.{ch.key}: {_render(ch.key, ch.new)}" for ch in changes
        )
        keys = ", ".join(f"dbplatform:database.{ch.key}" for ch in changes)
        raise LayoutError(
            f"cannot edit {keys} in {name}: the editor does not rewrite this layout "
            f"({_layout(text, changes)}); {name} is unchanged: edit the key by hand ({wanted})"
        )


def _layout(text: str, changes: list[ConfigChange]) -> str:
    """What in the file the line editor cannot rewrite, in words for the refusal."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return "a layout the editor does not know"
    config = _value(root, "config")
    if getattr(config, "flow_style", False):
        return "config: is written in flow style, {...}"
    key, db = _entry(config, "dbplatform:database")
    if key is not None and key.style in ("'", '"'):
        return "the key dbplatform:database is quoted"
    if db is not None and getattr(db, "flow_style", False):
        return "dbplatform:database is written in flow style, {...}"
    for ch in changes:
        field, _ = _entry(db, ch.key) if db is not None else (None, None)
        if field is not None and field.style in ("'", '"'):
            return f"the key {ch.key} is quoted"
    return "a layout the editor does not know"


def _entry(node: Any, name: str) -> tuple[Any, Any]:
    """The key node and value node of `name` in a composed YAML mapping, or (None, None)."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == name:
                return key, value
    return None, None


def _value(node: Any, name: str) -> Any:
    return _entry(node, name)[1]
