"""The program under mocks: network, database, replicas, exports; and how it reads its config."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws
import pytest
from pulumi.runtime.config import CONFIG

from infra import program
from infra.config import (
    ConfigError,
    aws_setting_problems,
    load_config,
    load_stack,
    read_stack_values,
)
from infra.naming import Names
from infra.offline import (
    KNOWN_AFTER_DEPLOY,
    SECRET,
    Recorded,
    Recording,
    from_recording,
    pulumi_config,
    run_program,
)
from policy.rules import evaluate
from policy.windows import parse_daily, parse_weekly
from tests.conftest import ROOT

INSTANCE = "aws:rds/instance:Instance"


def primary(rec: Recording) -> Recorded:
    (p,) = [r for r in rec.of_type(INSTANCE) if not r.inputs.get("replicateSourceDb")]
    return p


def replicas(rec: Recording) -> list[Recorded]:
    return [r for r in rec.of_type(INSTANCE) if r.inputs.get("replicateSourceDb")]


def depends_on(rec: Recording, res: Recorded, type_token: str, name: str) -> bool:
    urns = {r.urn for r in rec.resources if r.type == type_token and r.name == name}
    return bool(urns & set(res.dependencies))


def test_prod_primary_is_encrypted_multi_az_protected_and_keeps_a_final_snapshot(
    prod: Recording,
) -> None:
    db = primary(prod)
    i = db.inputs
    assert i["identifier"] == Names("prod").primary
    assert i["storageEncrypted"] is True
    assert i["kmsKeyId"] == KNOWN_AFTER_DEPLOY
    assert depends_on(prod, db, "aws:kms/key:Key", "database-key"), "not encrypted with the CMK"
    assert i["multiAz"] is True
    assert i["deletionProtection"] is True
    assert db.protect is True
    assert i["skipFinalSnapshot"] is False
    # unique per instance generation: the name ends in a RandomId kept in state (see
    # test_aws_rules for the identifier rule)
    assert i["finalSnapshotIdentifier"] == KNOWN_AFTER_DEPLOY
    assert depends_on(prod, db, "random:index/randomId:RandomId", "database-final-snapshot-suffix")
    assert i["copyTagsToSnapshot"] is True
    assert i["deleteAutomatedBackups"] is False
    assert i["publiclyAccessible"] is False


def test_every_primary_has_the_hardening_the_issue_lists(stack_recording: Recording) -> None:
    rec = stack_recording
    cfg = rec.config
    i = primary(rec).inputs
    assert i["engine"] == "postgres" and i["engineVersion"] == cfg.database.engine_version
    assert i["storageType"] == "gp3"
    assert i["maxAllocatedStorage"] > i["allocatedStorage"]
    assert i["autoMinorVersionUpgrade"] is True
    assert i["iamDatabaseAuthenticationEnabled"] is True
    assert set(i["enabledCloudwatchLogsExports"]) == {"postgresql", "upgrade"}
    assert i["performanceInsightsEnabled"] is True
    assert i["performanceInsightsKmsKeyId"] == KNOWN_AFTER_DEPLOY
    assert i["monitoringInterval"] == 60 and i["monitoringRoleArn"] == KNOWN_AFTER_DEPLOY
    assert i["backupRetentionPeriod"] == cfg.backup.retention_days >= 1
    assert i["backupWindow"] == cfg.backup.window
    assert i["maintenanceWindow"] == cfg.database.maintenance_window
    assert i["password"] == SECRET
    assert "manageMasterUserPassword" not in i, "blue/green refuses RDS-managed passwords"
    assert primary(rec).ignore_changes == ["password"]
    assert primary(rec).custom_timeouts["create"] == "120m"


def test_storage_key_rotates_and_logs_are_encrypted_and_retained(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    for key in rec.of_type("aws:kms/key:Key"):
        assert key.inputs["enableKeyRotation"] is True, key.name
        assert key.inputs["deletionWindowInDays"] == 30
    groups = rec.of_type("aws:cloudwatch/logGroup:LogGroup")
    ident = primary(rec).inputs["identifier"]
    assert {g.inputs["name"] for g in groups} >= {
        f"/aws/rds/instance/{ident}/postgresql",
        f"/aws/rds/instance/{ident}/upgrade",
    }
    for g in groups:
        assert g.inputs.get("retentionInDays", 0) >= 365, g.name  # CloudWatch.16
        if g.inputs["name"].startswith("/aws/rds/"):
            assert g.inputs["kmsKeyId"] == KNOWN_AFTER_DEPLOY, g.name


def test_parameter_group_forces_ssl_logs_and_enables_logical_replication(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    (pg,) = [
        g
        for g in rec.of_type("aws:rds/parameterGroup:ParameterGroup")
        if g.region == rec.config.region
    ]
    params = {p["name"]: p for p in pg.inputs["parameters"]}
    assert pg.inputs["family"] == rec.config.parameter_family
    # PostgreSQL >= 15 forces SSL by default; re-declaring the default would diff every run
    assert "rds.force_ssl" not in params
    assert int(rec.config.engine_major) >= 15
    assert params["log_min_duration_statement"]["value"] == str(rec.config.database.slow_query_ms)
    assert params["log_connections"]["value"] == "1"
    assert rec.config.database.blue_green
    assert params["rds.logical_replication"] == {
        "name": "rds.logical_replication",
        "value": "1",
        "applyMethod": "pending-reboot",
    }
    assert primary(rec).inputs["parameterGroupName"] == pg.inputs["name"]


def test_replicas_follow_config_with_staggered_windows(stack_recording: Recording) -> None:
    rec = stack_recording
    cfg = rec.config
    reps = replicas(rec)
    assert {r.inputs["identifier"] for r in reps} == {
        Names(cfg.stack).replica(r.name) for r in cfg.replicas
    }
    primary_window = parse_weekly(cfg.database.maintenance_window)
    backup_window = parse_daily(cfg.backup.window)
    windows = [parse_weekly(r.inputs["maintenanceWindow"]) for r in reps]
    for idx, w in enumerate(windows):
        assert not w.overlaps(primary_window)
        assert not w.overlaps(backup_window)
        for other in windows[idx + 1 :]:
            assert not w.overlaps(other)
    for r in reps:
        assert r.inputs["replicateSourceDb"] == Names(cfg.stack).primary
        assert r.inputs["performanceInsightsEnabled"] is True
        assert r.inputs["monitoringInterval"] == cfg.database.monitoring_interval
        assert r.inputs["storageEncrypted"] is True


def test_prod_replicas_sit_in_their_configured_azs(prod: Recording) -> None:
    azs = {r.inputs["identifier"]: r.inputs.get("availabilityZone") for r in replicas(prod)}
    assert azs == {"dbplatform-prod-pg-r1": "us-east-1b", "dbplatform-prod-pg-r2": "us-east-1c"}


def test_created_network_is_isolated_and_admits_postgres_only_from_config(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    cfg = rec.config
    types = {r.type for r in rec.resources}
    for forbidden in ("aws:ec2/internetGateway:InternetGateway", "aws:ec2/natGateway:NatGateway"):
        assert forbidden not in types
    # the only routes lead to the application's CIDRs, through the configured connection
    peers = set(cfg.network.connect.peer_cidrs) | {cfg.network.cidr, cfg.dr.cidr}
    peers |= set(cfg.dr.connect.peer_cidrs)
    for route in rec.of_type("aws:ec2/route:Route"):
        assert route.inputs["destinationCidrBlock"] in peers, route.name
        assert route.inputs["destinationCidrBlock"] != "0.0.0.0/0"
    subnets = [s for s in rec.of_type("aws:ec2/subnet:Subnet") if s.region == cfg.region]
    assert len({s.inputs["availabilityZone"] for s in subnets}) == cfg.network.az_count >= 2
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)
    rules = rec.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    db_rules = [r for r in rules if r.name.startswith("network-")]
    assert {r.inputs["cidrIpv4"] for r in db_rules} == set(cfg.network.allowed_cidrs)
    for r in db_rules:
        assert (r.inputs["fromPort"], r.inputs["toPort"], r.inputs["ipProtocol"]) == (
            5432,
            5432,
            "tcp",
        )
    (sg,) = [
        s for s in rec.of_type("aws:ec2/securityGroup:SecurityGroup") if s.name == "network-db"
    ]
    assert "ingress" not in sg.inputs and "egress" not in sg.inputs


def test_existing_vpc_is_used_instead_of_creating_one(
    run_variant: Callable[..., Recording],
) -> None:
    subnets = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    rec = run_variant(
        "prod",
        network={
            "vpcId": "vpc-0123456789abcdef0",
            "subnetIds": subnets,
            "connect": {"mode": "none"},
        },
    )
    here = [r for r in rec.resources if r.region == "us-east-1"]
    assert not [r for r in here if r.type in ("aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet")]
    (group,) = [g for g in here if g.type == "aws:rds/subnetGroup:SubnetGroup"]
    assert group.inputs["subnetIds"] == subnets
    (sg,) = [
        s for s in rec.of_type("aws:ec2/securityGroup:SecurityGroup") if s.name == "network-db"
    ]
    assert sg.inputs["vpcId"] == "vpc-0123456789abcdef0"


def test_a_dr_region_gets_an_isolated_network_to_restore_into(
    prod: Recording, staging: Recording
) -> None:
    """The pilot light `scripts.dr rebuild` restores into by name while the primary is down."""
    dr, names = prod.config.dr.region, Names("prod")
    assert dr == "us-west-2"
    here = [r for r in prod.resources if r.region == dr]
    (group,) = [r for r in here if r.type == "aws:rds/subnetGroup:SubnetGroup"]
    (sg,) = [r for r in here if r.type == "aws:ec2/securityGroup:SecurityGroup"]
    assert group.inputs["name"] == names.dr_subnet_group
    assert sg.inputs["name"] == names.dr_security_group
    assert prod.outputs["dr_subnet_group"] == names.dr_subnet_group
    subnets = [r for r in here if r.type == "aws:ec2/subnet:Subnet"]
    assert len({s.inputs["availabilityZone"] for s in subnets}) >= 2
    assert all(s.inputs["availabilityZone"].startswith(dr) for s in subnets)
    assert not [r for r in here if r.type == "aws:ec2/internetGateway:InternetGateway"]
    rules = [r for r in here if r.type.endswith("IngressRule") and sg.urn in r.dependencies]
    # after a failover the clients sit in the application's DR network
    assert {r.inputs["cidrIpv4"] for r in rules} == set(prod.config.dr.connect.peer_cidrs)
    # no DR region, no DR network
    assert "dr_subnet_group" not in staging.outputs
    assert {r.region for r in staging.resources} == {staging.config.region}


def test_cross_region_replica_uses_a_dr_provider_and_its_own_key(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant("prod", database={"blueGreen": False}, dr={"crossRegionReplica": True})
    (dr,) = [
        r
        for r in rec.of_type(INSTANCE)
        if r.inputs.get("identifier") == Names("prod").cross_region_replica
    ]
    assert dr.region == "us-west-2"
    assert dr.inputs["replicateSourceDb"] == KNOWN_AFTER_DEPLOY  # the primary's ARN
    keys = [k for k in rec.of_type("aws:kms/key:Key") if k.region == "us-west-2"]
    assert keys and any(depends_on(rec, dr, "aws:kms/key:Key", k.name) for k in keys)
    dr_groups = [
        g for g in rec.of_type("aws:rds/subnetGroup:SubnetGroup") if g.region == "us-west-2"
    ]
    assert len(dr_groups) == 1 and dr.inputs["dbSubnetGroupName"] == dr_groups[0].inputs["name"]
    # after a failover the replica is the database: its key is kept like the primary's
    (dr_key,) = [k for k in keys if depends_on(rec, dr, "aws:kms/key:Key", k.name)]
    assert dr_key.protect is True
    assert dr.inputs["monitoringInterval"] == rec.config.database.monitoring_interval
    # a production stack with a DR replica passes the policy pack it is deployed under
    assert evaluate(from_recording(rec)).mandatory_failures == []


def test_adopting_a_restored_instance_imports_it(run_variant: Callable[..., Recording]) -> None:
    rec = run_variant(
        "prod",
        restore={"sourceStack": "staging", "adoptIdentifier": "dbplatform-prod-pg-restored"},
    )
    db = primary(rec)
    assert db.import_id == "dbplatform-prod-pg-restored"
    assert db.inputs["identifier"] == "dbplatform-prod-pg-restored"
    # what the restore chose cannot match what this stack declares; the import must not fail
    assert {"kmsKeyId", "dbSubnetGroupName", "password"} <= set(db.ignore_changes)
    assert "kmsKeyId" not in primary(run_variant("prod")).ignore_changes


def _taggable(type_token: str) -> bool:
    pkg, mod_and_kind, cls = type_token.split(":")
    if pkg != "aws":
        return False
    module = getattr(pulumi_aws, mod_and_kind.split("/")[0], None)
    klass = getattr(module, cls, None)
    init = getattr(klass, "_internal_init", None)
    return init is not None and "tags" in init.__code__.co_varnames


def test_every_taggable_resource_carries_the_base_tags(stack_recording: Recording) -> None:
    rec = stack_recording
    base = load_stack(rec.stack).base_tags()
    checked = 0
    for r in rec.resources:
        if r.custom and _taggable(r.type):
            tags = r.inputs.get("tags") or {}
            missing = {k for k, v in base.items() if tags.get(k) != v}
            assert not missing, f"{r.type} {r.name} lacks base tags {sorted(missing)}"
            checked += 1
    assert checked >= 15


def _walk(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _walk(v)]
    if isinstance(value, list):
        return [s for v in value for s in _walk(v)]
    return [value] if isinstance(value, str) else []


def test_exports_are_flat_prefixed_and_hold_no_secret(stack_recording: Recording) -> None:
    out = stack_recording.outputs
    for key in (
        "db_primary_endpoint",
        "db_primary_identifier",
        "db_replica_endpoints",
        "db_master_secret_arn",
    ):
        assert key in out
    assert SECRET not in _walk(out)
    assert not any("password" in k for k in out)
    assert out["db_primary_identifier"] == Names(stack_recording.stack).primary


def test_secrets_appear_only_in_secret_holding_inputs(stack_recording: Recording) -> None:
    allowed = {
        ("aws:rds/instance:Instance", "password"),
        ("aws:secretsmanager/secretVersion:SecretVersion", "secretString"),
        ("aws:sns/topicSubscription:TopicSubscription", "endpoint"),
    }
    for r in stack_recording.resources:
        for key, value in r.inputs.items():
            if SECRET in _walk(value):
                assert (r.type, key) in allowed or r.type.startswith("random:"), (
                    r.type,
                    r.name,
                    key,
                )


def test_master_secret_is_self_managed_in_the_rds_shape(prod: Recording) -> None:
    (secret,) = [
        s
        for s in prod.of_type("aws:secretsmanager/secret:Secret")
        if s.inputs["name"] == Names("prod").master_secret
    ]
    assert secret.protect and secret.inputs["kmsKeyId"] == KNOWN_AFTER_DEPLOY
    (version,) = [
        v
        for v in prod.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if v.name.startswith("vault-master")
    ]
    assert version.inputs["secretString"] == SECRET
    assert version.ignore_changes == ["secretString"]


def test_stacks_in_one_process_do_not_leak_into_each_other(
    prod: Recording, staging: Recording
) -> None:
    prod_names = {r.inputs.get("identifier") for r in prod.of_type(INSTANCE)}
    staging_names = {r.inputs.get("identifier") for r in staging.of_type(INSTANCE)}
    assert not prod_names & staging_names
    assert all(":staging::" in r.urn for r in staging.resources)
    assert json.dumps(staging.outputs).count("prod") == 0


def test_staging_is_relaxed_only_where_its_file_says(staging: Recording) -> None:
    db = primary(staging)
    assert db.inputs["multiAz"] is False and db.inputs["deletionProtection"] is False
    assert db.protect is False
    assert db.inputs["skipFinalSnapshot"] is False  # even staging keeps a final snapshot
    assert db.inputs["storageEncrypted"] is True


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_bad_config_stops_the_program_before_any_resource(
    stack: str, run_variant: Callable[..., Recording]
) -> None:
    with pytest.raises(ConfigError, match=r"database\.port"):
        run_variant(stack, database={"port": 22})


def test_a_pending_major_upgrade_gets_its_parameter_group_beside_the_current_one(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant("prod", database={"upgradeTargetVersion": "17"})
    groups = {g.inputs["family"]: g for g in rec.of_type("aws:rds/parameterGroup:ParameterGroup")}
    assert set(groups) == {"postgres16", "postgres17"}
    assert groups["postgres17"].inputs["name"] == "dbplatform-prod-postgres17"
    assert groups["postgres17"].inputs["parameters"] == groups["postgres16"].inputs["parameters"]
    assert primary(rec).inputs["parameterGroupName"] == "dbplatform-prod-postgres16"
    # a group still used by the retired blue after the upgrade is forgotten, not deleted
    assert all(g.retain_on_delete for g in groups.values())
    # left in place once engineVersion reaches it: nothing extra, nothing refused
    done = run_variant("prod", database={"engineVersion": "17", "upgradeTargetVersion": "17"})
    assert [g.inputs["family"] for g in done.of_type("aws:rds/parameterGroup:ParameterGroup")] == [
        "postgres17"
    ]


def test_a_misspelt_key_passed_by_the_cli_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pulumi up` hands config over in PULUMI_CONFIG, not in the runtime's CONFIG (mocks)."""
    values, region = read_stack_values("prod", ROOT)
    engine = {**pulumi_config("prod", values, region), "dbplatform:databse": '{"port": 5433}'}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(engine))
    token = CONFIG.set({})
    try:
        got, got_region = program._engine_values()
    finally:
        CONFIG.reset(token)
    assert got_region == region
    assert got["database"] == values["database"] and got["databse"] == {"port": 5433}
    with pytest.raises(ConfigError, match=r"dbplatform:databse .* is not a known key"):
        load_config("prod", got, got_region)


def test_a_provider_without_a_region_deploys_in_the_stacks_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)

    def program() -> None:
        plain = pulumi_aws.Provider("plain")
        pulumi_aws.sns.Topic("topic", opts=pulumi.ResourceOptions(provider=plain))

    rec = run_program("staging", root=ROOT, program=program)
    assert rec.by_name("topic").region == rec.by_name("plain").region == "us-east-1"


def test_pulumi_up_refuses_a_bad_aws_setting_in_the_offline_commands_words(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`pulumi up` reads the program's config from the engine, not the stack file: its `aws:`
    settings get the same check there as in synth and the operations (review)."""
    values, region = read_stack_values("prod", ROOT)
    engine = {**pulumi_config("prod", values, region), "aws:maxRetries": "lots"}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(engine))
    monkeypatch.setattr(pulumi, "get_stack", lambda: "prod")
    token = CONFIG.set({})
    try:
        with pytest.raises(ConfigError) as refused:
            program.load()
        offline = aws_setting_problems({"aws:maxRetries": "lots"}, "Pulumi.prod.yaml")
        assert refused.value.problems == offline and "aws:maxRetries 'lots'" in offline[0]
        monkeypatch.setenv("PULUMI_CONFIG", json.dumps({**engine, "aws:maxRetries": "5"}))
        assert program.load().stack == "prod"  # a good value passes
        # the engine hands secrets over decrypted: a mistyped field of one never shows its value
        role = [{"roleArn": "arn:aws:iam::123456789012:role/x", "externalID": "Tr1cky-S3cret"}]
        monkeypatch.setenv(
            "PULUMI_CONFIG", json.dumps({**engine, "aws:assumeRoles": json.dumps(role)})
        )
        monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps(["aws:assumeRoles"]))
        with pytest.raises(ConfigError) as secret:
            program.load()
        assert "aws:assumeRoles[0].… '…' is not a field of an aws:assumeRoles entry" in str(
            secret.value
        )
        assert "Tr1cky-S3cret" not in str(secret.value)
    finally:
        CONFIG.reset(token)
