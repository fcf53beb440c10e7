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


def _svg(report: DrReport) -> ET.Element:
    from dbplatform.dr.report import timeline_svg

    return ET.fromstring(timeline_svg(report))  # noqa: S314 - our own output; well-formed SVG


def _texts(root: ET.Element) -> list[str]:
    """What each text element shows (a <title> inside one shows only on hover)."""
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def _seconds(label: str) -> float:
    """'+1.5s', '+45s', '+12m 30s', '+2h 05m', '+3d 4h' as seconds."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(part[:-1]) * units[part[-1]] for part in label.lstrip("+").split())


def _ticks(root: ET.Element) -> list[tuple[float, str]]:
    return [
        (float(t.attrib["x"]), "".join(t.itertext()))
        for t in root.iter(f"{SVG}text")
        if "".join(t.itertext()).startswith("+")
    ]


def test_the_chart_says_what_the_markdown_says_of_an_incomplete_total_rto() -> None:
    report = replace(
        _report(rto_minutes=50),
        rto=None,
        database_restored=timedelta(minutes=45),
        incomplete=("pulumi up (Pulumi CLI not installed)",),
        estimate_remaining=timedelta(minutes=35),
    )
    svg = " ".join(_texts(_svg(report)))
    assert "not reached" not in svg
    assert "RTO incomplete: not done by this run: pulumi up (Pulumi CLI not installed)" in svg
    assert "at least 1h 20m (objective 4h 00m)" in svg
    assert "at least 1h 20m (objective 4h 00m)" in markdown(report)
    missed = replace(report, database_restored=timedelta(hours=5))
    assert "already MISSED" in " ".join(_texts(_svg(missed)))


@pytest.mark.parametrize("seconds", [0.3, 1.0, 2.4, 7, 59, 61, 966, 3000, 18000, 4 * 86400])
def test_the_time_axis_ticks_are_distinct_and_increasing(seconds: float) -> None:
    report = replace(_report(), ended=T0 + timedelta(seconds=seconds))
    ticks = _ticks(_svg(report))
    assert len(ticks) >= 2, ticks
    xs, labels = [x for x, _ in ticks], [label for _, label in ticks]
    assert xs == sorted(xs) and len(set(xs)) == len(xs), ticks
    values = [_seconds(label) for label in labels]
    assert values == sorted(values) and len(set(values)) == len(values), labels
    assert values[0] == 0 and values[-1] >= seconds, labels  # the axis spans the whole run
    assert len(ticks) <= 8, labels


def test_phase_labels_are_whole_unless_they_would_overflow() -> None:
    long = "create parameter group dbplatform-prod-drill-27981d-postgres"
    huge = "x" * 300
    phases = (
        replace(_report().phases[0], name=long),
        replace(_report().phases[1], name=huge),
    )
    root = _svg(replace(_report(), phases=phases))
    texts = _texts(root)
    assert long in texts
    (cut,) = [t for t in texts if t.startswith("xxx")]
    assert cut.endswith("…") and len(cut) < len(huge)
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert any(huge in t for t in titles)  # the whole name is still in the chart, on hover
    width = float(root.attrib["width"])
    label_right = min(float(r.attrib["x"]) for r in root.iter(f"{SVG}rect") if "x" in r.attrib)
    # at most ~7 px a character at 12 px: the whole label fits left of the first bar
    assert 10 + 7 * len(long) <= label_right < width


def test_the_rto_objective_is_a_line_on_the_axis_or_a_note_that_it_is_beyond() -> None:
    beyond = _svg(_report(rto_minutes=50))  # objective 4h, the run took 50 min
    notes = [t for t in _texts(beyond) if "RTO objective 4h 00m" in t]
    assert notes and "beyond" in notes[0], _texts(beyond)

    within = _svg(_report(rto_minutes=300))  # a 5 h run: 4 h is on the axis
    (line,) = [
        ln
        for ln in within.iter(f"{SVG}line")
        if "RTO objective" in "".join(t for el in ln for t in el.itertext())
    ]
    assert line.attrib["x1"] == line.attrib["x2"]
    four_hours = [x for x, label in _ticks(within) if label == "+4h 00m"]
    assert four_hours and abs(float(line.attrib["x1"]) - four_hours[0]) < 0.5


def test_a_failed_runs_rto_reads_as_not_measured_not_as_a_miss() -> None:
    """Review: a failed run's "RTO not reached" read as a missed objective at 3 a.m."""
    failed = replace(_report(), rto=None, outcome="failed")
    head = markdown(failed).split("## Timeline")[0]
    assert "**RTO (total)** not measured: the run did not finish" in head
    assert "not reached" not in markdown(failed)
    svg = " ".join(_texts(_svg(failed)))
    assert "RTO not measured: the run did not finish" in svg and "not reached" not in svg
