"""The maintenance calendar: every window of an environment, collision-free, matching what the
program declares, rendered as a weekly table (and kept current in the docs)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.config import ConfigError, committed_stacks, cron_window, load_config, load_stack
from infra.config import read_stack_values as read_values
from infra.offline import Recording
from policy import windows
from tests.conftest import ROOT

DOC = ROOT / "docs" / "vault-backups-alarms.md"
# A restore test may run while a backup or copy job runs; every other pair must stay apart.
ALLOWED = {frozenset({"backup-plan", "restore-test"})}


def test_no_window_of_a_committed_stack_collides(stack_recording: Recording) -> None:
    entries = stack_recording.config.calendar()
    bad = [
        (a.name, b.name, windows.day_name(at))
        for a, b, at in windows.collisions(entries)
        if frozenset({a.kind, b.kind}) not in ALLOWED
    ]
    assert bad == []


def test_the_calendar_lists_every_window_the_program_declares(stack_recording: Recording) -> None:
    rec = stack_recording
    cfg = rec.config
    cal = {e.name: e for e in cfg.calendar()}
    instances = rec.of_type("aws:rds/instance:Instance")
    (primary,) = [i for i in instances if not i.inputs.get("replicateSourceDb")]
    assert windows.parse_weekly(primary.inputs["maintenanceWindow"]) == (
        cal["primary maintenance"].window
    )
    assert windows.parse_daily(primary.inputs["backupWindow"]) == cal["automated backup"].window
    for r in cfg.replicas:
        (inst,) = [i for i in instances if i.inputs["identifier"].endswith(f"-pg-{r.name}")]
        assert windows.parse_weekly(inst.inputs["maintenanceWindow"]) == (
            cal[f"replica {r.name} maintenance"].window
        )
    (plan,) = rec.of_type("aws:backup/plan:Plan")
    for rule in plan.inputs["rules"]:
        assert cron_window(rule["schedule"], rule["startWindow"]) == (
            cal[f"backup plan rule {rule['ruleName']}"].window
        )
    (test_plan,) = rec.of_type("aws:backup/restoreTestingPlan:RestoreTestingPlan")
    assert cron_window(
        test_plan.inputs["scheduleExpression"], test_plan.inputs["startWindowHours"] * 60
    ) == (cal["restore test"].window)
    # the rotation actually scheduled opens and closes inside the calendar's rotation window
    (rotation,) = rec.of_type("aws:secretsmanager/secretRotation:SecretRotation")
    rules = rotation.inputs["rotationRules"]
    m = re.fullmatch(r"cron\(0 (\d+) \? \S+ ([A-Z]{3})(#\d)? \*\)", rules["scheduleExpression"])
    assert m, rules
    day = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN").index(m[2])
    start = day * windows.MINUTES_PER_DAY + int(m[1]) * 60
    length = int(rules["duration"].removesuffix("h")) * 60
    window = cal["master secret rotation"].window
    assert window.start <= start and start + length <= window.start + window.length


def test_maintenance_follows_the_runbooks_sunday_early_morning(stack_recording: Recording) -> None:
    cal = {e.name: e for e in stack_recording.config.calendar()}
    assert cal["primary maintenance"].window.to_rds() == "sun:02:00-sun:04:00"


def test_rendered_calendar_has_one_row_per_window_in_week_order(prod: Recording) -> None:
    entries = prod.config.calendar()
    table = windows.render_calendar(entries).splitlines()
    rows = table[2:]
    assert len(rows) == len(entries)
    for e in entries:
        assert any(f"`{e.window.to_rds()}`" in row and e.name in row for row in rows), e.name
    firsts = [
        min(e.window.intervals())[0] for row in rows for e in entries if f"| {e.name} (" in row
    ]
    assert firsts == sorted(firsts)
    (sunday,) = [r for r in rows if "primary maintenance" in r]
    assert sunday.startswith("| Sunday |")


def test_docs_show_the_current_calendar_of_every_committed_stack() -> None:
    text = DOC.read_text(encoding="utf-8")
    for stack in committed_stacks(ROOT):
        rendered = windows.render_calendar(load_stack(stack, ROOT).calendar())
        assert rendered in text, (
            f"{DOC.name} is stale for stack {stack}: paste this under its calendar heading\n"
            f"{rendered}"
        )


@pytest.mark.parametrize(
    ("group", "change", "names"),
    [
        (
            "vault",
            {"rotationWindow": "tue:08:00-tue:10:00"},
            ("master secret rotation", "backup plan rule daily"),
        ),
        (
            "backup",
            {"restoreTestingSchedule": "cron(0 2 ? * SUN *)"},
            ("primary maintenance", "restore test"),
        ),
        (
            "replicas",
            [{"name": "r1", "maintenanceWindow": "tue:14:30-tue:15:30"}],
            ("master secret rotation", "replica r1 maintenance"),
        ),
    ],
)
def test_colliding_windows_are_refused_naming_both(
    group: str, change: Any, names: tuple[str, str]
) -> None:
    values, region = read_values("staging", ROOT)
    old = values.get(group)
    values = {
        **values,
        group: {**old, **change} if isinstance(old, dict) and isinstance(change, dict) else change,
    }
    with pytest.raises(ConfigError) as err:
        load_config("staging", values, region, root=ROOT)
    # One line names both windows, and the config keys that hold them (never only a window).
    (line,) = [ln for ln in err.value.problems if all(n in ln for n in names)]
    assert line.count("dbplatform:") == 2, line
    assert "move one of them" in line
