"""Window arithmetic: parsing, overlap across midnight and the week's end, staggering."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policy.windows import (
    MINUTES_PER_WEEK,
    CalendarEntry,
    Window,
    WindowError,
    collisions,
    parse_any,
    parse_daily,
    parse_weekly,
    render_calendar,
    stagger,
)


def test_weekly_parse_and_normalise_to_rds_syntax() -> None:
    w = parse_weekly("Sun:02:00-Sun:04:00")
    assert w.length == 120
    assert w.to_rds() == "sun:02:00-sun:04:00"
    assert parse_any("03:00-03:30").daily


@pytest.mark.parametrize(
    "text", ["sun:02:00", "sun:2:00-sun:04:00", "xyz:02:00-sun:04:00", "sun:24:00-mon:01:00", ""]
)
def test_bad_weekly_windows_raise_window_error(text: str) -> None:
    with pytest.raises(WindowError):
        parse_weekly(text)


def test_daily_window_that_wraps_midnight_overlaps_early_morning() -> None:
    backup = parse_daily("23:30-00:30")
    assert backup.length == 60
    assert backup.overlaps(parse_weekly("tue:00:00-tue:00:30"))
    assert not backup.overlaps(parse_weekly("tue:00:30-tue:01:00"))


def test_sunday_to_monday_wrap_is_one_window() -> None:
    w = parse_weekly("sun:23:00-mon:01:00")
    assert w.length == 120
    assert w.overlaps(parse_weekly("mon:00:30-mon:00:45"))
    assert w.overlaps(parse_weekly("sun:23:30-sun:23:45"))
    assert not w.overlaps(parse_weekly("mon:01:00-mon:02:00"))
    assert w.first_overlap(parse_daily("00:15-00:45")) == 15  # Monday 00:15


def test_daily_window_overlaps_a_weekly_one_on_its_day_only_once() -> None:
    at = parse_daily("03:00-04:30").first_overlap(parse_weekly("sun:04:00-sun:05:00"))
    assert at is not None and at // 1440 == 6  # Sunday


def test_stagger_gives_disjoint_windows_clear_of_avoided_ones() -> None:
    primary = parse_weekly("sun:02:00-sun:04:00")
    backup = parse_daily("04:30-05:30")
    out = stagger(primary, 5, [backup])
    assert len(out) == 5
    every = [primary, *out]
    for i, a in enumerate(every):
        assert not a.overlaps(backup)
        for b in every[i + 1 :]:
            assert not a.overlaps(b)


def test_stagger_refuses_when_the_week_is_full() -> None:
    whole_day = parse_daily("00:00-23:45")
    with pytest.raises(WindowError, match="no room"):
        stagger(parse_weekly("sun:23:45-mon:00:15"), 1, [whole_day])


def test_collisions_and_calendar_rendering() -> None:
    a = CalendarEntry("primary maintenance", parse_weekly("sun:02:00-sun:04:00"), "maintenance")
    b = CalendarEntry("automated backup", parse_daily("03:30-04:30"), "backup")
    c = CalendarEntry("rotation", parse_weekly("tue:14:00-tue:16:00"), "rotation")
    found = collisions([a, b, c])
    assert [(x.name, y.name) for x, y, _ in found] == [("primary maintenance", "automated backup")]
    table = render_calendar([c, a, b])
    assert "| Sunday | `sun:02:00-sun:04:00` | primary maintenance (maintenance) |" in table
    assert "| every day | `03:30-04:30` | automated backup (backup) |" in table


@given(
    s1=st.integers(0, MINUTES_PER_WEEK - 1),
    l1=st.integers(1, 1440),
    s2=st.integers(0, MINUTES_PER_WEEK - 1),
    l2=st.integers(1, 1440),
)
def test_overlap_is_symmetric_and_matches_minute_sets(s1: int, l1: int, s2: int, l2: int) -> None:
    a, b = Window(s1, l1), Window(s2, l2)
    minutes_a = {(s1 + i) % MINUTES_PER_WEEK for i in range(l1)}
    minutes_b = {(s2 + i) % MINUTES_PER_WEEK for i in range(l2)}
    assert a.overlaps(b) == b.overlaps(a) == bool(minutes_a & minutes_b)
