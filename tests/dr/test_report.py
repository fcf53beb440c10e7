"""The DR report: verdicts against the objectives, the timeline, and the chart."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dbplatform.dr.report import (
    DrReport,
    Objectives,
    Phase,
    Timeline,
    markdown,
    mermaid,
    write_report,
)

T0 = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def _report(rto_minutes: float = 50, rpo_minutes: float = 70) -> DrReport:
    phases = (
        Phase(
            name="choose restore point",
            started=T0,
            ended=T0 + timedelta(seconds=20),
            status="done",
            detail="snapshot s1",
        ),
        Phase(
            name="restore database",
            started=T0 + timedelta(seconds=20),
            ended=T0 + timedelta(minutes=45),
            status="done",
        ),
        Phase(
            name="pulumi up",
            started=T0 + timedelta(minutes=45),
            ended=T0 + timedelta(minutes=45),
            status="skipped",
            detail="Pulumi CLI not installed",
        ),
    )
    return DrReport(
        kind="rebuild",
        outcome="succeeded",
        source_stack="prod",
        source_region="us-east-1",
        target_stack="prod-usw2",
        target_region="us-west-2",
        started=T0,
        ended=T0 + timedelta(minutes=rto_minutes),
        phases=phases,
        objectives=Objectives(rpo=timedelta(hours=1), rto=timedelta(hours=4)),
        rto=timedelta(minutes=rto_minutes),
        rpo=timedelta(minutes=rpo_minutes),
        restore={"point": {"kind": "snapshot", "id": "s1"}, "data_time": "2026-03-01T01:50:00Z"},
        created=("DB instance dbplatform-prod-usw2-pg (us-west-2)",),
        commands=("pulumi stack init prod-usw2", "pulumi up --stack prod-usw2"),
        todo=("cut over",),
    )


def test_markdown_puts_the_verdicts_first_then_the_timeline_and_the_commands() -> None:
    text = markdown(_report(), chart="t.svg")
    head = text.split("## Timeline")[0]
    assert "**RTO (total)** 50m 00s — met (objective 4h 00m)" in head
    assert "**RPO** 1h 10m — **missed** (objective 1h 00m)" in head
    assert "**RPO measured from the data** unknown (the restored data was not read)" in head
    assert "![timeline](t.svg)" in text
    assert "| restore database | done | +20s | 44m 40s |" in text
    assert "```sh\npulumi stack init prod-usw2\npulumi up --stack prod-usw2\n```" in text


def test_json_and_chart_are_written_beside_the_markdown(tmp_path: Path) -> None:
    written = write_report(_report(rto_minutes=300), tmp_path / "out", "rebuild-prod")
    data = json.loads(written.json.read_text())
    assert data["rto_seconds"] == 18000 and data["rto_met"] is False
    assert data["rpo_met"] is False and data["rpo_objective_seconds"] == 3600
    assert [p["status"] for p in data["phases"]] == ["done", "done", "skipped"]
    root = ET.parse(written.chart).getroot()  # noqa: S314 - our own file; well-formed SVG
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 3
    assert "RTO 5h 00m MISSED" in ET.tostring(root, encoding="unicode")
    assert written.markdown.read_text().count("rebuild-prod.svg") == 1


def test_a_phase_that_raises_is_recorded_failed_and_an_interrupt_interrupted() -> None:
    ticks = iter(T0 + timedelta(seconds=i) for i in range(100))
    timeline = Timeline(clock=lambda: next(ticks))
    with timeline.phase("find") as detail:
        detail.append("3 points")
    with pytest.raises(RuntimeError), timeline.phase("restore"):
        raise RuntimeError("InvalidParameterCombination")
    with pytest.raises(KeyboardInterrupt), timeline.phase("wait"):
        raise KeyboardInterrupt
    assert [(p.name, p.status, p.detail) for p in timeline.phases] == [
        ("find", "done", "3 points"),
        ("restore", "failed", "InvalidParameterCombination"),
        ("wait", "interrupted", ""),
    ]


def test_skipped_steps_make_the_total_rto_incomplete_with_their_estimate() -> None:
    report = replace(
        _report(rto_minutes=50),
        rto=None,
        database_restored=timedelta(minutes=45),
        incomplete=("pulumi up (Pulumi CLI not installed)", "cut-over"),
        estimate_remaining=timedelta(minutes=35),
        rpo_from_data=timedelta(minutes=71),
        heartbeat="2026-03-01T01:49:00Z",
    )
    head = markdown(report).split("## Timeline")[0]
    assert "**Database restored** in 45m 00s" in head
    assert (
        "**RTO (total)** incomplete: not done by this run: pulumi up (Pulumi CLI not installed), "
        "cut-over (estimate for them 35m 00s on the critical path); at least 1h 20m "
        "(objective 4h 00m)" in head
    )
    assert "newest heartbeat 2026-03-01T01:49:00Z" in head
    data = report.to_json()
    assert data["rto_seconds"] is None and data["rto_met"] is None
    assert data["rto_lower_bound_seconds"] == 80 * 60
    # once the known part alone exceeds the objective, it is missed whatever remains
    late = replace(report, database_restored=timedelta(hours=5)).to_json()
    assert late["rto_met"] is False


def test_the_mermaid_timeline_has_every_phase_the_objective_and_a_legend() -> None:
    report = replace(_report(), incomplete=("cut-over",))
    lines = mermaid(report)
    assert lines[0] == "```mermaid" and lines[1] == "gantt"
    assert "    dateFormat X" in lines
    t0 = int(T0.timestamp())
    assert f"    restore database (done) :done, p1, {t0 + 20}, 2680s" in lines
    assert any(line.startswith("    pulumi up (skipped) :active,") for line in lines)
    assert f"    cut-over (not done) :active, r0, {t0}, 1s" in lines
    assert f"    RTO objective 4h 00m :milestone, obj, {t0 + 4 * 3600}, 0s" in lines
    assert lines[-1].startswith("Legend:")
