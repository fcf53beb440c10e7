"""The vault under mocks: encrypted secrets, generated app secrets, master rotation, DR replicas.

Also the rotation schedule mapping (rotationDays + rotationWindow -> Secrets Manager cron and
duration), checked by expanding the cron over 2000-2100 with an independent reading of AWS's
cron semantics, and the vault's config rules.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra import offline
from infra.components.vault import ROTATION_APPLICATION_ID, rotation_schedule
from infra.config import ConfigError, load_config, read_stack_values
from infra.naming import Names
from infra.offline import KNOWN_AFTER_DEPLOY, SECRET, Recorded, Recording, run_program
from policy.windows import parse_weekly
from tests.conftest import ROOT

SECRET_T = "aws:secretsmanager/secret:Secret"
VERSION_T = "aws:secretsmanager/secretVersion:SecretVersion"
ROTATION_T = "aws:secretsmanager/secretRotation:SecretRotation"
KEY_T = "aws:kms/key:Key"
PASSWORD_T = "random:index/randomPassword:RandomPassword"
SAR_T = "aws:serverlessrepository/cloudFormationStack:CloudFormationStack"
SG_T = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_T = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS_T = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
ENDPOINT_T = "aws:ec2/vpcEndpoint:VpcEndpoint"


def deps(rec: Recording, res: Recorded, type_token: str) -> list[Recorded]:
    """The resources of a type that `res` depends on."""
    by_urn = rec.by_urn()
    return [by_urn[u] for u in res.dependencies if u in by_urn and by_urn[u].type == type_token]


def secret_named(rec: Recording, name: str) -> Recorded:
    (s,) = [s for s in rec.of_type(SECRET_T) if s.inputs["name"] == name]
    return s


def walk(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    elif isinstance(value, str):
        yield value


# --- encryption and key policy ------------------------------------------------------------


def test_every_secret_is_encrypted_with_a_rotating_cmk_limited_to_the_account(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    secrets = rec.of_type(SECRET_T)
    assert len(secrets) == 1 + len(rec.config.vault.app_secrets)
    for s in secrets:
        assert s.inputs["kmsKeyId"] == KNOWN_AFTER_DEPLOY, s.name
        keys = deps(rec, s, KEY_T)  # its own region's key, plus the DR replica's key
        assert rec.config.region in {k.region for k in keys}
        for key in keys:
            assert key.inputs["enableKeyRotation"] is True
            for st in json.loads(key.inputs["policy"])["Statement"]:
                principal = st["Principal"].get("AWS")
                if st["Effect"] == "Deny":
                    continue  # the key guard (test_aws_rules), which narrows, never opens
                if principal == "*":
                    # open principals only through Secrets Manager, only for this account
                    cond = st["Condition"]
                    assert cond["StringEquals"]["kms:CallerAccount"] == "123456789012"
                    assert cond["StringLike"]["kms:ViaService"].startswith("secretsmanager.")
                    assert "kms:*" not in st["Action"]
                else:
                    assert principal == "arn:aws:iam::123456789012:root"
    aliases = {a.inputs["name"] for a in rec.of_type("aws:kms/alias:Alias")}
    assert Names(rec.stack).kms_alias("secrets") in aliases


def test_prod_protects_secrets_and_their_keys_staging_does_not(
    prod: Recording, staging: Recording
) -> None:
    for rec, protected in ((prod, True), (staging, False)):
        for s in rec.of_type(SECRET_T):
            assert s.protect is protected, s.name
            assert all(k.protect is protected for k in deps(rec, s, KEY_T))


# --- application secrets -------------------------------------------------------------------


def test_app_secrets_from_config_are_generated_and_stored_as_secrets(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    names = Names(rec.stack)
    assert rec.config.vault.app_secrets, "the committed stacks declare application secrets"
    for spec in rec.config.vault.app_secrets:
        secret = secret_named(rec, names.app_secret(spec.name))
        assert secret.inputs["description"] == spec.description
        assert secret.inputs["recoveryWindowInDays"] >= 7
        (version,) = [v for v in rec.of_type(VERSION_T) if secret.urn in v.dependencies]
        assert version.inputs["secretString"] == SECRET
        # scripts.rotate_secret writes new values; `pulumi up` must not write the old one back
        assert version.ignore_changes == ["secretString"]
        (generator,) = deps(rec, version, PASSWORD_T)
        assert generator.inputs["length"] == spec.length
        assert generator.inputs["special"] is False


@pytest.fixture(scope="module")
def canary_prod(request: pytest.FixtureRequest) -> Recording:
    """prod, run with every generated password known (a canary) instead of unknown."""
    mp = pytest.MonkeyPatch()
    original = offline._make_mocks

    def canary_mocks(region: str, sink: list[Recorded]) -> Any:
        import pulumi

        inner = original(region, sink)

        class Canary(pulumi.runtime.Mocks):
            def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Any, dict]:
                rid, state = inner.new_resource(args)
                if args.typ == PASSWORD_T:
                    state = {**state, "result": f"CANARY{args.name}CANARY"}
                return rid, state

            def call(self, args: pulumi.runtime.MockCallArgs) -> Any:
                return inner.call(args)

        return Canary()

    mp.setattr(offline, "_make_mocks", canary_mocks)
    request.addfinalizer(mp.undo)
    return run_program("prod", root=ROOT)


def test_no_generated_value_appears_in_exports_or_any_recorded_input(
    canary_prod: Recording,
) -> None:
    rec = canary_prod
    # the values were known this time (the master JSON was built from one) and stay redacted
    assert {v.inputs["secretString"] for v in rec.of_type(VERSION_T)} == {SECRET}
    leaks = [(r.type, r.name) for r in rec.resources if any("CANARY" in s for s in walk(r.inputs))]
    assert leaks == []
    assert not any("CANARY" in s for s in walk(rec.outputs))
    holders = {
        (r.type, k)
        for r in rec.resources
        for k, v in r.inputs.items()
        if SECRET in walk(v) and not r.type.startswith("random:")
    }
    assert holders == {
        (VERSION_T, "secretString"),
        ("aws:sns/topicSubscription:TopicSubscription", "endpoint"),
        ("aws:rds/instance:Instance", "password"),
    }


# --- master secret rotation ----------------------------------------------------------------


def test_master_secret_rotates_through_the_hosted_function_on_the_config_schedule(
    stack_recording: Recording,
) -> None:
    rec = stack_recording
    cfg = rec.config
    master = secret_named(rec, Names(rec.stack).master_secret)
    (rotation,) = rec.of_type(ROTATION_T)
    assert master.urn in rotation.dependencies
    # rotating before the first value exists fails: the version comes first
    (first_version,) = [v for v in rec.of_type(VERSION_T) if master.urn in v.dependencies]
    assert first_version.urn in rotation.dependencies
    # the generated first password (in state) is rotated away at once (security M-8)
    assert rotation.inputs["rotateImmediately"] is True
    expected = rotation_schedule(cfg.vault.rotation_days, cfg.vault.rotation_window)
    assert rotation.inputs["rotationRules"] == {
        "scheduleExpression": expected.schedule_expression,
        "duration": expected.duration,
    }
    (sar,) = deps(rec, rotation, SAR_T)
    assert sar.inputs["applicationId"] == ROTATION_APPLICATION_ID
    assert re.fullmatch(r"\d+\.\d+\.\d+", sar.inputs["semanticVersion"]), "pin the version"
    assert {"CAPABILITY_IAM", "CAPABILITY_RESOURCE_POLICY"} <= set(sar.inputs["capabilities"])
    params = sar.inputs["parameters"]
    assert params["endpoint"] == f"https://secretsmanager.{cfg.region}.amazonaws.com"
    for ch in "/@\"' ":
        assert ch in params["excludeCharacters"]
    # placed in the DB's subnets, with its own security group, using the secrets key
    subnets = [r for r in rec.of_type("aws:ec2/subnet:Subnet") if r.urn in sar.dependencies]
    assert len(subnets) == rec.config.network.az_count
    assert any(k.name == "vault-key" for k in deps(rec, sar, KEY_T))
    (own_sg,) = deps(rec, sar, SG_T)
    db_sg = rec.by_name("network-db")
    assert own_sg.urn != db_sg.urn
    admitted = [
        r
        for r in rec.of_type(INGRESS_T)
        if db_sg.urn in r.dependencies and own_sg.urn in r.dependencies
    ]
    assert len(admitted) == 1
    assert admitted[0].inputs["fromPort"] == admitted[0].inputs["toPort"] == cfg.database.port


def test_isolated_network_gets_a_private_secrets_manager_endpoint(staging: Recording) -> None:
    (endpoint,) = staging.of_type(ENDPOINT_T)
    assert endpoint.inputs["serviceName"] == "com.amazonaws.us-east-1.secretsmanager"
    assert endpoint.inputs["vpcEndpointType"] == "Interface"
    assert endpoint.inputs["privateDnsEnabled"] is True
    rotation_sg = staging.by_name("vault-rotation")
    egress = [e for e in staging.of_type(EGRESS_T) if rotation_sg.urn in e.dependencies]
    assert {e.inputs["fromPort"] for e in egress} == {443, 5432}
    assert not any(e.inputs.get("cidrIpv4") for e in egress), "isolated: no route out"


def test_an_existing_vpc_brings_its_own_route_to_secrets_manager(
    run_variant: Callable[..., Recording],
) -> None:
    rec = run_variant(
        "staging",
        network={
            "vpcId": "vpc-0123456789abcdef0",
            "connect": {"mode": "none"},
            "subnetIds": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
        },
    )
    assert rec.of_type(ENDPOINT_T) == []
    (sar,) = rec.of_type(SAR_T)
    assert sar.inputs["parameters"]["vpcSubnetIds"] == (
        "subnet-0123456789abcdef0,subnet-0fedcba9876543210"
    )
    egress = [e.inputs for e in rec.of_type(EGRESS_T)]
    assert {"fromPort": 443, "cidrIpv4": "0.0.0.0/0"}.items() <= next(
        e for e in egress if e["fromPort"] == 443
    ).items()


# --- DR replicas ---------------------------------------------------------------------------


def test_prod_replicates_every_secret_to_the_dr_region_under_a_key_there(prod: Recording) -> None:
    dr = prod.config.dr.region
    assert dr == "us-west-2"
    for s in prod.of_type(SECRET_T):
        assert s.inputs["replicas"] == [{"region": dr, "kmsKeyId": KNOWN_AFTER_DEPLOY}], s.name
        regions = {k.region for k in deps(prod, s, KEY_T)}
        assert regions == {"us-east-1", dr}


@pytest.mark.parametrize(
    ("stack", "groups"),
    [("staging", {}), ("prod", {"vault": {"replicateToDr": False}})],
    ids=["no-dr-region", "replication-off"],
)
def test_no_secret_replica_without_dr_or_when_turned_off(
    stack: str, groups: dict[str, Any], run_variant: Callable[..., Recording]
) -> None:
    rec = run_variant(stack, **groups)
    assert all(not s.inputs.get("replicas") for s in rec.of_type(SECRET_T))


# --- the rotation schedule mapping ---------------------------------------------------------

_DOW = {"MON": 0, "TUE": 1, "WED": 2, "THU": 3, "FRI": 4, "SAT": 5, "SUN": 6}


def _fires(expr: str, years: range) -> list[dt.datetime]:
    """Every start of a Secrets Manager cron of the two shapes we emit, read per AWS's docs."""
    m = re.fullmatch(r"cron\(0 (\d+) \? (\*|1/\d+) ([A-Z]{3})(#1)? \*\)", expr)
    assert m, f"unexpected shape {expr}"
    hour, months, dow, first = int(m[1]), m[2], _DOW[m[3]], m[4]
    step = 1 if months == "*" else int(months.split("/")[1])
    out = []
    for y in years:
        for mo in range(1, 13, step):
            days = [
                d for d in range(1, calendar.monthrange(y, mo)[1] + 1)
                if dt.date(y, mo, d).weekday() == dow
            ]  # fmt: skip
            for d in days[:1] if first else days:
                out.append(dt.datetime(y, mo, d, hour))
    return out


@pytest.mark.parametrize("days", [7, 34, 35, 62, 63, 90, 97, 98, 126, 188, 189, 365])
@pytest.mark.parametrize(
    "window", ["tue:14:00-tue:16:00", "sun:20:00-mon:00:00", "sat:00:00-sat:01:00"]
)
def test_rotation_never_waits_longer_than_rotation_days_and_stays_in_the_window(
    days: int, window: str
) -> None:
    sched = rotation_schedule(days, window)
    # weekdays of dates repeat every 28 years between 1901 and 2099, century years aside
    fires = _fires(sched.schedule_expression, range(2000, 2101))
    gaps = {(b - a).days for a, b in itertools.pairwise(fires)}
    assert max(gaps) <= days
    assert max(gaps) == sched.max_interval_days
    w = parse_weekly(window)
    hours = int(sched.duration.removesuffix("h"))
    assert hours * 60 <= w.length
    for f in fires[:60]:
        start = f.weekday() * 1440 + f.hour * 60
        assert w.start <= start and start + hours * 60 <= w.start + w.length


def test_ninety_days_is_the_first_window_weekday_of_every_other_month() -> None:
    sched = rotation_schedule(90, "tue:14:00-tue:16:00")
    assert sched.schedule_expression == "cron(0 14 ? 1/2 TUE#1 *)"
    assert sched.duration == "2h"


# --- config rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vault", "rule"),
    [
        ({"rotationWindow": "sun:02:00-sun:04:00"}, "overlaps the maintenance window"),
        ({"rotationWindow": "mon:04:00-mon:06:00"}, "overlaps the backup window"),
        ({"rotationWindow": "tue:14:30-tue:16:30"}, "on the hour"),
        ({"rotationWindow": "tue:23:00-wed:01:00"}, "midnight UTC"),
        ({"rotationDays": 3}, "must be 7..365"),
        ({"appSecrets": [{"name": "jwt", "kind": "signing", "length": 8}]}, "must be 32..4096"),
    ],
)
def test_bad_rotation_settings_are_refused_naming_the_key(vault: dict[str, Any], rule: str) -> None:
    values, region = read_stack_values("prod", ROOT)
    values = {**values, "vault": {**values["vault"], **vault}}
    with pytest.raises(ConfigError) as err:
        load_config("prod", values, region, root=ROOT)
    text = str(err.value)
    assert "dbplatform:vault." in text and rule in text, text
