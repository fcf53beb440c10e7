"""The guardrail catalogue: one list of rules, each a pure function over a resource's type and
inputs (resource rules) or over the whole manifest (stack rules).

`scripts.guardrails` runs them offline on a synthesised manifest; `policy/` adapts the very same
functions to CrossGuard so `pulumi preview --policy-pack policy` enforces what the offline run
checks. Each rule names the AWS Foundational Security Best Practices (FSBP) control it implements
where one exists (Security Hub control ids, e.g. RDS.3). A rule's level is mandatory on a
production stack and advisory elsewhere, unless the rule is advisory everywhere or a caller
overrides it.

Values the cloud assigns ("known after deploy") cannot be judged offline: a resource rule passes
them, and stack rules fall back on the dependency an unknown reference carries.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from policy import instance_classes, windows
from policy.manifest import (
    AWS_PROVIDER,
    KNOWN_AFTER_DEPLOY,
    RDS_INSTANCE,
    Manifest,
    Resource,
    arn_region,
    is_known,
    is_replica,
    points_to,
)
from policy.markers import RESOURCE_POLICIES
from policy.windows import cron_window

KMS_KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
BACKUP_VAULT = "aws:backup/vault:Vault"
BACKUP_PLAN = "aws:backup/plan:Plan"
BACKUP_SELECTION = "aws:backup/selection:Selection"
RESTORE_TESTING_PLAN = "aws:backup/restoreTestingPlan:RestoreTestingPlan"
BACKUPS_REPLICATION = (
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
)
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
SNS_TOPIC = "aws:sns/topic:Topic"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SUBNET = "aws:ec2/subnet:Subnet"

# The full alarm set of a DB instance: CloudWatch AWS/RDS metric names. Mirrors the thresholds
# of the `alarms` config (infra/config.py ThresholdsConfig) and issue 3's alarm list.
ALARMS_EVERY_INSTANCE = (
    "CPUUtilization",
    "FreeStorageSpace",
    "FreeableMemory",
    "DatabaseConnections",
    "ReadLatency",
    "WriteLatency",
    "DiskQueueDepth",
)
# On a physical replica the transaction ids are the primary's and it has no slots or WAL
# retention of its own, so these three are required on instances that hold the data of record.
ALARMS_SOURCE_ONLY = (
    "MaximumUsedTransactionIDs",
    "OldestReplicationSlotLag",
    "TransactionLogsDiskUsage",
)
ALARMS_REPLICA_ONLY = ("ReplicaLag",)
ALARMS_BURSTABLE_ONLY = ("CPUCreditBalance",)

# Defaults of FSBP RDS.11 (backupRetentionMinimum) and SecretsManager.4 (maxDaysSinceRotation).
MIN_BACKUP_RETENTION_DAYS = 7
MAX_ROTATION_DAYS = 90
# FSBP RDS.25: the engines' default administrator names.
DEFAULT_ADMIN_USERNAMES = frozenset({"postgres", "admin", "root", "administrator"})
# FSBP RDS.23: the engine's default port.
POSTGRES_DEFAULT_PORT = 5432
# AWS Backup's default start window when a rule does not set one (AWS Backup developer guide).
BACKUP_DEFAULT_START_WINDOW_MINUTES = 8 * 60
_OPEN_CIDRS = ("0.0.0.0/0", "::/0")
# Data-holding types that must be `protect`ed on production stacks (docs/architecture.md): DB
# instances of record, KMS keys, secrets and backup vaults (replicas and groups are rebuildable).
PROTECTED_TYPES = (RDS_INSTANCE, KMS_KEY, SECRET, BACKUP_VAULT, "aws:rds/cluster:Cluster")


class Level(StrEnum):
    """What a failure means: mandatory blocks (exit 1, CrossGuard error), advisory warns."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class Violation:
    """One failure of one rule, on one resource (urn) or on the stack (urn None)."""

    rule: str
    message: str
    urn: str | None = None
    resource: str | None = None


@dataclass(frozen=True)
class StackOutcome:
    """What a stack rule found: how many subjects it checked (0: not applicable) and failures."""

    checked: int
    failures: tuple[tuple[Resource | None, str], ...] = ()


ResourceCheck = Callable[[Resource], list[str]]
StackCheck = Callable[[Manifest], StackOutcome]


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One guardrail. Resource rules set `types` and `check`; stack rules set `stack_check`."""

    id: str
    description: str
    control: str | None
    """the FSBP control it implements (Security Hub id), when one exists"""
    remediation: str
    types: frozenset[str] = frozenset()
    """resource rules: the types it inspects; stack rules: the types it needs to see"""
    applies: Callable[[Resource], bool] | None = None
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    advisory_only: bool = False

    @property
    def is_stack_rule(self) -> bool:
        return self.stack_check is not None

    def level(self, tier: str, overrides: Mapping[str, Level] | None = None) -> Level:
        if overrides and self.id in overrides:
            return overrides[self.id]
        if self.advisory_only or tier != "production":
            return Level.ADVISORY
        return Level.MANDATORY

    def applies_to(self, r: Resource) -> bool:
        return r.type in self.types and (self.applies is None or self.applies(r))

    def check_resource(self, r: Resource) -> list[Violation]:
        """Violations of a resource rule by one resource ([] when it does not apply)."""
        if self.check is None or not self.applies_to(r):
            return []
        return [Violation(self.id, m, r.urn, r.name) for m in self.check(r)]

    def check_manifest(self, m: Manifest) -> tuple[int, list[Violation]]:
        """(subjects checked, violations) over a whole manifest."""
        if self.stack_check is not None:
            outcome = self.stack_check(m)
            return outcome.checked, [
                Violation(self.id, msg, r.urn if r else None, r.name if r else None)
                for r, msg in outcome.failures
            ]
        subjects = [r for r in m.resources if self.applies_to(r)]
        return len(subjects), [v for r in subjects for v in self.check_resource(r)]


# ---------------------------------------------------------------------------------------------
# Small readers
# ---------------------------------------------------------------------------------------------


def _is_false(value: Any) -> bool:
    """Explicitly off (unknown values are not judged offline)."""
    return value is False or value == "false"


def _unknown(value: Any) -> bool:
    return value == KNOWN_AFTER_DEPLOY


def _not_on(value: Any) -> bool:
    """Off or unset, where unset means off; unknown values are not judged."""
    return not _unknown(value) and value is not True and value != "true"


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not is_known(value):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _source(r: Resource) -> bool:
    return not is_replica(r)


def _burstable(instance_class: Any) -> bool:
    if not isinstance(instance_class, str):
        return False
    try:
        return instance_classes.resolve(instance_class).burstable
    except ValueError:
        return instance_class.startswith("db.t")


# ---------------------------------------------------------------------------------------------
# Resource rules
# ---------------------------------------------------------------------------------------------

# Most resource rules test one input; these build their check, so the catalogue entry names the
# input and what its wrong value costs, and the message reads "<input> is <state>: <cost>".


def _must_be_true(prop: str, cost: str) -> ResourceCheck:
    """Fails when `prop` is off or unset (AWS's default for these is off)."""
    return lambda r: [f"{prop} is not true: {cost}"] if _not_on(r.get(prop)) else []


def _must_not_be(prop: str, value: bool, cost: str) -> ResourceCheck:
    """Fails when `prop` is explicitly `value` (unset is AWS's safe default)."""
    text = str(value).lower()
    return lambda r: [f"{prop} is {text}: {cost}"] if r.get(prop) in (value, text) else []


def _must_be_set(prop: str, cost: str) -> ResourceCheck:
    """Fails when `prop` is empty or unset (a value known only after deploy is set)."""
    return lambda r: [f"{prop} is unset: {cost}"] if not r.get(prop) else []


def _rds_enhanced_monitoring(r: Resource) -> list[str]:
    interval = r.get("monitoringInterval")
    if _unknown(interval):
        return []
    if not _int(interval):
        return ["monitoringInterval is 0 or unset: no enhanced monitoring (OS metrics)"]
    return []


def _rds_logs(r: Resource) -> list[str]:
    exports = r.get("enabledCloudwatchLogsExports")
    if _unknown(exports):
        return []
    if "postgresql" not in (exports or []):
        return ["enabledCloudwatchLogsExports lacks 'postgresql': logs stay on the instance"]
    return []


def _rds_backups(r: Resource) -> list[str]:
    if _unknown(r.get("backupRetentionPeriod")):
        return []
    days = _int(r.get("backupRetentionPeriod"))
    if (days or 0) < MIN_BACKUP_RETENTION_DAYS:
        return [
            f"backupRetentionPeriod is {days or 0} day(s), below {MIN_BACKUP_RETENTION_DAYS}: "
            "point-in-time recovery is off or too short"
        ]
    return []


def _rds_port(r: Resource) -> list[str]:
    port = r.get("port")
    if _unknown(port) or r.get("engine", "postgres") != "postgres":
        return []
    if port is None or _int(port) == POSTGRES_DEFAULT_PORT:
        return [f"port is the PostgreSQL default ({POSTGRES_DEFAULT_PORT})"]
    return []


def _rds_admin_username(r: Resource) -> list[str]:
    user = r.get("username")
    if isinstance(user, str) and user.lower() in DEFAULT_ADMIN_USERNAMES:
        return [f"username is the default administrator name '{user}'"]
    return []


def _rds_final_snapshot(r: Resource) -> list[str]:
    if r.get("skipFinalSnapshot") is True:
        return ["skipFinalSnapshot is true: deleting the instance keeps no final snapshot"]
    if not r.get("finalSnapshotIdentifier"):
        return ["finalSnapshotIdentifier is unset: RDS refuses the delete or keeps no snapshot"]
    return []


def _kms_rotation(r: Resource) -> list[str]:
    # Only symmetric keys can rotate automatically; KMS.4 does not apply to the others.
    spec = r.get("customerMasterKeySpec") or r.get("keySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and _not_on(r.get("enableKeyRotation")):
        return ["enableKeyRotation is not true: the key material never rotates"]
    return []


def _protected(r: Resource) -> list[str]:
    if not r.protect:
        return ["not protected (`protect=True`): a refactor or `pulumi destroy` can delete it"]
    return []


_RATE_DAYS = re.compile(r"^rate\((\d+) days?\)$")


def _rotation_days(r: Resource) -> int | None:
    rules = r.get("rotationRules")
    if not isinstance(rules, dict):
        return None
    days = _int(rules.get("automaticallyAfterDays"))
    if days is not None:
        return days
    expr = rules.get("scheduleExpression")
    m = _RATE_DAYS.match(expr.strip()) if isinstance(expr, str) else None
    return int(m.group(1)) if m else None


def _rotation_period(r: Resource) -> list[str]:
    rules = r.get("rotationRules")
    if not is_known(rules):
        return []
    if not isinstance(rules, dict) or not (
        rules.get("automaticallyAfterDays") or rules.get("scheduleExpression")
    ):
        return ["rotationRules set no schedule"]
    days = _rotation_days(r)
    if days is not None and days > MAX_ROTATION_DAYS:
        return [f"rotates every {days} days, more than {MAX_ROTATION_DAYS}"]
    return []


def _alarm_actions(r: Resource) -> list[str]:
    if _is_false(r.get("actionsEnabled")):
        return ["actionsEnabled is false: the alarm notifies nobody"]
    actions = r.get("alarmActions")
    if is_known(actions) and not actions:
        return ["alarmActions is empty: the alarm notifies nobody"]
    return []


def _no_open_ingress(r: Resource) -> list[str]:
    if r.type == SG_INGRESS:
        sources = [r.get("cidrIpv4"), r.get("cidrIpv6")]
    else:
        sources = [
            c
            for rule in r.get("ingress") or []
            if isinstance(rule, dict)
            for c in (rule.get("cidrBlocks") or []) + (rule.get("ipv6CidrBlocks") or [])
        ]
    opened = sorted({s for s in sources if s in _OPEN_CIDRS})
    return [f"ingress is open to {', '.join(opened)}"] if opened else []


def _public_statements(r: Resource) -> list[str]:
    """Allow statements open to anyone: Principal `*` (or {"AWS": "*"}), or a NotPrincipal,
    with no Condition to narrow them (Security Hub KMS.5's "publicly accessible")."""
    text = r.get(RESOURCE_POLICIES.get(r.type, ""))
    if not isinstance(text, str) or not is_known(text):
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    if isinstance(statements, dict):
        statements = [statements]
    out = []
    for st in statements if isinstance(statements, list) else []:
        if not isinstance(st, dict) or st.get("Effect") != "Allow" or st.get("Condition"):
            continue
        principal = st.get("Principal")
        aws = principal.get("AWS") if isinstance(principal, dict) else None
        everyone = principal == "*" or aws == "*" or (isinstance(aws, list) and "*" in aws)
        if everyone or "NotPrincipal" in st:
            out.append(
                f"statement {st.get('Sid') or '(no Sid)'} allows "
                f"{'anyone but the NotPrincipal' if 'NotPrincipal' in st else 'anyone'} "
                "with no condition"
            )
    return out


# ---------------------------------------------------------------------------------------------
# Stack rules
# ---------------------------------------------------------------------------------------------


def _alarm_targets(alarm: Resource) -> list[tuple[str, Any]]:
    """(metric name, DBInstanceIdentifier value) for each AWS/RDS metric an alarm watches."""
    out: list[tuple[str, Any]] = []
    metrics: list[Mapping[str, Any]] = [alarm.inputs]
    for q in alarm.get("metricQueries") or []:
        if isinstance(q, dict) and isinstance(q.get("metric"), dict):
            metrics.append(q["metric"])
    for metric in metrics:
        name = metric.get("metricName")
        if not isinstance(name, str) or metric.get("namespace") not in (None, "AWS/RDS"):
            continue
        dims = metric.get("dimensions")
        ident = dims.get("DBInstanceIdentifier") if isinstance(dims, dict) else dims
        out.append((name, ident))
    return out


def required_alarms(instance: Resource) -> tuple[str, ...]:
    """The metric names the full alarm set of this DB instance must cover."""
    needed = list(ALARMS_EVERY_INSTANCE)
    needed += ALARMS_REPLICA_ONLY if is_replica(instance) else ALARMS_SOURCE_ONLY
    if _burstable(instance.get("instanceClass")):
        needed += ALARMS_BURSTABLE_ONLY
    return tuple(needed)


def _alarm_set(m: Manifest) -> StackOutcome:
    instances = m.db_instances()
    watched: dict[str, set[str]] = {i.urn: set() for i in instances}
    for alarm in m.of_type(METRIC_ALARM):
        if _is_false(alarm.get("actionsEnabled")):
            continue
        for metric, ident in _alarm_targets(alarm):
            for inst in instances:
                if points_to(alarm, ident, inst, m.region):
                    watched[inst.urn].add(metric)
    failures = []
    for inst in instances:
        missing = [x for x in required_alarms(inst) if x not in watched[inst.urn]]
        if missing:
            failures.append((inst, f"no alarm on {', '.join(missing)}"))
    return StackOutcome(len(instances), tuple(failures))


def selected_instances(m: Manifest, selection: Resource) -> list[Resource]:
    """The DB instances an AWS Backup selection picks (by ARN, by tag, filtered by conditions)."""
    instances = m.db_instances()
    picked: dict[str, Resource] = {}
    resources = selection.get("resources")
    if _unknown(resources):
        picked.update({i.urn: i for i in instances if i.urn in selection.dependencies})
    for value in resources if isinstance(resources, list) else []:
        picked.update({i.urn: i for i in instances if points_to(selection, value, i, m.region)})
    for tag in selection.get("selectionTags") or []:
        if isinstance(tag, dict) and str(tag.get("type", "STRINGEQUALS")).upper() == "STRINGEQUALS":
            for i in instances:
                if (i.get("tags") or {}).get(tag.get("key")) == tag.get("value"):
                    picked[i.urn] = i
    conditions = selection.get("conditions") or []
    if isinstance(conditions, dict):
        conditions = [conditions]
    if conditions and not resources and not selection.get("selectionTags"):
        picked = {i.urn: i for i in instances}  # conditions alone filter every resource
    for cond in conditions:
        if isinstance(cond, dict):
            picked = {u: i for u, i in picked.items() if _meets(i, cond)}
    for value in selection.get("notResources") or []:
        picked = {u: i for u, i in picked.items() if not points_to(selection, value, i, m.region)}
    return [picked[u] for u in sorted(picked)]


def _meets(instance: Resource, cond: Mapping[str, Any]) -> bool:
    tags = instance.get("tags") or {}

    def tag(key: Any) -> Any:
        prefix = "aws:ResourceTag/"
        return (
            tags.get(key[len(prefix) :])
            if isinstance(key, str) and key.startswith(prefix)
            else None
        )

    checks = (
        ("stringEquals", lambda v, want: v == want),
        ("stringNotEquals", lambda v, want: v != want),
        ("stringLikes", lambda v, want: v is not None and fnmatch.fnmatchcase(v, want)),
        ("stringNotLikes", lambda v, want: v is None or not fnmatch.fnmatchcase(v, want)),
    )
    for key, test in checks:
        for c in cond.get(key) or []:
            if isinstance(c, dict) and not test(tag(c.get("key")), c.get("value")):
                return False
    return True


def _plan_of(m: Manifest, selection: Resource) -> Resource | None:
    for plan in m.of_type(BACKUP_PLAN):
        if points_to(selection, selection.get("planId"), plan, m.region):
            return plan
    return None


def plans_selecting(m: Manifest, instance: Resource) -> list[Resource]:
    """The backup plans (with at least one rule) whose selections pick this instance."""
    out: dict[str, Resource] = {}
    for sel in m.of_type(BACKUP_SELECTION):
        plan = _plan_of(m, sel)
        if plan is None or not plan.get("rules"):
            continue
        if any(i.urn == instance.urn for i in selected_instances(m, sel)):
            out[plan.urn] = plan
    return [out[u] for u in sorted(out)]


def _backup_plan(m: Manifest) -> StackOutcome:
    sources = m.source_instances()
    failures = [
        (i, "no AWS Backup plan selects it (by ARN or by tag)")
        for i in sources
        if not plans_selecting(m, i)
    ]
    return StackOutcome(len(sources), tuple(failures))


def master_secrets(m: Manifest, instance: Resource) -> list[Resource]:
    """Secrets that store this instance's master credential.

    Found through a secret version that is written from the instance (its host) or from the
    generated password the instance uses.
    """
    passwords = {
        d for d in instance.dependencies if getattr(m.by_urn.get(d), "type", "") == RANDOM_PASSWORD
    }
    out: dict[str, Resource] = {}
    for version in m.of_type(SECRET_VERSION):
        deps = set(version.dependencies)
        if instance.urn not in deps and not passwords & deps:
            continue
        for secret in m.of_type(SECRET):
            if points_to(version, version.get("secretId"), secret, m.region):
                out[secret.urn] = secret
    return [out[u] for u in sorted(out)]


def _rotations_of(m: Manifest, secret: Resource) -> list[Resource]:
    return [
        rot
        for rot in m.of_type(SECRET_ROTATION)
        if not _is_false(rot.get("rotationEnabled"))
        and points_to(rot, rot.get("secretId"), secret, m.region)
    ]


def _master_rotated(m: Manifest) -> StackOutcome:
    sources = m.source_instances()
    failures: list[tuple[Resource | None, str]] = []
    for inst in sources:
        if inst.get("manageMasterUserPassword") is True:
            continue  # RDS-managed master secrets rotate every 7 days unless changed
        secrets = master_secrets(m, inst)
        if not secrets:
            failures.append((inst, "no Secrets Manager secret holds its master credential"))
        for secret in secrets:
            if not _rotations_of(m, secret):
                failures.append((inst, f"master secret {secret.name} has no rotation schedule"))
    return StackOutcome(len(sources), tuple(failures))


def _duration_minutes(text: Any) -> int | None:
    m = re.match(r"^(\d+)h$", text.strip()) if isinstance(text, str) else None
    return int(m.group(1)) * 60 if m else None


# Secrets Manager crons may name the nth weekday of every few months, e.g.
# `cron(0 14 ? 1/2 TUE#1 *)`; such a window is placed on every such weekday, which can only
# report more collisions than the real schedule has, never fewer.
_NTH_WEEKDAY_CRON = re.compile(
    r"^cron\((?P<min>\d{1,2}) (?P<hour>\d{1,2}) \? \S+ (?P<dow>[A-Za-z]{3}|[1-7])(#[1-5]|L)? \*\)$"
)


def _rotation_window(expr: str, duration: Any) -> windows.Window:
    nth = _NTH_WEEKDAY_CRON.match(expr.strip())
    if nth:
        expr = f"cron({nth['min']} {nth['hour']} ? * {nth['dow']} *)"
    start = cron_window(expr, 1)
    # Without a Duration, a daily or weekly rotation window closes at the end of the UTC day
    # (Secrets Manager user guide, "Rotation schedules").
    length = _duration_minutes(duration) or windows.MINUTES_PER_DAY - (
        start.start % windows.MINUTES_PER_DAY
    )
    return windows.Window(start.start, length, start.daily)


def declared_windows(m: Manifest) -> list[tuple[Resource, windows.CalendarEntry]]:
    """Every recurring window the declared resources open (what AWS will actually schedule)."""
    out: list[tuple[Resource, windows.CalendarEntry]] = []

    def add(
        r: Resource, name: str, kind: str, parse: Callable[..., windows.Window], *args: Any
    ) -> None:
        # A schedule this checker cannot place (rate(), other crons) is not judged.
        with contextlib.suppress(windows.WindowError):
            out.append((r, windows.CalendarEntry(name, parse(*args), kind)))

    for r in m.db_instances():
        label = r.physical_name or r.name
        mw = r.get("maintenanceWindow")
        if isinstance(mw, str):
            add(r, f"{label} maintenance", "maintenance", windows.parse_weekly, mw)
        bw = r.get("backupWindow")
        if isinstance(bw, str) and (_int(r.get("backupRetentionPeriod")) or 0) > 0:
            add(r, f"{label} automated backup", "backup", windows.parse_daily, bw)
    for rot in m.of_type(SECRET_ROTATION):
        rules = rot.get("rotationRules")
        if isinstance(rules, dict) and isinstance(rules.get("scheduleExpression"), str):
            expr, duration = rules["scheduleExpression"], rules.get("duration")
            add(rot, f"{rot.name} rotation", "rotation", _rotation_window, expr, duration)
    for plan in m.of_type(BACKUP_PLAN):
        for rule in plan.get("rules") or []:
            if not isinstance(rule, dict) or not isinstance(rule.get("schedule"), str):
                continue
            start = _int(rule.get("startWindow")) or BACKUP_DEFAULT_START_WINDOW_MINUTES
            name = f"{plan.name} rule {rule.get('ruleName')}"
            add(plan, name, "backup-plan", cron_window, rule["schedule"], start)
    for rt in m.of_type(RESTORE_TESTING_PLAN):
        hours = _int(rt.get("startWindowHours"))
        expr = rt.get("scheduleExpression")
        if hours and isinstance(expr, str):
            add(rt, f"{rt.name} restore test", "restore-test", cron_window, expr, hours * 60)
    return out


def _window_collisions(m: Manifest) -> StackOutcome:
    declared = declared_windows(m)
    owner = {id(entry): r for r, entry in declared}
    failures: list[tuple[Resource | None, str]] = []
    for a, b, at in windows.collisions([e for _, e in declared]):
        # A restore test may run while a backup job copies (same exemption as the config check).
        if {a.kind, b.kind} == {"backup-plan", "restore-test"}:
            continue
        failures.append(
            (
                owner[id(a)],
                f"{a.name} '{a.window.to_rds()}' overlaps {b.name} '{b.window.to_rds()}' "
                f"on {windows.day_name(at)}",
            )
        )
    return StackOutcome(len(declared), tuple(failures))


def dr_region(m: Manifest) -> str | None:
    """The DR region: from the stack config when known, else any other region the stack uses."""
    if m.dr_region:
        return m.dr_region
    others = sorted(
        {m.region_of(r) for r in m.resources if r.type == AWS_PROVIDER or r.custom} - {m.region}
    )
    return others[0] if others else None


def _in_region(m: Manifest, r: Resource, region: str) -> bool:
    return m.region_of(r) == region


def _dr_backup_copies(m: Manifest) -> StackOutcome:
    dr = dr_region(m)
    if dr is None:
        return StackOutcome(0)
    dr_vaults = [v for v in m.of_type(BACKUP_VAULT) if _in_region(m, v, dr)]
    failures: list[tuple[Resource | None, str]] = []
    sources = m.source_instances()
    for inst in sources:
        plans = plans_selecting(m, inst)
        copies = [
            plan
            for plan in plans
            for rule in plan.get("rules") or []
            if isinstance(rule, dict)
            for action in rule.get("copyActions") or []
            if isinstance(action, dict) and copies_to(m, plan, action, dr, dr_vaults)
        ]
        if not plans:
            failures.append((inst, f"no backup plan selects it, so nothing is copied to {dr}"))
        elif not copies:
            failures.append((inst, f"no backup plan rule copies its recovery points to {dr}"))
    return StackOutcome(len(sources), tuple(failures))


def copies_to(
    m: Manifest, plan: Resource, action: Mapping[str, Any], dr: str, dr_vaults: list[Resource]
) -> bool:
    dest = action.get("destinationVaultArn")
    if isinstance(dest, str) and is_known(dest):
        return arn_region(dest) == dr
    return any(v.urn in plan.dependencies for v in dr_vaults)


def _dr_point_in_time(m: Manifest) -> StackOutcome:
    dr = dr_region(m)
    if dr is None:
        return StackOutcome(0)
    failures: list[tuple[Resource | None, str]] = []
    sources = [i for i in m.source_instances() if _in_region(m, i, m.region)]
    for inst in sources:
        replicated = any(
            _in_region(m, rep, dr)
            and points_to(rep, rep.get("sourceDbInstanceArn"), inst, m.region)
            for rep in m.of_type(BACKUPS_REPLICATION)
        )
        replica = any(
            _in_region(m, r, dr) and m.replication_source(r) == inst
            for r in m.db_instances()
            if is_replica(r)
        )
        if not (replicated or replica):
            failures.append(
                (inst, f"neither automated-backups replication nor a read replica in {dr}")
            )
    return StackOutcome(len(sources), tuple(failures))


def _dr_secret_replica(m: Manifest) -> StackOutcome:
    dr = dr_region(m)
    if dr is None:
        return StackOutcome(0)
    failures: list[tuple[Resource | None, str]] = []
    secrets = {s.urn: s for i in m.source_instances() for s in master_secrets(m, i)}
    for secret in secrets.values():
        regions = [
            rep.get("region") for rep in secret.get("replicas") or [] if isinstance(rep, dict)
        ]
        if dr not in regions:
            failures.append((secret, f"not replicated to {dr}: a DR rebuild could not log in"))
    return StackOutcome(len(secrets), tuple(failures))


# ---------------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------------

_RDS = frozenset({RDS_INSTANCE})

CATALOGUE: tuple[Rule, ...] = (
    Rule(
        id="rds-storage-encrypted",
        description="DB instances encrypt storage at rest",
        control="RDS.3",
        remediation="database.storageEncrypted: true (replaces the instance: restore into it)",
        types=_RDS,
        check=_must_be_true(
            "storageEncrypted", "the instance's storage and snapshots are plaintext"
        ),
    ),
    Rule(
        id="rds-not-public",
        description="DB instances are not publicly accessible",
        control="RDS.2",
        remediation="publiclyAccessible: false",
        types=_RDS,
        check=_must_not_be(
            "publiclyAccessible", True, "the instance gets a public DNS name and address"
        ),
    ),
    Rule(
        id="rds-multi-az",
        description="DB instances of record run Multi-AZ",
        control="RDS.5",
        remediation="database.multiAz: true",
        types=_RDS,
        applies=_source,
        check=_must_be_true("multiAz", "an AZ outage takes the database down"),
    ),
    Rule(
        id="rds-enhanced-monitoring",
        description="DB instances have enhanced monitoring",
        control="RDS.6",
        remediation="database.monitoringInterval: 1..60 with the monitoring role",
        types=_RDS,
        check=_rds_enhanced_monitoring,
    ),
    Rule(
        id="rds-deletion-protection",
        # Read replicas are left out on purpose: they hold no data of their own, and a
        # protected replica cannot be removed or moved by a plain deploy (infra review #3).
        description="DB instances of record have deletion protection (read replicas excepted)",
        control="RDS.8",
        remediation="database.deletionProtection: true",
        types=_RDS,
        applies=_source,
        check=_must_be_true("deletionProtection", "DeleteDBInstance would succeed"),
    ),
    Rule(
        id="rds-logs-exported",
        description="DB instances of record publish PostgreSQL logs to CloudWatch Logs",
        control="RDS.9",
        remediation="enabledCloudwatchLogsExports: [postgresql, upgrade]",
        types=_RDS,
        applies=_source,
        check=_rds_logs,
    ),
    Rule(
        id="rds-iam-auth",
        description="DB instances of record have IAM database authentication",
        control="RDS.10",
        remediation="database.iamAuth: true",
        types=_RDS,
        applies=_source,
        check=_must_be_true(
            "iamDatabaseAuthenticationEnabled", "every login needs a database password"
        ),
    ),
    Rule(
        id="rds-automated-backups",
        description=f"DB instances of record keep >= {MIN_BACKUP_RETENTION_DAYS} days of backups",
        control="RDS.11",
        remediation=f"backup.retentionDays: >= {MIN_BACKUP_RETENTION_DAYS}",
        types=_RDS,
        applies=_source,
        check=_rds_backups,
    ),
    Rule(
        id="rds-minor-upgrades",
        description="DB instances take automatic minor version upgrades",
        control="RDS.13",
        remediation="database.autoMinorVersionUpgrade: true",
        types=_RDS,
        check=_must_not_be(
            "autoMinorVersionUpgrade", False, "security patches wait for a manual upgrade"
        ),
    ),
    Rule(
        id="rds-copy-tags-to-snapshots",
        description="DB instances copy tags to snapshots",
        control="RDS.17",
        remediation="copyTagsToSnapshot: true",
        types=_RDS,
        check=_must_be_true("copyTagsToSnapshot", "snapshots lose owner and stack tags"),
    ),
    Rule(
        id="rds-non-default-port",
        description="DB instances do not use the engine's default port",
        control="RDS.23",
        remediation="database.port: another port (clients and security groups follow)",
        types=_RDS,
        check=_rds_port,
        # Advisory everywhere: a non-default port hides nothing from a scanner inside the VPC
        # and breaks every client's defaults; the security group is the control that matters.
        advisory_only=True,
    ),
    Rule(
        id="rds-custom-admin-username",
        description="DB instances of record use a custom administrator user name",
        control="RDS.25",
        remediation="database.masterUsername: not postgres/admin (replaces the instance)",
        types=_RDS,
        applies=_source,
        check=_rds_admin_username,
    ),
    Rule(
        id="rds-final-snapshot",
        description="DB instances of record take a final snapshot when deleted",
        control=None,
        remediation="database.skipFinalSnapshot: false",
        types=_RDS,
        applies=_source,
        check=_rds_final_snapshot,
    ),
    Rule(
        id="stateful-protected",
        description="DB instances of record, KMS keys, secrets and backup vaults are protected",
        control=None,
        remediation="pass protect=True for the resource (stateful resources in prod)",
        types=frozenset(PROTECTED_TYPES),
        applies=_source,
        check=_protected,
    ),
    Rule(
        id="kms-key-rotation",
        description="Customer managed KMS keys rotate their key material",
        control="KMS.4",
        remediation="enable_key_rotation=True",
        types=frozenset({KMS_KEY}),
        check=_kms_rotation,
    ),
    Rule(
        id="backup-vault-encrypted",
        description="Backup vaults encrypt recovery points with a customer managed key",
        control="Backup.1",
        remediation="kms_key_arn=<the stack's backup CMK>",
        types=frozenset({BACKUP_VAULT}),
        check=_must_be_set(
            "kmsKeyArn", "recovery points use the AWS managed key, not the stack's CMK"
        ),
    ),
    Rule(
        id="secret-cmk",
        description="Secrets are encrypted with a customer managed key",
        control=None,
        remediation="kms_key_id=<the vault's CMK>",
        types=frozenset({SECRET}),
        check=_must_be_set("kmsKeyId", "the secret is encrypted with the AWS managed key"),
    ),
    Rule(
        id="secret-rotation-period",
        description=f"Secret rotations run at least every {MAX_ROTATION_DAYS} days",
        control="SecretsManager.4",
        remediation=f"vault.rotationDays: <= {MAX_ROTATION_DAYS}",
        types=frozenset({SECRET_ROTATION}),
        check=_rotation_period,
    ),
    Rule(
        id="sns-topic-encrypted",
        description="Alarm topics are KMS-encrypted",
        control=None,
        remediation="kms_master_key_id=<a CMK CloudWatch may use>",
        types=frozenset({SNS_TOPIC}),
        check=_must_be_set("kmsMasterKeyId", "alarm notifications are stored unencrypted"),
    ),
    Rule(
        id="alarm-has-actions",
        description="CloudWatch alarms notify someone",
        control="CloudWatch.15",
        remediation="alarm_actions=[<the tier's SNS topic>]",
        types=frozenset({METRIC_ALARM}),
        check=_alarm_actions,
    ),
    Rule(
        id="no-open-ingress",
        description="Security groups admit no traffic from 0.0.0.0/0 or ::/0",
        control="EC2.19",
        remediation="network.allowedCidrs / allowedSecurityGroupIds: name the clients",
        types=frozenset({SG_INGRESS, SECURITY_GROUP}),
        check=_no_open_ingress,
    ),
    Rule(
        id="no-public-resource-policy",
        description="Key, vault, secret, trust and endpoint policies allow no one without a "
        "condition",
        control="KMS.5",
        remediation="name the principals, or narrow a `*` with a condition such as "
        "aws:PrincipalAccount",
        types=frozenset(RESOURCE_POLICIES),
        check=_public_statements,
    ),
    Rule(
        id="subnet-no-public-ip",
        description="Database subnets do not assign public IP addresses",
        control="EC2.15",
        remediation="map_public_ip_on_launch=False",
        types=frozenset({SUBNET}),
        check=_must_not_be("mapPublicIpOnLaunch", True, "instances in it get public addresses"),
    ),
    # --- stack rules ---
    Rule(
        id="db-alarms-complete",
        description="Every DB instance has the full alarm set",
        control=None,
        remediation="declare the instance's alarms (infra/components/alarms.py)",
        types=frozenset({METRIC_ALARM}),
        stack_check=_alarm_set,
    ),
    Rule(
        id="db-backup-plan",
        description="Every DB instance of record is selected by an AWS Backup plan",
        control="RDS.26",
        remediation="select the instance (ARN or tag) in the stack's backup plan",
        types=frozenset({BACKUP_PLAN, BACKUP_SELECTION}),
        stack_check=_backup_plan,
    ),
    Rule(
        id="db-master-secret-rotated",
        description="Every DB instance's master secret has a rotation schedule",
        control="SecretsManager.1",
        remediation="declare a SecretRotation for the master secret (vault.rotationDays)",
        types=frozenset({SECRET_ROTATION}),
        stack_check=_master_rotated,
    ),
    Rule(
        id="windows-no-collision",
        description="No maintenance, backup, rotation or backup-plan window overlaps another",
        control=None,
        remediation="move one of the windows (Pulumi.<stack>.yaml); see the calendar in synth",
        types=_RDS,
        stack_check=_window_collisions,
    ),
    Rule(
        id="dr-backup-copies",
        description="Where DR is configured, backup plans copy recovery points to the DR region",
        control=None,
        remediation="add a copy action to a vault in dr.region to the plan's rules",
        types=frozenset({BACKUP_PLAN, BACKUP_SELECTION, BACKUP_VAULT}),
        stack_check=_dr_backup_copies,
    ),
    Rule(
        id="dr-point-in-time",
        description="Where DR is configured, automated backups (PITR) reach the DR region",
        control=None,
        remediation="dr.backupReplication: true (or dr.crossRegionReplica: true)",
        types=frozenset({BACKUPS_REPLICATION}),
        stack_check=_dr_point_in_time,
    ),
    Rule(
        id="dr-secret-replica",
        description="Where DR is configured, the master secret is replicated to the DR region",
        control=None,
        remediation="vault.replicateToDr: true",
        types=frozenset({SECRET}),
        stack_check=_dr_secret_replica,
    ),
)

BY_ID: dict[str, Rule] = {r.id: r for r in CATALOGUE}


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict on one manifest."""

    rule: Rule
    level: Level
    checked: int
    violations: tuple[Violation, ...]

    @property
    def status(self) -> str:
        if self.violations:
            return "fail"
        return "pass" if self.checked else "n/a"


@dataclass(frozen=True)
class Report:
    """Every rule's verdict on one manifest."""

    stack: str
    tier: str
    results: tuple[RuleResult, ...]

    @property
    def mandatory_failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.violations and r.level is Level.MANDATORY]

    def failed(self, level: Level | None = None) -> set[str]:
        return {
            r.rule.id for r in self.results if r.violations and (level is None or r.level is level)
        }


def evaluate(
    m: Manifest,
    *,
    rules: Iterable[Rule] = CATALOGUE,
    tier: str | None = None,
    overrides: Mapping[str, Level] | None = None,
) -> Report:
    """Run every rule over a manifest; the tier (default: the manifest's) sets the levels."""
    effective_tier = tier or m.tier
    results = []
    for rule in rules:
        checked, violations = rule.check_manifest(m)
        results.append(
            RuleResult(rule, rule.level(effective_tier, overrides), checked, tuple(violations))
        )
    return Report(m.stack, effective_tier, tuple(results))
