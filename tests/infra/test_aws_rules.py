"""Every value the committed stacks send to AWS follows AWS's rule for it (infra/aws_rules.py).

The mocks accept anything; these tests read the synthesized manifests of every committed stack
and hold each name, version, period, category, metric and schedule against the rule of the API
that receives it. Where botocore's service model states the rule (an enum, a pattern), the test
reads it from botocore itself, so the table in aws_rules cannot drift from AWS's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import aws_rules, provider_facts
from infra.components import alarms as alarms_mod
from infra.config import ConfigError, load_config, read_stack_values
from infra.offline import Recorded, Recording
from tests.conftest import ROOT
from tests.postgres import PgServer

INSTANCE = "aws:rds/instance:Instance"


def _shape(service: str, shape: str) -> Any:
    return botocore.session.get_session().get_service_model(service).shape_for(shape)


def _of(rec: Recording, type_token: str) -> list[Recorded]:
    return rec.of_type(type_token)


# --- names ------------------------------------------------------------------------------------

NAME_RULES: list[tuple[str, str, Any]] = [
    (INSTANCE, "identifier", aws_rules.DB_INSTANCE_ID),
    ("aws:rds/parameterGroup:ParameterGroup", "name", aws_rules.DB_PARAMETER_GROUP),
    ("aws:rds/subnetGroup:SubnetGroup", "name", aws_rules.DB_SUBNET_GROUP),
    ("aws:rds/eventSubscription:EventSubscription", "name", aws_rules.RDS_EVENT_SUBSCRIPTION),
    ("aws:secretsmanager/secret:Secret", "name", aws_rules.SECRET_NAME),
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "name", aws_rules.ALARM_NAME),
    ("aws:cloudwatch/eventRule:EventRule", "name", aws_rules.EVENT_RULE_NAME),
    ("aws:cloudwatch/eventTarget:EventTarget", "targetId", aws_rules.EVENT_RULE_NAME),
    ("aws:backup/vault:Vault", "name", aws_rules.BACKUP_VAULT),
    ("aws:backup/plan:Plan", "name", aws_rules.BACKUP_PLAN),
    ("aws:backup/selection:Selection", "name", aws_rules.BACKUP_SELECTION),
    ("aws:backup/restoreTestingPlan:RestoreTestingPlan", "name", aws_rules.RESTORE_TESTING_NAME),
    (
        "aws:backup/restoreTestingSelection:RestoreTestingSelection",
        "name",
        aws_rules.RESTORE_TESTING_NAME,
    ),
    ("aws:kms/alias:Alias", "name", aws_rules.KMS_ALIAS),
    ("aws:sns/topic:Topic", "name", aws_rules.SNS_TOPIC),
    ("aws:iam/role:Role", "name", aws_rules.IAM_ROLE),
    ("aws:ec2/securityGroup:SecurityGroup", "name", aws_rules.SECURITY_GROUP),
]


@pytest.mark.parametrize(("type_token", "field", "rule"), NAME_RULES, ids=lambda v: str(v)[:40])
def test_every_name_follows_the_receiving_apis_rule(
    stack_recording: Recording, type_token: str, field: str, rule: Any
) -> None:
    found = _of(stack_recording, type_token)
    assert found, f"{type_token} not declared: the rule would check nothing"
    for r in found:
        assert rule.match(r.inputs[field]), (r.name, r.inputs[field], rule.pattern)


def test_backup_plan_rule_names_and_schedules_follow_aws_backup(stack_recording: Recording) -> None:
    (plan,) = _of(stack_recording, "aws:backup/plan:Plan")
    for rule in plan.inputs["rules"]:
        assert aws_rules.BACKUP_RULE.match(rule["ruleName"]), rule["ruleName"]
        assert aws_rules.cron_rule(rule["schedule"]) is None, rule["schedule"]
    for t in _of(stack_recording, "aws:backup/restoreTestingPlan:RestoreTestingPlan"):
        assert aws_rules.cron_rule(t.inputs["scheduleExpression"]) is None
    for rot in _of(stack_recording, "aws:secretsmanager/secretRotation:SecretRotation"):
        assert aws_rules.cron_rule(rot.inputs["rotationRules"]["scheduleExpression"]) is None


def test_the_patterns_are_botocores() -> None:
    """The regexes above are the service models' own patterns where botocore states one."""
    for service, shape, member, ours in (
        ("backup", "CreateBackupVaultInput", "BackupVaultName", aws_rules.BACKUP_VAULT),
        ("backup", "BackupRuleInput", "RuleName", aws_rules.BACKUP_RULE),
        ("events", "PutRuleRequest", "Name", aws_rules.EVENT_RULE_NAME),
        ("iam", "CreateRoleRequest", "RoleName", aws_rules.IAM_ROLE),
    ):
        meta = _shape(service, shape).members[member].metadata
        theirs = meta["pattern"].strip("^$")
        sample = "a-b_c.9" if "." in theirs else "a-b_c9"
        assert bool(ours.match(sample)) is True, (service, member)
        assert ours.match("x" * (meta.get("max", 50) + 1)) is None, (service, member)


# --- RDS ---------------------------------------------------------------------------------------


def test_engine_version_is_a_major_the_provider_keeps_across_minor_upgrades(
    stack_recording: Recording,
) -> None:
    for db in _of(stack_recording, INSTANCE):
        version = db.inputs.get("engineVersion")
        if version is None:  # replicas follow their source
            continue
        rule = aws_rules.engine_version_rule(version, db.inputs["autoMinorVersionUpgrade"])
        assert rule is None, (db.name, version, rule)


def test_a_pinned_minor_with_automatic_upgrades_is_refused_with_the_key() -> None:
    values, region = read_stack_values("staging", ROOT)
    values = {**values, "database": {**values["database"], "engineVersion": "16.4"}}
    with pytest.raises(ConfigError) as err:
        load_config("staging", values, region)
    assert "database.engineVersion '16.4'" in str(err.value)
    assert "give the major only ('16')" in str(err.value)


@pytest.mark.parametrize("days", [7, 31, 62, 713, 731])
def test_performance_insights_retention_accepts_botocores_values(days: int) -> None:
    assert aws_rules.performance_insights_retention_ok(days)
    doc = _shape("rds", "CreateDBInstanceMessage").members["PerformanceInsightsRetentionPeriod"]
    assert "731" in doc.documentation  # the rule's source still says so


@pytest.mark.parametrize("days", [0, 8, 30, 32, 714, 744, 732])
def test_performance_insights_retention_refuses_the_rest(days: int) -> None:
    assert not aws_rules.performance_insights_retention_ok(days)


def test_every_instance_sends_a_valid_performance_insights_retention(
    stack_recording: Recording,
) -> None:
    for db in _of(stack_recording, INSTANCE):
        days = db.inputs["performanceInsightsRetentionPeriod"]
        assert aws_rules.performance_insights_retention_ok(days), (db.name, days)


def test_parameter_apply_methods_follow_each_parameters_apply_type(
    stack_recording: Recording,
) -> None:
    groups = _of(stack_recording, "aws:rds/parameterGroup:ParameterGroup")
    assert groups
    for g in groups:
        for p in g.inputs["parameters"]:
            assert aws_rules.apply_method_rule(p["name"], p["applyMethod"]) is None, p
    # and RDS's own enum is the one the rule allows
    enum = _shape("rds", "Parameter").members["ApplyMethod"].enum
    assert set(enum) == {"immediate", "pending-reboot"}


def test_postgresql_native_apply_types_match_the_real_servers_contexts(
    postgres: PgServer,
) -> None:
    """`static` exactly when the real server says the setting needs a restart (postmaster)."""
    # RDS's own (rds.*) and extensions' settings (cron.*: pg_cron is not on the test server)
    # are not in its pg_settings.
    native = {k: v for k, v in aws_rules.PARAMETER_APPLY_TYPE.items() if "." not in k}
    with postgres.connect("postgres") as conn:
        rows = conn.execute(
            "SELECT name, context FROM pg_settings WHERE name = ANY(%s)", (list(native),)
        ).fetchall()
    contexts = dict(rows)
    assert set(contexts) == set(native)
    for name, kind in native.items():
        assert (contexts[name] == "postmaster") == (kind == "static"), (name, contexts[name])


def test_an_immediate_static_parameter_is_a_bug_the_program_refuses() -> None:
    assert aws_rules.apply_method_rule("rds.logical_replication", "immediate") is not None
    assert aws_rules.apply_method_rule("log_connections", "immediate") is None


def test_event_categories_are_rds_categories_of_their_source_type(
    stack_recording: Recording,
) -> None:
    for sub in _of(stack_recording, "aws:rds/eventSubscription:EventSubscription"):
        allowed = aws_rules.RDS_EVENT_CATEGORIES[sub.inputs["sourceType"]]
        assert set(sub.inputs["eventCategories"]) <= allowed, sub.name


def test_metric_alarms_use_real_metrics_dimensions_and_periods(stack_recording: Recording) -> None:
    operators = set(_shape("cloudwatch", "PutMetricAlarmInput").members["ComparisonOperator"].enum)
    statistics = set(_shape("cloudwatch", "PutMetricAlarmInput").members["Statistic"].enum)
    missing = {"breaching", "notBreaching", "ignore", "missing"}  # PutMetricAlarm docs
    for a in _of(stack_recording, "aws:cloudwatch/metricAlarm:MetricAlarm"):
        i = a.inputs
        assert i["comparisonOperator"] in operators and i["statistic"] in statistics
        assert i["treatMissingData"] in missing
        assert aws_rules.alarm_period_rule(i["period"], i["evaluationPeriods"]) is None, a.name
        if i["namespace"] == "AWS/RDS":
            assert i["metricName"] in aws_rules.RDS_METRIC_UNITS, i["metricName"]
            assert set(i["dimensions"]) == {aws_rules.RDS_METRIC_DIMENSION}


def test_backup_job_states_in_event_rules_are_botocores() -> None:
    copy = set(_shape("backup", "CopyJob").members["State"].enum)
    restore = set(_shape("backup", "RestoreJobsListMember").members["Status"].enum)
    assert copy == aws_rules.COPY_JOB_STATES and restore == aws_rules.RESTORE_JOB_STATUSES
    assert set(alarms_mod.COPY_FAILED_STATES) == {"FAILED", "PARTIAL"}
    assert set(alarms_mod.COPY_FAILED_STATES) <= copy
    assert set(alarms_mod.RESTORE_FAILED_STATUSES) <= restore


# --- alarm text -------------------------------------------------------------------------------


def test_alarm_descriptions_read_in_units_not_exponents(stack_recording: Recording) -> None:
    for a in _of(stack_recording, "aws:cloudwatch/metricAlarm:MetricAlarm"):
        text = a.inputs["alarmDescription"]
        assert "e+" not in text and "e-0" not in text, text
        metric = a.inputs["metricName"]
        unit = {
            "FreeStorageSpace": " GiB",
            "FreeableMemory": " GiB",
            "OldestReplicationSlotLag": " GiB",
            "ReadLatency": " ms",
            "WriteLatency": " ms",
            "CPUUtilization": " %",
            "DatabaseConnections": " connections",
            "ReplicaLag": " s",
        }.get(metric)
        if unit:
            assert unit in text, text


def test_storage_alarms_sit_below_the_autoscaling_trigger(stack_recording: Recording) -> None:
    cfg = stack_recording.config
    gib = 1024**3
    for a in _of(stack_recording, "aws:cloudwatch/metricAlarm:MetricAlarm"):
        if a.inputs["metricName"] == "FreeStorageSpace":
            # RDS autoscales at <= 10 % free: a tier at or above it would page on every autoscale
            assert a.inputs["threshold"] < cfg.database.allocated_storage * gib * 0.10, a.name


# --- replicas, snapshots, security group -------------------------------------------------------


def test_replicas_can_be_removed_moved_and_grow_like_their_source(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    db = rec.config.database
    replicas = [r for r in _of(rec, INSTANCE) if r.inputs.get("replicateSourceDb")]
    assert replicas
    for r in replicas:
        i = r.inputs
        assert i["deletionProtection"] is False, r.name  # removable without a console step
        assert r.delete_before_replace is True, r.name  # fixed identifier
        assert i["maxAllocatedStorage"] == db.max_allocated_storage
        assert i["storageEncrypted"] is db.storage_encrypted
        assert i["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
        logs = {
            g.inputs["name"]
            for g in _of(rec, "aws:cloudwatch/logGroup:LogGroup")
            if g.urn in r.dependencies
        }
        assert logs == {
            f"/aws/rds/instance/{i['identifier']}/{e}" for e in ("postgresql", "upgrade")
        }


def test_final_snapshot_names_fit_rds_with_the_random_suffix() -> None:
    from infra.naming import Names

    for stack in ("prod", "staging", "a" * 24):
        n = Names(stack)
        name = f"{n.final_snapshot(n.primary)}-{'f' * 8}"  # RandomId(byte_length=4).hex
        assert aws_rules.DB_SNAPSHOT_ID.match(name), name


def test_the_db_security_group_survives_a_port_change(
    run_variant: Callable[..., Recording], prod: Recording
) -> None:
    moved = run_variant("prod", database={"port": 6432})

    def group(rec: Recording) -> dict[str, Any]:
        (sg,) = [
            s for s in rec.of_type("aws:ec2/securityGroup:SecurityGroup") if s.name == "network-db"
        ]
        return sg.inputs

    before, after = group(prod), group(moved)
    # name and description are replace-only: they must not depend on the port
    assert (before["name"], before["description"]) == (after["name"], after["description"])
    assert after["tags"]["port"] == "6432"


def _diff_from_an_older_deploy(
    rec: Recording, names: tuple[str, ...], inputs: dict[str, Any]
) -> Any:
    """The diff from a deploy whose `names` had `inputs` and no ignore_changes to `rec`."""
    import dataclasses

    from dbplatform.manifest.diff import diff
    from infra.offline import from_recording

    head = from_recording(rec)
    assert {r.name for r in head.resources} >= set(names)
    base = dataclasses.replace(
        head,
        resources=tuple(
            dataclasses.replace(r, inputs={**r.inputs, **inputs}, ignore_changes=())
            if r.name in names
            else r
            for r in head.resources
        ),
    )
    return diff(base, head)


def test_a_group_made_with_the_old_description_is_kept_not_replaced(prod: Recording) -> None:
    # Groups created before the port left the description carry "PostgreSQL <port> to ...".
    # A description change has no EC2 API (pulumi_aws 7.51.1 ec2/security_group.py), so without
    # ignore_changes the next `pulumi up` would replace the group under the same name
    # (InvalidGroup.Duplicate) while the database still uses it.
    names = ("network-db", "dr-network-db")
    old = {"description": "PostgreSQL 5432 to dbplatform prod from allowed sources only"}
    d = _diff_from_an_older_deploy(prod, names, old)
    changed = {c.name: c for c in d.changes}
    for name in names:
        assert changed[name].action == "update", changed[name]  # the option, nothing sent
        assert [c.path for c in changed[name].changes] == ["(option) ignoreChanges"], name
    assert not d.flagged, d


def test_a_subnet_keeps_its_zone_when_the_zone_list_shifts(prod: Recording) -> None:
    # The zones come from an invoke at every run; one that is not 'available' during an outage
    # moves the list, and a zone change forces a new subnet that RDS's old one blocks.
    names = ("network-private-0", "network-private-1", "dr-network-private-0")
    d = _diff_from_an_older_deploy(prod, names, {"availabilityZone": "us-east-1f"})
    changed = {c.name: c for c in d.changes}
    for name in names:
        assert changed[name].action == "update", changed[name]
        assert [c.path for c in changed[name].changes] == ["(option) ignoreChanges"], name
    assert not d.flagged, d


# --- network -----------------------------------------------------------------------------------


def test_subnets_never_land_in_local_zones() -> None:
    # The AZ list comes from an invoke (not a resource), so the filter is read off the program.
    import inspect

    from infra.components import network

    source = inspect.getsource(network.Network.__init__)
    assert '"opt-in-status"' in source and '"opt-in-not-required"' in source


def test_created_vpcs_are_connected_to_the_application(stack_recording: Recording) -> None:
    rec = stack_recording
    cfg = rec.config
    peerings = _of(rec, "aws:ec2/vpcPeeringConnection:VpcPeeringConnection")
    expected = {cfg.network.connect.peer_vpc_id}
    if cfg.dr.region is not None:
        expected.add(cfg.dr.connect.peer_vpc_id)
    assert {p.inputs["peerVpcId"] for p in peerings} == expected
    routes = _of(rec, "aws:ec2/route:Route")
    for p in peerings:
        via = [r for r in routes if p.urn in r.dependencies]
        to_app = {r.inputs["destinationCidrBlock"] for r in via if "routeTableId" in r.inputs}
        assert to_app, p.name
    # the application side routes back to the database VPC
    back = {
        r.inputs["routeTableId"]
        for r in routes
        if r.inputs.get("routeTableId", "").startswith("rtb-")
    }
    assert back >= set(cfg.network.connect.peer_route_table_ids)
    for vpc in _of(rec, "aws:ec2/vpc:Vpc"):
        assert vpc.inputs["cidrBlock"] in {cfg.network.cidr, cfg.dr.cidr}
    # EC2.2, EC2.6: the default group emptied, rejected traffic logged, in every created VPC
    vpcs = len(_of(rec, "aws:ec2/vpc:Vpc"))
    assert len(_of(rec, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")) == vpcs
    for d in _of(rec, "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"):
        assert "ingress" not in d.inputs and "egress" not in d.inputs
    logs = _of(rec, "aws:ec2/flowLog:FlowLog")
    assert len(logs) == vpcs and all(f.inputs["trafficType"] == "REJECT" for f in logs)


def test_a_transit_gateway_attachment_routes_to_the_application(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant(
        "staging",
        network={
            "connect": {
                "mode": "transitGateway",
                "transitGatewayId": "tgw-0123456789abcdef0",
                "peerCidrs": ["10.21.0.0/16"],
                "peerVpcId": None,
                "peerRouteTableIds": [],
            }
        },
    )
    (att,) = rec.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment")
    assert att.inputs["transitGatewayId"] == "tgw-0123456789abcdef0"
    (route,) = rec.of_type("aws:ec2/route:Route")
    assert route.inputs["transitGatewayId"] == "tgw-0123456789abcdef0"
    assert route.inputs["destinationCidrBlock"] == "10.21.0.0/16"
    assert not rec.of_type("aws:ec2/vpcPeeringConnection:VpcPeeringConnection")


def _problems(stack: str, **groups: Any) -> str:
    values, region = read_stack_values(stack, ROOT)
    values = dict(values)
    for key, value in groups.items():
        old = values.get(key)
        values[key] = {**old, **value} if isinstance(old, dict) else value
    try:
        load_config(stack, values, region)
    except ConfigError as exc:
        return str(exc)
    return ""


def test_a_production_stack_with_an_unconnected_vpc_is_refused() -> None:
    text = _problems("prod", network={"connect": {"mode": "none"}})
    assert "dbplatform:network.connect.mode 'none'" in text
    assert "network.vpcId" in text and "peering" in text


def test_the_dr_vpc_needs_its_own_cidr_and_a_connection_in_production() -> None:
    text = _problems("prod", dr={"cidr": "10.40.0.0/16"})
    assert "dbplatform:dr.cidr '10.40.0.0/16' overlaps network.cidr" in text
    text = _problems("prod", dr={"connect": {"mode": "none"}})
    assert "dbplatform:dr.connect.mode 'none'" in text


@pytest.mark.parametrize(
    "cidr", ["0.0.0.0/1", "128.0.0.0/1", "1.0.0.0/8", "8.8.8.8/32", "10.0.0.0/7", "::/0"]
)
def test_allowed_cidrs_outside_private_ranges_are_refused(cidr: str) -> None:
    text = _problems("staging", network={"allowedCidrs": [cidr]})
    assert f"dbplatform:network.allowedCidrs[0] '{cidr}'" in text


@settings(max_examples=40, deadline=None)
@given(
    st.ip_addresses(v=4).flatmap(
        lambda a: st.tuples(st.just(a), st.integers(min_value=1, max_value=32))
    )
)
def test_an_allowed_cidr_is_accepted_exactly_when_private(addr_prefix: tuple[Any, int]) -> None:
    import ipaddress

    from infra.config import PRIVATE_RANGES, _private_cidr_rule

    addr, prefix = addr_prefix
    net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    private = any(net.subnet_of(r) for r in PRIVATE_RANGES)  # type: ignore[arg-type]
    assert (_private_cidr_rule(str(net)) is None) is private
    if private:
        assert net.prefixlen >= 8


# --- keys and trust ----------------------------------------------------------------------------


def test_production_keys_deny_disable_delete_and_repolicy_to_all_but_break_glass(
    prod: Recording, staging: Recording
) -> None:
    def role(r: str) -> str:
        return f"arn:aws:iam::123456789012:role/{r}"

    keys = prod.of_type("aws:kms/key:Key")
    assert keys
    break_glass = [role(r) for r in prod.config.break_glass_roles]
    deployers = [role(r) for r in prod.config.deploy_roles]
    assert deployers
    for key in keys:
        policy = key.inputs.get("policy")
        assert policy, f"{key.name} keeps AWS's default policy: no guard"
        statements = json.loads(policy)["Statement"]
        (guard,) = [s for s in statements if s["Sid"] == "OnlyBreakGlassDisablesOrDeletes"]
        assert guard["Effect"] == "Deny"
        assert set(guard["Action"]) == {"kms:ScheduleKeyDeletion", "kms:DisableKey"}
        assert guard["Condition"]["ArnNotLike"]["aws:PrincipalArn"] == break_glass
        (repolicy,) = [s for s in statements if s["Sid"] == "OnlyBreakGlassOrDeployRepolicies"]
        assert repolicy["Effect"] == "Deny" and repolicy["Action"] == "kms:PutKeyPolicy"
        # kms-lockout: the deploy role that creates the key may re-policy it, nobody else may
        for arn in deployers + break_glass:
            assert not provider_facts.locks_out(policy, arn), (key.name, arn)
        for action in ("kms:ScheduleKeyDeletion", "kms:DisableKey"):
            assert provider_facts.locks_out(policy, deployers[0], action), (key.name, action)
        assert provider_facts.locks_out(policy, role("someone-else")), key.name
    # a non-production stack stays destroyable by its deploy role
    for key in staging.of_type("aws:kms/key:Key"):
        assert "Deny" not in (key.inputs.get("policy") or ""), key.name


def test_a_guarded_key_that_locks_out_its_deploying_role_is_refused() -> None:
    """The guard before the fix denied PutKeyPolicy to all but break-glass: CreateKey refuses it."""
    from infra.components._common import KeyGuard, key_policy

    deployer = "arn:aws:iam::123456789012:role/dbplatform-deploy"
    locked = key_policy("123456789012", break_glass=KeyGuard(("dbplatform-break-glass",)))
    assert provider_facts.locks_out(locked, deployer)
    assert provider_facts.refusal("kms-lockout").error == "MalformedPolicyDocumentException"
    fixed = key_policy(
        "123456789012",
        break_glass=KeyGuard(("dbplatform-break-glass",), ("dbplatform-deploy",)),
    )
    assert not provider_facts.locks_out(fixed, deployer)


@pytest.mark.parametrize("value", [[], ["not a role!"]])
def test_production_needs_valid_deploy_roles(value: list[str]) -> None:
    assert "dbplatform:deployRoles" in _problems("prod", deployRoles=value)


def test_service_trust_and_key_statements_are_limited_to_the_account(
    stack_recording: Recording,
) -> None:
    for role in stack_recording.of_type("aws:iam/role:Role"):
        (st_,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert st_["Condition"]["StringEquals"]["aws:SourceAccount"] == "123456789012", role.name
    for key in stack_recording.of_type("aws:kms/key:Key"):
        for s in json.loads(key.inputs["policy"])["Statement"]:
            if s["Sid"] == "PublishersEncrypt":
                # the alarm topics' key: SNS documents no source condition for these
                # publishers' KMS calls (N7); the topic policy carries aws:SourceAccount
                assert "Condition" not in s, key.name
                continue
            if "Service" in s["Principal"] and s["Effect"] == "Allow":
                cond = json.dumps(s.get("Condition", {}))
                assert "123456789012" in cond or "aws:logs:arn" in cond, (key.name, s["Sid"])


def test_the_secrets_manager_endpoint_is_limited_to_the_stacks_secrets(
    stack_recording: Recording,
) -> None:
    (endpoint,) = stack_recording.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    statements = json.loads(endpoint.inputs["policy"])["Statement"]
    for s in statements:
        assert s["Condition"]["StringEquals"]["aws:PrincipalAccount"] == "123456789012"
    resources = {s["Resource"] for s in statements}
    stack = stack_recording.stack
    assert any(r.endswith(f":secret:dbplatform/{stack}/*") for r in resources)


def test_a_replica_az_outside_the_database_subnets_fails_the_run(
    run_variant: Callable[..., Recording],
) -> None:
    # prod's created VPC spans the first 3 AZs; RDS refuses a replica in a fourth
    with pytest.raises(Exception, match=r"r2\.availabilityZone 'us-east-1f' is not one of"):
        run_variant(
            "prod", replicas=[{"name": "r1"}, {"name": "r2", "availabilityZone": "us-east-1f"}]
        )


# --- peering within one account and region (infra review N8) ---------------------------------


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"peerOwnerId": "210987654321"}, "dbplatform:network.connect.peerOwnerId"),
        ({"peerRegion": "eu-west-1"}, "dbplatform:network.connect.peerRegion"),
    ],
)
def test_a_foreign_peer_is_refused_naming_the_key(extra: dict[str, str], key: str) -> None:
    values, _ = read_stack_values("prod", ROOT)
    connect = {**values["network"]["connect"], **extra}
    assert values["network"]["connect"]["mode"] == "peering"
    text = _problems("prod", network={"connect": connect})
    assert key in text and "accepter" in text


def test_a_peer_in_the_stacks_own_region_is_accepted() -> None:
    values, region = read_stack_values("prod", ROOT)
    connect = {**values["network"]["connect"], "peerRegion": region}
    assert _problems("prod", network={"connect": connect}) == ""


# --- replacing the primary (infra review N6) ---------------------------------------------------


def test_a_replaced_primary_gets_a_fresh_final_snapshot_name_and_deletes_first(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    (primary,) = [
        r for r in rec.of_type(provider_facts.RDS_INSTANCE) if r.name == "database-primary"
    ]
    (suffix,) = [r for r in rec.of_type("random:index/randomId:RandomId") if "final" in r.name]
    # every replacement-forcing input the primary sets draws a new suffix, so a second replace
    # under the same identifier does not reuse the first one's snapshot name
    forcing = {
        k for k in provider_facts.FORCE_NEW[provider_facts.RDS_INSTANCE] if k in primary.inputs
    }
    assert forcing and set(suffix.inputs["keepers"]) == forcing
    assert suffix.inputs["keepers"]["identifier"] == primary.inputs["identifier"]
    # a fixed identifier: create-first would fail with DBInstanceAlreadyExists
    assert provider_facts.UNIQUE_NAMES[provider_facts.RDS_INSTANCE][0] == "DBInstanceAlreadyExists"
    assert primary.delete_before_replace is (not rec.config.is_production)
