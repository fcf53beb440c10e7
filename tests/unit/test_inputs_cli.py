"""Command lines, environment variables and stack files under property-based tests: every input
is a clean refusal (exit 2 / the loader's error naming a key or flag) or a load, never a crash;
plus the concrete flags and variables users got wrong.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dbplatform import argtypes
from dbplatform.ops.aws import retry_config
from dbplatform.ops.errors import BadUsage
from infra.config import (
    ROOT,
    ConfigError,
    StackConfig,
    load_config,
    load_yaml,
    read_stack_values,
)
from policy.inputs import InputError
from scripts import bluegreen, dr, preview_report, restore_check

# A deeper run: INPUTS_EXAMPLES=2000 pytest tests/unit/test_inputs_*.py
SETTINGS = settings(
    max_examples=int(os.environ.get("INPUTS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize(
    ("argv", "flag", "rule"),
    [
        (["promote", "--stack", "prod", "--max-lag", "nan"], "--max-lag", "finite number"),
        (["promote", "--stack", "prod", "--max-lag", "inf"], "--max-lag", "finite number"),
        (["promote", "--stack", "prod", "--max-lag", "-1"], "--max-lag", "above 0"),
        (["promote", "--stack", "prod", "--max-lag", "1e999"], "--max-lag", "finite"),
        (["promote", "--stack", "prod", "--soak-days", "NaN"], "--soak-days", "days"),
        (
            ["promote", "--stack", "prod", "--switchover-timeout", "29"],
            "--switchover-timeout",
            "30..3600",
        ),
        (
            ["promote", "--stack", "prod", "--switchover-timeout", "²"],
            "--switchover-timeout",
            "whole",
        ),
        (["promote", "--stack", "prod", "--health-url", "https://"], "--health-url", "host"),
        (["promote", "--stack", "prod", "--health-url", "http://a:0/"], "--health-url", "1..65535"),
    ],
)
def test_bluegreen_flags_refuse_values_that_would_disable_a_gate(
    argv: list[str], flag: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        bluegreen.build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and rule in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("module", "argv", "text"),
    [
        (dr, ["restore-points", "--stack", "prod", "--region", "us-east-9"], "RDS is available"),
        (dr, ["restore-points", "--stack", "prod", "--region", "moon"], "not an AWS region"),
        (dr, ["rebuild", "--stack", "prod", "--max-gap", "-5"], "--max-gap"),
        (restore_check, ["--stack", "prod", "--sql-port", "70000"], "1..65535"),
        (restore_check, ["--stack", "prod", "--timeout", "١٠"], "--timeout"),
        # Values that reached AWS before (review of issue 16, F3/F13/F16): each names its flag.
        (restore_check, ["--stack", "p", "--instance-class", "db.foo"], "--instance-class"),
        (restore_check, ["--stack", "p", "--backup-role-arn", "role/x"], "IAM role ARN"),
        (restore_check, ["--stack", "p", "--sql-host", "db host"], "--sql-host: 'db host'"),
        (bluegreen, ["start", "--stack", "p", "--engine-version", "16.x"], "--engine-version"),
        (bluegreen, ["start", "--stack", "p", "--engine-version", "12"], "does not offer"),
        (bluegreen, ["start", "--stack", "p", "--instance-class", "db.r6g.micro"], "size"),
        (bluegreen, ["start", "--stack", "p", "--sql-host", "a..b"], "--sql-host"),
        (dr, ["rebuild", "--stack", "p", "--backup-role-arn", "my-role"], "--backup-role-arn"),
        (
            dr,
            ["rebuild", "--stack", "p", "--backup-role-arn", "arn:aws:iam::12345:role/r"],
            "--backup-role-arn",
        ),
        (dr, ["rebuild", "--stack", "p", "--security-group", "sg-xyz"], "8 or 17 hex"),
        (dr, ["rebuild", "--stack", "p", "--security-group", "a\tb"], "--security-group"),
        (dr, ["drill", "--stack", "p", "--instance-class", "db.foo"], "--instance-class"),
        (dr, ["rebuild", "--stack", "p", "--restore-time", "yesterday"], "--restore-time"),
        (preview_report, ["x.json", "--run-url", "ci/run/5"], "--run-url"),
        (preview_report, ["x.json", "--run-url", "https://ci.example:99999/r"], "--run-url"),
        (preview_report, ["x.json", "--cloud-url", "app.pulumi.com/x"], "--cloud-url"),
        (preview_report, ["x.json", "--full-report-url", "https://"], "--full-report-url"),
    ],
)
def test_other_flags_are_checked_before_any_aws_call(
    module: Any, argv: list[str], text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        module.build_parser().parse_args(argv)
    assert exc.value.code == 2
    assert text in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        (
            restore_check,
            ["--stack", "p", "--sql-host", "10.0.0.5", "--instance-class", "db.t4g.micro"],
        ),
        (restore_check, ["--stack", "p", "--sql-host", "localhost", "--sql-port", "15432"]),
        (
            restore_check,
            ["--stack", "p", "--backup-role-arn", "arn:aws-us-gov:iam::123456789012:role/a/b/r"],
        ),
        (bluegreen, ["start", "--stack", "p", "--engine-version", "17.2"]),
        (bluegreen, ["start", "--stack", "p", "--sql-host", "::1"]),
        (dr, ["rebuild", "--stack", "p", "--security-group", "sg-0123456789abcdef0"]),
        (dr, ["rebuild", "--stack", "p", "--security-group", "db access (prod)"]),
        (dr, ["rebuild", "--stack", "p", "--restore-time", "2026-11-23T04:30:00Z"]),
        (
            preview_report,
            ["x.json", "--run-url", "https://github.com/o/r/actions/runs/5#artifacts"],
        ),
    ],
)
def test_values_aws_accepts_parse(module: Any, argv: list[str]) -> None:
    module.build_parser().parse_args(argv)


def test_a_lag_gate_keeps_a_real_limit() -> None:
    args = bluegreen.build_parser().parse_args(["promote", "--stack", "p", "--max-lag", "2.5"])
    assert args.max_lag == 2.5


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("AWS_MAX_ATTEMPTS", "²", "AWS_MAX_ATTEMPTS='²' must be a whole number 1..100"),
        ("AWS_MAX_ATTEMPTS", "0", "1..100"),
        ("AWS_MAX_ATTEMPTS", "3.5", "whole number"),
        ("AWS_MAX_ATTEMPTS", "9" * 5000, "whole number"),
        ("AWS_RETRY_MODE", "fast", "adaptive, standard or legacy"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:99999", "AWS_ENDPOINT_URL="),
        ("AWS_ENDPOINT_URL_RDS", "https://", "must name a host"),
    ],
)
def test_bad_aws_environment_is_bad_usage(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, text: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(BadUsage) as exc:
        retry_config()
    assert text in str(exc.value)
    assert exc.value.exit_code == 2


@SETTINGS
@given(
    value=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
    )
)
@example("0\x1f")  # str.strip() removes \x1f, int() does not: was a traceback
@example("5\x1f")
@example(" 7 ")
def test_any_aws_max_attempts_is_used_or_refused(value: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_MAX_ATTEMPTS", value)
        try:
            config = retry_config()
        except BadUsage as exc:
            assert "AWS_MAX_ATTEMPTS" in str(exc)
        else:
            assert 1 <= config.retries["total_max_attempts"] <= 100


# --- command lines: anything a user types -----------------------------------------------------

ARG = st.sampled_from(
    [
        "--stack",
        "prod",
        "--max-lag",
        "--soak-days",
        "--switchover-timeout",
        "--health-url",
        "--region",
        "--max-gap",
        "--timeout",
        "--sql-port",
        "--json",
        "--dry-run",
        "nan",
        "-1",
        "1e999",
        "inf",
        "30",
        "https://",
        "us-east-1",
        "start",
        "promote",
        "rebuild",
        "restore-points",
    ]
) | st.text(max_size=6)


@SETTINGS
@given(argv=st.lists(ARG, max_size=6))
@pytest.mark.parametrize("module", [bluegreen, dr, restore_check])
def test_any_command_line_parses_or_exits_2(module: Any, argv: list[str]) -> None:
    parser = module.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        assert exc.code in (0, 2)  # 0 is --help
        return
    for name in ("max_lag", "soak_days", "max_gap"):
        value = getattr(args, name, None)
        assert value is None or math.isfinite(value)


@SETTINGS
@given(text=st.text(max_size=10))
@example(text="0\x1f")  # found by this test: a ValueError traceback, not a refusal
@example(text="5\u2003")
def test_number_types_refuse_or_return_a_finite_value(text: str) -> None:
    for parse in (argtypes.number(0, 10, low_open=True), argtypes.integer(1, 5)):
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert repr(text) in str(exc)
        else:
            assert 0 < value <= 10


def test_a_refusal_gives_the_bounds_as_a_user_types_them() -> None:
    with pytest.raises(argparse.ArgumentTypeError) as big:
        argtypes.number(0, 1024 * 1024, low_open=True, unit="MB")("abc")
    assert "above 0 and at most 1048576 MB" in str(big.value)  # not 1.04858e+06
    with pytest.raises(argparse.ArgumentTypeError) as small:
        argtypes.number(0.5, 2.5)("9")
    assert "0.5..2.5" in str(small.value)


TEXT_TYPES = (
    argtypes.instance_class,
    argtypes.engine_version,
    argtypes.role_arn,
    argtypes.security_group,
    argtypes.hostname,
    argtypes.utc_time,
    argtypes.http_url,
)


@SETTINGS
@given(
    text=st.text(max_size=40)
    | st.sampled_from(["db.r6g.", "sg-", "arn:aws:iam::", "16.", "http://:1", "::"]).flatmap(
        lambda p: st.text(max_size=20).map(lambda t: p + t)
    )
)
def test_text_types_return_the_text_or_name_it_in_the_refusal(text: str) -> None:
    for parse in TEXT_TYPES:
        try:
            value = parse(text)
        except argparse.ArgumentTypeError as exc:
            assert repr(text) in str(exc)
        else:
            assert value == text


# --- stack files: any value at any key, any bytes --------------------------------------------

VALUES, REGION = read_stack_values("prod", ROOT)
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text(max_size=10)
    | st.just({"secure": "v1:x"})
)
VALUE = st.recursive(
    LEAF,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = [
    ("tier",),
    ("owner",),
    ("tags",),
    ("network",),
    ("network", "subnetIds"),
    ("network", "cidr"),
    ("database",),
    ("database", "port"),
    ("database", "maxAllocatedStorage"),
    ("database", "masterUsername"),
    ("replicas",),
    ("backup",),
    ("backup", "plan"),
    ("backup", "vaultLock"),
    ("vault", "appSecrets"),
    ("alarms", "subscriptions"),
    ("alarms", "thresholds"),
    ("alarms", "healthCheckUrl"),
    ("dr",),
    ("dr", "region"),
    ("restore",),
    ("unknownKey",),
]


@SETTINGS
@given(key=st.sampled_from(KEYS), value=VALUE, region=st.sampled_from([REGION, None, 5, "x"]))
def test_any_stack_value_loads_or_is_refused_naming_a_key(
    key: tuple[str, ...], value: Any, region: Any
) -> None:
    values = copy.deepcopy(VALUES)
    node = values
    for part in key[:-1]:
        node = node.setdefault(part, {})
    node[key[-1]] = value
    try:
        cfg = load_config("prod", values, region)
    except ConfigError as exc:
        assert exc.problems
        assert all("prod:" in p or "Pulumi" in p for p in exc.problems)
        return
    assert isinstance(cfg, StackConfig)
    cfg.calendar()  # what the program and synth build next must work on a loaded config


@SETTINGS
@given(data=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode()))
def test_any_bytes_are_yaml_data_or_one_clean_refusal(data: bytes) -> None:
    try:
        load_yaml(data, "Pulumi.x.yaml")
    except InputError as exc:
        assert str(exc).startswith("Pulumi.x.yaml")


def test_a_stack_file_over_the_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_bytes((ROOT / "Pulumi.yaml").read_bytes())
    (tmp_path / "Pulumi.big.yaml").write_bytes(b"config:\n" + b"  # pad\n" * 200_000)
    with pytest.raises(ConfigError) as exc:
        read_stack_values("big", tmp_path)
    assert "1,600,008 bytes; the limit is 1,048,576" in str(exc.value)
