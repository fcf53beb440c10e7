"""Monitoring: per-tier SNS topics, per-instance alarms, event routing, health check, dashboard.

Thresholds come from config (defaults from the runbooks) and are turned into absolute values
per instance where the instance is what matters: free storage as a share of the first
allocation (below RDS's autoscaling trigger, so it fires only when autoscaling cannot keep up or
the ceiling is reached), free memory as a share of the class's memory, connections as a share of
the class's default `max_connections` (`policy.instance_classes`, from DBInstanceClassMemory).
Descriptions state the levels in GiB, %, ms and counts, as a person reads them at night. Every
alarm exists twice, a warning and a critical tier, each notifying (and clearing on) its tier's
topic. Events that are not metrics (RDS events, failed backup, copy and restore jobs, failed
rotations, calls that weaken protection) go to the critical topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_aws as aws

from infra.components._common import (
    GUARDED_KEY_ACTIONS,
    NO_GUARD,
    REPOLICY_ACTION,
    KeyGuard,
    child,
    cmk,
    created_keys,
    key_policy,
    region_provider,
    tags,
)
from infra.config import SubscriptionConfig, Threshold, ThresholdsConfig
from infra.naming import Names
from policy import instance_classes

TIERS = ("warning", "critical")
GIB = 1024**3
# Route 53 publishes health-check metrics only in us-east-1, so the alarm (and the topic it
# notifies, alarms cannot cross regions) must live there.
HEALTH_CHECK_METRICS_REGION = "us-east-1"
# runbooks: a health check failing for more than 5 minutes is critical
HEALTH_CHECK_FAILING_MINUTES = 5
# Every category that means the instance is down, degraded, changed, unprotected or gone
# (aws_rules.RDS_EVENT_CATEGORIES has the full list RDS accepts; RDS.20 asks for at least
# configuration change, failure and maintenance). Left out: backup, creation, restoration and
# security patching, which report routine work.
RDS_EVENT_CATEGORIES = (
    "availability",
    "configuration change",
    "deletion",
    "failover",
    "failure",
    "low storage",
    "maintenance",
    "notification",
    "read replica",
    "recovery",
    "security",
)
# A changed parameter group changes every instance at its next reboot (RDS.21).
RDS_PARAMETER_GROUP_CATEGORIES = ("configuration change",)
BACKUP_FAILED_STATES = ("FAILED", "ABORTED", "EXPIRED")
# botocore backup CopyJobState: CREATED, RUNNING, COMPLETED, FAILED, PARTIAL (no ABORTED).
COPY_FAILED_STATES = ("FAILED", "PARTIAL")
# botocore backup RestoreJobStatus; restore-testing jobs are restore jobs (events carry `status`).
RESTORE_FAILED_STATUSES = ("ABORTED", "FAILED")
# Calls that make the data or its backups unreadable or unprotected (security H-1): they page
# whoever makes them, the deploy role included. They reach EventBridge from CloudTrail, which
# needs a trail logging management events in the region (docs/vault-backups-alarms.md).
PROTECTION_CALLS = {
    "aws.kms": tuple(a.removeprefix("kms:") for a in (*GUARDED_KEY_ACTIONS, REPOLICY_ACTION)),
    "aws.backup": ("DeleteBackupVaultLockConfiguration", "DeleteBackupVaultAccessPolicy"),
    "aws.rds": ("DeleteDBInstance",),
}
ROTATION_FAILED_EVENTS = ("RotationFailed", "RotationAbandoned", "TestRotationFailed")
# Services that publish to the topics: CloudWatch alarms, EventBridge rules, RDS events.
PUBLISHERS = ("cloudwatch.amazonaws.com", "events.amazonaws.com", "events.rds.amazonaws.com")


# ---------------------------------------------------------------------------------------------
# What to alarm on (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One RDS metric alarmed on, and how a config threshold becomes the alarm's threshold."""

    field: str
    """ThresholdsConfig field"""
    slug: str
    """short name in the alarm name"""
    metric: str
    """AWS/RDS metric name"""
    statistic: str
    comparison: str
    period: int
    """seconds per datapoint"""
    evaluation_periods: int
    """datapoints that must breach (period x this = how long before it fires)"""
    treat_missing_data: str
    scope: str
    """'all', 'replica' (replicas only) or 'burstable' (burstable classes only)"""
    unit: str
    """how the config value is read: percent-storage, percent-memory, percent-connections,
    ms, gib or plain"""


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("cpu_percent", "cpu", "CPUUtilization", "Average", "GreaterThanThreshold",
               300, 3, "missing", "all", "plain"),
    MetricSpec("free_storage_percent", "free-storage", "FreeStorageSpace", "Minimum",
               "LessThanThreshold", 300, 1, "missing", "all", "percent-storage"),
    MetricSpec("freeable_memory_percent", "freeable-memory", "FreeableMemory", "Average",
               "LessThanThreshold", 300, 3, "missing", "all", "percent-memory"),
    MetricSpec("connections_percent", "connections", "DatabaseConnections", "Maximum",
               "GreaterThanThreshold", 300, 2, "missing", "all", "percent-connections"),
    MetricSpec("read_latency_ms", "read-latency", "ReadLatency", "Average",
               "GreaterThanThreshold", 60, 5, "missing", "all", "ms"),
    MetricSpec("write_latency_ms", "write-latency", "WriteLatency", "Average",
               "GreaterThanThreshold", 60, 5, "missing", "all", "ms"),
    MetricSpec("disk_queue_depth", "disk-queue-depth", "DiskQueueDepth", "Average",
               "GreaterThanThreshold", 60, 5, "missing", "all", "plain"),
    MetricSpec("max_used_transaction_ids", "max-used-xids", "MaximumUsedTransactionIDs",
               "Maximum", "GreaterThanThreshold", 300, 1, "missing", "all", "plain"),
    # Absent when no slot exists: no data is healthy.
    MetricSpec("replication_slot_lag_gib", "replication-slot-lag", "OldestReplicationSlotLag",
               "Maximum", "GreaterThanThreshold", 300, 1, "notBreaching", "all", "gib"),
    MetricSpec("transaction_logs_disk_percent", "transaction-logs-disk",
               "TransactionLogsDiskUsage", "Maximum", "GreaterThanThreshold", 300, 1,
               "notBreaching", "all", "percent-storage"),
    MetricSpec("cpu_credit_balance", "cpu-credit-balance", "CPUCreditBalance", "Minimum",
               "LessThanThreshold", 300, 1, "missing", "burstable", "plain"),
    MetricSpec("replica_lag_seconds", "replica-lag", "ReplicaLag", "Maximum",
               "GreaterThanThreshold", 60, 5, "missing", "replica", "plain"),
)  # fmt: skip


# How a plain config value reads (the others carry their unit in MetricSpec.unit).
_PLAIN_SUFFIX = {
    "cpu_percent": " %",
    "disk_queue_depth": " outstanding I/Os",
    "max_used_transaction_ids": " transaction IDs",
    "cpu_credit_balance": " CPU credits",
    "replica_lag_seconds": " s",
}


@dataclass(frozen=True)
class AlarmDef:
    """One alarm of one instance, with its absolute threshold and how to say it."""

    spec: MetricSpec
    tier: str
    threshold: float
    """the value sent to CloudWatch, in the metric's own unit"""
    level: str = ""
    """the threshold as a person reads it (GiB, %, ms, counts)"""

    @property
    def description(self) -> str:
        minutes = self.spec.period * self.spec.evaluation_periods // 60
        return (
            f"{self.tier}: {self.spec.metric} {_op(self.spec.comparison)} {self.level} "
            f"for {minutes} min"
        )


def _gib(value: float) -> str:
    return f"{value / GIB:,.1f} GiB"


def _count(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,}"


def instance_alarms(
    role: str, instance_class: str, allocated_storage: int, thresholds: ThresholdsConfig
) -> list[AlarmDef]:
    """Every alarm an instance gets: both tiers of each metric that applies to it."""
    cls = instance_classes.resolve(instance_class)
    storage = allocated_storage * GIB
    convert: dict[str, Callable[[float], tuple[float, str]]] = {
        "ms": lambda v: (v / 1000, f"{_count(v)} ms"),  # RDS reports latency in seconds
        "gib": lambda v: (v * GIB, f"{_count(v)} GiB"),  # OldestReplicationSlotLag: bytes
        "percent-storage": lambda v: (
            storage * v / 100,
            f"{_gib(storage * v / 100)} ({_count(v)} % of the {allocated_storage} GiB first "
            "allocated)",
        ),
        "percent-memory": lambda v: (
            cls.memory_bytes * v / 100,
            f"{_gib(cls.memory_bytes * v / 100)} ({_count(v)} % of {_gib(cls.memory_bytes)})",
        ),
        "percent-connections": lambda v: (
            round(cls.max_connections * v / 100),
            f"{round(cls.max_connections * v / 100):,} connections ({_count(v)} % of the "
            f"default max_connections {cls.max_connections:,})",
        ),
    }
    out = []
    for spec in METRICS:
        if spec.scope == "replica" and role != "replica":
            continue
        if spec.scope == "burstable" and not cls.burstable:
            continue
        level: Threshold = getattr(thresholds, spec.field)
        for tier in TIERS:
            value = getattr(level, tier)
            if spec.unit == "plain":
                threshold, shown = value, f"{_count(value)}{_PLAIN_SUFFIX[spec.field]}"
            else:
                threshold, shown = convert[spec.unit](value)
            out.append(AlarmDef(spec, tier, threshold, shown))
    return out


def _op(comparison: str) -> str:
    return {"GreaterThanThreshold": ">", "LessThanThreshold": "<"}[comparison]


# ---------------------------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class WatchedInstance:
    """A DB instance to alarm on."""

    key: str
    """short name used in logical names ('primary', a replica's name, 'dr')"""
    role: str
    """'primary' or 'replica'"""
    identifier: pulumi.Input[str]
    """DB instance identifier (the alarms' dimension)"""
    instance_class: str
    """its class, for memory and max_connections"""
    allocated_storage: int
    """its allocated storage, GiB"""
    region: str | None = None
    """another region than the stack's (the cross-region replica), with its provider"""
    provider: pulumi.ProviderResource | None = None
    """provider of that region"""


@dataclass(frozen=True, kw_only=True)
class AlarmsArgs:
    """Inputs of the Alarms component."""

    names: Names
    """physical names of the stack"""
    base_tags: dict[str, str]
    """tags merged into every child"""
    account_id: pulumi.Input[str]
    """the AWS account, for the key and topic policies"""
    region: str
    """the stack's region"""
    instances: tuple[WatchedInstance, ...]
    """the primary and every replica"""
    thresholds: ThresholdsConfig
    """warning and critical levels"""
    subscriptions: tuple[SubscriptionConfig, ...]
    """who is told, per tier"""
    backup_vault_arn: pulumi.Input[str]
    """vault whose failed backup and copy jobs page"""
    health_check_url: str | None
    """readiness URL checked by Route 53, or None"""
    dashboard: bool
    """declare the CloudWatch dashboard"""
    protect: bool
    """protect the topics' KMS keys (prod)"""
    restore_check: bool = False
    """alarm when the daily restore test (scripts.restore_check) fails"""
    restore_check_required: bool = False
    """a day without a restore-test result also pages (production)"""
    break_glass: KeyGuard = NO_GUARD
    """role names that alone may disable or delete the topics' keys (guarded keys only)"""
    max_allocated_storage: int = 0
    """the storage ceiling, GiB (0 = no autoscaling), named in the storage alarms' text"""
    provider_settings: dict[str, object] | None = None
    """the stack's `aws:` settings for the us-east-1 provider of the health check"""
    parameter_groups: tuple[pulumi.Input[str], ...] = ()
    """parameter groups whose configuration changes page"""
    protected: tuple[ProtectedRegion, ...] = ()
    """per region, what the protection-weakened rules watch (the alarms' own keys added)"""


# Published by scripts.restore_check (dbplatform/dr/metrics.py); one result a day is expected.
RESTORE_CHECK_NAMESPACE = "dbplatform/RestoreCheck"
RESTORE_CHECK_METRIC = "RestoreSuccess"
RESTORE_CHECK_PERIOD_SECONDS = 26 * 3600  # a day plus slack for a slow restore


@dataclass(frozen=True)
class ProtectedRegion:
    """The stack's resources of one region whose weakening pages (infra review N3, N4).

    CloudTrail delivers an API call's event to EventBridge in the call's region only, so each
    region with stack keys, vaults or instances gets its own rules and topic.
    """

    region: str
    provider: pulumi.ProviderResource | None
    """None: the stack's region"""
    instance_identifiers: tuple[pulumi.Input[str], ...]
    keys: tuple[aws.kms.Key, ...]
    vault_names: tuple[str, ...]


@dataclass(frozen=True)
class _Topics:
    """The critical and warning topics of one region, and the provider of that region."""

    arns: dict[str, pulumi.Output[str]]
    provider: pulumi.ProviderResource | None


class Alarms(pulumi.ComponentResource):
    """Topics, subscriptions, instance alarms, event routing, health check and dashboard."""

    critical_topic_arn: pulumi.Output[str]
    """the critical tier's topic (stack region)"""
    warning_topic_arn: pulumi.Output[str]
    """the warning tier's topic (stack region)"""
    health_check_id: pulumi.Output[str | None]
    """Route 53 health check, or None"""
    dashboard_name: pulumi.Output[str | None]
    """CloudWatch dashboard, or None"""

    def __init__(
        self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("dbplatform:index:Alarms", name, None, opts)
        self._name, self._args = name, args
        self._topics: dict[str, _Topics] = {}
        n = args.names
        main = self._topics_in(args.region, None)

        for inst in args.instances:
            topics = main if inst.region is None else self._topics_in(inst.region, inst.provider)
            for alarm in instance_alarms(
                inst.role, inst.instance_class, inst.allocated_storage, args.thresholds
            ):
                self._metric_alarm(inst, alarm, topics.arns[alarm.tier])

        # RDS events, per region (a subscription only sees its own region's instances).
        by_region: dict[str | None, list[WatchedInstance]] = {}
        for inst in args.instances:
            by_region.setdefault(inst.region, []).append(inst)
        for region, members in by_region.items():
            suffix = "" if region is None else f"-{region}"
            topics = main if region is None else self._topics[region]
            aws.rds.EventSubscription(
                f"{name}-rds-events{suffix}",
                name=f"{n.prefix}-rds-events",
                sns_topic=topics.arns["critical"],
                source_type="db-instance",
                source_ids=[m.identifier for m in members],
                event_categories=list(RDS_EVENT_CATEGORIES),
                tags=tags(args.base_tags, f"{n.prefix}-rds-events"),
                opts=child(self, provider=topics.provider),
            )
        if args.parameter_groups:
            aws.rds.EventSubscription(
                f"{name}-rds-parameter-events",
                name=f"{n.prefix}-rds-parameter-events",
                sns_topic=main.arns["critical"],
                source_type="db-parameter-group",
                source_ids=list(args.parameter_groups),
                event_categories=list(RDS_PARAMETER_GROUP_CATEGORIES),
                tags=tags(args.base_tags, f"{n.prefix}-rds-parameter-events"),
                opts=child(self),
            )

        self._event_rule(
            "backup-failed",
            "AWS Backup job of the environment's vault failed, aborted or expired",
            pulumi.Output.from_input(args.backup_vault_arn).apply(
                lambda arn: {
                    "source": ["aws.backup"],
                    "detail-type": ["Backup Job State Change"],
                    "detail": {"state": list(BACKUP_FAILED_STATES), "backupVaultArn": [arn]},
                }
            ),
            main.arns["critical"],
        )
        self._event_rule(
            "copy-failed",
            "AWS Backup copy job (to the DR region) from the environment's vault failed",
            pulumi.Output.from_input(args.backup_vault_arn).apply(
                lambda arn: {
                    "source": ["aws.backup"],
                    "detail-type": ["Copy Job State Change"],
                    "detail": {"state": list(COPY_FAILED_STATES), "sourceBackupVaultArn": [arn]},
                }
            ),
            main.arns["critical"],
        )
        self._event_rule(
            "restore-failed",
            "an AWS Backup restore job (the daily restore test among them) failed or was aborted",
            pulumi.Output.from_input(
                {
                    "source": ["aws.backup"],
                    "detail-type": ["Restore Job State Change"],
                    "detail": {"status": list(RESTORE_FAILED_STATUSES)},
                }
            ),
            main.arns["critical"],
        )
        for where in args.protected:
            self._protection_rules(where, main)
        local_ids = [i.identifier for i in args.instances if i.region is None]
        self._event_rule(
            "deletion-protection-off",
            "deletion protection of one of the stack's DB instances was turned off",
            pulumi.Output.all(*local_ids).apply(
                lambda ids: {
                    "source": ["aws.rds"],
                    "detail-type": ["AWS API Call via CloudTrail"],
                    "detail": {
                        "eventName": ["ModifyDBInstance"],
                        "requestParameters": {
                            "deletionProtection": [False],
                            "dBInstanceIdentifier": _identifiers(ids),
                        },
                    },
                }
            ),
            main.arns["critical"],
        )
        secrets_prefix = pulumi.Output.from_input(args.account_id).apply(
            lambda account: (
                f"arn:aws:secretsmanager:{args.region}:{account}:secret:{n.project}/{n.stack}/"
            )
        )
        self._event_rule(
            "rotation-failed",
            "Secrets Manager rotation of one of the environment's secrets failed",
            secrets_prefix.apply(
                lambda prefix: {
                    "source": ["aws.secretsmanager"],
                    "detail-type": ["AWS Service Event via CloudTrail"],
                    "detail": {
                        "eventName": list(ROTATION_FAILED_EVENTS),
                        "additionalEventData": {"SecretId": [{"prefix": prefix}]},
                    },
                }
            ),
            main.arns["critical"],
        )

        if args.restore_check:
            aws.cloudwatch.MetricAlarm(
                f"{name}-restore-check-failed",
                name=n.alarm(n.prefix, "restore-check-critical"),
                alarm_description=f"dbplatform {n.stack} critical: the daily restore test "
                "(dbplatform restore-check) failed"
                + (" or did not run" if args.restore_check_required else ""),
                namespace=RESTORE_CHECK_NAMESPACE,
                metric_name=RESTORE_CHECK_METRIC,
                dimensions={"Stack": n.stack},
                statistic="Minimum",
                comparison_operator="LessThanThreshold",
                threshold=1,
                period=RESTORE_CHECK_PERIOD_SECONDS,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                # In production an untested backup is an unknown backup: silence pages too.
                treat_missing_data="breaching" if args.restore_check_required else "notBreaching",
                alarm_actions=[main.arns["critical"]],
                ok_actions=[main.arns["critical"]],
                tags={**tags(args.base_tags, f"{n.prefix}-restore-check"), "tier": "critical"},
                opts=child(self),
            )

        health_check_id: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.health_check_url is not None:
            health_check_id = self._health_check(args.health_check_url)

        dashboard_name: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.dashboard:
            local = [i for i in args.instances if i.region is None]
            body = pulumi.Output.all(*[i.identifier for i in local], health_check_id).apply(
                lambda v: _dashboard_body(args.region, list(zip(local, v[:-1], strict=True)), v[-1])
            )
            dashboard = aws.cloudwatch.Dashboard(
                f"{name}-dashboard",
                dashboard_name=n.dashboard,
                dashboard_body=body,
                opts=child(self),
            )
            dashboard_name = dashboard.dashboard_name

        self.critical_topic_arn = main.arns["critical"]
        self.warning_topic_arn = main.arns["warning"]
        self.health_check_id = health_check_id
        self.dashboard_name = dashboard_name
        self.register_outputs(
            {
                "critical_topic_arn": self.critical_topic_arn,
                "warning_topic_arn": self.warning_topic_arn,
                "health_check_id": self.health_check_id,
                "dashboard_name": self.dashboard_name,
            }
        )

    # --- topics ---

    def _topics_in(self, region: str, provider: pulumi.ProviderResource | None) -> _Topics:
        """Key, critical and warning topics, policies and subscriptions of one region (once)."""
        if region in self._topics:
            return self._topics[region]
        a, n = self._args, self._args.names
        suffix = "" if region == a.region else f"-{region}"
        key = cmk(
            self,
            f"{self._name}-key{suffix}",
            description=f"dbplatform {n.stack} alarm topics ({region})",
            alias=n.kms_alias("alarms"),
            base_tags=a.base_tags,
            policy=pulumi.Output.from_input(a.account_id).apply(
                lambda account: _key_policy(account, a.break_glass)
            ),
            provider=provider,
            protect=a.protect,
            alias_resource_name=f"{self._name}-key-alias{suffix}",
        )
        arns: dict[str, pulumi.Output[str]] = {}
        for tier in TIERS:
            topic = aws.sns.Topic(
                f"{self._name}-{tier}{suffix}",
                # Topic names are per region: the same name everywhere reads best in a page.
                name=n.topic(tier),
                display_name=f"dbplatform {n.stack} {tier}",
                kms_master_key_id=key.arn,
                tags=tags(a.base_tags, n.topic(tier)),
                opts=child(self, provider=provider),
            )
            aws.sns.TopicPolicy(
                f"{self._name}-{tier}{suffix}",
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, a.account_id).apply(
                    lambda v: _topic_policy(v[0], v[1])
                ),
                opts=child(self, provider=provider),
            )
            for i, sub in enumerate(s for s in a.subscriptions if s.severity == tier):
                aws.sns.TopicSubscription(
                    f"{self._name}-{tier}-{sub.protocol}-{i}{suffix}",
                    topic=topic.arn,
                    protocol=sub.protocol,
                    # Always a secret: an https endpoint carries its integration key in the
                    # URL (PagerDuty), and a `secure:` value must stay one (security M-4).
                    # Neither the manifest, the diff nor the state shows it in plaintext.
                    endpoint=pulumi.Output.secret(sub.endpoint),
                    # PagerDuty-style endpoints confirm themselves; email needs a click.
                    endpoint_auto_confirms=sub.protocol == "https",
                    opts=child(self, provider=provider, additional_secret_outputs=["endpoint"]),
                )
            arns[tier] = topic.arn
        self._topics[region] = _Topics(arns, provider)
        return self._topics[region]

    # --- alarms and rules ---

    def _metric_alarm(
        self, inst: WatchedInstance, alarm: AlarmDef, topic_arn: pulumi.Output[str]
    ) -> aws.cloudwatch.MetricAlarm:
        a, n, spec = self._args, self._args.names, alarm.spec
        metric_name = f"{spec.slug}-{alarm.tier}"
        return aws.cloudwatch.MetricAlarm(
            f"{self._name}-{inst.key}-{metric_name}",
            name=pulumi.Output.from_input(inst.identifier).apply(lambda i: n.alarm(i, metric_name)),
            alarm_description=pulumi.Output.from_input(inst.identifier).apply(
                lambda i: f"dbplatform {n.stack} {i} {alarm.description}"
            ),
            namespace="AWS/RDS",
            metric_name=spec.metric,
            dimensions={"DBInstanceIdentifier": inst.identifier},
            statistic=spec.statistic,
            comparison_operator=spec.comparison,
            threshold=alarm.threshold,
            period=spec.period,
            evaluation_periods=spec.evaluation_periods,
            datapoints_to_alarm=spec.evaluation_periods,
            treat_missing_data=spec.treat_missing_data,
            alarm_actions=[topic_arn],
            ok_actions=[topic_arn],
            tags={**tags(a.base_tags, f"{n.stack}-{inst.key}-{metric_name}"), "tier": alarm.tier},
            opts=child(self, provider=inst.provider),
        )

    def _protection_rules(self, where: ProtectedRegion, main: _Topics) -> None:
        """Page on calls that weaken the stack's own keys, vaults and instances (security H-1).

        Each rule matches the stack's resources only (infra review N3): an account-wide match
        paged on every restore test and drill. Values are matched with EventBridge's content
        filtering (EventBridge user guide, "Content filtering in Amazon EventBridge event
        patterns": `equals-ignore-case`; a list matches any of its values).
        """
        remote = where.provider is not None
        topics = self._topics_in(where.region, where.provider) if remote else main
        suffix = f"-{where.region}" if remote else ""
        own = [k for p, k in created_keys(self) if p is where.provider]
        keys = [*where.keys, *own]
        api_call = ["AWS API Call via CloudTrail"]
        # EventBridge refuses an empty list in a pattern: a region without keys gets no rule.
        # DisableKey, ScheduleKeyDeletion and PutKeyPolicy take the key id or the key ARN, no
        # alias (botocore kms 2014-11-01 DisableKeyRequest/ScheduleKeyDeletionRequest/
        # PutKeyPolicyRequest.KeyId); CloudTrail records the value as the caller sent it, so
        # both forms are listed.
        if keys:
            self._event_rule(
                "protection-kms",
                "one of the stack's KMS keys was disabled, scheduled for deletion or re-policied",
                pulumi.Output.all(*[k.key_id for k in keys], *[k.arn for k in keys]).apply(
                    lambda ids: {
                        "source": ["aws.kms"],
                        "detail-type": api_call,
                        "detail": {
                            "eventName": list(PROTECTION_CALLS["aws.kms"]),
                            "requestParameters": {"keyId": sorted(set(ids))},
                        },
                    }
                ),
                topics.arns["critical"],
                suffix=suffix,
                provider=where.provider,
            )
        if where.vault_names:
            self._event_rule(
                "protection-backup",
                "the lock or access policy of one of the stack's backup vaults was removed",
                pulumi.Output.from_input(
                    {
                        "source": ["aws.backup"],
                        "detail-type": api_call,
                        "detail": {
                            "eventName": list(PROTECTION_CALLS["aws.backup"]),
                            "requestParameters": {"backupVaultName": list(where.vault_names)},
                        },
                    }
                ),
                topics.arns["critical"],
                suffix=suffix,
                provider=where.provider,
            )
        if not where.instance_identifiers:
            return
        self._event_rule(
            "protection-rds",
            "one of the stack's DB instances was deleted",
            pulumi.Output.all(*where.instance_identifiers).apply(
                lambda ids: {
                    "source": ["aws.rds"],
                    "detail-type": api_call,
                    "detail": {
                        "eventName": list(PROTECTION_CALLS["aws.rds"]),
                        "requestParameters": {"dBInstanceIdentifier": _identifiers(ids)},
                    },
                }
            ),
            topics.arns["critical"],
            suffix=suffix,
            provider=where.provider,
        )

    def _event_rule(
        self,
        slug: str,
        description: str,
        pattern: pulumi.Output[dict[str, object]],
        topic_arn: pulumi.Output[str],
        *,
        suffix: str = "",
        provider: pulumi.ProviderResource | None = None,
    ) -> aws.cloudwatch.EventRule:
        a, n = self._args, self._args.names
        # Rule names are per region: the DR region's rules share the stack region's names.
        name = f"{n.prefix}-{slug}"
        rule = aws.cloudwatch.EventRule(
            f"{self._name}-{slug}{suffix}",
            name=name,
            description=f"dbplatform {n.stack}: {description}",
            event_pattern=pattern.apply(lambda p: json.dumps(p, sort_keys=True)),
            tags={**tags(a.base_tags, name), "tier": "critical"},
            opts=child(self, provider=provider),
        )
        aws.cloudwatch.EventTarget(
            f"{self._name}-{slug}{suffix}",
            rule=rule.name,
            target_id="critical-topic",
            arn=topic_arn,
            opts=child(self, provider=provider),
        )
        return rule

    def _health_check(self, url: str) -> pulumi.Output[str | None]:
        """A Route 53 check of the readiness URL and its critical alarm in us-east-1."""
        a, n = self._args, self._args.names
        parts = urlsplit(url)
        https = parts.scheme == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        check = aws.route53.HealthCheck(
            f"{self._name}-health",
            type="HTTPS" if https else "HTTP",
            fqdn=parts.hostname,
            port=parts.port or (443 if https else 80),
            resource_path=path,
            enable_sni=https or None,
            request_interval=30,
            failure_threshold=3,
            tags=tags(a.base_tags, f"{n.prefix}-ready"),
            opts=child(self),
        )
        # Topics there already exist when it is the stack's region or the DR replica's: reuse
        # them and their provider rather than declaring a second provider for the same region.
        topics = self._topics.get(HEALTH_CHECK_METRICS_REGION) or self._topics_in(
            HEALTH_CHECK_METRICS_REGION,
            region_provider(
                f"{self._name}-{HEALTH_CHECK_METRICS_REGION}",
                HEALTH_CHECK_METRICS_REGION,
                a.provider_settings or {},
                self,
            ),
        )
        critical = topics.arns["critical"]
        aws.cloudwatch.MetricAlarm(
            f"{self._name}-health-failing",
            name=n.alarm(n.prefix, "ready-failing-critical"),
            alarm_description=f"dbplatform {n.stack} critical: {url} failing for more than "
            f"{HEALTH_CHECK_FAILING_MINUTES} minutes",
            namespace="AWS/Route53",
            metric_name="HealthCheckStatus",
            dimensions={"HealthCheckId": check.id},
            statistic="Minimum",
            comparison_operator="LessThanThreshold",
            threshold=1,
            period=60,
            evaluation_periods=HEALTH_CHECK_FAILING_MINUTES,
            datapoints_to_alarm=HEALTH_CHECK_FAILING_MINUTES,
            # A check that stops reporting is not a healthy one.
            treat_missing_data="breaching",
            alarm_actions=[critical],
            ok_actions=[critical],
            tags={**tags(a.base_tags, f"{n.prefix}-ready-failing"), "tier": "critical"},
            opts=child(self, provider=topics.provider),
        )
        return check.id


def _dashboard_body(
    region: str, instances: Sequence[tuple[WatchedInstance, str]], health_check_id: str | None
) -> str:
    """Key metrics of every instance of the stack's region, one graph per metric."""
    shown = [s for s in METRICS if s.scope != "burstable"]
    if any(instance_classes.resolve(i.instance_class).burstable for i, _ in instances):
        shown.append(next(s for s in METRICS if s.scope == "burstable"))
    widgets: list[dict[str, object]] = []
    for i, spec in enumerate(shown):
        members = [
            ident
            for inst, ident in instances
            if spec.scope != "replica" or inst.role == "replica"
            if spec.scope != "burstable" or instance_classes.resolve(inst.instance_class).burstable
        ]
        widgets.append(
            {
                "type": "metric",
                "x": (i % 3) * 8,
                "y": (i // 3) * 6,
                "width": 8,
                "height": 6,
                "properties": {
                    "title": spec.metric,
                    "region": region,
                    "stat": spec.statistic,
                    "period": spec.period,
                    "metrics": [
                        ["AWS/RDS", spec.metric, "DBInstanceIdentifier", m] for m in members
                    ],
                },
            }
        )
    if health_check_id:
        widgets.append(
            {
                "type": "metric",
                "x": (len(shown) % 3) * 8,
                "y": (len(shown) // 3) * 6,
                "width": 8,
                "height": 6,
                "properties": {
                    "title": "Readiness health check",
                    "region": HEALTH_CHECK_METRICS_REGION,
                    "stat": "Minimum",
                    "period": 60,
                    "metrics": [
                        ["AWS/Route53", "HealthCheckStatus", "HealthCheckId", health_check_id]
                    ],
                },
            }
        )
    return json.dumps({"widgets": widgets}, sort_keys=True)


def _identifiers(identifiers: Sequence[str]) -> list[dict[str, str]]:
    """An event-pattern value matching exactly these DB instance identifiers.

    RDS identifiers are case-insensitive (stored lowercase) and CloudTrail records the one the
    caller typed, so each is matched with `equals-ignore-case`. Restore tests and drills create
    instances under other names: their deletes do not page.
    """
    return [{"equals-ignore-case": i} for i in identifiers]


def _key_policy(account_id: str, break_glass: KeyGuard = NO_GUARD) -> str:
    # The publishing services encrypt messages with the topic's key; without these grants an
    # alarm fires into an encrypted topic and nobody is told. No aws:SourceAccount here (infra
    # review N7): the SNS guide's statement for these publishers ("Enable compatibility between
    # event sources from AWS services and encrypted topics", sns-key-management.html) has no
    # condition, and the KMS request a service makes for SNS is not documented to carry the
    # source keys for EventBridge or RDS events: a condition that does not match drops every
    # page silently. The confused deputy is closed where it is documented, on the topic policy
    # (ServicesPublish, aws:SourceAccount); this key only ever encrypts alarm messages.
    return key_policy(
        account_id,
        {
            "Sid": "PublishersEncrypt",
            "Effect": "Allow",
            "Principal": {"Service": list(PUBLISHERS)},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
        },
        break_glass=break_glass,
    )


def _topic_policy(topic_arn: str, account_id: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    # SNS's default statement: the owning account (and CloudWatch acting for it).
                    "Sid": "AccountOwns",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "sns:Publish",
                        "sns:Subscribe",
                        "sns:GetTopicAttributes",
                        "sns:ListSubscriptionsByTopic",
                    ],
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"AWS:SourceOwner": account_id}},
                },
                {
                    "Sid": "ServicesPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": list(PUBLISHERS)},
                    "Action": "sns:Publish",
                    "Resource": topic_arn,
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ],
        },
        sort_keys=True,
    )
