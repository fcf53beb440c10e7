"""Progress without a terminal (CI logs, pipes): a line when a phase starts and one when it ends,
with its duration or how it failed; on a terminal, the spinner's tick carries the same facts."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbplatform.ops.errors import Failed, Refused
from dbplatform.ops.progress import Progress, duration


class StepClock:
    """A clock that each phase body moves forward by hand."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def plain(verbosity: int = 0) -> tuple[Progress, io.StringIO, StepClock]:
    stream, clock = io.StringIO(), StepClock()
    return (
        Progress(label="dr drill prod", verbosity=verbosity, stream=stream, clock=clock),
        (stream),
        clock,
    )


def test_a_phase_prints_a_start_line_and_an_end_line_with_its_duration() -> None:
    out, stream, clock = plain()
    with out.phase("restore the primary"):
        clock.sleep(1683)  # 28 min 3 s
    assert stream.getvalue().splitlines() == [
        "dr drill prod: restore the primary ...",
        "dr drill prod: restore the primary: done in 28m 03s",
    ]


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (Failed("pulumi up failed"), "FAILED (Failed) after 7.5s"),
        (TimeoutError("waited"), "FAILED (TimeoutError) after 7.5s"),
        (Refused("not confirmed"), "refused after 7.5s"),
        (KeyboardInterrupt(), "interrupted after 7.5s"),
    ],
)
def test_a_phase_that_raises_ends_with_how_it_failed_and_the_error_still_propagates(
    error: BaseException, words: str
) -> None:
    out, stream, clock = plain()
    with pytest.raises(type(error)), out.phase("wait for green"):
        clock.sleep(7.5)
        raise error
    assert stream.getvalue().splitlines()[-1] == f"dr drill prod: wait for green: {words}"


def test_nested_phases_each_get_their_own_end_line_in_order() -> None:
    out, stream, clock = plain()
    with out.phase("rebuild"):
        with out.phase("restore"):
            clock.sleep(2)
        clock.sleep(1)
        assert out.current == "rebuild"
    assert stream.getvalue().splitlines() == [
        "dr drill prod: rebuild ...",
        "dr drill prod: restore ...",
        "dr drill prod: restore: done in 2.0s",
        "dr drill prod: rebuild: done in 3.0s",
    ]
    assert out.current is None


def test_quiet_prints_no_phase_lines_but_warnings_still_show() -> None:
    out, stream, clock = plain(verbosity=-1)
    with out.phase("verify"):
        clock.sleep(1)
        out.warn("replica lag is 40 s")
    assert stream.getvalue() == "warning: replica lag is 40 s\n"


def test_on_a_terminal_the_tick_line_carries_the_duration_and_a_cross_on_failure() -> None:
    stream, clock = io.StringIO(), StepClock()
    out = Progress(label="x", stream=stream, live=True, clock=clock)
    with out.phase("snapshot"):
        clock.sleep(65)
    with pytest.raises(Failed), out.phase("switchover"):
        raise Failed("no")
    text = stream.getvalue()
    assert "✓ snapshot (1m 05s)" in text
    assert "✗ switchover (0.0s)" in text


@given(st.floats(min_value=0, max_value=10 * 86400, allow_nan=False))
def test_durations_read_back_to_the_same_seconds_within_the_shown_precision(s: float) -> None:
    text = duration(s)
    if text.endswith("s") and "m" not in text:
        assert abs(float(text[:-1]) - s) <= 0.05 + 1e-9
    elif "h" in text:
        h, m = text.split("h ")
        assert abs(int(h) * 3600 + int(m.removesuffix("m")) * 60 - s) <= 60
        assert int(m.removesuffix("m")) < 60
    else:
        m, sec = text.split("m ")
        assert abs(int(m) * 60 + int(sec.removesuffix("s")) - s) <= 0.5
        assert int(sec.removesuffix("s")) < 60
