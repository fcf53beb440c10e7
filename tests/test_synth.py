"""`scripts.synth`: the committed stacks' manifests are golden files, the manifest says what a
reviewer needs (options, regions, redacted secrets, unknowns marked), and bad config exits 2."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.offline import from_recording
from policy.manifest import Manifest, load
from scripts import synth
from tests.conftest import ROOT, STACKS, record

GOLDEN = ROOT / "tests" / "golden"


def _manifest(stack: str) -> Manifest:
    return from_recording(record(stack))


def _first_difference(expected: str, actual: str, name: str) -> str:
    diff = difflib.unified_diff(
        expected.splitlines(), actual.splitlines(), f"golden/{name}", "synth now", lineterm=""
    )
    lines = list(diff)[:40]
    return "\n".join(lines)


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_synth_matches_golden_file(stack: str, fmt: str) -> None:
    path = GOLDEN / f"{stack}.{synth.SUFFIX[fmt]}"
    assert path.is_file(), f"{path} is missing: run `make golden` and commit it"
    actual = synth.render(_manifest(stack), fmt)
    expected = path.read_text(encoding="utf-8")
    if actual != expected:  # a short unified diff reads better than pytest's string diff
        pytest.fail(
            f"synth of {stack} ({fmt}) differs from {path.name}; if the change is intended, run "
            "`make golden` and review the diff:\n" + _first_difference(expected, actual, path.name)
        )


def test_every_committed_stack_has_golden_files_and_no_others() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == STACKS


def test_same_input_same_bytes() -> None:
    from infra.offline import run_program

    again = from_recording(run_program("staging", root=ROOT))
    assert again.to_json() == _manifest("staging").to_json()


def test_json_manifest_round_trips_through_a_file(tmp_path: Path) -> None:
    m = _manifest("prod")
    path = tmp_path / "prod.json"
    path.write_text(m.to_json(), encoding="utf-8")
    assert load(path).to_json() == m.to_json()


def test_manifest_records_what_a_reviewer_needs() -> None:
    data = json.loads(_manifest("prod").to_json())
    resources = {r["name"]: r for r in data["resources"]}
    assert [r["urn"] for r in data["resources"]] == sorted(r["urn"] for r in data["resources"])
    primary = resources["database-primary"]
    assert primary["physicalName"] == "dbplatform-prod-pg"
    assert primary["protect"] is True
    assert primary["ignoreChanges"] == ["password"]
    assert primary["region"] == "us-east-1"
    assert primary["customTimeouts"]["create"] == "120m"
    # the parent is the Database component, the dependencies include the network's subnet group
    assert resources[primary["parent"].rsplit("::", 1)[1]]["type"] == "dbplatform:index:Database"
    assert any(d.endswith("::network-subnets") for d in primary["dependencies"])
    # secrets are redacted, cloud-assigned values are marked, never mock strings
    assert primary["inputs"]["password"] == "[secret]"
    assert primary["inputs"]["kmsKeyId"] == "(known after deploy)"
    assert data["outputs"]["db_primary_endpoint"] == "(known after deploy)"
    assert data["outputs"]["db_primary_identifier"] == "dbplatform-prod-pg"
    # DR-region resources carry the DR provider's region
    assert {r["region"] for r in data["resources"] if r["name"].startswith("backups-dr-")} == {
        "us-west-2"
    }
    assert data["drRegion"] == "us-west-2"
    assert data["tier"] == "production"


def test_manifest_calendar_is_the_stack_config_calendar() -> None:
    rec = record("prod")
    rows = {(c.name, c.window) for c in _manifest("prod").calendar}
    assert rows == {(e.name, e.window.to_rds()) for e in rec.config.calendar()}


def test_no_generated_password_reaches_the_manifest() -> None:
    text = _manifest("prod").to_json()
    # The mocks never invent passwords, but a secret input must read as redacted, not absent.
    assert '"password": "[secret]"' in text
    assert '"secretString": "[secret]"' in text


def test_markdown_summary_counts_protections_and_calendar() -> None:
    md = synth.render(_manifest("prod"), "markdown")
    assert "| `aws:rds/instance:Instance` | 3 |" in md
    row = next(line for line in md.splitlines() if line.startswith("| `database-primary` "))
    assert "`dbplatform-prod-pg`" in row and "| yes |" in row
    assert "`(known after deploy)`" in row  # the final snapshot's name ends in a random suffix
    assert "| Sunday | `sun:02:00-sun:04:00` | primary maintenance (maintenance) |" in md
    assert "| `db_primary_endpoint` | (known after deploy) |" in md


def test_mermaid_draws_regions_components_and_copies() -> None:
    mmd = synth.render(_manifest("prod"), "mermaid")
    lines = mmd.splitlines()
    assert lines[0] == "flowchart LR"
    assert any("us-west-2 (DR region)" in line for line in lines)
    ids = {
        line.split("[", 1)[0].strip(): line
        for line in lines
        if line.strip().startswith("n") and "[" in line
    }

    def node(label: str) -> str:
        return next(i for i, line in ids.items() if f'"{label}<br/>' in line)

    primary = node("dbplatform-prod-pg")
    for replica in ("dbplatform-prod-pg-r1", "dbplatform-prod-pg-r2"):
        assert f"  {primary} -- replicates --> {node(replica)}" in lines
    vault, dr_vault = node("dbplatform-prod-vault"), node("dbplatform-prod-dr-vault")
    assert f"  {vault} -. copies to DR .-> {dr_vault}" in lines
    assert f"  {primary} -. backup .-> {vault}" in lines


def test_synth_cli_writes_every_format_for_every_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The program runs were checked above; here the recordings conftest made stand in for them.
    monkeypatch.setattr(synth, "build_manifest", lambda stack, root: _manifest(stack))
    assert synth.main(["--all-stacks", "--out-dir", str(tmp_path), "-q"]) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{s}.{synth.SUFFIX[f]}" for s in STACKS for f in synth.FORMATS)
    for stack in STACKS:
        assert (
            synth.main(["--stack", stack, "--format", "mermaid", "--out", str(tmp_path / "x")]) == 0
        )
        assert (tmp_path / "x").read_text() == (tmp_path / f"{stack}.mmd").read_text()
        assert (tmp_path / f"{stack}.json").read_text() == _manifest(stack).to_json()


def test_synth_cli_refuses_bad_config_with_exit_2_and_the_key(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n"
        "  aws:region: us-east-1\n"
        "  dbplatform:owner: data-platform\n"
        "  dbplatform:database:\n"
        '    multiAz: "yes"\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "scripts.synth", "--stack", "broken", "--root", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "dbplatform:database.multiAz" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_synth_cli_missing_stack_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    assert synth.main(["--stack", "nowhere", "--root", str(tmp_path)]) == 2
    assert "Pulumi.nowhere.yaml not found" in capsys.readouterr().err


def test_synth_cli_unwritable_out_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(synth, "build_manifest", lambda stack, root: _manifest(stack))
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    assert synth.main(["--stack", "staging", "--out", str(blocker / "staging.json")]) == 2
    assert synth.main(["--all-stacks", "--out-dir", str(blocker)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: cannot write {blocker}") == 2
