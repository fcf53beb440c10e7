"""The drills workflow lets the tools clean up after themselves (ops review row 16): every tool
timeout sits below its job's timeout, the tool is the step's process (`exec`) so a
cancellation's SIGINT reaches Python, and the janitor runs, dry run first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbplatform.dr.janitor import DEFAULT_OLDER_THAN_HOURS

ROOT = Path(__file__).resolve().parents[2]
DRILLS = ROOT / ".github" / "workflows" / "drills.yml"
MARGIN_MINUTES = 5
"""between the tool's deadline and its step's timeout: start-up, the report, the audit record"""


def _jobs() -> dict[str, Any]:
    return dict(yaml.safe_load(DRILLS.read_text(encoding="utf-8"))["jobs"])


def _step(job: dict[str, Any], tool: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if tool in s.get("run", "") and "janitor" not in s["run"]]
    return step


def _timeout_flag(run: str) -> int:
    found = re.findall(r"--timeout (\d+)", run)
    assert len(found) == 1, run
    return int(found[0])


@pytest.mark.parametrize(
    ("job_id", "tool"),
    [("restore-check", "scripts.restore_check"), ("dr-drill", "scripts.dr drill")],
)
def test_the_tool_ends_before_its_job_and_receives_the_signal(job_id: str, tool: str) -> None:
    """SRE review F4: `--timeout` is one deadline for the whole run, cleanup included
    (dbplatform/dr/restore.py Deadline), so: tool deadline < step timeout, and the steps up to
    and including the tool's together < the job's timeout."""
    job = _jobs()[job_id]
    step = _step(job, tool)
    minutes = _timeout_flag(step["run"])
    assert minutes + MARGIN_MINUTES <= step["timeout-minutes"], job_id
    steps = job["steps"][: job["steps"].index(step) + 1]
    bounded = [s["timeout-minutes"] for s in steps if "timeout-minutes" in s]
    assert sum(bounded) < job["timeout-minutes"], job_id
    assert all("timeout-minutes" in s for s in steps if "run" in s), job_id
    lines = [line.strip() for line in step["run"].splitlines() if tool in line]
    assert lines and lines[0].startswith(f"exec python -m {tool}"), lines
    assert "| tee" not in step["run"] and "|" not in step["run"].replace("||", "")
    summary = [s for s in job["steps"] if s.get("name") == "Summary"]
    assert summary and summary[0]["if"] == "always()"


@pytest.mark.parametrize("job_id", ["restore-check", "dr-drill"])
def test_the_janitor_runs_dry_run_first_before_the_drill(job_id: str) -> None:
    steps = _jobs()[job_id]["steps"]
    names = [s.get("name", "") for s in steps]
    janitor = next(i for i, s in enumerate(steps) if "scripts.dr janitor" in s.get("run", ""))
    tool = next(i for i, n in enumerate(names) if n in ("Restore check", "DR drill"))
    assert janitor < tool
    commands = [c for c in steps[janitor]["run"].splitlines() if "janitor" in c]
    assert "--dry-run" in commands[0] and "--yes" in commands[1]
    assert "--older-than" not in steps[janitor]["run"]  # the default bound
    assert _jobs()[job_id]["timeout-minutes"] < DEFAULT_OLDER_THAN_HOURS * 60


def test_the_drill_summary_is_the_report_with_its_mermaid_timeline() -> None:
    job = _jobs()["dr-drill"]
    assert "--report-dir build/drills" in _step(job, "scripts.dr drill")["run"]
    summary = next(s for s in job["steps"] if s.get("name") == "Summary")
    assert "build/drills/drill-prod-*.md" in summary["run"]
    assert "GITHUB_STEP_SUMMARY" in summary["run"]


def test_the_drill_summary_has_no_image_it_cannot_show(tmp_path: Path) -> None:
    """GitHub renders $GITHUB_STEP_SUMMARY as Markdown without the job's files: the report's
    relative `![timeline](<stem>.svg)` would be a broken image there. The Summary step is run
    as the runner runs it (bash -eo pipefail) on a report the drill writes."""
    import os
    import shutil
    import subprocess
    import sys
    from dataclasses import replace as changed

    from dbplatform.dr.report import write_report
    from tests.dr.test_report import _report

    written = write_report(
        changed(_report(), kind="drill"), tmp_path / "build" / "drills", "drill-prod-us-west-2"
    )
    assert "![timeline](drill-prod-us-west-2.svg)" in written.markdown.read_text()
    summary = next(s for s in _jobs()["dr-drill"]["steps"] if s.get("name") == "Summary")
    script = tmp_path / "summary.sh"
    script.write_text(summary["run"], encoding="utf-8")
    out = tmp_path / "step-summary.md"
    bash = shutil.which("bash")
    assert bash is not None
    env = {
        "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "GITHUB_STEP_SUMMARY": str(out),
        "DR_REGION": "us-west-2",
        "OUTCOME": "success",
        "ARTIFACT": "dr-drill-42",
    }
    subprocess.run(
        [bash, "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=60,
    )
    text = out.read_text(encoding="utf-8")
    assert "## Monthly DR drill (prod -> us-west-2): success" in text
    assert "```mermaid" in text  # the timeline GitHub does render
    assert "![" not in text
    assert "The timeline chart `drill-prod-us-west-2.svg` is in the artifact dr-drill-42." in text
    # the env the test sets is the step's own
    assert set(summary["env"]) == {"OUTCOME", "ARTIFACT"}
