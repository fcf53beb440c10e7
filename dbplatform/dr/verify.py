"""Checks on a restored instance: what RDS reports (status, engine, encryption, storage,
placement). What the data holds is checked with SQL in dbplatform/dr/sql.py.

Each check is a `Check` with what was expected and what was found, so a report shows why a
restore failed, not only that it did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Check:
    """One verification."""

    name: str
    ok: bool
    expected: str
    actual: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def error_text(exc: BaseException) -> str:
    """An error as a check's `actual`: its type and whole text on one line. libpq puts the cause
    at the end of a long first line (after the connection string) and a hint on the next, so
    nothing is cut."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return ": ".join(filter(None, [type(exc).__name__, text]))


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What the restored instance must look like."""

    engine_version: str | None
    """exact version of the backup when known, else the config's (compared on major.minor)"""
    encrypted: bool
    """storage encryption"""
    min_storage_gib: int
    """allocated storage at least this"""
    subnet_group: str
    security_group_ids: tuple[str, ...]
    parameter_group: str
    multi_az: bool | None = None
    """None: not checked (a temporary instance is single-AZ by choice)"""
    deletion_protection: bool | None = None


def _cmp(name: str, expected: object, actual: object) -> Check:
    return Check(name=name, ok=expected == actual, expected=str(expected), actual=str(actual))


def _minor(version: str | None) -> str:
    return ".".join(str(version or "").split(".")[:2])


def instance_checks(db: dict[str, Any], exp: Expected) -> list[Check]:
    """Compare an RDS DescribeDBInstances entry with the expectations."""
    checks = [
        _cmp("status", "available", db.get("DBInstanceStatus")),
        _cmp("engine", "postgres", db.get("Engine")),
        Check(
            name="engine version",
            ok=exp.engine_version is None
            or _minor(exp.engine_version) == _minor(db.get("EngineVersion")),
            expected=str(exp.engine_version or "any"),
            actual=str(db.get("EngineVersion")),
        ),
        _cmp("storage encrypted", exp.encrypted, bool(db.get("StorageEncrypted"))),
        Check(
            name="allocated storage",
            ok=int(db.get("AllocatedStorage") or 0) >= exp.min_storage_gib,
            expected=f">= {exp.min_storage_gib} GiB",
            actual=f"{db.get('AllocatedStorage')} GiB",
        ),
        _cmp(
            "subnet group",
            exp.subnet_group,
            (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
        ),
        _cmp(
            "security groups",
            sorted(exp.security_group_ids),
            sorted(g["VpcSecurityGroupId"] for g in db.get("VpcSecurityGroups", [])),
        ),
        _cmp(
            "parameter group",
            exp.parameter_group,
            ",".join(g["DBParameterGroupName"] for g in db.get("DBParameterGroups", [])),
        ),
        _cmp("publicly accessible", False, bool(db.get("PubliclyAccessible"))),
    ]
    if exp.multi_az is not None:
        checks.append(_cmp("multi-AZ", exp.multi_az, bool(db.get("MultiAZ"))))
    if exp.deletion_protection is not None:
        checks.append(
            _cmp("deletion protection", exp.deletion_protection, bool(db.get("DeletionProtection")))
        )
    return checks
