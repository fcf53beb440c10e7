"""Restore points: every way to get a stack's data back, their age and RPO, and the choice of one.

Pure: discovery (dbplatform/dr/discover.py) turns AWS answers into `RestorePoint`s; this module
ranks them freshest first, measures each against the stack's RPO objective and chooses the
one a restore uses for `--latest` or `--restore-time`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dbplatform.ops import clock


class Kind(enum.StrEnum):
    """How a restore point is turned back into a database."""

    AUTOMATED_BACKUP = "automated-backup"
    """PITR from automated backups (the primary's own, or replicated to the DR region)"""
    SNAPSHOT = "snapshot"
    """a DB snapshot (copied to the DR region, or in the stack's region)"""
    RECOVERY_POINT = "recovery-point"
    """an AWS Backup recovery point in a backup vault"""
    READ_REPLICA = "read-replica"
    """a cross-region read replica: promotion only, never restored from"""


# With equal freshness, prefer what restores most directly (PITR is exact, a snapshot restore
# needs no AWS Backup IAM role). A replica is never chosen: promoting it is irreversible and
# the replica belongs to the source stack.
_PREFERENCE = {
    Kind.AUTOMATED_BACKUP: 0,
    Kind.SNAPSHOT: 1,
    Kind.RECOVERY_POINT: 2,
    Kind.READ_REPLICA: 3,
}


@dataclass(frozen=True, kw_only=True)
class RestorePoint:
    """One way to recover the database, as found in one region."""

    kind: Kind
    """how it is restored"""
    id: str
    """what a restore names: snapshot id, automated-backups ARN, recovery point ARN, replica id"""
    region: str
    """the region it lives in"""
    latest: datetime | None
    """newest data it can give (UTC); None when unknown (a replica whose lag is not reported)"""
    earliest: datetime | None = None
    """oldest time a PITR window reaches; None for single-time points"""
    source_identifier: str = ""
    """the DB instance the data came from (in-region PITR restores name it)"""
    detail: str = ""
    """one human line: status, lag, vault, encryption"""
    encrypted: bool | None = None
    """storage encryption of the backup, when reported"""
    engine_version: str | None = None
    """engine version of the backup, when reported"""
    allocated_storage: int | None = None
    """storage of the backup in GiB, when reported"""
    excluded: str = ""
    """why it is listed but never chosen (another engine major than the stack's)"""

    @property
    def restorable(self) -> bool:
        """False for a read replica (it is promoted, not restored) and an excluded point."""
        return self.kind is not Kind.READ_REPLICA and not self.excluded

    @property
    def is_window(self) -> bool:
        """A PITR window: any time from `earliest` to `latest` can be restored."""
        return self.kind is Kind.AUTOMATED_BACKUP and self.earliest is not None

    def age(self, now: datetime) -> timedelta | None:
        """How old its newest data is now; this is the RPO a restore from it gives now."""
        return None if self.latest is None else max(timedelta(0), now - self.latest)

    def covers(self, when: datetime) -> bool:
        """Can it restore exactly `when`?"""
        if self.latest is None:
            return False
        if self.is_window:
            assert self.earliest is not None
            return self.earliest <= when <= self.latest
        return self.latest == when

    def to_json(self, now: datetime, objective: timedelta) -> dict[str, object]:
        age = self.age(now)
        return {
            "kind": str(self.kind),
            "id": self.id,
            "region": self.region,
            "latest": iso(self.latest),
            "earliest": iso(self.earliest),
            "age_seconds": None if age is None else int(age.total_seconds()),
            "rpo_seconds": None if age is None else int(age.total_seconds()),
            "meets_rpo_objective": None if age is None else age <= objective,
            "restorable": self.restorable,
            "excluded": self.excluded or None,
            "detail": self.detail,
        }


class NoRestorePoint(Exception):
    """No restore point satisfies the request; the message says why and what to do."""


class BadRequest(ValueError):
    """The request itself is invalid (a restore time in the future)."""


@dataclass(frozen=True, kw_only=True)
class Choice:
    """The restore point a restore will use and what it gives."""

    point: RestorePoint
    """the chosen point"""
    restore_time: datetime | None
    """exact PITR time to pass to RDS; None = the point's newest data"""
    data_time: datetime
    """the moment the restored data reflects"""
    reference: datetime
    """what the RPO is measured from: the requested time, or now for --latest"""

    @property
    def rpo(self) -> timedelta:
        """Data lost relative to `reference`. Never clamped: a negative value would mean data
        newer than asked for, which the operations refuse (`past_reference`)."""
        return self.reference - self.data_time

    @property
    def past_reference(self) -> bool:
        """True when the data is newer than the reference (for --restore-time T: past T)."""
        return self.data_time > self.reference

    def to_json(self, objective: timedelta) -> dict[str, object]:
        return {
            "point": self.point.to_json(self.reference, objective),
            "restore_time": iso(self.restore_time),
            "data_time": iso(self.data_time),
            "reference_time": iso(self.reference),
            "rpo_seconds": int(self.rpo.total_seconds()),
            "rpo_objective_seconds": int(objective.total_seconds()),
            "meets_rpo_objective": self.rpo <= objective,
        }


def iso(when: datetime | None) -> str | None:
    """The operations' ISO 8601 form (UTC, Z, seconds); None stays None (unknown)."""
    return None if when is None else clock.iso(when)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; a naive one is UTC (restore times are always UTC in AWS)."""
    try:
        return clock.parse_iso(text)
    except ValueError:
        raise BadRequest(
            f"'{text}' is not an ISO 8601 time; use e.g. 2026-11-23T04:30:00Z (UTC)"
        ) from None


def rank(points: Iterable[RestorePoint]) -> list[RestorePoint]:
    """Freshest first; unknown freshness last; ties by how directly the point restores."""
    return sorted(
        points,
        key=lambda p: (
            p.latest is None,
            -p.latest.timestamp() if p.latest else 0.0,
            _PREFERENCE[p.kind],
            p.id,
        ),
    )


def human(delta: timedelta | None) -> str:
    """'3d 4h', '2h 05m', '12m 30s', '45s'; 'unknown' for None."""
    if delta is None:
        return "unknown"
    s = int(delta.total_seconds())
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def no_point_advice(region: str, *, stack: str | None, home: bool | None) -> str:
    """What puts restore points in `region`, and the command that lists them there. In the
    stack's own region they come from its own backups; in a DR region, from replication and
    copies. `home` None: not known, both are named."""
    own = (
        "the primary's automated backups (backup.retentionDays >= 1) and the AWS Backup "
        "plan's recovery points in the stack's vault (backup.plan)"
    )
    copied = (
        "automated backups replicated there (dr.backupReplication) and AWS Backup copies "
        "(backup.plan copyToDr)"
    )
    if home is True:
        where = f"check the stack's own backups in its region: {own}"
    elif home is False:
        where = f"check that backups reach this DR region: {copied}"
    else:
        where = f"check the backups: in the stack's own region, {own}; in a DR region, {copied}"
    command = f"dbplatform dr restore-points --stack {stack or 'STACK'} --region {region}"
    return f"{where}; then run `{command}` to see what exists"


def choose(
    points: Sequence[RestorePoint],
    *,
    now: datetime,
    restore_time: datetime | None = None,
    max_gap: timedelta,
    region: str,
    latest_flag: bool = True,
    stack: str | None = None,
    home: bool | None = None,
) -> Choice:
    """The restore point for `--latest` (restore_time None) or for `--restore-time`.

    A restore never goes past the requested time (the operator may be escaping a bad change
    made after it): a PITR window that covers the time restores it exactly; otherwise the
    newest point taken before it is used if it is at most `max_gap` older. Raises
    NoRestorePoint when nothing fits, BadRequest for a time in the future. `latest_flag`: the
    command has `--latest` (the messages name only flags the command has). `stack` and `home`
    (is `region` the stack's own region?) word the advice when nothing is restorable: which
    backups put points there, and the complete command that lists them.
    """
    usable = [p for p in points if p.restorable and p.latest is not None]
    if not usable:
        found = ", ".join(sorted({str(p.kind) for p in points})) or "nothing"
        raise NoRestorePoint(
            f"no restorable recovery point in {region} (found: {found}); "
            + no_point_advice(region, stack=stack, home=home)
        )
    if restore_time is None:
        best = rank(usable)[0]
        assert best.latest is not None
        return Choice(point=best, restore_time=None, data_time=best.latest, reference=now)

    if restore_time > now:
        raise BadRequest(f"--restore-time {iso(restore_time)} is in the future (now {iso(now)})")
    exact = [p for p in usable if p.covers(restore_time)]
    if exact:
        best = rank(exact)[0]
        return Choice(
            point=best,
            restore_time=restore_time if best.is_window else None,
            data_time=restore_time,
            reference=restore_time,
        )
    before = [p for p in usable if p.latest is not None and p.latest <= restore_time]
    if before:
        best = rank(before)[0]
        assert best.latest is not None
        gap = restore_time - best.latest
        if gap <= max_gap:
            return Choice(
                point=best, restore_time=None, data_time=best.latest, reference=restore_time
            )
        raise NoRestorePoint(
            f"no restore point in {region} within {human(max_gap)} before {iso(restore_time)}: "
            f"the newest one before it, {best.kind} {best.id} at {iso(best.latest)}, is "
            f"{human(gap)} older; pass --max-gap {int(gap.total_seconds() // 60) + 1} to accept "
            "that loss, or choose another --restore-time"
        )
    oldest = min(
        (p for p in usable if p.latest is not None),
        key=lambda p: p.earliest or p.latest or now,
    )
    start = oldest.earliest or oldest.latest
    raise NoRestorePoint(
        f"no restore point in {region} reaches back to {iso(restore_time)}: the oldest, "
        f"{oldest.kind} {oldest.id}, starts at {iso(start)}, after the requested time; "
        "choose a later --restore-time" + (" or use --latest" if latest_flag else "")
    )
