"""Restore points: freshness ranking, RPO against the objective, and the choice a restore uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbplatform.dr.points import (
    BadRequest,
    Kind,
    NoRestorePoint,
    RestorePoint,
    choose,
    parse_time,
    rank,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def point(kind: Kind, ident: str, latest: datetime | None, earliest: datetime | None = None):
    return RestorePoint(kind=kind, id=ident, region="us-west-2", latest=latest, earliest=earliest)


PITR = point(Kind.AUTOMATED_BACKUP, "arn:pitr", NOW - timedelta(minutes=5), NOW - timedelta(days=7))
REPLICA = point(Kind.READ_REPLICA, "prod-pg-dr", NOW - timedelta(seconds=3))
SNAP_2H = point(Kind.SNAPSHOT, "snap-2h", NOW - 2 * HOUR)
RP_1D = point(Kind.RECOVERY_POINT, "arn:rp-1d", NOW - timedelta(days=1))
UNKNOWN = point(Kind.READ_REPLICA, "lag-unknown", None)


def test_rank_lists_freshest_first_and_unknown_freshness_last() -> None:
    ranked = rank([RP_1D, UNKNOWN, SNAP_2H, PITR, REPLICA])
    assert [p.id for p in ranked] == [
        "prod-pg-dr",
        "arn:pitr",
        "snap-2h",
        "arn:rp-1d",
        "lag-unknown",
    ]


def test_age_is_the_rpo_now_and_is_judged_against_the_objective() -> None:
    row = SNAP_2H.to_json(NOW, objective=HOUR)
    assert row["age_seconds"] == row["rpo_seconds"] == 7200
    assert row["meets_rpo_objective"] is False
    assert PITR.to_json(NOW, objective=HOUR)["meets_rpo_objective"] is True
    assert UNKNOWN.to_json(NOW, objective=HOUR)["meets_rpo_objective"] is None


def test_latest_takes_the_freshest_restorable_point_never_the_replica() -> None:
    choice = choose([REPLICA, SNAP_2H, PITR], now=NOW, max_gap=HOUR, region="us-west-2")
    assert choice.point is PITR
    assert choice.restore_time is None  # UseLatestRestorableTime
    assert choice.rpo == timedelta(minutes=5)


def test_a_time_inside_a_pitr_window_is_restored_exactly() -> None:
    when = NOW - timedelta(days=2)
    choice = choose([SNAP_2H, PITR], now=NOW, restore_time=when, max_gap=HOUR, region="r")
    assert choice.point is PITR
    assert choice.restore_time == when
    assert choice.rpo == timedelta(0)


def test_without_a_window_the_newest_point_before_the_time_is_used_within_the_gap() -> None:
    when = NOW - timedelta(minutes=90)  # snapshot is 30 min before it, the recovery point a day
    choice = choose([SNAP_2H, RP_1D], now=NOW, restore_time=when, max_gap=HOUR, region="r")
    assert choice.point is SNAP_2H
    assert choice.restore_time is None
    assert choice.rpo == timedelta(minutes=30)


def test_a_point_newer_than_the_requested_time_is_never_used() -> None:
    when = NOW - 3 * HOUR  # the snapshot (2 h ago) holds changes made after `when`
    with pytest.raises(NoRestorePoint, match="reaches back"):
        choose([SNAP_2H], now=NOW, restore_time=when, max_gap=HOUR, region="us-west-2")


def test_no_point_close_enough_before_the_time_is_refused_with_the_gap_to_accept() -> None:
    when = NOW - timedelta(minutes=10)
    with pytest.raises(NoRestorePoint) as err:
        choose([SNAP_2H], now=NOW, restore_time=when, max_gap=HOUR, region="us-west-2")
    assert "--max-gap 111" in str(err.value)  # 1 h 50 min older, rounded up
    choice = choose(
        [SNAP_2H], now=NOW, restore_time=when, max_gap=timedelta(minutes=111), region="r"
    )
    assert choice.point is SNAP_2H


def test_nothing_restorable_is_refused_naming_what_was_found() -> None:
    with pytest.raises(NoRestorePoint, match=r"found: read-replica"):
        choose([REPLICA], now=NOW, max_gap=HOUR, region="us-west-2")
    with pytest.raises(NoRestorePoint, match="found: nothing"):
        choose([], now=NOW, max_gap=HOUR, region="us-west-2")


def test_a_restore_time_in_the_future_is_bad_usage() -> None:
    with pytest.raises(BadRequest, match="in the future"):
        choose([PITR], now=NOW, restore_time=NOW + HOUR, max_gap=HOUR, region="r")


def test_restore_times_are_utc_and_bad_ones_say_the_expected_form() -> None:
    assert parse_time("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T12:00:00+02:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_time("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(BadRequest, match="ISO 8601"):
        parse_time("yesterday")


def test_nothing_restorable_advice_fits_the_region_searched_and_names_a_complete_command() -> None:
    with pytest.raises(NoRestorePoint) as home:
        choose([], now=NOW, max_gap=HOUR, region="us-east-1", stack="prod", home=True)
    assert "backup.retentionDays" in str(home.value) and "copyToDr" not in str(home.value)
    assert "`dbplatform dr restore-points --stack prod --region us-east-1`" in str(home.value)
    with pytest.raises(NoRestorePoint) as dr:
        choose([REPLICA], now=NOW, max_gap=HOUR, region="us-west-2", stack="prod", home=False)
    assert "dr.backupReplication" in str(dr.value) and "copyToDr" in str(dr.value)
    assert "retentionDays" not in str(dr.value)
    assert "`dbplatform dr restore-points --stack prod --region us-west-2`" in str(dr.value)
