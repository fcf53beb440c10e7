"""Alarms under mocks: per-instance alarm sets with thresholds relative to the instance, tier
routing, encrypted topics, event routing, the Route 53 health check and the dashboard.

Expected thresholds are computed here from the config and the instance class table, not read
back from the component.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError, StackConfig, load_config, read_stack_values
from infra.naming import Names
from infra.offline import KNOWN_AFTER_DEPLOY, SECRET, Recorded, Recording
from policy import instance_classes
from tests.conftest import ROOT

ALARM_T = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC_T = "aws:sns/topic:Topic"
SUB_T = "aws:sns/topicSubscription:TopicSubscription"
KEY_T = "aws:kms/key:Key"
INSTANCE_T = "aws:rds/instance:Instance"
RULE_T = "aws:cloudwatch/eventRule:EventRule"
TARGET_T = "aws:cloudwatch/eventTarget:EventTarget"
EVENTS_T = "aws:rds/eventSubscription:EventSubscription"
HEALTH_T = "aws:route53/healthCheck:HealthCheck"
DASHBOARD_T = "aws:cloudwatch/dashboard:Dashboard"
GIB = 1024**3


def deps(rec: Recording, res: Recorded, type_token: str) -> list[Recorded]:
    by_urn = rec.by_urn()
    return [by_urn[u] for u in res.dependencies if u in by_urn and by_urn[u].type == type_token]


def expected_alarms(
    cfg: StackConfig,
    instance_class: str,
    replica: bool,
    tiers: tuple[str, ...] = ("warning", "critical"),
) -> set[tuple[str, float]]:
    """(metric, threshold) of the given tiers of every alarm an instance must have."""
    t = cfg.alarms.thresholds
    cls = instance_classes.resolve(instance_class)
    storage = cfg.database.allocated_storage * GIB
    max_conn = cls.max_connections
    table: dict[str, tuple[Any, Callable[[float], float]]] = {
        "CPUUtilization": (t.cpu_percent, lambda v: v),
        "FreeStorageSpace": (t.free_storage_percent, lambda v: storage * v / 100),
        "FreeableMemory": (t.freeable_memory_percent, lambda v: cls.memory_gib * GIB * v / 100),
        "DatabaseConnections": (t.connections_percent, lambda v: round(max_conn * v / 100)),
        "ReadLatency": (t.read_latency_ms, lambda v: v / 1000),
        "WriteLatency": (t.write_latency_ms, lambda v: v / 1000),
        "DiskQueueDepth": (t.disk_queue_depth, lambda v: v),
        "MaximumUsedTransactionIDs": (t.max_used_transaction_ids, lambda v: v),
        "OldestReplicationSlotLag": (t.replication_slot_lag_gib, lambda v: v * GIB),
        "TransactionLogsDiskUsage": (t.transaction_logs_disk_percent, lambda v: storage * v / 100),
    }  # fmt: skip
    if cls.burstable:
        table["CPUCreditBalance"] = (t.cpu_credit_balance, lambda v: v)
    if replica:
        table["ReplicaLag"] = (t.replica_lag_seconds, lambda v: v)
    return {
        (metric, round(conv(getattr(level, tier)), 6))
        for metric, (level, conv) in table.items()
        for tier in tiers
    }


def instances(rec: Recording) -> list[tuple[str, str, bool]]:
    """(identifier, class, is replica) of every DB instance the stack declares."""
    return [
        (r.inputs["identifier"], r.inputs["instanceClass"], bool(r.inputs.get("replicateSourceDb")))
        for r in rec.of_type(INSTANCE_T)
    ]


def rds_alarms(rec: Recording, identifier: str) -> list[Recorded]:
    return [
        a
        for a in rec.of_type(ALARM_T)
        if a.inputs.get("dimensions") == {"DBInstanceIdentifier": identifier}
    ]


def tier_of(cfg: StackConfig, alarm: Recorded, instance_class: str, replica: bool) -> str:
    """Which config tier an alarm's threshold came from, decided from the numbers alone."""
    key = (alarm.inputs["metricName"], round(alarm.inputs["threshold"], 6))
    hits = [
        tier
        for tier in ("warning", "critical")
        if key in expected_alarms(cfg, instance_class, replica, (tier,))
    ]
    assert len(hits) == 1, (alarm.name, key, hits)
    return hits[0]


# --- the alarm set -------------------------------------------------------------------------


def test_every_instance_has_the_full_alarm_set_with_thresholds_from_class_and_storage(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    found = instances(rec)
    assert len(found) == 1 + len(rec.config.replicas)
    for identifier, cls, replica in found:
        alarms = rds_alarms(rec, identifier)
        got = {(a.inputs["metricName"], round(a.inputs["threshold"], 6)) for a in alarms}
        assert got == expected_alarms(rec.config, cls, replica), identifier
        assert len(alarms) == len(got), "one alarm per metric and tier"
        for a in alarms:
            assert a.inputs["namespace"] == "AWS/RDS"
            assert a.inputs["name"].startswith(identifier)
            assert a.inputs["comparisonOperator"] in ("GreaterThanThreshold", "LessThanThreshold")
            assert a.inputs["evaluationPeriods"] >= 1 and a.inputs["period"] >= 60


def test_burstable_staging_alarms_on_cpu_credits_and_prod_does_not(
    prod: Recording, staging: Recording
) -> None:
    def metrics(rec: Recording) -> set[str]:
        return {a.inputs["metricName"] for a in rec.of_type(ALARM_T)}

    assert instance_classes.resolve(staging.config.database.instance_class).burstable
    assert "CPUCreditBalance" in metrics(staging)
    assert "CPUCreditBalance" not in metrics(prod)


def test_replica_lag_is_alarmed_on_replicas_only(stack_recording: Recording) -> None:
    for identifier, _, replica in instances(stack_recording):
        has_lag = any(
            a.inputs["metricName"] == "ReplicaLag" for a in rds_alarms(stack_recording, identifier)
        )
        assert has_lag is replica, identifier


def test_connections_threshold_is_a_share_of_the_class_max_connections(prod: Recording) -> None:
    # db.r6g.xlarge: 32 GiB nominal; DBInstanceClassMemory is below it (OS and RDS reserve
    # some), so LEAST(DBInstanceClassMemory / 9531392, 5000) < the nominal 3604
    cls = instance_classes.resolve("db.r6g.xlarge")
    assert cls.db_instance_class_memory < 32 * 1024**3
    assert cls.max_connections == min(cls.db_instance_class_memory // 9531392, 5000) < 3604
    conns = [a for a in rds_alarms(prod, Names("prod").primary)
             if a.inputs["metricName"] == "DatabaseConnections"]  # fmt: skip
    limit = cls.max_connections
    assert sorted(a.inputs["threshold"] for a in conns) == [
        round(limit * 0.80),
        round(limit * 0.95),
    ]
    # the critical tier can fire: it is below the real (lower) limit, never above it
    assert max(a.inputs["threshold"] for a in conns) < limit


# --- routing -------------------------------------------------------------------------------


def test_every_alarm_routes_to_and_clears_on_the_topic_of_its_tier(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    names = Names(rec.stack)
    cfg = rec.config
    for identifier, cls, replica in instances(rec):
        for a in rds_alarms(rec, identifier):
            (topic,) = deps(rec, a, TOPIC_T)
            assert topic.inputs["name"] == names.topic(tier_of(cfg, a, cls, replica)), a.name
            assert a.inputs["alarmActions"] == a.inputs["okActions"] == [KNOWN_AFTER_DEPLOY]


def test_topics_are_kms_encrypted_and_publishers_may_use_the_key(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    topics = rec.of_type(TOPIC_T)
    assert {t.inputs["name"] for t in topics} >= {
        Names(rec.stack).topic("critical"),
        Names(rec.stack).topic("warning"),
    }
    for topic in topics:
        assert topic.inputs["kmsMasterKeyId"] == KNOWN_AFTER_DEPLOY
        (key,) = deps(rec, topic, KEY_T)
        assert key.inputs["enableKeyRotation"] is True and key.region == topic.region
        services = {
            s
            for st in json.loads(key.inputs["policy"])["Statement"]
            for s in _as_list(st["Principal"].get("Service"))
        }
        assert {"cloudwatch.amazonaws.com", "events.amazonaws.com",
                "events.rds.amazonaws.com"} <= services  # fmt: skip


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [] if v is None else [v]


def test_subscriptions_from_config_are_on_their_tiers_topic(stack_recording: Recording) -> None:
    rec = stack_recording
    names = Names(rec.stack)
    subs = rec.of_type(SUB_T)
    got = set()
    for s in subs:
        (topic,) = deps(rec, s, TOPIC_T)
        if topic.region != rec.config.region:
            continue
        tier = "critical" if topic.inputs["name"] == names.topic("critical") else "warning"
        got.add((tier, s.inputs["protocol"]))
        # an endpoint can carry a key (PagerDuty URLs) or come from a `secure:` value: it is
        # a secret everywhere, never plaintext in the manifest (security M-4)
        assert s.inputs["endpoint"] == SECRET, s.name
    assert got == {(c.severity, c.protocol) for c in rec.config.alarms.subscriptions}
    manifest = json.dumps([r.inputs for r in rec.resources])
    for c in rec.config.alarms.subscriptions:
        assert c.endpoint not in manifest


def test_rds_events_of_every_instance_page_the_critical_topic(stack_recording: Recording) -> None:
    rec = stack_recording
    subs = {s.inputs["sourceType"]: s for s in rec.of_type(EVENTS_T)}
    assert set(subs) == {"db-instance", "db-parameter-group"}
    sub = subs["db-instance"]
    assert set(sub.inputs["sourceIds"]) == {i for i, _, _ in instances(rec)}
    # down, degraded, changed, unprotected or gone (RDS.20 and infra review #14, security L-6)
    assert set(sub.inputs["eventCategories"]) >= {
        "availability", "configuration change", "deletion", "failover", "failure",
        "low storage", "maintenance", "read replica", "recovery", "security",
    }  # fmt: skip
    params = subs["db-parameter-group"]  # RDS.21
    assert params.inputs["eventCategories"] == ["configuration change"]
    (group,) = deps(rec, params, "aws:rds/parameterGroup:ParameterGroup")
    assert group.region == rec.config.region
    for s in subs.values():
        (topic,) = deps(rec, s, TOPIC_T)
        assert topic.inputs["name"] == Names(rec.stack).topic("critical")


def test_failed_backups_copies_and_rotations_page_the_critical_topic(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    names = Names(rec.stack)
    all_rules = rec.of_type(RULE_T)
    rules = {r.inputs["name"]: r for r in all_rules if r.region == rec.config.region}
    assert set(rules) == {f"{names.prefix}-{s}" for s in
                          ("backup-failed", "copy-failed", "rotation-failed", "restore-failed",
                           "protection-kms", "protection-backup", "protection-rds",
                           "deletion-protection-off")}  # fmt: skip
    for rule in all_rules:
        (target,) = [t for t in rec.of_type(TARGET_T) if rule.urn in t.dependencies]
        (topic,) = deps(rec, target, TOPIC_T)
        assert topic.inputs["name"] == names.topic("critical")
        # CloudTrail events reach EventBridge in the call's region only (review N4)
        assert topic.region == target.region == rule.region, rule.name
    for slug in ("backup-failed", "copy-failed"):
        vaults = deps(rec, rules[f"{names.prefix}-{slug}"], "aws:backup/vault:Vault")
        assert [v.inputs["name"] for v in vaults] == [names.backup_vault]
    restore = json.loads(rules[f"{names.prefix}-restore-failed"].inputs["eventPattern"])
    assert restore["detail-type"] == ["Restore Job State Change"]
    assert set(restore["detail"]["status"]) == {"FAILED", "ABORTED"}
    # Each protection rule watches the stack's own resources of its region, so a restore test's
    # or a drill's DeleteDBInstance (other names) and other stacks' keys do not page (review N3).
    from infra.components.alarms import PROTECTION_CALLS

    assert set(PROTECTION_CALLS["aws.kms"]) == {"ScheduleKeyDeletion", "DisableKey", "PutKeyPolicy"}
    regions = {r.region for r in all_rules if r.inputs["name"].endswith("-protection-kms")}
    assert regions == {rec.config.region, *([rec.config.dr.region] if rec.config.dr.region else [])}
    for rule in all_rules:
        if rule.inputs["name"] != f"{names.prefix}-protection-kms":
            continue
        keys = {k.urn for k in rec.of_type(KEY_T) if k.region == rule.region}
        assert keys and {k.urn for k in deps(rec, rule, KEY_T)} == keys, rule.region
    ids = [i.inputs["identifier"] for i in rec.of_type(INSTANCE_T) if i.region == rec.config.region]
    matched = [{"equals-ignore-case": i} for i in ids]
    rds = json.loads(rules[f"{names.prefix}-protection-rds"].inputs["eventPattern"])
    assert rds["detail"]["eventName"] == ["DeleteDBInstance"]
    assert sorted(rds["detail"]["requestParameters"]["dBInstanceIdentifier"], key=str) == sorted(
        matched, key=str
    )
    backup = json.loads(rules[f"{names.prefix}-protection-backup"].inputs["eventPattern"])
    assert backup["detail"]["requestParameters"] == {"backupVaultName": [names.backup_vault]}
    off = json.loads(rules[f"{names.prefix}-deletion-protection-off"].inputs["eventPattern"])
    assert off["detail"]["requestParameters"]["deletionProtection"] == [False]
    assert sorted(off["detail"]["requestParameters"]["dBInstanceIdentifier"], key=str) == sorted(
        matched, key=str
    )
    pattern = json.loads(rules[f"{names.prefix}-rotation-failed"].inputs["eventPattern"])
    assert pattern["source"] == ["aws.secretsmanager"]
    assert "RotationFailed" in pattern["detail"]["eventName"]
    (prefix,) = pattern["detail"]["additionalEventData"]["SecretId"]
    # the stack's secrets (dbplatform/<stack>/...) and no other stack's
    assert prefix["prefix"].endswith(f":secret:dbplatform/{rec.stack}/")
    assert names.master_secret.startswith(prefix["prefix"].split(":secret:")[1])


# --- health check and dashboard ------------------------------------------------------------


def test_prod_health_check_pages_after_five_failing_minutes(prod: Recording) -> None:
    (check,) = prod.of_type(HEALTH_T)
    assert prod.config.alarms.health_check_url == "https://app.example.com/api/_health/ready"
    assert check.inputs["type"] == "HTTPS" and check.inputs["port"] == 443
    assert check.inputs["fqdn"] == "app.example.com"
    assert check.inputs["resourcePath"] == "/api/_health/ready"
    (alarm,) = [a for a in prod.of_type(ALARM_T) if check.urn in a.dependencies]
    i = alarm.inputs
    assert (i["namespace"], i["metricName"]) == ("AWS/Route53", "HealthCheckStatus")
    assert i["period"] * i["evaluationPeriods"] == 5 * 60
    assert i["datapointsToAlarm"] == i["evaluationPeriods"]
    assert alarm.region == "us-east-1"
    (topic,) = deps(prod, alarm, TOPIC_T)
    assert topic.inputs["name"] == Names("prod").topic("critical")
    assert topic.region == "us-east-1"


def test_health_check_alarm_lives_in_us_east_1_whatever_the_stack_region(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant(
        "staging",
        region="eu-west-1",
        alarms={"healthCheckUrl": "http://staging.example.com:8080/ready"},
    )
    (check,) = rec.of_type(HEALTH_T)
    assert (check.inputs["type"], check.inputs["port"]) == ("HTTP", 8080)
    (alarm,) = [a for a in rec.of_type(ALARM_T) if check.urn in a.dependencies]
    assert alarm.region == "us-east-1"
    (topic,) = deps(rec, alarm, TOPIC_T)
    assert topic.region == "us-east-1" and topic.inputs["name"] == Names("staging").topic(
        "critical"
    )
    (key,) = deps(rec, topic, KEY_T)
    assert key.region == "us-east-1"
    emails = [s for s in rec.of_type(SUB_T) if topic.urn in s.dependencies]
    assert [s.inputs["protocol"] for s in emails] == ["email"]
    # the instance alarms stay in the stack's region
    assert {a.region for a in rec.of_type(ALARM_T) if a.urn != alarm.urn} == {"eu-west-1"}


def test_health_check_shares_the_dr_regions_topics_when_that_region_is_us_east_1(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant(
        "prod",
        region="us-west-2",
        database={"blueGreen": False},
        dr={"region": "us-east-1", "crossRegionReplica": True},
        replicas=[{"name": "r1"}],
    )
    # one provider per region: the DR region's serves the health check alarm too
    assert [p.inputs["region"] for p in rec.of_type("pulumi:providers:aws")] == ["us-east-1"]
    (check,) = rec.of_type(HEALTH_T)
    (alarm,) = [a for a in rec.of_type(ALARM_T) if check.urn in a.dependencies]
    (topic,) = deps(rec, alarm, TOPIC_T)
    assert topic.region == "us-east-1" and topic.inputs["name"] == Names("prod").topic("critical")
    dr_alarms = rds_alarms(rec, Names("prod").cross_region_replica)
    assert topic in [t for a in dr_alarms for t in deps(rec, a, TOPIC_T)]
    assert len([t for t in rec.of_type(TOPIC_T) if t.region == "us-east-1"]) == 2


def test_no_health_check_without_a_url(staging: Recording) -> None:
    assert staging.config.alarms.health_check_url is None
    assert staging.of_type(HEALTH_T) == []


def test_dashboard_shows_every_instance(staging: Recording) -> None:
    (dash,) = staging.of_type(DASHBOARD_T)
    assert dash.inputs["dashboardName"] == Names("staging").dashboard
    body = json.loads(dash.inputs["dashboardBody"])
    shown = {m[3] for w in body["widgets"] for m in w["properties"]["metrics"]}
    assert shown == {i for i, _, _ in instances(staging)}
    titles = {w["properties"]["title"] for w in body["widgets"]}
    assert {"CPUUtilization", "FreeStorageSpace", "DatabaseConnections", "ReplicaLag"} <= titles


def test_dashboard_can_be_turned_off(run_variant: Callable[..., Recording]) -> None:
    assert run_variant("staging", alarms={"dashboard": False}).of_type(DASHBOARD_T) == []


def test_cross_region_replica_is_alarmed_in_its_own_region(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant("prod", database={"blueGreen": False}, dr={"crossRegionReplica": True})
    dr_id = Names("prod").cross_region_replica
    alarms = rds_alarms(rec, dr_id)
    assert alarms and {a.region for a in alarms} == {"us-west-2"}
    assert any(a.inputs["metricName"] == "ReplicaLag" for a in alarms)
    for a in alarms:
        (topic,) = deps(rec, a, TOPIC_T)
        assert topic.region == "us-west-2"
    dr_events = [e for e in rec.of_type(EVENTS_T) if e.region == "us-west-2"]
    assert [e.inputs["sourceIds"] for e in dr_events] == [[dr_id]]


# --- config rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "value", "key"),
    [
        ("connectionsPercent", {"warning": 80, "critical": 150}, "connectionsPercent.critical"),
        ("cpuCreditBalance", {"warning": -5, "critical": -10}, "cpuCreditBalance.warning"),
        ("freeableMemoryPercent", {"warning": 5, "critical": 15}, "freeableMemoryPercent.warning"),
        ("maxUsedTransactionIds", {"warning": 1e9, "critical": 2.1e9},
         "maxUsedTransactionIds.critical"),
    ],
)  # fmt: skip
def test_alarm_thresholds_out_of_range_are_refused_naming_the_key(
    threshold: str, value: dict[str, float], key: str
) -> None:
    values, region = read_stack_values("prod", ROOT)
    alarms = dict(values["alarms"])
    alarms["thresholds"] = {threshold: value}
    with pytest.raises(ConfigError) as err:
        load_config("prod", {**values, "alarms": alarms}, region, root=ROOT)
    assert f"dbplatform:alarms.thresholds.{key}" in str(err.value)


def test_a_failed_or_missing_restore_test_pages_in_production(
    prod: Recording, staging: Recording
) -> None:
    from dbplatform.dr import metrics

    def restore_alarm(rec: Recording) -> Any:
        (alarm,) = [
            a
            for a in rec.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
            if a.inputs.get("namespace") == metrics.NAMESPACE
        ]
        return alarm

    alarm = restore_alarm(prod)
    assert alarm.inputs["metricName"] == metrics.SUCCESS
    assert alarm.inputs["dimensions"] == {"Stack": "prod"}
    assert (
        alarm.inputs["comparisonOperator"] == "LessThanThreshold" and alarm.inputs["threshold"] == 1
    )
    assert alarm.inputs["treatMissingData"] == "breaching"
    assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"]
    assert restore_alarm(staging).inputs["treatMissingData"] == "notBreaching"
