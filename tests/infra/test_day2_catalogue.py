"""Day-2 change safety, proved: each edit of tests/infra/day2_catalogue.py synthesised before and
after, and what `pulumi up` would do read from the diff against the provider facts.

Invariants over every row: nothing that holds data is replaced or deleted without the infra diff
flagging it (exit 3), and the only refusals are the ones the row expects (the program itself
produces no change AWS refuses; the deliberate ones are stopped by the diff before merge).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbplatform.manifest.diff import VERDICTS, Diff, diff, verdict
from dbplatform.manifest.synthetic import with_inputs
from infra.config import ConfigError
from infra.offline import Recording, from_recording
from infra.provider_facts import REFUSALS
from policy.manifest import Manifest
from scripts import infra_diff
from tests.conftest import STACKS, record
from tests.infra.day2_catalogue import CATALOGUE, DOC, Edit, render

_MANIFESTS: dict[tuple[str, str], Manifest] = {}


def _key(stack: str, groups: Any) -> tuple[str, str]:
    return stack, repr(sorted(groups.items()))


def _manifest(run_variant: Callable[..., Recording], stack: str, groups: Any) -> Manifest:
    """Each distinct variant runs once per test process (the committed stack once per suite)."""
    key = _key(stack, groups)
    if key not in _MANIFESTS:
        rec = run_variant(stack, **groups) if groups else record(stack)
        _MANIFESTS[key] = from_recording(rec)
    return _MANIFESTS[key]


def _diff(run_variant: Callable[..., Recording], e: Edit) -> tuple[Manifest, Manifest, Diff]:
    base = _manifest(run_variant, e.stack, dict(e.base))
    head = _manifest(run_variant, e.stack, dict(e.head))
    return base, head, diff(base, head)


def _params() -> list[Any]:
    return [
        pytest.param(
            e,
            id=e.id,
            marks=[pytest.mark.xfail(strict=True, reason=e.pending)] if e.pending else [],
        )
        for e in CATALOGUE
    ]


@pytest.mark.parametrize("edit", _params())
def test_edit_does_what_the_catalogue_says(
    edit: Edit, run_variant: Callable[..., Recording], tmp_path: Path
) -> None:
    try:
        base, head, d = _diff(run_variant, edit)
    except ConfigError as exc:
        # tying the production tier to the stack in code (issue 15) refuses this edit before
        # anything is synthesised: as safe as flagging it, and the message names the key
        if edit.config_may_refuse is None:
            raise
        assert edit.config_may_refuse in str(exc)
        return
    assert not d.empty, "the edit changed nothing: the catalogue row proves nothing"

    assert verdict(d) == edit.verdict, [
        (c.name, c.action, [r.message for r in c.refusals]) for c in d.changes if c.refusals
    ]
    facts = {r.fact for c in d.changes for r in c.refusals}
    if edit.refusals:
        assert set(edit.refusals) <= facts
    else:
        assert facts == set(), "the program produced a change AWS or Pulumi refuses"
    actions = {c.name: c.action for c in d.changes}
    for name, action in edit.actions.items():
        assert actions.get(name) == action, (name, actions.get(name))
    assert set(edit.weakened) <= {w.what for w in d.weakened}
    if not edit.weakened:
        assert d.weakened == ()

    # Nothing holding data goes away unflagged.
    for c in d.changes:
        if c.stateful and c.action in ("delete", "replace", "rename"):
            retained = c.action == "delete" and "retainOnDelete" in " ".join(c.reasons)
            assert c.at_risk or retained, c.name
    assert d.flagged is edit.flagged

    # The command a reviewer's CI runs says the same.
    b, h = tmp_path / "base.json", tmp_path / "head.json"
    b.write_text(base.to_json(), encoding="utf-8")
    h.write_text(head.to_json(), encoding="utf-8")
    assert infra_diff.main([str(b), str(h), "-q", "--out", str(tmp_path / "d.md")]) == (
        3 if edit.flagged else 0
    )


def test_catalogue_is_complete_and_cites_real_facts() -> None:
    ids = [e.id for e in CATALOGUE]
    assert len(ids) == len(set(ids)) and len(ids) >= 15
    for e in CATALOGUE:
        assert e.verdict in VERDICTS, e.id
        assert all(f in REFUSALS for f in e.refusals), e.id
        assert (e.pending is None) == (e.today is None), e.id
    # the edits the issue names are all there
    wanted = {
        "instance-class",
        "storage-grow",
        "storage-ceiling",
        "engine-minor",
        "engine-major",
        "replica-add",
        "replica-remove",
        "replica-az",
        "port",
        "backup-window",
        "retention",
        "app-secret-add",
        "app-secret-remove",
        "dr-on",
        "dr-off",
        "alarm-threshold",
        "tier",
    }
    assert wanted <= set(ids)


def test_docs_day2_changes_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/day2-changes.md is stale: run `python -m tests.infra.day2_catalogue`"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_rds_minor_upgrades_never_turn_the_next_up_into_a_downgrade(stack: str) -> None:
    """RDS moves an instance with automatic minor upgrades to a later minor on its own. The
    provider then keeps the configured version in state only when it is a dotted prefix of the
    running one (terraform-provider-aws `compareActualEngineVersion`); otherwise the next `pulumi
    up` asks RDS to go back to the configured version, which it refuses."""
    m = from_recording(record(stack))
    checked = 0
    for inst in m.source_instances():
        declared = inst.get("engineVersion")
        if inst.get("autoMinorVersionUpgrade") is not True or not isinstance(declared, str):
            continue
        running = f"{declared.split('.')[0]}.99"
        in_state = declared if running.startswith(declared + ".") else running
        d = diff(with_inputs(m, inst.name, engineVersion=in_state), m)
        assert [r.fact for c in d.changes for r in c.refusals] == [], (declared, running)
        checked += 1
    assert checked
