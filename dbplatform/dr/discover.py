"""Find a stack's restore points in one region from what AWS reports (read-only calls only).

Two views: `dr_points` (the DR region: replicated automated backups, a cross-region replica,
recovery points in the DR vault, copied snapshots) and `local_points` (the stack's own region:
the primary's PITR window, its snapshots, recovery points in its vault). A source that cannot
be read (no vault, no permission, a service the endpoint lacks) becomes a note, not a failure:
the operator still sees every other way back.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dbplatform.dr.points import Kind, RestorePoint
from dbplatform.ops import error_code
from dbplatform.ops.rds import describe_instance
from infra.naming import Names

# Replicated automated backups in these states can be restored from.
_BACKUP_OK = {"active", "replicating", "retained"}
_REPLICA_LAG_WINDOW = timedelta(minutes=15)


@dataclass
class Found:
    """Restore points found in one region, and what could not be looked at."""

    region: str
    points: list[RestorePoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _whole_second(value: datetime | None) -> datetime | None:
    """A single-time point's data time in whole seconds, as it is shown, tagged and requested
    (`--restore-time`): the time an operator copies from a listing then selects that very point.
    A snapshot is a moment, not a window: the writes of its own second count as that second."""
    return None if value is None else value.replace(microsecond=0)


def _pages(client: BaseClient, method: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
    if client.can_paginate(method):
        for page in client.get_paginator(method).paginate(**params):
            yield from page.get(key, [])
    else:
        yield from getattr(client, method)(**params).get(key, [])


def major_of(version: str | None) -> str | None:
    """'16.4' -> '16'; None when unknown."""
    head = str(version or "").split(".")[0]
    return head or None


def exclude_other_majors(points: list[RestorePoint], major: str | None) -> list[RestorePoint]:
    """Mark points of another engine major than `major` as not restorable for this stack.

    After a blue/green major upgrade and a rollback, the snapshot taken of the new-major green
    (`<id>-pre-rollback-...`) is a snapshot of the primary's identifier; restored with the
    stack's parameter group (another family) it would fail, and it is not the stack's data
    line. Listed, with the reason, never chosen.
    """
    if major is None:
        return points
    out = []
    for point in points:
        theirs = major_of(point.engine_version)
        if theirs is not None and theirs != major and not point.excluded:
            why = f"engine {point.engine_version}, not the stack's major {major}: never chosen"
            out.append(replace(point, excluded=why))
        else:
            out.append(point)
    return out


def _unreadable(what: str, region: str, exc: ClientError) -> str:
    return f"{what} in {region} could not be read ({error_code(exc)}); listed without them"


def snapshots(rds: BaseClient, identifier: str, region: str) -> list[RestorePoint]:
    """Available DB snapshots of `identifier` (manual, automated and copies) in rds's region."""
    out = []
    for snap in _pages(
        rds, "describe_db_snapshots", "DBSnapshots", DBInstanceIdentifier=identifier
    ):
        if snap.get("Status") != "available":
            continue
        # A copy's SnapshotCreateTime is when it was copied; its data is as of the original.
        taken = _whole_second(
            _utc(snap.get("OriginalSnapshotCreateTime")) or _utc(snap.get("SnapshotCreateTime"))
        )
        out.append(
            RestorePoint(
                kind=Kind.SNAPSHOT,
                id=str(snap["DBSnapshotIdentifier"]),
                region=region,
                latest=taken,
                source_identifier=identifier,
                detail=f"{snap.get('SnapshotType', 'manual')} snapshot"
                + (", encrypted" if snap.get("Encrypted") else ", NOT encrypted"),
                encrypted=snap.get("Encrypted"),
                engine_version=snap.get("EngineVersion"),
                allocated_storage=snap.get("AllocatedStorage"),
            )
        )
    return out


def recovery_points(
    backup: BaseClient, vault: str, identifier: str, region: str, found: Found
) -> None:
    """Completed AWS Backup recovery points of the DB instance `identifier` in `vault`."""
    try:
        items = list(
            _pages(
                backup,
                "list_recovery_points_by_backup_vault",
                "RecoveryPoints",
                BackupVaultName=vault,
                ByResourceType="RDS",
            )
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            found.notes.append(f"no backup vault {vault} in {region}")
        else:
            found.notes.append(
                _unreadable(f"AWS Backup recovery points of vault {vault}", region, exc)
            )
        return
    for rp in items:
        if not str(rp.get("ResourceArn", "")).endswith(f":db:{identifier}"):
            continue
        if rp.get("Status") != "COMPLETED":
            continue
        found.points.append(
            RestorePoint(
                kind=Kind.RECOVERY_POINT,
                id=str(rp["RecoveryPointArn"]),
                region=region,
                latest=_whole_second(_utc(rp.get("CreationDate"))),
                source_identifier=identifier,
                detail=f"vault {vault}" + (", encrypted" if rp.get("IsEncrypted") else ""),
                encrypted=rp.get("IsEncrypted"),
                allocated_storage=None,
            )
        )


def _replica_lag(cloudwatch: BaseClient, identifier: str, now: datetime) -> float | None:
    try:
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName="ReplicaLag",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
            StartTime=now - _REPLICA_LAG_WINDOW,
            # past now: a datapoint stamped this very second still counts
            EndTime=now + timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )
    except ClientError:
        return None
    points = sorted(stats.get("Datapoints", []), key=lambda d: d["Timestamp"])
    return float(points[-1]["Maximum"]) if points else None


def dr_points(
    *,
    rds: BaseClient,
    backup: BaseClient,
    cloudwatch: BaseClient,
    names: Names,
    source_region: str,
    region: str,
    now: datetime,
    major: str | None = None,
) -> Found:
    """Every restore point of the stack's primary that lives in the DR `region`; points of
    another engine major than `major` (the stack's) are listed but excluded."""
    found = Found(region=region)
    primary = names.primary

    # 1. Automated backups replicated from the source region: a PITR window in this region.
    try:
        for ab in _pages(
            rds, "describe_db_instance_automated_backups", "DBInstanceAutomatedBackups"
        ):
            if ab.get("DBInstanceIdentifier") != primary:
                continue
            arn = str(ab.get("DBInstanceArn", "")).split(":")
            from_region = arn[3] if len(arn) > 3 else str(ab.get("Region") or "")
            if from_region != source_region:
                continue  # a local instance's own backups, not the source's replication
            window = ab.get("RestoreWindow") or {}
            status = str(ab.get("Status", ""))
            if status not in _BACKUP_OK or not window.get("LatestTime"):
                found.notes.append(
                    f"replicated automated backups {ab.get('DBInstanceAutomatedBackupsArn')} "
                    f"are {status or 'in an unknown state'}: not restorable yet"
                )
                continue
            found.points.append(
                RestorePoint(
                    kind=Kind.AUTOMATED_BACKUP,
                    id=str(ab["DBInstanceAutomatedBackupsArn"]),
                    region=region,
                    latest=_utc(window.get("LatestTime")),
                    earliest=_utc(window.get("EarliestTime")),
                    source_identifier=primary,
                    detail=f"replicated from {source_region}, {status}",
                    encrypted=ab.get("Encrypted"),
                    engine_version=ab.get("EngineVersion"),
                    allocated_storage=ab.get("AllocatedStorage"),
                )
            )
    except ClientError as exc:
        found.notes.append(_unreadable("replicated automated backups", region, exc))

    # 2. A cross-region read replica of the primary: fresh to within its lag, promotion only.
    try:
        for db in _pages(rds, "describe_db_instances", "DBInstances"):
            src = str(db.get("ReadReplicaSourceDBInstanceIdentifier") or "")
            if not (src.endswith(f":db:{primary}") and f":{source_region}:" in src):
                continue
            ident = str(db["DBInstanceIdentifier"])
            lag = _replica_lag(cloudwatch, ident, now)
            state = db.get("DBInstanceStatus")
            found.points.append(
                RestorePoint(
                    kind=Kind.READ_REPLICA,
                    id=ident,
                    region=region,
                    latest=None if lag is None else now - timedelta(seconds=lag),
                    source_identifier=primary,
                    detail=f"{state}, lag "
                    + ("not reported (ReplicaLag)" if lag is None else f"{lag:.0f}s")
                    + "; promote with `aws rds promote-read-replica` (not restored from)",
                    encrypted=db.get("StorageEncrypted"),
                    engine_version=db.get("EngineVersion"),
                    allocated_storage=db.get("AllocatedStorage"),
                )
            )
    except ClientError as exc:
        found.notes.append(_unreadable("DB instances", region, exc))

    # 3. AWS Backup copies in the DR vault.
    recovery_points(backup, names.dr_backup_vault, primary, region, found)

    # 4. DB snapshots copied to this region.
    try:
        found.points.extend(snapshots(rds, primary, region))
    except ClientError as exc:
        found.notes.append(_unreadable("DB snapshots", region, exc))
    found.points = exclude_other_majors(found.points, major)
    return found


def local_points(
    *, rds: BaseClient, backup: BaseClient, names: Names, region: str, major: str | None = None
) -> tuple[Found, dict[str, Any] | None]:
    """Restore points in the stack's own region, and the primary's description (None if absent).

    Points of another engine major than the primary's (else `major`, the stack's) are listed
    but excluded (exclude_other_majors)."""
    found = Found(region=region)
    primary = names.primary
    described = describe_instance(rds, primary)
    if described is None:
        found.notes.append(f"the primary {primary} does not exist in {region}")
    if described is not None and described.get("BackupRetentionPeriod", 0) > 0:
        latest = _utc(described.get("LatestRestorableTime"))
        earliest = None
        try:
            for ab in _pages(
                rds,
                "describe_db_instance_automated_backups",
                "DBInstanceAutomatedBackups",
                DBInstanceIdentifier=primary,
            ):
                earliest = _utc((ab.get("RestoreWindow") or {}).get("EarliestTime")) or earliest
        except ClientError as exc:
            found.notes.append(_unreadable("automated backups", region, exc))
        if earliest is None and latest is not None:
            # The window reaches back the retention period, but never before the instance.
            created = _utc(described.get("InstanceCreateTime")) or latest
            earliest = max(created, latest - timedelta(days=described["BackupRetentionPeriod"]))
        if latest is not None:
            found.points.append(
                RestorePoint(
                    kind=Kind.AUTOMATED_BACKUP,
                    id=primary,
                    region=region,
                    latest=latest,
                    earliest=earliest,
                    source_identifier=primary,
                    detail=f"PITR of {primary}, {described['BackupRetentionPeriod']} days kept",
                    encrypted=described.get("StorageEncrypted"),
                    engine_version=described.get("EngineVersion"),
                    allocated_storage=described.get("AllocatedStorage"),
                )
            )
    elif described is not None:
        found.notes.append(f"{primary} keeps no automated backups (BackupRetentionPeriod 0)")
    found.points.extend(snapshots(rds, primary, region))
    recovery_points(backup, names.backup_vault, primary, region, found)
    if described is not None:
        major = major_of(described.get("EngineVersion")) or major
    found.points = exclude_other_majors(found.points, major)
    return found, described
