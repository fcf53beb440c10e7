"""`--update-config` (bluegreen promote and rollback) edits `Pulumi.<stack>.yaml` line by line.

A layout the line editor cannot rewrite (flow style, a quoted key) is refused as the editor's
limit, naming the key to set by hand and the file, and the file keeps its bytes; it is never
reported as the user's file being invalid YAML. Every layout the editor does take ends with the
file reading back as the same data with only the changed key new.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbplatform.bluegreen.common import config_advice
from dbplatform.bluegreen.config_edit import ConfigChange, LayoutError, apply_changes
from dbplatform.ops.stack import resolve_stack
from infra.config import ROOT

STAGING = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text(encoding="utf-8"))
CHANGE = ConfigChange("engineVersion", "16", "17")


def _flow(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML's flow style


def _quoted(key: str, style: str) -> str:
    return {"plain": key, "single": f"'{key}'", "double": f'"{key}"'}[style]


def render(
    *,
    config_flow: bool = False,
    db_key: str = "plain",
    db_flow: bool = False,
    version_key: str | None = "plain",
    indent: int = 2,
    header_comment: bool = False,
    db_first: bool = False,
    salt_after: bool = False,
    with_db: bool = True,
) -> str:
    """The staging stack file in one of the layouts YAML allows (the same data every time, but
    for whether `dbplatform:database` and its `engineVersion` are written)."""
    config = dict(STAGING["config"])
    db = dict(config.pop("dbplatform:database"))
    if version_key is not None:
        db = {"engineVersion": "16", **db}
    if with_db:
        items = list(config.items())
        items.insert(0 if db_first else len(items) // 2, ("dbplatform:database", db))
        config = dict(items)
    lines = ["# a stack file laid out by hand", "# yaml-language-server: $schema=x.json"]
    pad = " " * indent
    if config_flow:
        lines.append("config: " + json.dumps(config, indent=indent))
    else:
        lines.append("config:")
        for key, value in config.items():
            if key != "dbplatform:database":
                lines.append(f"{pad}{key}: {_flow(value)}")
            elif db_flow:
                lines.append(f"{pad}{_quoted(key, db_key)}: {_flow(value)}")
            else:
                comment = "  # the primary" if header_comment else ""
                lines.append(f"{pad}{_quoted(key, db_key)}:{comment}")
                for field, item in value.items():
                    style = (version_key or "plain") if field == "engineVersion" else "plain"
                    lines.append(f"{pad}{pad}{_quoted(field, style)}: {_flow(item)}")
    if salt_after:
        lines.append("encryptionsalt: v1:c2FsdA==:v1:ZXhhbXBsZQ==")
    return "\n".join(lines) + "\n"


def _project(tmp_path: Path, text: str, name: str = "flow") -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / f"Pulumi.{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path / f"Pulumi.{name}.yaml"


def _expected(text: str) -> Any:
    data = yaml.safe_load(text)
    data["config"].setdefault("dbplatform:database", {})["engineVersion"] = "17"
    return data


REFUSED = [
    ("flow-style config (JSON)", {"config_flow": True}, "config: is written in flow style"),
    ("flow-style database", {"db_flow": True}, "dbplatform:database is written in flow style"),
    ("double-quoted database key", {"db_key": "double"}, "the key dbplatform:database is quoted"),
    ("single-quoted database key", {"db_key": "single"}, "the key dbplatform:database is quoted"),
    ("quoted engineVersion key", {"version_key": "double"}, "the key engineVersion is quoted"),
]


@pytest.mark.parametrize(
    ("layout", "reason"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED]
)
def test_a_layout_the_editor_cannot_rewrite_is_refused_and_the_file_kept(
    tmp_path: Path, layout: dict[str, Any], reason: str
) -> None:
    path = _project(tmp_path, render(**layout))
    before = path.read_bytes()
    stack = resolve_stack("flow", tmp_path)  # the file is valid: the command loaded it
    with pytest.raises(LayoutError) as err:
        apply_changes(stack, [CHANGE])
    message = str(err.value)
    assert path.read_bytes() == before
    assert "dbplatform:database.engineVersion" in message and "Pulumi.flow.yaml" in message
    assert "cannot edit" in message and "by hand" in message and reason in message
    assert "not valid YAML" not in message and "remove one" not in message


def test_the_reviewers_flow_style_file(tmp_path: Path) -> None:
    """A flow-style stack file (the review's was 63 lines, `dbplatform:database` on line 21):
    the editor's own output was reported as `Pulumi.flow.yaml is not valid YAML (line 64,
    column 3): key 'dbplatform:database' is also set on line 21 ... remove one`."""
    config = dict(STAGING["config"])
    db = {"engineVersion": "16", **config.pop("dbplatform:database")}
    items = list(config.items())
    items.insert(3, ("dbplatform:database", db))
    text = "config: " + json.dumps(dict(items), indent=1) + "\n"
    path = _project(tmp_path, text)
    stack = resolve_stack("flow", tmp_path)
    before = path.read_bytes()
    with pytest.raises(LayoutError, match=r"cannot edit dbplatform:database\.engineVersion"):
        apply_changes(stack, [CHANGE])
    assert path.read_bytes() == before


TAKEN = [
    ("block", {}),
    ("block, no engineVersion yet", {"version_key": None}),
    ("block, indent 4", {"indent": 4}),
    ("block, header comment", {"header_comment": True}),
    ("block, database first", {"db_first": True}),
    (
        "no database key, config not last",
        {"with_db": False, "version_key": None, "salt_after": True},
    ),
]


@pytest.mark.parametrize("layout", [t[1] for t in TAKEN], ids=[t[0] for t in TAKEN])
def test_a_block_layout_is_edited_to_exactly_the_change(
    tmp_path: Path, layout: dict[str, Any]
) -> None:
    text = render(**layout)
    path = _project(tmp_path, text)
    apply_changes(resolve_stack("flow", tmp_path), [CHANGE])
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == _expected(text)
    assert path.read_text(encoding="utf-8").startswith("# a stack file laid out by hand\n")
    assert resolve_stack("flow", tmp_path).config.database.engine_version == "17"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    config_flow=st.booleans(),
    db_key=st.sampled_from(["plain", "single", "double"]),
    db_flow=st.booleans(),
    version_key=st.sampled_from([None, "plain", "double", "single"]),
    indent=st.sampled_from([2, 4]),
    header_comment=st.booleans(),
    db_first=st.booleans(),
    salt_after=st.booleans(),
)
def test_any_layout_is_edited_exactly_or_refused_untouched(
    tmp_path_factory: pytest.TempPathFactory, **layout: Any
) -> None:
    root = tmp_path_factory.mktemp("layout")
    text = render(**layout)
    path = _project(root, text)
    stack = resolve_stack("flow", root)
    before = path.read_bytes()
    block = not layout["config_flow"] and not layout["db_flow"]
    plain = layout["db_key"] == "plain" and layout["version_key"] in (None, "plain")
    try:
        apply_changes(stack, [CHANGE])
    except LayoutError as exc:
        assert path.read_bytes() == before
        assert "dbplatform:database.engineVersion" in str(exc) and "by hand" in str(exc)
        assert not (block and plain), f"a plain block layout was refused: {exc}"
    else:
        assert yaml.safe_load(path.read_text(encoding="utf-8")) == _expected(text)


def test_the_refusal_reaches_the_operator_as_a_warning_and_the_command_goes_on(
    tmp_path: Path,
) -> None:
    """bluegreen promote/rollback `--update-config`: the switchover is done, so a file that
    cannot be edited is a warning plus the line to edit by hand; the exit code stays the
    switchover's (docs/bluegreen.md)."""
    path = _project(tmp_path, render(config_flow=True))
    before = path.read_bytes()
    warnings: list[str] = []
    ctx = SimpleNamespace(
        stack=resolve_stack("flow", tmp_path),
        dry_run=False,
        out=SimpleNamespace(warn=warnings.append),
    )
    lines, changes = config_advice(ctx, "17.2", None, True)  # type: ignore[arg-type]
    assert changes and path.read_bytes() == before
    assert len(warnings) == 1 and warnings[0].startswith("cannot edit dbplatform:database.")
    assert warnings[0].count("Pulumi.flow.yaml") == 2  # the file once, and "is unchanged"
    assert "dbplatform:database.engineVersion" in warnings[0] and "by hand" in warnings[0]
    assert "edit it by hand, then commit it" in lines
