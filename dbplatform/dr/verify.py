"""Checks on a restored instance: what RDS reports (status, engine, encryption, storage, placement)
and, optionally, SQL run through `psql` against the restored data (row counts and the like).

Each check is a `Check` with what was expected and what was found, so a report shows why a
restore failed, not only that it did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

PSQL_TIMEOUT_SECONDS = 120


@dataclass(frozen=True, kw_only=True)
class Check:
    """One verification."""

    name: str
    ok: bool
    expected: str
    actual: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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


# ---------------------------------------------------------------------------------------------
# SQL checks
# ---------------------------------------------------------------------------------------------


class QueryFileError(ValueError):
    """The queries file is unreadable or malformed; the message names the problem."""


@dataclass(frozen=True, kw_only=True)
class Query:
    """A query run against the restored data; with `min`, its single value must reach it."""

    name: str
    sql: str
    min: int | None = None


def load_queries(path: Path | None, inline: Sequence[str]) -> list[Query]:
    """Queries from a YAML file (`queries: [{name, sql, min}]`) plus `--query` strings."""
    out: list[Query] = []
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise QueryFileError(f"--queries {path}: {exc}") from None
        items = data.get("queries") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise QueryFileError(f"--queries {path}: expected a mapping with a 'queries:' list")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("sql"), str):
                raise QueryFileError(f"--queries {path}: queries[{i}] needs a 'sql' string")
            minimum = item.get("min")
            if minimum is not None and (isinstance(minimum, bool) or not isinstance(minimum, int)):
                raise QueryFileError(f"--queries {path}: queries[{i}].min must be a whole number")
            out.append(
                Query(name=str(item.get("name") or item["sql"]), sql=item["sql"], min=minimum)
            )
    out += [Query(name=q, sql=q) for q in inline]
    return out


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where and as whom psql connects; the password only ever travels in the environment."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


Runner = Callable[..., subprocess.CompletedProcess[str]]


def psql_path() -> str | None:
    return shutil.which("psql")


def sql_checks(
    conn: Connection,
    queries: Sequence[Query],
    *,
    psql: str,
    runner: Runner = subprocess.run,
    timeout: float = PSQL_TIMEOUT_SECONDS,
) -> list[Check]:
    """Run each query with psql (TLS required, unaligned output) and check its result."""
    env = {
        **os.environ,
        "PGPASSWORD": conn.password,
        "PGSSLMODE": os.environ.get("PGSSLMODE", "require"),
        "PGCONNECT_TIMEOUT": "10",
    }
    checks = []
    for q in queries:
        argv = [
            psql,
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            conn.host,
            "-p",
            str(conn.port),
            "-U",
            conn.user,
            "-d",
            conn.dbname,
            "-c",
            q.sql,
        ]
        expected = "runs" if q.min is None else f">= {q.min}"
        try:
            done = runner(argv, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            checks.append(
                Check(name=f"sql: {q.name}", ok=False, expected=expected, actual="timed out")
            )
            continue
        value = (done.stdout or "").strip()
        if done.returncode != 0:
            err = (done.stderr or "").strip().splitlines()
            actual = f"error: {err[-1] if err else f'psql exited {done.returncode}'}"
            checks.append(Check(name=f"sql: {q.name}", ok=False, expected=expected, actual=actual))
            continue
        ok = True
        if q.min is not None:
            try:
                ok = int(value.splitlines()[0]) >= q.min
            except (ValueError, IndexError):
                ok = False
        checks.append(Check(name=f"sql: {q.name}", ok=ok, expected=expected, actual=value[:200]))
    return checks
