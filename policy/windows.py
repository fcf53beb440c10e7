"""Weekly window arithmetic for maintenance, backup and rotation windows (pure, UTC).

RDS speaks two window syntaxes: weekly `ddd:hh24:mi-ddd:hh24:mi` (maintenance) and daily
`hh24:mi-hh24:mi` (backup, repeated every day). Both are mapped onto minutes of the week
(Monday 00:00 = 0) so that overlap across midnight and across Sunday->Monday is one comparison.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_WEEKLY = re.compile(
    r"^(?P<d1>[A-Za-z]{3}):(?P<h1>\d{2}):(?P<m1>\d{2})-(?P<d2>[A-Za-z]{3}):(?P<h2>\d{2}):(?P<m2>\d{2})$"
)
_DAILY = re.compile(r"^(?P<h1>\d{2}):(?P<m1>\d{2})-(?P<h2>\d{2}):(?P<m2>\d{2})$")


class WindowError(ValueError):
    """A window string that does not parse; the message says which rule it breaks."""


def _time(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise WindowError(f"'{text}' has an invalid time {hours}:{minutes} (hh24:mi, UTC)")
    return h * 60 + m


def _day(day: str, text: str) -> int:
    try:
        return DAYS.index(day.lower())
    except ValueError:
        raise WindowError(
            f"'{text}' has an invalid day '{day}' (one of {', '.join(DAYS)})"
        ) from None


@dataclass(frozen=True, order=True)
class Window:
    """A recurring window: `start` minute of the week, `length` minutes; daily repeats each day."""

    start: int
    length: int
    daily: bool = False

    def intervals(self) -> list[tuple[int, int]]:
        """Half-open [start, end) intervals within one week, split where they wrap."""
        starts = (
            [(self.start + d * MINUTES_PER_DAY) % MINUTES_PER_WEEK for d in range(7)]
            if self.daily
            else [self.start]
        )
        out: list[tuple[int, int]] = []
        for s in starts:
            end = s + self.length
            if end <= MINUTES_PER_WEEK:
                out.append((s, end))
            else:
                out.append((s, MINUTES_PER_WEEK))
                out.append((0, end - MINUTES_PER_WEEK))
        return sorted(out)

    def overlaps(self, other: Window) -> bool:
        return any(
            a0 < b1 and b0 < a1 for a0, a1 in self.intervals() for b0, b1 in other.intervals()
        )

    def first_overlap(self, other: Window) -> int | None:
        """The first minute of the week at which both windows are open, or None."""
        hits = [
            max(a0, b0)
            for a0, a1 in self.intervals()
            for b0, b1 in other.intervals()
            if a0 < b1 and b0 < a1
        ]
        return min(hits) if hits else None

    def shifted(self, minutes: int) -> Window:
        return Window((self.start + minutes) % MINUTES_PER_WEEK, self.length, self.daily)

    def to_rds(self) -> str:
        """The window in RDS syntax, lower-case days as RDS returns them."""
        if self.daily:
            s = self.start % MINUTES_PER_DAY
            e = (s + self.length) % MINUTES_PER_DAY
            return f"{_hhmm(s)}-{_hhmm(e)}"
        e = (self.start + self.length) % MINUTES_PER_WEEK
        return f"{_dhhmm(self.start)}-{_dhhmm(e)}"


def _hhmm(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def _dhhmm(minute_of_week: int) -> str:
    day, rest = divmod(minute_of_week, MINUTES_PER_DAY)
    return f"{DAYS[day]}:{_hhmm(rest)}"


def day_name(minute_of_week: int) -> str:
    return DAY_NAMES[(minute_of_week // MINUTES_PER_DAY) % 7]


def parse_weekly(text: str) -> Window:
    """Parse `ddd:hh24:mi-ddd:hh24:mi` (RDS maintenance window syntax)."""
    m = _WEEKLY.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise WindowError(f"'{text}' is not a weekly window 'ddd:hh24:mi-ddd:hh24:mi'")
    start = _day(m["d1"], text) * MINUTES_PER_DAY + _time(m["h1"], m["m1"], text)
    end = _day(m["d2"], text) * MINUTES_PER_DAY + _time(m["h2"], m["m2"], text)
    length = (end - start) % MINUTES_PER_WEEK
    if length == 0:
        raise WindowError(f"'{text}' is empty: start and end are the same")
    return Window(start, length)


def parse_daily(text: str) -> Window:
    """Parse `hh24:mi-hh24:mi` (RDS backup window syntax), a window repeated every day."""
    m = _DAILY.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise WindowError(f"'{text}' is not a daily window 'hh24:mi-hh24:mi'")
    start = _time(m["h1"], m["m1"], text)
    end = _time(m["h2"], m["m2"], text)
    length = (end - start) % MINUTES_PER_DAY
    if length == 0:
        raise WindowError(f"'{text}' is empty: start and end are the same")
    return Window(start, length, daily=True)


def parse_any(text: str) -> Window:
    """Parse either syntax: weekly when it names days, daily otherwise."""
    if isinstance(text, str) and _DAILY.match(text.strip()):
        return parse_daily(text)
    return parse_weekly(text)


def stagger(
    primary: Window, count: int, avoid: list[Window], gap_minutes: int = 30
) -> list[Window]:
    """Derive `count` weekly windows for replicas, each the primary's length, none overlapping.

    Replicas must not be patched together with the primary (a read fleet would lose all of its
    members at once), so each gets its own slot after the primary's window, `gap_minutes` apart,
    skipping any slot that touches a window in `avoid` (the backup window, other units).
    """
    taken = [primary, *avoid]
    out: list[Window] = []
    candidate = primary.shifted(primary.length + gap_minutes)
    step = 15
    tries = 0
    while len(out) < count:
        if tries > MINUTES_PER_WEEK // step:
            raise WindowError(f"no room in the week for {count} replica windows")
        padded = Window(candidate.start, candidate.length + gap_minutes)
        if not any(padded.overlaps(w) for w in taken):
            out.append(candidate)
            taken.append(candidate)
            candidate = candidate.shifted(candidate.length + gap_minutes)
        else:
            candidate = candidate.shifted(step)
        tries += 1
    return out


@dataclass(frozen=True)
class CalendarEntry:
    """One window in an environment's weekly calendar."""

    name: str
    window: Window
    kind: str  # maintenance | backup | backup-plan | rotation | restore-test


def collisions(entries: list[CalendarEntry]) -> list[tuple[CalendarEntry, CalendarEntry, int]]:
    """Every pair of entries whose windows overlap, with the first shared minute of the week."""
    out = []
    for i, a in enumerate(entries):
        for b in entries[i + 1 :]:
            at = a.window.first_overlap(b.window)
            if at is not None:
                out.append((a, b, at))
    return out


def render_calendar(entries: list[CalendarEntry]) -> str:
    """A Markdown table of the week, ordered by first opening (Monday first), UTC."""
    lines = ["| when (UTC) | window | what |", "|---|---|---|"]
    for e in sorted(entries, key=lambda e: (e.window.intervals()[0][0], e.name)):
        when = "every day" if e.window.daily else day_name(e.window.start)
        lines.append(f"| {when} | `{e.window.to_rds()}` | {e.name} ({e.kind}) |")
    return "\n".join(lines)


# AWS Backup schedules (cron) -> calendar window

_CRON = re.compile(
    r"^cron\((?P<min>\d{1,2}) (?P<hour>\d{1,2}) \? \* (?P<dow>\*|[A-Za-z]{3}|[1-7]) \*\)$"
)
_CRON_DOW = {"SUN": 6, "MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5}


def cron_window(expr: str, length_minutes: int) -> Window:
    """The window a daily or weekly AWS Backup cron opens: its start plus the start window."""
    m = _CRON.match(expr.strip()) if isinstance(expr, str) else None
    if not m or int(m["min"]) > 59 or int(m["hour"]) > 23:
        raise WindowError(
            f"'{expr}' is not a supported schedule: use cron(M H ? * * *) for daily or "
            "cron(M H ? * DOW *) for weekly, UTC"
        )
    start = int(m["hour"]) * 60 + int(m["min"])
    dow = m["dow"]
    if dow == "*":
        return Window(start, length_minutes, daily=True)
    # AWS cron day-of-week: 1 = Sunday .. 7 = Saturday
    day = _CRON_DOW[dow.upper()] if dow.isalpha() else (int(dow) + 5) % 7
    return Window(day * MINUTES_PER_DAY + start, length_minutes)
