"""The stack file's `aws:` settings: every key pulumi-aws reads is checked for its type and
AWS's rule by one function, so the offline commands (`synth`, `config`) and the operations
refuse the same values with the same words (exit 2, naming the key), and `aws:region` of the
wrong type is named as `aws:region`, never as the dbplatform field it fills.

The types come from the provider itself (pulumi-aws `config/vars.py` getters and `ProviderArgs`
in `provider.py`), the bounds from botocore's service models, so a provider or botocore upgrade
that changes them fails here.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from infra.config import (
    AWS_SETTINGS,
    ROOT,
    ConfigError,
    aws_provider_keys,
    aws_setting_problems,
    aws_settings,
    load_config,
    read_stack_values,
)
from scripts import bluegreen, rotate_secret, synth
from scripts import config as config_cmd
from tests.unit.conftest import offline_project

PROD = (ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8")
REGION_LINE = "  aws:region: us-east-1\n"


def _with(lines: str, *, region: str | None = None) -> str:
    """The prod stack file with `lines` (YAML under `config:`) after its aws:region line."""
    head = REGION_LINE if region is None else f"  aws:region: {region}\n"
    return PROD.replace(REGION_LINE, head + lines, 1)


# --- the provider's own types, read from the installed pulumi-aws --------------------------


def _provider_types() -> dict[str, str]:
    """{camelCase key: bool | int | str | list | mapping} from pulumi-aws: `config/vars.py`
    names the key and its getter (get_bool, get_int, get), `ProviderArgs` its full type."""
    spec = importlib.util.find_spec("pulumi_aws")
    assert spec is not None and spec.origin is not None
    here = Path(spec.origin).parent
    getters = re.findall(
        r"def (\w+)\(self\)[^@]*?__config__\.(get\w*)\('(\w+)'\)",
        (here / "config" / "vars.py").read_text(encoding="utf-8"),
    )
    provider = (here / "provider.py").read_text(encoding="utf-8")
    init = provider[provider.index("class ProviderArgs:") :]
    init = init[: init.index('"""')]
    args = dict(re.findall(r"^\s+(\w+): (pulumi\.Input\[.*\]) = None", init, re.M))
    out: dict[str, str] = {}
    for snake, getter, camel in getters:
        if getter == "get_bool":
            out[camel] = "bool"
        elif getter == "get_int":
            out[camel] = "int"
        elif "Sequence[" in args[snake]:
            out[camel] = "list"
        elif "Args'" in args[snake]:
            out[camel] = "mapping"
        else:
            out[camel] = "str"
    return out


PROVIDER_TYPES = _provider_types()


def test_every_key_the_provider_reads_is_checked_and_no_other() -> None:
    assert set(AWS_SETTINGS) == set(PROVIDER_TYPES) == aws_provider_keys()
    # keys with digits were missing from the allow-list (its pattern was [A-Za-z]+)
    assert {"s3UsePathStyle", "ec2MetadataServiceEndpoint"} <= set(AWS_SETTINGS)


# A value of each JSON type; each key is refused every type but its own.
OF_TYPE: dict[str, list[Any]] = {
    "bool": [True],
    "int": [5],
    "str": ["some text"],
    "list": [["a"]],
    "mapping": [{"a": "b"}],
}
WRONG_TYPE = [
    (key, value)
    for key, kind in sorted(PROVIDER_TYPES.items())
    for other, values in OF_TYPE.items()
    if other != kind
    # the provider reads "5" and "true" as text of an int or a bool (`pulumi config set`)
    and not (kind in ("bool", "int") and other == "str")
    for value in values
]


def _problems(config: dict[str, Any]) -> list[str]:
    return aws_setting_problems(config, "Pulumi.s1.yaml")


@pytest.mark.parametrize(("key", "value"), WRONG_TYPE, ids=[f"{k}={v!r}" for k, v in WRONG_TYPE])
def test_a_value_of_the_wrong_type_is_refused_naming_the_key(key: str, value: Any) -> None:
    problems = _problems({f"aws:{key}": value})
    assert problems, f"aws:{key} {value!r} was accepted"
    assert all(p.startswith(f"Pulumi.s1.yaml: aws:{key}") for p in problems), problems


# Values the provider takes, one per key: the committed stacks use none, so each is shown here.
GOOD: dict[str, Any] = {
    "accessKey": "AKIAIOSFODNN7EXAMPLE",
    "allowedAccountIds": ["123456789012"],
    "assumeRoleWithWebIdentity": {
        "roleArn": "arn:aws:iam::123456789012:role/ci",
        "sessionName": "ci-run",
        "webIdentityTokenFile": "/var/run/token",
        "duration": "1h",
    },
    "assumeRoles": [
        {
            "roleArn": "arn:aws:iam::123456789012:role/deployer",
            "externalId": "ab",
            "duration": "15m",
            "policy": '{"Version": "2012-10-17", "Statement": []}',
            "policyArns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
            "tags": {"team": "data"},
            "transitiveTagKeys": ["team"],
            "sourceIdentity": "alice",
        }
    ],
    "customCaBundle": "/etc/ssl/ca.pem",
    "defaultTags": {"tags": {"team": "data", "env": "prod"}},
    "ec2MetadataServiceEndpoint": "http://169.254.169.254",
    "ec2MetadataServiceEndpointMode": "IPv6",
    "endpoints": [{"rds": "http://localhost:4566", "lambda": "https://lambda.example.com"}],
    "forbiddenAccountIds": ["210987654321"],
    "httpProxy": "http://proxy.example.com:3128",
    "httpsProxy": "http://proxy.example.com:3128",
    "ignoreTags": {"keys": ["Owner"], "keyPrefixes": ["kubernetes.io/"]},
    "insecure": False,
    "maxRetries": 25,
    "noProxy": "localhost,169.254.169.254",
    "profile": "data-ops",
    "region": "us-east-1",
    "retryMode": "adaptive",
    "s3UsEast1RegionalEndpoint": "regional",
    "s3UsePathStyle": "true",
    "secretKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "sharedConfigFiles": ["~/.aws/config"],
    "sharedCredentialsFiles": ["~/.aws/credentials"],
    "skipCredentialsValidation": "False",
    "skipMetadataApiCheck": True,
    "skipRegionValidation": False,
    "skipRequestingAccountId": False,
    "stsRegion": "us-west-2",
    "tagPolicyCompliance": "warning",
    "token": "FwoGZXIvYXdzEXAMPLE",
    "tokenBucketRateLimiterCapacity": "500",
    "useDualstackEndpoint": True,
    "useFipsEndpoint": False,
    "userAgents": ["dbplatform/1.0"],
}


def test_every_key_has_a_good_example() -> None:
    assert set(GOOD) == set(AWS_SETTINGS)


@pytest.mark.parametrize("key", sorted(GOOD))
def test_a_good_value_is_accepted(key: str) -> None:
    # allowed and forbidden account IDs conflict: each is shown alone
    assert _problems({f"aws:{key}": GOOD[key]}) == []


BAD: list[tuple[str, Any, str]] = [
    ("maxRetries", "lots", "aws:maxRetries 'lots' must be a whole number"),
    ("maxRetries", 0, "aws:maxRetries 0 must be a whole number of at least 1"),
    ("maxRetries", "-3", "aws:maxRetries '-3' must be a whole number"),
    ("maxRetries", 2**63, "must be a whole number"),  # beyond Go's int
    ("maxRetries", 2.5, "aws:maxRetries 2.5 must be a whole number"),
    ("maxRetries", True, "aws:maxRetries true must be a whole number"),
    ("tokenBucketRateLimiterCapacity", "0", "aws:tokenBucketRateLimiterCapacity '0'"),
    ("profile", ["a"], 'aws:profile ["a"] must be a profile name (text, not a list)'),
    ("profile", "", "aws:profile '' must be a profile name"),
    ("profile", " ops", "aws:profile ' ops' must be a profile name"),
    ("profile", "a\nb", "aws:profile 'a\\nb' must be a profile name"),  # one line
    ("insecure", "yes", "aws:insecure 'yes' must be true or false"),
    ("skipCredentialsValidation", 1, "aws:skipCredentialsValidation 1 must be true or false"),
    ("retryMode", "legacy", "aws:retryMode 'legacy' must be one of standard, adaptive"),
    ("s3UsEast1RegionalEndpoint", "global", "must be one of legacy, regional"),
    ("ec2MetadataServiceEndpointMode", "ipv4", "must be one of IPv4, IPv6"),
    ("tagPolicyCompliance", "strict", "must be one of error, warning, disabled"),
    ("ec2MetadataServiceEndpoint", "http://h:99999", "a port must be 1..65535"),
    ("stsRegion", "us-middle-9", "aws:stsRegion 'us-middle-9' is not a region"),
    ("stsRegion", "useast1", "aws:stsRegion 'useast1' must be an AWS region name"),
    ("accessKey", "AKID", "aws:accessKey '…' must be an access key ID"),  # never shown
    ("allowedAccountIds", [], "aws:allowedAccountIds [] must be a list of account IDs"),
    ("allowedAccountIds", ["12345"], "aws:allowedAccountIds[0] '12345' must be a 12-digit"),
    ("forbiddenAccountIds", "123456789012", "aws:forbiddenAccountIds '123456789012' must be"),
    ("sharedConfigFiles", ["a", ""], "aws:sharedConfigFiles[1] '' must be a file path"),
    ("userAgents", [3], "aws:userAgents[0] 3 must be a product"),
    ("defaultTags", {"tags": {"aws:x": "y"}}, "aws:defaultTags.tags 'aws:x' is not a valid tag"),
    ("defaultTags", {"tag": {"a": "b"}}, "aws:defaultTags.tag '…' is not a field"),
    ("ignoreTags", {"keys": "Owner"}, "aws:ignoreTags.keys 'Owner' must be a list of tag keys"),
    ("endpoints", [{"rdss": "http://x"}], "aws:endpoints[0].rdss 'http://x' is not a service"),
    ("endpoints", {"rds": "http://x"}, "aws:endpoints '…' must be a list"),
    ("endpoints", [{"rds": "localhost"}], "aws:endpoints[0].rds 'localhost' must be a http://"),
    ("assumeRoles", [{"roleArn": "deployer"}], "aws:assumeRoles[0].roleArn '…' must be"),
    ("assumeRoles", [{"duration": "5m"}], "aws:assumeRoles[0].duration '…' must be a duration"),
    ("assumeRoles", [{"duration": "13h"}], "aws:assumeRoles[0].duration '…'"),
    ("assumeRoles", [{"sessionName": "a b"}], "aws:assumeRoles[0].sessionName '…' must be"),
    ("assumeRoles", [{"policy": "{"}], "aws:assumeRoles[0].policy '…' must be an IAM policy"),
    ("assumeRoles", [{"role": "x"}], "aws:assumeRoles[0].… '…' is not a field"),
    ("assumeRoleWithWebIdentity", [], "aws:assumeRoleWithWebIdentity '…' must be a mapping"),
    ("region", 12, "aws:region 12 must be a region name like 'us-east-1' (text, not a number)"),
    ("region", ["us-east-1"], 'aws:region ["us-east-1"] must be a region name'),
    ("profile", None, "aws:profile has no value: set one, or remove the key"),
    ("region", {"secure": "v1:abc"}, "aws:region is a secret (set with --secret), but"),
    ("httpsProxy", "ftp://proxy:21", "must be a http:// or https:// or socks5:// or socks5h://"),
    ("httpProxy", "http://u:hunter2@:3128", "aws:httpProxy '…' must name a host"),
]


@pytest.mark.parametrize(("key", "value", "text"), BAD, ids=[f"{k}={v!r}" for k, v, _ in BAD])
def test_a_bad_value_is_refused_naming_the_key_and_rule(key: str, value: Any, text: str) -> None:
    problems = _problems({f"aws:{key}": value})
    assert len(problems) == 1 and text in problems[0], problems


def test_a_secret_is_left_to_the_provider_where_dbplatform_does_not_read_it() -> None:
    secret = {"secure": "v1:AAAA"}
    assert _problems({"aws:secretKey": secret, "aws:token": secret, "aws:maxRetries": secret}) == []
    nested = {"roleArn": "arn:aws:iam::123456789012:role/x", "externalId": secret}
    assert _problems({"aws:assumeRoles": [nested]}) == []


def test_allowed_and_forbidden_accounts_conflict() -> None:
    # terraform-provider-aws: allowed_account_ids ConflictsWith forbidden_account_ids
    problems = _problems(
        {"aws:allowedAccountIds": ["123456789012"], "aws:forbiddenAccountIds": ["210987654321"]}
    )
    assert problems == [
        "Pulumi.s1.yaml: aws:allowedAccountIds and aws:forbiddenAccountIds are both set; the "
        "AWS provider takes one or the other (ConflictsWith): keep one"
    ]


# --- AWS's rules, from botocore's models --------------------------------------------------


def _shape(service: str, name: str) -> dict[str, Any]:
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    return dict(model.shape_for(name).metadata)


def _bounds_hold(check: Callable[[str], list[str]], shape: dict[str, Any], char: str) -> None:
    """`check` accepts text of the shape's min and max length and refuses one past each."""
    lo, hi = shape["min"], shape["max"]
    assert check(char * lo) == [] and check(char * hi) == []
    assert check(char * (hi + 1)) and (lo == 0 or check(char * (lo - 1)))


def test_assume_role_fields_follow_the_sts_model() -> None:
    def field(name: str) -> Callable[[str], list[str]]:
        arn = "arn:aws:iam::123456789012:role/x"
        return lambda v: _problems({"aws:assumeRoles": [{"roleArn": arn, name: v}]})

    _bounds_hold(field("sessionName"), _shape("sts", "roleSessionNameType"), "a")
    _bounds_hold(field("externalId"), _shape("sts", "externalIdType"), "a")
    # STS takes up to 256; the provider refuses more than 64 (terraform-provider-aws
    # validAssumeRoleSourceIdentity, StringLenBetween(2, 64))
    _bounds_hold(field("sourceIdentity"), {**_shape("sts", "sourceIdentityType"), "max": 64}, "a")
    token = _shape("sts", "clientTokenType")
    _bounds_hold(
        lambda v: _problems({"aws:assumeRoleWithWebIdentity": {"webIdentityToken": v}}), token, "t"
    )
    arn = _shape("sts", "arnType")
    role = "arn:aws:iam::123456789012:role/"
    assert field("roleArn")(role + "r" * (arn["max"] - len(role))) == []
    assert field("roleArn")(role + "r" * (arn["max"] - len(role) + 1))
    seconds = _shape("sts", "roleDurationSecondsType")
    assert field("duration")(f"{seconds['min']}s") == field("duration")(f"{seconds['max']}s") == []
    assert field("duration")(f"{seconds['min'] - 1}s") and field("duration")(
        f"{seconds['max'] + 1}s"
    )


def test_access_key_and_account_ids_follow_the_iam_and_organizations_models() -> None:
    key = _shape("iam", "accessKeyIdType")
    _bounds_hold(lambda v: _problems({"aws:accessKey": v}), key, "A")
    assert re.fullmatch(key["pattern"].strip("^$"), "AKIA_1") and _problems(
        {"aws:accessKey": "AKIA-IOSFODNN7EXAMPLE"}
    )
    account = _shape("organizations", "AccountId")
    assert account["pattern"] == r"^\d{12}$"
    assert _problems({"aws:allowedAccountIds": ["1" * 12]}) == []
    assert _problems({"aws:allowedAccountIds": ["1" * 11]})
    assert _problems({"aws:allowedAccountIds": ["1" * 13]})


# --- properties: any value, both paths, the same answer --------------------------------------

# (no NUL: the file would be refused as binary before any key is read)
_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=30
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    _text,
    st.sampled_from(["true", "False", "5", "0", "IPv4", "adaptive", "us-east-1", "-1"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,11}", fullmatch=True), inner, max_size=3
        ),
    ),
    max_leaves=8,
)


def _write_stack(root: Path, config: dict[str, Any]) -> None:
    data = {"config": {"aws:region": "us-east-1", **config}}
    (root / "Pulumi.s1.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def _offline(root: Path) -> list[str]:
    try:
        read_stack_values("s1", root)
    except ConfigError as exc:
        return exc.problems
    return []


def _operations(root: Path) -> list[str]:
    try:
        aws_settings("s1", root)
    except ConfigError as exc:
        return exc.problems
    return []


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(sorted(AWS_SETTINGS)), value=_values)
@example(key="profile", value=["a"])
@example(key="maxRetries", value="lots")
def test_offline_and_operations_refuse_the_same_values_naming_the_key(
    tmp_path: Path, key: str, value: Any
) -> None:
    _write_stack(tmp_path, {f"aws:{key}": value})
    offline, operations = _offline(tmp_path), _operations(tmp_path)
    assert offline == operations
    assert all(f": aws:{key}" in line for line in offline), offline
    assert all("dbplatform:" not in line for line in offline), offline


_WRONG_FOR = {
    # a value no key of that type takes; text is left out for bool and int (the provider reads
    # "true" and "5" as such), and the text of those kinds is drawn on its own below
    "bool": st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(st.booleans())),
    "int": st.one_of(st.booleans(), st.floats(allow_nan=False), st.lists(st.integers())),
    "str": st.one_of(st.booleans(), st.integers(), st.lists(st.text(), min_size=1)),
    "list": st.one_of(st.booleans(), st.integers(), st.text(), st.just({"a": "b"})),
    "mapping": st.one_of(st.booleans(), st.integers(), st.text(), st.lists(st.text())),
}


@settings(max_examples=300, deadline=None)
@given(data=st.data(), key=st.sampled_from(sorted(PROVIDER_TYPES)))
def test_a_value_not_of_the_providers_type_is_refused(data: Any, key: str) -> None:
    value = data.draw(_WRONG_FOR[PROVIDER_TYPES[key]])
    problems = _problems({f"aws:{key}": value})
    assert problems and all(p.startswith(f"Pulumi.s1.yaml: aws:{key}") for p in problems)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(sorted(k for k, t in PROVIDER_TYPES.items() if t == "bool")),
    text=st.text(max_size=8).filter(lambda t: t not in ("true", "True", "false", "False")),
)
def test_a_boolean_is_true_or_false_and_nothing_else(key: str, text: str) -> None:
    assert _problems({f"aws:{key}": text}) != []
    for good in (True, False, "true", "True", "false", "False"):
        assert _problems({f"aws:{key}": good}) == []


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(sorted(k for k, t in PROVIDER_TYPES.items() if t == "int")),
    number=st.integers(min_value=-(2**64), max_value=2**64),
    as_text=st.booleans(),
)
def test_a_whole_number_is_at_least_1_and_fits_the_providers_int(
    key: str, number: int, as_text: bool
) -> None:
    value: Any = str(number) if as_text else number
    assert (_problems({f"aws:{key}": value}) == []) == (1 <= number <= 2**63 - 1)


@settings(max_examples=50, deadline=None)  # four kinds of value, each a full load_config(prod)
@given(region=st.one_of(st.integers(), st.booleans(), st.floats(), st.lists(st.text())))
def test_a_region_not_text_is_named_aws_region_wherever_it_is_read(region: Any) -> None:
    values, _ = read_stack_values("prod", ROOT)
    with pytest.raises(ConfigError) as err:
        load_config("prod", values, region)
    text = "\n".join(err.value.problems)
    assert "prod: aws:region" in text and "must be a region name" in text
    assert "dbplatform:region" not in text


# --- through the commands: exit 2, the same line from synth, config and the operations ------


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return offline_project(tmp_path, monkeypatch, ("Pulumi.yaml",))


def _run(main: Callable[[list[str]], int], argv: list[str], capsys: Any) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


COMMAND_CASES = [
    ("  aws:profile: [a]\n", None, 'Pulumi.prod.yaml: aws:profile ["a"] must be a profile name'),
    ("  aws:maxRetries: lots\n", None, "Pulumi.prod.yaml: aws:maxRetries 'lots' must be a whole"),
    ("  aws:insecure: 'yes'\n", None, "Pulumi.prod.yaml: aws:insecure 'yes' must be true or"),
    ("", "12", "Pulumi.prod.yaml: aws:region 12 must be a region name like 'us-east-1'"),
    ("", "[us-east-1]", 'Pulumi.prod.yaml: aws:region ["us-east-1"] must be a region name'),
]


@pytest.mark.parametrize(("lines", "region", "text"), COMMAND_CASES)
def test_offline_commands_and_operations_exit_2_with_the_same_words(
    project: Path, capsys: Any, lines: str, region: str | None, text: str
) -> None:
    (project / "Pulumi.prod.yaml").write_text(_with(lines, region=region), encoding="utf-8")
    runs = {
        "synth": (synth.main, ["--stack", "prod", "--root", str(project), "--out-dir", "out"]),
        "config": (config_cmd.main, ["--stack", "prod", "--root", str(project)]),
        "bluegreen status": (bluegreen.main, ["status", "--stack", "prod"]),
        "rotate-secret": (
            rotate_secret.main,
            ["--stack", "prod", "--secret", "master", "--dry-run"],
        ),
    }
    for name, (main, argv) in runs.items():
        code, out = _run(main, argv, capsys)
        assert code == 2, (name, out)
        assert text in out, (name, out)
        assert "dbplatform:region" not in out and "Traceback" not in out, (name, out)
        assert "Could not connect" not in out, (name, out)


def test_a_good_setting_is_accepted_by_the_config_command(project: Path, capsys: Any) -> None:
    lines = "  aws:maxRetries: '5'\n  aws:skipMetadataApiCheck: true\n  aws:profile: data-ops\n"
    (project / "Pulumi.prod.yaml").write_text(_with(lines), encoding="utf-8")
    code, out = _run(config_cmd.main, ["--stack", "prod", "--root", str(project)], capsys)
    assert code == 0, out


def test_a_number_of_thousands_of_digits_is_exit_2_not_a_traceback(
    project: Path, capsys: Any
) -> None:
    # Python refuses int() of more than 4300 digits with a ValueError PyYAML lets through
    lines = f"  aws:maxRetries: {'9' * 5000}\n"
    (project / "Pulumi.prod.yaml").write_text(_with(lines), encoding="utf-8")
    code, out = _run(config_cmd.main, ["--stack", "prod", "--root", str(project)], capsys)
    assert code == 2, out
    assert "Pulumi.prod.yaml is not valid YAML" in out and "5000 digits" in out
    assert "Traceback" not in out


def test_the_committed_stacks_pass() -> None:
    for path in sorted(ROOT.glob("Pulumi.*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))["config"]
        assert aws_setting_problems(config, path.name) == []


# --- review of the first version: values the provider takes, secrets never shown ------------

ALSO_GOOD: list[tuple[str, Any]] = [
    # Go's httpproxy reads a value without a scheme as http://value; socks5 is a Transport scheme
    ("httpsProxy", "proxy.corp.example:3128"),
    ("httpProxy", "socks5://127.0.0.1:1080"),
    ("httpsProxy", "socks5h://proxy.corp.example:1080"),
    # an endpoint has no Route 53 path limit
    ("endpoints", [{"rds": "https://gw.example.com/" + "p" * 300}]),
    # a policy as a YAML block or pretty-printed: STS allows tab, LF and CR in it
    (
        "assumeRoles",
        [
            {
                "roleArn": "arn:aws:iam::123456789012:role/deployer",
                "policy": '{\n\t"Version": "2012-10-17",\r\n  "Statement": []\n}\n',
            }
        ],
    ),
    ("defaultTags", {"tags": {"team": {"secure": "v1:abc"}}}),
    ("assumeRoles", [{"roleArn": "arn:aws:iam::123456789012:role/x", "duration": "+1h30m"}]),
    # read by the operations only: the offline commands leave a secret one to the provider
    ("profile", {"secure": "v1:abc"}),
    ("allowedAccountIds", {"secure": "v1:abc"}),
]


@pytest.mark.parametrize(("key", "value"), ALSO_GOOD, ids=[f"{k}={v!r}"[:60] for k, v in ALSO_GOOD])
def test_values_the_provider_takes_are_not_refused(key: str, value: Any) -> None:
    assert _problems({f"aws:{key}": value}) == []


def test_the_operations_refuse_a_secret_they_must_read_from_the_file() -> None:
    from infra.config import AWS_READ_BY_OPERATIONS

    for key in ("profile", "allowedAccountIds"):
        got = aws_setting_problems(
            {f"aws:{key}": {"secure": "v1:abc"}}, "Pulumi.s1.yaml", read_here=AWS_READ_BY_OPERATIONS
        )
        assert len(got) == 1 and f"aws:{key} is a secret (set with --secret)" in got[0]


@settings(max_examples=40, deadline=None)
@given(secret=st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=40))
def test_no_secret_value_is_ever_shown(secret: str) -> None:
    """Review: `pulumi up` hands the program decrypted secrets; a mistyped field of a secret
    `aws:assumeRoles` printed its value. Nothing under a secret key, and no credential, is."""
    config = {
        "aws:assumeRoles": [{"externalID": secret, "roleArn": "bad"}],
        "aws:secretKey": secret + "\n",
        "aws:token": "",
        "aws:assumeRoleWithWebIdentity": {"webIdentityToken": secret[:3]},
    }
    got = aws_setting_problems(config, "Pulumi.s1.yaml", secret_keys=frozenset({"aws:assumeRoles"}))
    assert len(got) >= 4
    for line in got:
        assert "'…'" in line, line
    text = "\n".join(got)
    assert all(f"'{shown}'" not in text for shown in (secret, secret + "\\n", secret[:3]))


SECRET = "Zq9Xw7pw"


def _carrying(secret: str) -> dict[str, Any]:
    """A value for every setting that breaks its rule while holding `secret`, in the places a
    rule could quote it: the value itself, a URL's user, password and port, a list item, a tag
    value with characters tags refuse, an unknown field."""
    url = f"http://u:{secret}@h:{secret}"
    return {
        key: {
            "endpoints": [{"s3": url, "nosuchservice": url}],
            "httpProxy": url,
            "httpsProxy": f"u:{secret}!@proxy:99999",
            "ec2MetadataServiceEndpoint": url,
            "defaultTags": {"tags": {"k": f"{secret}!#"}},
            "ignoreTags": {"keys": [f"{secret}\n"], "bogus": secret},
            "assumeRoles": [{"roleArn": secret, "tags": {"k": f"!{secret}"}, "bogus": secret}],
            "assumeRoleWithWebIdentity": {"webIdentityToken": "x", "webIdentityTokn": secret},
            "allowedAccountIds": [secret],
            "forbiddenAccountIds": [secret],
        }.get(key, [secret, f"{secret}\n"])
        for key in AWS_SETTINGS
    }


def test_no_value_under_a_secret_key_reaches_a_message_through_any_rule() -> None:
    """Security review: under `pulumi up` the values are decrypted, and a rule's own words
    (a URL parser's error naming the port, a tag rule naming the characters) quoted them."""
    config = {f"aws:{k}": v for k, v in _carrying(SECRET).items()}
    got = aws_setting_problems(config, "Pulumi.s1.yaml", secret_keys=frozenset(config))
    assert len(got) >= len(AWS_SETTINGS) - 1  # (region: any text is a region's type)
    text = "\n".join(got)
    assert SECRET not in text and SECRET[:4] not in text, text
    assert "!#" not in text and "characters" not in text  # nor what a rule says of it


CREDENTIALS_IN_PLAIN_VALUES: list[tuple[str, Any, str]] = [
    ("httpsProxy", "svc:S3cretPw@proxy.corp:312800", "'…'"),
    ("httpsProxy", "http://bob:p@ss@proxy:99999", "'…'"),
    ("endpoints", [{"s3": "http://ghp_TOKENabc123@localhost:99999"}], "'…'"),
    ("endpoints", [{"s4": "http://ghp_TOKENabc123@localhost:4566"}], "'…'"),
    ("assumeRoleWithWebIdentity", {"webIdentityTokn": "eyJhbGciOiJSUzI1NiJ9.e30.sig"}, "'…'"),
]


@pytest.mark.parametrize(("key", "value", "shown"), CREDENTIALS_IN_PLAIN_VALUES)
def test_credentials_in_a_plain_value_are_not_shown(key: str, value: Any, shown: str) -> None:
    """Security review: a proxy's or an endpoint's user and password, and a misspelt token
    field, reached stderr, --json and the audit log."""
    (line,) = _problems({f"aws:{key}": value})
    assert shown in line
    assert not any(s in line for s in ("S3cretPw", "p@ss", "ghp_TOKEN", "eyJhbGci")), line


# A third review's probes: (config, the keys Pulumi marks secret). No output may hold HUNTER2.
THIRD_REVIEW: list[tuple[dict[str, Any], frozenset[str]]] = [
    ({"aws:httpsProxy": "http://svc:pa/HUNTER2pw@proxy.corp:3128"}, frozenset()),
    ({"aws:ec2MetadataServiceEndpoint": "http://u:HUNTER2@host:99999/?next=http://x"}, frozenset()),
    ({"aws:endpoints": [{"s3": "https//user:HUNTER2pw@localhost:4566"}]}, frozenset()),
    ({"aws:httpsProxy": "//user:HUNTER2pw@proxy:99999"}, frozenset()),
    ({"aws:endpoints": {"s3": "http://key:HUNTER2ep@localhost:4566"}}, frozenset()),
    ({"aws:endpoints": ["s3=http://user:HUNTER2pw@localhost:4566"]}, frozenset()),
    ({"aws:httpProxy": ["http://user:HUNTER2pw@proxy:3128"]}, frozenset()),
    ({"aws:assumeRoleWithWebIdentity": [{"webIdentityToken": "eyJ.HUNTER2.sig"}]}, frozenset()),
    ({"aws:assumeRoleWithWebIdentity": {"webIdentityToken:eyJHUNTER2": None}}, frozenset()),
    (
        {"aws:assumeRoles": [{"roleArn": "x", "tags": {"HUNTER2pw": "!"}}]},
        frozenset({"aws:assumeRoles"}),
    ),
    ({"aws:defaultTags": {"tags": {"a\nforged": "!"}}}, frozenset()),
    ({"aws:defaultTags": {"tags": {"Team": "HUNTER2\"'~^"}}}, frozenset({"aws:defaultTags"})),
    ({"aws:defaultTags": {"tags": {"Team": "HUNTER2" * 40}}}, frozenset({"aws:defaultTags"})),
]


# A fourth review's probes: nothing of HUNTER2 (nor its digits), each problem one line.
FOURTH_REVIEW: list[tuple[dict[str, Any], frozenset[str]]] = [
    ({"aws:assumeRoles": [{"roleArn": "x", "tags": {"Team": "HUNTER2!ab#"}}]}, frozenset()),
    ({"aws:assumeRoles": [{"roleArn": "x", "tags": {"HUNTER2": "v" * 300}}]}, frozenset()),
    ({"aws:assumeRoleWithWebIdentity": {"AKIAHUNTER2EXAMPLE": "x"}}, frozenset()),
    ({"aws:defaultTags": {"tags": {"[424242]": "x!"}}}, frozenset({"aws:defaultTags"})),
    ({"aws:assumeRoles": [{"a[424242]": "x"}]}, frozenset()),
    ({"aws:retryMode": "std\u2028HUNTER2"}, frozenset()),
]


@pytest.mark.parametrize(("config", "secret"), [*THIRD_REVIEW, *FOURTH_REVIEW])
def test_what_the_reviews_planted_is_never_shown(
    config: dict[str, Any], secret: frozenset[str]
) -> None:
    got = aws_setting_problems(config, "Pulumi.s1.yaml", secret_keys=secret)
    assert got, "each probe breaks a rule"
    for line in got:
        assert len(line.splitlines()) == 1, line  # one problem, one line
        assert "424242" not in line and "300" not in line, line
        if "retryMode" not in line:  # (a plain retryMode value is shown, escaped)
            assert "HUNTER2" not in line, line
    if secret:
        assert not any("characters" in line for line in got)  # no length, no characters


def test_a_config_key_with_a_line_break_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(
        'config:\n  "aws:HUNTER2\\nFORGED line: ok": 1\n  "zz\\u2028x": 2\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as refused:
        read_stack_values("x", tmp_path)
    for problem in refused.value.problems:
        assert len(problem.splitlines()) == 1, problem
