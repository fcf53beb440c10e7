"""The evidence a rebuild or a drill leaves: a timeline of phases, achieved RTO/RPO against the
objectives, what was created and what is left to do, as Markdown, JSON and an SVG chart.

The SVG is written by hand (no plotting library): it is small, deterministic, renders in any
browser and in GitHub, and keeps the command's start-up fast.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from dbplatform.dr.points import human, iso


@dataclass(frozen=True, kw_only=True)
class Phase:
    """One step of the operation, with its timestamps."""

    name: str
    """short name: 'choose restore point', 'restore database', ..."""
    started: datetime
    """when it began (UTC)"""
    ended: datetime
    """when it ended (UTC)"""
    status: str
    """done | failed | skipped | interrupted"""
    detail: str = ""
    """one line on what it did"""

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


class Timeline:
    """Records phases as they run; `phase()` times a block and marks it failed if it raises."""

    def __init__(self, clock: Any = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.started: datetime = self._clock()
        self.phases: list[Phase] = []

    def now(self) -> datetime:
        now: datetime = self._clock()
        return now

    @contextmanager
    def phase(self, name: str) -> Iterator[list[str]]:
        """Time a block; append lines to the yielded list to set the phase's detail."""
        started = self._clock()
        detail: list[str] = []
        try:
            yield detail
        except KeyboardInterrupt:
            self.phases.append(
                Phase(
                    name=name,
                    started=started,
                    ended=self._clock(),
                    status="interrupted",
                    detail="; ".join(detail),
                )
            )
            raise
        except BaseException as exc:
            text = "; ".join([*detail, str(exc) or type(exc).__name__])
            self.phases.append(
                Phase(name=name, started=started, ended=self._clock(), status="failed", detail=text)
            )
            raise
        self.phases.append(
            Phase(
                name=name,
                started=started,
                ended=self._clock(),
                status="done",
                detail="; ".join(detail),
            )
        )

    def skip(self, name: str, why: str) -> None:
        at = self._clock()
        self.phases.append(Phase(name=name, started=at, ended=at, status="skipped", detail=why))


@dataclass(frozen=True, kw_only=True)
class Objectives:
    """The stack's DR objectives (dr.rpoMinutes, dr.rtoMinutes)."""

    rpo: timedelta
    rto: timedelta


@dataclass(frozen=True, kw_only=True)
class DrReport:
    """Everything a person (or CI) needs to judge one rebuild or drill."""

    kind: str
    """rebuild | drill"""
    outcome: str
    """succeeded | failed | interrupted | refused"""
    source_stack: str
    source_region: str
    target_stack: str
    target_region: str
    started: datetime
    ended: datetime
    phases: tuple[Phase, ...]
    objectives: Objectives
    rto: timedelta | None
    """the total RTO, start to a serving environment; None when not reached or incomplete"""
    rpo: timedelta | None
    """data lost relative to the reference time; None when no restore point was chosen"""
    database_restored: timedelta | None = None
    """start to a verified database (the part of the RTO this command always measures)"""
    incomplete: tuple[str, ...] = ()
    """steps of the recovery this run did not do (skipped, or left to the operator): while any
    remain the total RTO is unknown and reported as incomplete"""
    estimate_remaining: timedelta | None = None
    """typical time of the skipped `pulumi up` (the DR stack's critical path, restore excluded)"""
    rpo_from_data: timedelta | None = None
    """the RPO measured in the restored database (reference minus its newest heartbeat)"""
    heartbeat: str | None = None
    """the newest committed heartbeat in the restored data (ISO 8601), or why it is unknown"""
    restore: dict[str, Any] = field(default_factory=dict)
    """the chosen restore point (Choice.to_json)"""
    created: tuple[str, ...] = ()
    """resources created, as 'type id (region)'"""
    removed: tuple[str, ...] = ()
    """resources the drill removed again"""
    checks: tuple[dict[str, Any], ...] = ()
    """verification results"""
    commands: tuple[str, ...] = ()
    """shell commands that finish the rebuild (when this machine could not)"""
    todo: tuple[str, ...] = ()
    """what the operator must still do"""
    notes: tuple[str, ...] = ()
    """config changes from the source and other remarks"""

    def to_json(self) -> dict[str, Any]:
        def met(value: timedelta | None, objective: timedelta) -> bool | None:
            return None if value is None else value <= objective

        def secs(value: timedelta | None) -> float | None:
            return None if value is None else round(value.total_seconds(), 1)

        lower = self.rto_lower_bound
        rto_met = met(self.rto, self.objectives.rto)
        if self.incomplete and lower is not None and lower > self.objectives.rto:
            rto_met = False  # already missed, whatever the remaining steps take
        return {
            "kind": self.kind,
            "result": self.outcome,
            "source": {"stack": self.source_stack, "region": self.source_region},
            "target": {"stack": self.target_stack, "region": self.target_region},
            "started": iso(self.started),
            "ended": iso(self.ended),
            "database_restored_seconds": secs(self.database_restored),
            "rto_seconds": secs(self.rto),
            "rto_complete": not self.incomplete and self.rto is not None,
            "rto_incomplete_steps": list(self.incomplete),
            "rto_estimate_remaining_seconds": secs(self.estimate_remaining),
            "rto_lower_bound_seconds": secs(lower),
            "rto_objective_seconds": int(self.objectives.rto.total_seconds()),
            "rto_met": rto_met,
            "rpo_seconds": secs(self.rpo),
            "rpo_from_data_seconds": secs(self.rpo_from_data),
            "heartbeat": self.heartbeat,
            "rpo_objective_seconds": int(self.objectives.rpo.total_seconds()),
            "rpo_met": met(self.rpo, self.objectives.rpo),
            "restore": self.restore,
            "phases": [
                {
                    "name": p.name,
                    "status": p.status,
                    "started": iso(p.started),
                    "ended": iso(p.ended),
                    "seconds": round(p.seconds, 1),
                    "detail": p.detail,
                }
                for p in self.phases
            ],
            "created": list(self.created),
            "removed": list(self.removed),
            "checks": list(self.checks),
            "commands": list(self.commands),
            "todo": list(self.todo),
            "notes": list(self.notes),
        }

    @property
    def rto_lower_bound(self) -> timedelta | None:
        """What the total RTO is at least: measured so far plus the skipped steps' estimate."""
        measured = self.rto or self.database_restored
        if measured is None:
            return None
        return measured + (self.estimate_remaining or timedelta(0))

    def rto_line(self, *, plain: bool = False) -> str:
        """The total RTO, honest about what it does not include; `plain`: the same words
        without Markdown (the chart's header), a miss in capitals."""
        objective = human(self.objectives.rto)
        if not self.incomplete:
            return (_plain_verdict if plain else _verdict)(self.rto, self.objectives.rto)
        lower = self.rto_lower_bound
        estimate = (
            f" (estimate for them {human(self.estimate_remaining)} on the critical path)"
            if self.estimate_remaining
            else ""
        )
        bound = "" if lower is None else f"; at least {human(lower)}"
        missed = (
            (" — already MISSED" if plain else " — already **missed**")
            if lower is not None and lower > self.objectives.rto
            else ""
        )
        return (
            f"incomplete: not done by this run: {', '.join(self.incomplete)}{estimate}{bound} "
            f"(objective {objective}){missed}"
        )


NOT_MEASURED = "not measured: the run did not finish"
"""A failed run's RTO: "not reached" read as a missed objective."""


def _verdict(value: timedelta | None, objective: timedelta) -> str:
    if value is None:
        return NOT_MEASURED
    word = "met" if value <= objective else "**missed**"
    return f"{human(value)} — {word} (objective {human(objective)})"


def markdown(report: DrReport, *, chart: str | None = None) -> str:
    """The human report: verdict first, then the timeline, then the details."""
    title = "DR drill" if report.kind == "drill" else "DR rebuild"
    lines = [
        f"# {title}: {report.source_stack} ({report.source_region}) → "
        f"{report.target_stack} ({report.target_region}) — {report.outcome}",
        "",
        f"- Started {iso(report.started)}, ended {iso(report.ended)}",
        f"- **Database restored** in {human(report.database_restored)} (start to a verified "
        "database)",
        f"- **RTO (total)** {report.rto_line()}",
        f"- **RPO** {_verdict(report.rpo, report.objectives.rpo)} (restore point metadata)",
        f"- **RPO measured from the data** {_data_rpo(report)}",
    ]
    if report.restore:
        point = report.restore.get("point", {})
        lines.append(
            f"- Restore point: {point.get('kind')} `{point.get('id')}`, data as of "
            f"{report.restore.get('data_time')}"
        )
        newer = report.restore.get("newer_point")
        if newer:
            lines.append(
                f"- Resumed the existing restore `{report.restore.get('resumed_instance')}` "
                "(the RPO is measured from its data); a newer point exists and was **not** "
                f"restored: {newer['point'].get('kind')} `{newer['point'].get('id')}`, data as "
                f"of {newer.get('data_time')}"
            )
    lines += ["", "## Timeline", "", *mermaid(report), ""]
    if chart:
        lines += [f"![timeline]({chart})", ""]
    lines += ["| phase | status | start | duration | detail |", "|---|---|---|---|---|"]
    for p in report.phases:
        offset = human(p.started - report.started)
        detail = p.detail.replace("|", "\\|")
        lines.append(
            f"| {p.name} | {p.status} | +{offset} | {human(timedelta(seconds=p.seconds))} | "
            f"{detail} |"
        )
    if report.checks:
        lines += ["", "## Verification", "", "| check | result | expected | actual |"]
        lines.append("|---|---|---|---|")
        for c in report.checks:
            mark = "ok" if c.get("ok") else "**FAILED**"
            lines.append(f"| {c.get('name')} | {mark} | {c.get('expected')} | {c.get('actual')} |")
    for heading, items in (("Created", report.created), ("Removed by the drill", report.removed)):
        if items:
            lines += ["", f"## {heading}", ""]
            lines += [f"- {i}" for i in items]
    if report.commands:
        lines += ["", "## Commands to finish the environment", "", "```sh", *report.commands, "```"]
    for heading, items in (("Still to do", report.todo), ("Notes", report.notes)):
        if items:
            lines += ["", f"## {heading}", ""]
            lines += [f"- {i}" for i in items]
    return "\n".join(lines) + "\n"


def _data_rpo(report: DrReport) -> str:
    if report.rpo_from_data is None:
        return f"unknown ({report.heartbeat or 'the restored data was not read'})"
    return (
        f"{_verdict(report.rpo_from_data, report.objectives.rpo)}, newest heartbeat "
        f"{report.heartbeat}"
    )


_MERMAID_TAGS = {"done": "done", "failed": "crit", "interrupted": "crit", "skipped": "active"}


def _mermaid_label(text: str) -> str:
    # A gantt task's text ends at ':' and '#' starts an entity: keep the label plain.
    return "".join(c if c not in ":#;" else " " for c in text)[:60] or "phase"


def mermaid(report: DrReport) -> list[str]:
    """The timeline as a Mermaid gantt chart (GitHub renders it in Markdown and job summaries):
    one bar per phase coloured by status, the RTO objective as a milestone, and a legend."""
    t0 = int(report.started.timestamp())
    lines = [
        "```mermaid",
        "gantt",
        f"    title {_mermaid_label(report.kind)} {_mermaid_label(report.source_stack)} to "
        f"{_mermaid_label(report.target_stack)} ({report.outcome})",
        "    dateFormat X",
        "    axisFormat %H:%M:%S",
        "    section phases",
    ]
    for i, p in enumerate(report.phases):
        start = int(p.started.timestamp())
        seconds = max(round(p.seconds), 1)
        tag = _MERMAID_TAGS.get(p.status, "active")
        lines.append(f"    {_mermaid_label(p.name)} ({p.status}) :{tag}, p{i}, {start}, {seconds}s")
    for j, step in enumerate(report.incomplete):
        lines.append(f"    {_mermaid_label(step)} (not done) :active, r{j}, {t0}, 1s")
    objective = t0 + int(report.objectives.rto.total_seconds())
    lines += [
        "    section objective",
        f"    RTO objective {human(report.objectives.rto)} :milestone, obj, {objective}, 0s",
        "```",
        "",
        "Legend: grey/filled = done, red = failed or interrupted, highlighted = skipped or not "
        "done by this run (its time is not in the total), ◆ = the RTO objective measured from "
        "the start.",
    ]
    return lines


_COLOURS = {
    "done": "#2e7d32",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "skipped": "#9e9e9e",
}


CHAR_PX = 7
"""width of a character of the chart's 12 px sans-serif text, rounded up (labels must fit)"""
LABEL_CHARS = (42, 90)
"""the phase-label column fits the longest name within these bounds; only a longer name is cut"""
_TICK_STEPS = (
    *(0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30),
    *(m * 60 for m in (1, 2, 5, 10, 15, 30)),
    *(h * 3600 for h in (1, 2, 3, 6, 12, 24, 48, 168)),
)
"""seconds between axis ticks: the smallest of these that needs at most MAX_TICKS intervals"""
MAX_TICKS = 6
_OBJECTIVE_COLOUR = "#6a1b9a"


def _axis(seconds: float) -> tuple[float, float]:
    """(tick step, axis end): round steps, the end the first tick at or after `seconds`."""
    step = next((t for t in _TICK_STEPS if seconds / t <= MAX_TICKS), _TICK_STEPS[-1])
    while seconds / step > MAX_TICKS:  # beyond the table (weeks): keep doubling
        step *= 2
    return step, max(step, step * math.ceil(seconds / step - 1e-9))


def _tick(seconds: float, step: float) -> str:
    """A tick's label; exact at every multiple of `step`, so no two ticks read the same."""
    if step < 1 and seconds:
        return f"+{seconds:.1f}s"
    return f"+{human(timedelta(seconds=round(seconds)))}"


def _wrap(text: str, chars: int) -> list[str]:
    return textwrap.wrap(text, chars, break_long_words=True) or [""]


def timeline_svg(report: DrReport) -> str:
    """A Gantt-style chart of the phases on a time axis from the start. The header says the
    verdicts in the Markdown's words; the RTO objective (from the start, as in the Mermaid
    chart) is a dashed line where it falls on the axis, else a note says it lies beyond it;
    a reached total RTO is a second dashed line."""
    phases = list(report.phases)
    step, span = _axis(max((report.ended - report.started).total_seconds(), 1.0))
    longest = max((len(p.name) for p in phases), default=0)
    label_chars = min(max(longest, LABEL_CHARS[0]), LABEL_CHARS[1])
    label_w, bar_w, row_h = 10 + CHAR_PX * label_chars + 16, 560, 26
    width = label_w + bar_w + 140
    header = [
        f"Database restored in {human(report.database_restored)}"
        f" · RPO {_plain_verdict(report.rpo, report.objectives.rpo)}",
        *_wrap(f"RTO {report.rto_line(plain=True)}", (width - 20) // CHAR_PX),
    ]
    top = 44 + 18 * len(header)
    axis_y = top + row_h * max(len(phases), 1) + 10
    height = axis_y + 62
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="15" font-weight="bold">'
        f"{escape(report.kind)} {escape(report.source_stack)} → {escape(report.target_stack)} "
        f"({escape(report.target_region)}): {escape(report.outcome)}</text>",
    ]
    out += [f'<text x="10" y="{40 + 18 * i}">{escape(t)}</text>' for i, t in enumerate(header)]

    def x_at(seconds: float) -> float:
        return label_w + bar_w * min(max(seconds / span, 0.0), 1.0)

    for i, p in enumerate(phases):
        y = top + i * row_h
        x0 = x_at((p.started - report.started).total_seconds())
        w = max(bar_w * p.seconds / span, 2.0)
        colour = _COLOURS.get(p.status, "#607d8b")
        label = p.name if len(p.name) <= label_chars else p.name[: label_chars - 1] + "…"
        title = f"<title>{escape(p.name)}</title>" if label != p.name else ""
        out.append(f'<text x="10" y="{y + 17}">{escape(label)}{title}</text>')
        out.append(
            f'<rect x="{x0:.1f}" y="{y + 5}" width="{w:.1f}" height="{row_h - 10}" '
            f'fill="{colour}"><title>{escape(p.name)}: {escape(p.status)}, '
            f"{p.seconds:.1f}s {escape(p.detail)}</title></rect>"
        )
        out.append(
            f'<text x="{min(x0 + w + 4, label_w + bar_w + 4):.1f}" y="{y + 17}" fill="#333">'
            f"{escape(human(timedelta(seconds=p.seconds)))}</text>"
        )
    out.append(
        f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + bar_w}" y2="{axis_y}" stroke="#333"/>'
    )
    for k in range(round(span / step) + 1):
        x = x_at(k * step)
        out.append(
            f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 5}" stroke="#333"/>'
        )
        out.append(
            f'<text x="{x:.1f}" y="{axis_y + 18}" text-anchor="middle">'
            f"{escape(_tick(k * step, step))}</text>"
        )
    if report.rto is not None:
        x = x_at(report.rto.total_seconds())
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" stroke="#1565c0" '
            f'stroke-dasharray="4 3"><title>RTO {escape(human(report.rto))}</title></line>'
        )
        out.append(f'<text x="{x + 3:.1f}" y="{top - 4}" fill="#1565c0">RTO</text>')
    objective = report.objectives.rto.total_seconds()
    named = f"RTO objective {human(report.objectives.rto)}"
    if objective <= span:
        x = x_at(objective)
        out.append(
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" '
            f'stroke="{_OBJECTIVE_COLOUR}" stroke-dasharray="8 4"><title>{escape(named)} from '
            "the start</title></line>"
        )
        note = f"{named} from the start: the long-dashed line"
    else:
        note = f"{named} from the start: beyond this axis (it ends at {_tick(span, step)})"
    out.append(
        f'<text x="{label_w}" y="{axis_y + 40}" fill="{_OBJECTIVE_COLOUR}">{escape(note)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _plain_verdict(value: timedelta | None, objective: timedelta) -> str:
    if value is None:
        return NOT_MEASURED
    word = "met" if value <= objective else "MISSED"
    return f"{human(value)} {word} (objective {human(objective)})"


@dataclass(frozen=True, kw_only=True)
class Written:
    """Where a report was written."""

    markdown: Path
    json: Path
    chart: Path


def write_report(report: DrReport, directory: Path, stem: str) -> Written:
    """Write `<stem>.md`, `<stem>.json` and `<stem>.svg` into directory (created if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    chart = directory / f"{stem}.svg"
    md = directory / f"{stem}.md"
    js = directory / f"{stem}.json"
    chart.write_text(timeline_svg(report), encoding="utf-8")
    md.write_text(markdown(report, chart=chart.name), encoding="utf-8")
    js.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return Written(markdown=md, json=js, chart=chart)
