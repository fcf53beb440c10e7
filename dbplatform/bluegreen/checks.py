"""Preconditions of blue/green: start's preflight, promote's gates and post-checks.

Each check returns problem lines (empty = passed) so a refusal lists everything to fix at once.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from dbplatform.bluegreen.model import Deployment
from dbplatform.ops import Context, error_code, retry_config
from dbplatform.ops.aws import pages
from dbplatform.ops.rds import describe_instance

LAG_LOOKBACK = timedelta(minutes=5)
HTTP_TIMEOUT = 5.0
TCP_TIMEOUT = 3.0


@dataclass(frozen=True)
class Target:
    """What the green environment will run."""

    engine_version: str
    parameter_group: str
    instance_class: str | None


def major(version: str) -> str:
    return version.split(".", maxsplit=1)[0]


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in version.split("."))


def user_parameters(rds: BaseClient, group: str) -> dict[str, str]:
    """Parameters set explicitly in a DB parameter group (name -> value)."""
    values: dict[str, str] = {}
    for page in rds.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=group):
        for p in page.get("Parameters", []):
            if "ParameterValue" in p:
                values[p["ParameterName"]] = str(p["ParameterValue"])
    return values


def parameter_group_family(rds: BaseClient, group: str) -> str | None:
    """The family of DB parameter group `group`, or None when it does not exist."""
    try:
        found = rds.describe_db_parameter_groups(DBParameterGroupName=group)["DBParameterGroups"]
    except ClientError as exc:
        if error_code(exc) == "DBParameterGroupNotFound":
            return None
        raise
    return str(found[0]["DBParameterGroupFamily"]) if found else None


def preflight(ctx: Context, primary: dict[str, Any], target: Target) -> list[str]:
    """Why a deployment of `primary` to `target` would fail or be unsafe; empty when fine."""
    rds = ctx.client("rds")
    ident = primary["DBInstanceIdentifier"]
    problems: list[str] = []
    if primary.get("DBInstanceStatus") != "available":
        problems.append(
            f"primary {ident} is '{primary.get('DBInstanceStatus')}', not 'available': wait for "
            "the running change to finish"
        )
    if int(primary.get("BackupRetentionPeriod") or 0) < 1:
        problems.append(
            f"automated backups are off on {ident} (retention 0): blue/green needs them; set "
            "backup.retentionDays >= 1 and run pulumi up"
        )
    if primary.get("MasterUserSecret"):
        problems.append(
            f"{ident} has an RDS-managed master password (Secrets Manager), which blue/green "
            "does not support: switch to the stack's self-managed master secret "
            "(ModifyDBInstance ManageMasterUserPassword=false with a new password) first"
        )
    if primary.get("ReadReplicaSourceDBInstanceIdentifier"):
        problems.append(f"{ident} is itself a read replica; run blue/green on its source")
    for rep in primary.get("ReadReplicaDBInstanceIdentifiers", []):
        if rep.startswith("arn:"):
            problems.append(
                f"{ident} has a cross-Region read replica {rep}, which blue/green does not "
                "support: remove it (dr.crossRegionReplica: false, pulumi up) first"
            )
            continue
        replica = describe_instance(rds, rep)
        for sub in (replica or {}).get("ReadReplicaDBInstanceIdentifiers", []):
            problems.append(
                f"replica {rep} has its own replica {sub} (cascading), which blue/green does not "
                "support: remove it first"
            )
    for g in primary.get("DBParameterGroups", []):
        # AWS "Creating a blue/green deployment": the instance must be in sync with its DB
        # parameter group, otherwise creation fails (rds.logical_replication is pending-reboot).
        if g.get("ParameterApplyStatus", "in-sync") != "in-sync":
            problems.append(
                f"{ident} is not in sync with parameter group {g['DBParameterGroupName']} "
                f"(ParameterApplyStatus {g.get('ParameterApplyStatus')}): reboot it in a "
                "maintenance window first (aws rds reboot-db-instance), blue/green creation fails "
                "otherwise"
            )
    current = primary.get("EngineVersion", "")
    problems += upgrade_path(ctx, current, target.engine_version)
    if version_key(target.engine_version) < version_key(current):
        problems.append(
            f"--engine-version {target.engine_version} is older than the running {current}: "
            "blue/green cannot downgrade"
        )
    groups = [g["DBParameterGroupName"] for g in primary.get("DBParameterGroups", [])]
    if major(target.engine_version) != major(current) and groups:
        params = user_parameters(rds, groups[0])
        if params.get("rds.logical_replication") != "1":
            problems.append(
                f"a major upgrade ({current} -> {target.engine_version}) replicates logically, "
                f"but rds.logical_replication is not 1 in {groups[0]}: set database.blueGreen: "
                "true, run pulumi up and reboot the primary in a maintenance window"
            )
    family = f"postgres{major(target.engine_version)}"
    actual = parameter_group_family(rds, target.parameter_group)
    if actual is None:
        problems.append(
            f"parameter group {target.parameter_group} ({family}) does not exist: set "
            f"dbplatform:database.upgradeTargetVersion to '{major(target.engine_version)}' and "
            "run pulumi up (the program declares it with its own parameters), or pass "
            "--parameter-group"
        )
    elif actual != family:
        problems.append(
            f"parameter group {target.parameter_group} is of family {actual}; PostgreSQL "
            f"{target.engine_version} needs {family}: pass --parameter-group of that family"
        )
    return problems


# PostgreSQL's own defaults (runtime-config-resource: max_worker_processes 8,
# max_logical_replication_workers 4), used when neither the group nor the family's engine
# defaults give a number.
POSTGRES_DEFAULTS = {"max_worker_processes": 8, "max_logical_replication_workers": 4}
WORKER_SETTINGS = tuple(POSTGRES_DEFAULTS)


def engine_defaults(rds: BaseClient, family: str) -> dict[str, str]:
    """DescribeEngineDefaultParameters of `family` (name -> value, where a value is given)."""
    values: dict[str, str] = {}
    params = {"DBParameterGroupFamily": family}
    # EngineDefaults pages by its own Marker
    for page in pages(
        rds.describe_engine_default_parameters, params, "Marker", within="EngineDefaults"
    ):
        for p in page.get("Parameters", []):
            if "ParameterValue" in p:
                values[p["ParameterName"]] = str(p["ParameterValue"])
    return values


def subscriber_problems(ctx: Context, group: str, family: str, databases: int) -> list[str]:
    """In a logical blue/green, green is the subscriber: its apply workers come from green's
    parameter group (`group`), not blue's. The group's value, else the family's engine default,
    else PostgreSQL's; a formula (`GREATEST({DBInstanceVCPU*2},8)`) is not evaluated: warned."""
    rds = ctx.client("rds")
    given = user_parameters(rds, group)
    defaults: dict[str, str] = {}
    if any(n not in given for n in WORKER_SETTINGS):
        try:
            defaults = engine_defaults(_quick_rds(ctx), family)
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            ctx.out.warn(
                f"green's replication worker settings ({group}) not checked: the {family} "
                f"engine defaults could not be read ({exc})"
            )
            return []
    values: dict[str, int] = {}
    for name in WORKER_SETTINGS:
        raw = given.get(name, defaults.get(name, str(POSTGRES_DEFAULTS[name])))
        if not raw.isdigit():
            ctx.out.warn(f"{name} of green ({group}) is '{raw}', a formula: not checked")
            return []
        values[name] = int(raw)
    from dbplatform.database.checks import worker_problems  # the SQL checks' module: on use

    return worker_problems(
        f"green (parameter group {group})",
        values["max_worker_processes"],
        values["max_logical_replication_workers"],
        databases,
    )


def _quick_rds(ctx: Context) -> BaseClient:
    """An RDS client with few attempts: the answers it gets improve the preflight but are not
    worth a long backoff (an emulator without the call, a throttled API): then the check is
    said to be unchecked."""
    return ctx.session.client(
        "rds",
        region_name=ctx.stack.region,
        config=retry_config().merge(Config(retries={"mode": "standard", "total_max_attempts": 2})),
    )


def upgrade_path(ctx: Context, current: str, wanted: str) -> list[str]:
    """A problem when RDS lists no upgrade from `current` to `wanted` (DescribeDBEngineVersions
    ValidUpgradeTarget); nothing when RDS does not describe `current` (said as a warning)."""
    if not current or wanted == current:
        return []
    rds = _quick_rds(ctx)
    try:
        found = rds.describe_db_engine_versions(Engine="postgres", EngineVersion=current)[
            "DBEngineVersions"
        ]
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        ctx.out.warn(f"upgrade path {current} -> {wanted} not checked: {exc}")
        return []
    targets = {t.get("EngineVersion") for v in found for t in v.get("ValidUpgradeTarget", [])}
    if not found or not targets:
        ctx.out.warn(f"RDS lists no upgrade targets of PostgreSQL {current}; path not checked")
        return []
    if wanted not in targets:
        near = sorted((t for t in targets if t and major(t) == major(wanted)), key=version_key)
        return [
            f"RDS offers no upgrade from PostgreSQL {current} to {wanted} "
            f"(DescribeDBEngineVersions ValidUpgradeTarget); "
            + (f"targets of that major: {', '.join(near)}" if near else "upgrade in steps")
        ]
    return []


def latest_metric(
    ctx: Context, metric: str, identifier: str, statistic: str = "Maximum"
) -> float | None:
    """Latest value of an AWS/RDS metric of `identifier` over the last 5 minutes; None if none."""
    now = ctx.clock.now()
    stats = ctx.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/RDS",
        MetricName=metric,
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": identifier}],
        StartTime=now - LAG_LOOKBACK,
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=[statistic],
    )
    points = sorted(stats.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return float(points[-1][statistic]) if points else None


def uncovered_replicas(primary: dict[str, Any], dep: Deployment) -> list[str]:
    """Blue replicas with no green member (they would not move at switchover)."""
    sources = {m.source for m in dep.members}
    return [
        r
        for r in primary.get("ReadReplicaDBInstanceIdentifiers", [])
        if not r.startswith("arn:") and r not in sources
    ]


def replica_lag(ctx: Context, identifier: str) -> float | None:
    """Latest ReplicaLag (seconds) of `identifier` over the last 5 minutes; None if unknown."""
    return latest_metric(ctx, "ReplicaLag", identifier)


def alarms_firing(ctx: Context) -> list[str]:
    """Names of the environment's CloudWatch alarms in ALARM."""
    cloudwatch = ctx.client("cloudwatch")
    params = {"AlarmNamePrefix": ctx.stack.names.prefix + "-", "StateValue": "ALARM"}
    names: list[str] = []
    for page in pages(cloudwatch.describe_alarms, params, "NextToken"):
        for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
            # Filtered again here: some implementations (moto) ignore StateValue with a prefix.
            if alarm.get("StateValue") == "ALARM":
                names.append(alarm["AlarmName"])
    return sorted(names)


def http_ready(url: str) -> str | None:
    """None when `url` answers 2xx within 5 s, else what went wrong."""
    if not url.startswith(("http://", "https://")):
        return f"--health-url {url} is not an http(s) URL"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as resp:  # noqa: S310 - http(s) only
            if 200 <= resp.status < 300:
                return None
            return f"{url} answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {getattr(exc, 'reason', exc)}"


def tcp_answers(address: str, port: int) -> str | None:
    """None when a TCP connection to the endpoint opens, else why not."""
    try:
        with socket.create_connection((address, port), timeout=TCP_TIMEOUT):
            return None
    except OSError as exc:
        return f"{address}:{port} not reachable from this host ({exc.__class__.__name__})"
