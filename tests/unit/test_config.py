"""The stack config loader: committed stacks load, bad configs are refused naming the key."""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.config import (
    ROOT,
    ConfigError,
    StackConfig,
    camel,
    committed_stacks,
    load_config,
    load_stack,
    project_defaults,
    read_stack_values,
)


def prod_values() -> tuple[dict[str, Any], str]:
    values, region = read_stack_values("prod", ROOT)
    return copy.deepcopy(values), region


def with_change(values: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set `group.field[.field]` in a copy of the values, starting from the project default."""
    out = copy.deepcopy(values)
    defaults = project_defaults(ROOT)
    head, *rest = path.split(".")
    if not rest:
        out[head] = value
        return out
    if not isinstance(out.get(head), dict):
        out[head] = {}
    node = out[head]
    default_node = defaults.get(head, {})
    for part in rest[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = copy.deepcopy(default_node.get(part, {}))
        node = node[part]
        default_node = default_node.get(part, {})
    node[rest[-1]] = value
    return out


def test_every_committed_stack_loads_without_the_pulumi_runtime() -> None:
    stacks = committed_stacks(ROOT)
    assert {"prod", "staging"} <= set(stacks)
    for stack in stacks:
        cfg = load_stack(stack)
        assert cfg.stack == stack
        assert cfg.region


def test_prod_keeps_the_safe_defaults_and_staging_relaxes_them_in_its_file() -> None:
    prod, staging = load_stack("prod"), load_stack("staging")
    assert prod.is_production and not staging.is_production
    assert prod.database.multi_az and prod.database.deletion_protection
    assert prod.database.storage_encrypted and not prod.database.skip_final_snapshot
    assert not staging.database.multi_az
    staging_file = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())["config"]
    assert staging_file["dbplatform:database"]["multiAz"] is False


def test_omitted_fields_keep_the_pulumi_yaml_default() -> None:
    prod = load_stack("prod")
    defaults = project_defaults(ROOT)
    assert prod.database.maintenance_window == defaults["database"]["maintenanceWindow"]
    assert prod.database.instance_class == "db.r6g.xlarge"  # set in Pulumi.prod.yaml


def test_pulumi_yaml_documents_every_field_with_a_default() -> None:
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = project_defaults(ROOT)
    hints = typing.get_type_hints(StackConfig)
    for f in dataclasses.fields(StackConfig):
        if f.name in ("stack", "region"):
            continue
        key = camel(f.name)
        spec = project[f"dbplatform:{key}"]
        assert spec.get("description"), key
        assert key in defaults, key
        group = hints[f.name]
        if dataclasses.is_dataclass(group):  # a group: every field has a default and a mention
            fields = {camel(x.name) for x in dataclasses.fields(group)}
            assert set(defaults[key]) == fields, f"{key}: Pulumi.yaml default keys != fields"
            for name in fields:
                assert name in spec["description"], f"{key}.{name} is not described"


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    # (path, value, key the message must name)
    ("database.instanceClass", "r6g.large", "database.instanceClass"),
    ("database.instanceClass", "db.q9.large", "database.instanceClass"),
    ("database.engineVersion", 16.4, "database.engineVersion"),
    ("database.engineVersion", "9.6", "database.engineVersion"),
    ("database.engineVersion", "sixteen", "database.engineVersion"),
    ("database.allocatedStorage", 10, "database.allocatedStorage"),
    ("database.maxAllocatedStorage", 210, "database.maxAllocatedStorage"),
    ("database.performanceInsightsRetentionDays", 30, "database.performanceInsightsRetentionDays"),
    ("database.monitoringInterval", 7, "database.monitoringInterval"),
    ("database.port", 80, "database.port"),
    ("database.masterUsername", "rdsadmin", "database.masterUsername"),
    ("database.dbName", "1app", "database.dbName"),
    ("database.maintenanceWindow", "sunday:02:00-sunday:04:00", "database.maintenanceWindow"),
    ("database.maintenanceWindow", "sun:02:00-sun:02:15", "database.maintenanceWindow"),
    ("database.maintenanceWindow", "sun:25:00-sun:26:00", "database.maintenanceWindow"),
    ("database.multiAz", False, "database.multiAz"),
    ("database.deletionProtection", False, "database.deletionProtection"),
    ("database.storageEncrypted", False, "database.storageEncrypted"),
    ("database.skipFinalSnapshot", True, "database.skipFinalSnapshot"),
    ("database.multiAz", "yes", "database.multiAz"),
    ("database.instanceClas", "db.r6g.large", "database.instanceClas"),
    ("database.upgradeTargetVersion", "15", "database.upgradeTargetVersion"),
    ("database.upgradeTargetVersion", "99", "database.upgradeTargetVersion"),
    ("database.upgradeTargetVersion", "next", "database.upgradeTargetVersion"),
    ("backup.retentionDays", 36, "backup.retentionDays"),
    ("backup.retentionDays", 0, "backup.retentionDays"),
    ("backup.retentionDays", 14, "backup.retentionDays"),
    ("backup.window", "3:00-4:00", "backup.window"),
    ("backup.window", "04:30-04:45", "backup.window"),
    ("backup.window", "03:00-04:30", "backup.window"),
    ("backup.window", "23:30-02:30", "backup.window"),
    ("backup.vaultLock.minRetentionDays", 14, "backup.plan[0].retentionDays"),
    ("replicas", [{"name": "r1"}, {"name": "r1"}], "replicas[1].name"),
    ("replicas", [{"name": "R_1"}], "replicas[0].name"),
    (
        "replicas",
        [{"name": "r1", "availabilityZone": "eu-west-1a"}],
        "replicas[0].availabilityZone",
    ),
    (
        "replicas",
        [{"name": "r1", "maintenanceWindow": "sun:03:00-sun:04:00"}],
        "replicas[0].maintenanceWindow",
    ),
    ("replicas", [{"instanceClass": "db.r6g.large"}], "replicas[0].name"),
    ("replicas", [{"name": f"r{i}"} for i in range(16)], "replicas"),
    ("dr.region", "us-east-1", "dr.region"),
    ("dr.region", "mars-north-1", "dr.region"),
    ("dr.region", "cn-north-1", "dr.region"),  # another partition: no replication across
    ("dr.region", None, "dr.region"),  # prod replicates its backups to the DR region
    ("dr.crossRegionReplica", True, "dr.crossRegionReplica"),
    ("dr.rpoMinutes", 0, "dr.rpoMinutes"),
    ("network.cidr", "10.0.0.0/8", "network.cidr"),
    ("network.allowedCidrs", ["0.0.0.0/0"], "network.allowedCidrs"),
    ("network.vpcId", "vpc-123", "network.vpcId"),
    ("network.azCount", 1, "network.azCount"),
    ("vault.rotationDays", 0, "vault.rotationDays"),
    ("vault.rotationWindow", "sun:02:30-sun:03:30", "vault.rotationWindow"),
    (
        "alarms.thresholds.cpuPercent",
        {"warning": 95, "critical": 90},
        "alarms.thresholds.cpuPercent",
    ),
    (
        "alarms.thresholds.freeStoragePercent",
        {"warning": 120, "critical": 10},
        "alarms.thresholds.freeStoragePercent",
    ),
    (
        "alarms.subscriptions",
        [{"severity": "page", "protocol": "email", "endpoint": "a@b.io"}],
        "alarms.subscriptions[0].severity",
    ),
    (
        "alarms.subscriptions",
        [{"severity": "warning", "protocol": "https", "endpoint": "http://x"}],
        "alarms.subscriptions[0].endpoint",
    ),
    ("tier", "prod", "tier"),
    ("safetyOverrides", ["allow-everything"], "safetyOverrides"),
    ("tags", {"owner": "someone-else"}, "tags.owner"),
    ("restore.adoptIdentifier", "dbplatform-prod-pg-restored", "restore.sourceStack"),
]


@pytest.mark.parametrize(
    ("path", "value", "key"), BAD_CONFIGS, ids=[f"{p}={v!r}" for p, v, _ in BAD_CONFIGS]
)
def test_bad_config_is_refused_naming_the_key(path: str, value: Any, key: str) -> None:
    values, region = prod_values()
    with pytest.raises(ConfigError) as err:
        load_config("prod", with_change(values, path, value), region)
    message = str(err.value)
    assert f"dbplatform:{key}" in message, message
    assert message.startswith("stack 'prod'")
    assert "Pulumi.prod.yaml" in message


def test_backup_window_overlap_message_names_both_windows_and_the_day() -> None:
    values, region = prod_values()
    bad = with_change(values, "backup.window", "03:00-04:30")
    with pytest.raises(ConfigError) as err:
        load_config("prod", bad, region)
    assert (
        "prod: dbplatform:backup.window '03:00-04:30' overlaps maintenance window "
        "'sun:02:00-sun:04:00' on Sunday" in str(err.value)
    )


def test_every_problem_is_reported_at_once() -> None:
    values, region = prod_values()
    bad = with_change(values, "database.port", 80)
    bad = with_change(bad, "backup.vaultLock.changeableForDays", 1)
    bad = with_change(bad, "dr.rtoMinutes", 0)
    with pytest.raises(ConfigError) as err:
        load_config("prod", bad, region)
    assert len(err.value.problems) == 3, err.value.problems


def test_a_named_override_allows_a_single_az_production_stack() -> None:
    values, region = prod_values()
    bad = with_change(values, "database.multiAz", False)
    with pytest.raises(ConfigError):
        load_config("prod", bad, region)
    ok = with_change(bad, "safetyOverrides", ["allow-single-az"])
    assert load_config("prod", ok, region).database.multi_az is False


def test_missing_region_and_bad_stack_name_are_refused() -> None:
    values, _ = prod_values()
    with pytest.raises(ConfigError, match="aws:region is required"):
        load_config("prod", values, None)
    with pytest.raises(ConfigError, match="stack name"):
        load_config("Prod_1", values, "us-east-1")
    with pytest.raises(ConfigError, match="aws:region 'us-middle-9'"):
        load_config("prod", values, "us-middle-9")


def test_retention_zero_is_allowed_only_without_replicas_and_blue_green() -> None:
    values, region = read_stack_values("staging", ROOT)
    values = with_change(values, "backup.retentionDays", 0)
    with pytest.raises(ConfigError, match=r"backup\.retentionDays"):
        load_config("staging", values, region)
    values = with_change(values, "replicas", [])
    values = with_change(values, "database.blueGreen", False)
    assert load_config("staging", values, region).backup.retention_days == 0


def test_missing_stack_file_and_invalid_yaml_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    with pytest.raises(ConfigError, match=r"Pulumi\.nope\.yaml not found") as missing:
        load_stack("nope", tmp_path)
    # the folder is the project's, not the working directory: the message names the stacks
    assert "stacks there: none" in str(missing.value)
    with pytest.raises(ConfigError) as typo:
        load_stack("prd")
    assert "stacks there: prod, staging" in str(typo.value)
    # a file that is not there is not one to fix (ops review 26)
    assert "fix the stack name" in str(typo.value) and "fix Pulumi.prd" not in str(typo.value)
    with pytest.raises(ConfigError) as path:  # no file to fix: the --stack value is wrong
        load_stack("../prod")
    assert "fix the stack name" in str(path.value) and "Pulumi.../" not in str(path.value)
    # the keys a user may set: not `stack` and `region`, which the program fills in
    (tmp_path / "Pulumi.typo.yaml").write_text("config:\n  dbplatform:databse: {}\n")
    with pytest.raises(ConfigError) as unknown:
        load_stack("typo", tmp_path)
    known = str(unknown.value).split("(known: ", 1)[1].split(")", 1)[0].split(", ")
    assert "database" in known and "stack" not in known and "region" not in known
    # an empty required value is said to be missing, not to be quoted
    text = (ROOT / "Pulumi.staging.yaml").read_text()
    owner = next(line for line in text.splitlines() if line.strip().startswith("dbplatform:owner:"))
    (tmp_path / "Pulumi.empty.yaml").write_text(text.replace(owner, "  dbplatform:owner:", 1))
    with pytest.raises(ConfigError) as empty:
        load_stack("empty", tmp_path)
    assert "dbplatform:owner (not set) must be set" in str(empty.value)
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stack("bad", tmp_path)


# --- property-based: any value anywhere either loads or is a ConfigError ---

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["sun:02:00-sun:04:00", "04:30-05:30", "db.r6g.large", "us-west-2", "16.4"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=12), inner, max_size=3)
    ),
    max_leaves=8,
)
_paths = st.sampled_from(
    [
        "tier",
        "owner",
        "tags",
        "safetyOverrides",
        "replicas",
        "database.engineVersion",
        "database.instanceClass",
        "database.allocatedStorage",
        "database.maintenanceWindow",
        "backup.window",
        "backup.plan",
        "backup.vaultLock",
        "vault.appSecrets",
        "vault.rotationWindow",
        "alarms.thresholds",
        "alarms.subscriptions",
        "dr.region",
        "network.cidr",
        "network",
        "database",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(_paths, _values), min_size=1, max_size=3))
def test_loader_either_loads_or_raises_config_error(changes: list[tuple[str, Any]]) -> None:
    values, region = prod_values()
    for path, value in changes:
        values = with_change(values, path, value)
    try:
        cfg = load_config("prod", values, region)
    except ConfigError as err:
        assert err.problems
        assert all(p.startswith(("prod:", "prod ")) for p in err.problems), err.problems
    else:
        assert isinstance(cfg, StackConfig)


def test_a_week_too_full_for_replica_windows_is_a_config_error() -> None:
    values, region = prod_values()
    # 23 h maintenance leaves no 23 h slot for a replica anywhere else in the week
    values = with_change(values, "database.maintenanceWindow", "mon:00:00-mon:23:00")
    values = with_change(values, "backup.window", "23:00-00:00")
    values = with_change(values, "vault.rotationWindow", "tue:00:00-tue:01:00")
    values = with_change(values, "backup.plan", [])
    values = with_change(values, "backup.restoreTesting", False)
    values = with_change(values, "backup.vaultLock", {"enabled": False})
    with pytest.raises(ConfigError, match="cannot be scheduled"):
        load_config("prod", values, region)


def test_the_prod_stack_cannot_be_declared_non_production_in_its_file() -> None:
    # Security review M-2: one line in Pulumi.prod.yaml lifted `protect` from 16 resources.
    values, region = prod_values()
    with pytest.raises(ConfigError) as err:
        load_config("prod", with_change(values, "tier", "non-production"), region)
    assert (
        "prod: dbplatform:tier 'non-production' must be 'production': 'prod' is a production "
        "stack in code" in str(err.value)
    )
    # Any other stack may still choose its tier.
    staging = load_config("staging", with_change(values, "tier", "non-production"), region)
    assert staging.tier == "non-production"


def _staging_as(stack: str, **groups: Any) -> Any:
    values, region = read_stack_values("staging", ROOT)
    values = {**copy.deepcopy(values), **groups}
    return load_config(stack, values, region, root=ROOT)


@pytest.mark.parametrize(
    ("stack", "replicas", "says"),
    [
        (
            "ops-drill-weekly",
            None,
            "stack name 'ops-drill-weekly' gives dbplatform-ops-drill-weekly-pg",
        ),
        ("staging", [{"name": "x-drill-abc123-pg"}], "replicas[0].name"),
    ],
)
def test_no_stack_declares_what_looks_like_a_drills_or_restore_checks_resource(
    stack: str, replicas: Any, says: str
) -> None:
    """Review: CI's drills role may tag, change and delete resources of the exact shapes a drill
    or restore check creates (ci/iam/drill.json), so no stack may declare one."""
    groups = {} if replicas is None else {"replicas": replicas}
    with pytest.raises(ConfigError) as refused:
        _staging_as(stack, **groups)
    assert says in str(refused.value) and "drills role may delete" in str(refused.value)
    # a restore check's shape is out of a declared name's reach: a replica name has at most
    # 20 characters, the run id alone 23, and a primary ends in -pg


def test_a_drills_own_stack_may_have_the_drill_shape() -> None:
    from infra.naming import drill_stack

    own = drill_stack("staging", "abc123")
    values, region = read_stack_values("staging", ROOT)
    values = {**copy.deepcopy(values), "restore": {"sourceStack": "staging"}}
    try:
        load_config(own, values, region, root=ROOT)
    except ConfigError as exc:  # other rules of a DR stack may object, never the name
        assert "drills role may delete" not in str(exc)


@pytest.mark.parametrize(
    "case",
    [
        ("instanceClass:", "instanceClas:", "dbplatform:database.instanceClas", "instanceClass"),
        ("config:\n", "config:\n  dbplatform:bakup: {retentionDays: 7}\n", "bakup", "backup"),
        ("config:\n", "config:\n  aws:regoin: us-east-1\n", "'aws:regoin'", "region"),
        ("config:\n", "config:\n  dbplatfrom:owner: x\n", "'dbplatfrom:owner'", "dbplatform"),
    ],
)
def test_a_misspelt_key_names_the_one_meant(
    case: tuple[str, str, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """UX review: an unknown key listed every valid key but not the close one; exit 2 and the
    key named stay as they were. `case`: the text replaced, by what, the key, the key meant."""
    from scripts import config

    old, new, key, meant = case

    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    text = (ROOT / "Pulumi.staging.yaml").read_text()
    assert old in text
    (tmp_path / "Pulumi.typo.yaml").write_text(text.replace(old, new, 1))
    assert config.main(["--stack", "typo", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    (problem,) = [p for p in err.splitlines() if key in p]
    assert f"did you mean {meant}?" in problem, problem


def test_no_suggestion_when_nothing_is_close(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    text = (ROOT / "Pulumi.staging.yaml").read_text()
    (tmp_path / "Pulumi.far.yaml").write_text(
        text.replace("config:\n", "config:\n  dbplatform:zzzzzz: 1\n", 1)
    )
    with pytest.raises(ConfigError) as far:
        load_stack("far", tmp_path)
    assert "dbplatform:zzzzzz 1 is not a known key (known: " in str(far.value)
    assert "did you mean" not in str(far.value)
