"""Bad manifests and previews: refused with exit 2 and one line naming the file, the key and the
rule, never a traceback; and property-based runs of both loaders (and the commands behind them)
over arbitrary documents: a clean refusal or a load, never anything else.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbplatform.preview.digest import PreviewError, load_preview, load_preview_bytes
from policy.manifest import Manifest, ManifestError
from scripts import guardrails, infra_diff, preview_report

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "preview"
STAGING = json.loads((GOLDEN / "staging.json").read_text(encoding="utf-8"))
UPDATE = json.loads((FIXTURES / "update.json").read_text(encoding="utf-8"))


def mutated(path: list[Any], value: Any, doc: dict[str, Any] = STAGING) -> str:
    out = copy.deepcopy(doc)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return json.dumps(out)


BAD_MANIFESTS: list[tuple[str, str | bytes, str]] = [
    ("binary", bytes(range(256)), "is not UTF-8 text"),
    ("latin-1", '{"stack": "café"}'.encode("latin-1"), "is not UTF-8 text (byte 0xe9"),
    ("NaN", json.dumps(STAGING).replace('"protect": false', '"protect": NaN', 1), "NaN"),
    ("Infinity", '{"manifestVersion": Infinity}', "Infinity is not a JSON number"),
    ("deep", '{"a": ' * 5000 + "1" + "}" * 5000, "nests deeper"),
    ("junk", b"x" * (33 << 20), "the limit is 33,554,432 bytes"),
    (
        "stack not a string",
        mutated(["stack"], ["prod"]),
        'stack ["prod"] must be a non-empty string',
    ),
    ("resources not a list", mutated(["resources"], {}), "resources {} must be a list of objects"),
    (
        "resource not an object",
        mutated(["resources", 0], "x"),
        'resources[0] "x" must be one of a list of objects',
    ),
    (
        "inputs not an object",
        mutated(["resources", 0, "inputs"], [1]),
        "resources[0].inputs [1] must be an object",
    ),
    (
        "dependencies not strings",
        mutated(["resources", 0, "dependencies"], [1]),
        "resources[0].dependencies[0] 1 must be one of a list of strings",
    ),
    (
        "protect not a boolean",
        mutated(["resources", 0, "protect"], "yes"),
        'resources[0].protect "yes" must be true or false',
    ),
    (
        "calendar row without a window",
        mutated(["calendar", 0], {"name": "x", "kind": "backup"}),
        "calendar[0].window null is required",
    ),
    (
        "a key twice in one object",
        json.dumps(STAGING).replace('"stack": ', '"stack": "other", "stack": ', 1),
        "key 'stack' appears twice in one object",
    ),
    (
        "a URN twice",
        json.dumps({**STAGING, "resources": STAGING["resources"][:1] * 2}),
        "appears twice",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_MANIFESTS], ids=[c[0] for c in BAD_MANIFESTS]
)
def test_a_bad_manifest_is_exit_2_in_guardrails_and_infra_diff(
    tmp_path: Path, content: str | bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    assert guardrails.main(["--manifest", str(bad)]) == 2
    assert expected in capsys.readouterr().err
    assert infra_diff.main([str(GOLDEN / "staging.json"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


BAD_PREVIEWS: list[tuple[str, str | bytes, str]] = [
    ("binary", bytes(range(256)), "is not UTF-8 text"),
    ("NaN", '{"steps": [], "changeSummary": {"update": NaN}}', "NaN is not a JSON number"),
    ("deep", '{"steps": ' + "[" * 5000 + "]" * 5000 + "}", "nests deeper"),
    ("junk", b" " * (33 << 20), "the limit is 33,554,432"),
    (
        "step without urn",
        json.dumps({"steps": [{"op": "update"}]}),
        "steps[0] has no valid 'urn'",
    ),
    (
        "a key twice in one object",
        '{"steps": [], "steps": [{"op": "delete"}]}',
        "key 'steps' appears twice in one object",
    ),
    (
        "step op Pulumi does not write",
        json.dumps({"steps": [{"op": "destroy", "urn": "urn:pulumi:prod::p::t::n"}]}),
        "steps[0].op 'destroy' is not a Pulumi step op",
    ),
    (
        "URNs of two stacks",
        json.dumps(
            {
                "steps": [
                    {"op": "same", "urn": "urn:pulumi:prod::p::t::a"},
                    {"op": "delete", "urn": "urn:pulumi:staging::p::t::b"},
                ]
            }
        ),
        "steps[1].urn is of stack 'staging' but steps[0].urn of stack 'prod'",
    ),
    (
        "counts not numbers",
        json.dumps({"steps": [], "changeSummary": {"update": "1"}}),
        "'changeSummary' must map operations to counts",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_PREVIEWS], ids=[c[0] for c in BAD_PREVIEWS]
)
def test_a_bad_preview_is_exit_2(
    tmp_path: Path, content: str | bytes, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "preview.json"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    assert preview_report.main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


# --- property-based: anything JSON can say --------------------------------------------------

JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
# A deeper run: INPUTS_EXAMPLES=2000 pytest tests/unit/test_inputs_*.py
SETTINGS = settings(
    max_examples=int(os.environ.get("INPUTS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            out += _paths(v, (*prefix, i))
    return out


SMALL_MANIFEST = {**STAGING, "resources": STAGING["resources"][:6]}
MANIFEST_PATHS = _paths(SMALL_MANIFEST)
PREVIEW_PATHS = _paths(UPDATE)


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(doc)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


@SETTINGS
@given(path=st.sampled_from(MANIFEST_PATHS), value=JSON_VALUE)
def test_any_manifest_is_loaded_or_refused_cleanly(
    tmp_path: Path, path: tuple[Any, ...], value: Any
) -> None:
    doc = _replace(SMALL_MANIFEST, path, value)
    text = json.dumps(doc)  # NaN written as NaN: the loader must refuse it
    try:
        manifest = Manifest.from_dict(json.loads(text), "m.json")
    except ManifestError as exc:
        assert str(exc).startswith("m.json")
        return
    # A manifest that loads goes through every check without a crash (a NaN that Python's
    # json accepted here is refused by the file loader: exit 2).
    file = tmp_path / "m.json"
    file.write_text(text, encoding="utf-8")
    assert guardrails.main(["--manifest", str(file), "-q"]) in (0, 1, 2)
    assert infra_diff.main([str(file), str(file), "-q"]) in (0, 2, 3)
    assert manifest.stack


@SETTINGS
@given(doc=JSON_VALUE)
def test_any_json_document_is_a_manifest_or_a_clean_refusal(doc: Any) -> None:
    try:
        Manifest.from_dict(doc, "m.json")
    except ManifestError as exc:
        assert str(exc).startswith("m.json")


@SETTINGS
@given(path=st.sampled_from(PREVIEW_PATHS), value=JSON_VALUE)
def test_any_preview_is_rendered_or_refused_cleanly(path: tuple[Any, ...], value: Any) -> None:
    from dbplatform.preview.markdown import render

    text = json.dumps(_replace(UPDATE, path, value))
    try:
        preview = load_preview(text, "p.json")
    except PreviewError as exc:
        assert "p.json" in str(exc)
        return
    render(preview, allow_destructive=False, limit=65_535)


@SETTINGS
@given(data=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_a_preview_or_a_clean_refusal(data: bytes) -> None:
    try:
        load_preview_bytes(data, "p.json")
    except PreviewError as exc:
        assert "p.json" in str(exc)
