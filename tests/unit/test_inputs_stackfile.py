"""Bad stack files, one per cause users hit: each is refused by `dbplatform config` with exit 2 and
one message naming the key, the value and the rule; values AWS accepts load.

A stack file is written into a scratch project (Pulumi.yaml copied from the checkout), and read
through the command, as an operator runs it.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from dbplatform.manifest.redact import redact_text
from infra.config import ROOT, ConfigError, Secret, load_stack
from scripts import config as config_cmd

PROD = (ROOT / "Pulumi.prod.yaml").read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


def run(project: Path, content: str | bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = project / "Pulumi.s1.yaml"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    code = config_cmd.main(["--stack", "s1", "--root", str(project)])
    captured = capsys.readouterr()
    return code, captured.err


def prod_with(edit: str) -> str:
    """The prod stack file with `edit` (YAML under `config:`) merged in at the config level."""
    data = yaml.safe_load(PROD)
    data["config"].update(yaml.safe_load(textwrap.dedent(edit)))
    return yaml.safe_dump(data, sort_keys=False)


def prod_db(**fields: object) -> str:
    data = yaml.safe_load(PROD)
    data["config"]["dbplatform:database"].update(fields)
    return yaml.safe_dump(data, sort_keys=False)


BAD_FILES: list[tuple[str, str | bytes, list[str]]] = [
    ("binary", bytes(range(256)) * 4, ["Pulumi.s1.yaml", "UTF-8"]),
    (
        "latin-1",
        "config:\n  aws:region: us-east-1\n  dbplatform:owner: équipe\n".encode("latin-1"),
        ["Pulumi.s1.yaml is not UTF-8 text", "0xe9"],
    ),
    ("nul bytes", "config:\x00\n", ["NUL"]),
    ("megabytes of junk", "#" * (2 << 20), ["2,097,152 bytes", "limit is 1,048,576"]),
    (
        "duplicate key",
        PROD.replace(
            "dbplatform:owner: data-platform", "dbplatform:owner: a\n  dbplatform:owner: b"
        ),
        ["key 'dbplatform:owner' is also set on line", "remove one"],
    ),
    (
        "non-string key",
        prod_with("dbplatform:tags: {team: x}").replace("team:", "12:"),
        ["key '12' must be a string (quote it)"],
    ),
    (
        "empty key",
        prod_with("dbplatform:tags: {team: x}").replace("team:", "'':"),
        ["key is empty"],
    ),
    (
        "deeply nested",
        prod_with("dbplatform:tags: {team: x}").replace(
            "team: x", "team: " + "[" * 200 + "]" * 200
        ),
        ["nests deeper than 64"],
    ),
    (
        "alias bomb",
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdef", "bcdefg", strict=True)
        )
        + "config: {k: *g}\n",
        ["more than 1,000,000 values"],
    ),
    ("not a mapping", "- config\n", ["must be a mapping with a 'config:' key"]),
    ("unknown top-level key", "configs:\n  aws:region: us-east-1\n", ["top-level key 'configs'"]),
    (
        "key without namespace",
        prod_with("tier: non-production"),
        ["config key 'tier' must be 'namespace:name'", "dbplatform:tier"],
    ),
    (
        "misspelt namespace",
        prod_with("dbplatfrom:tier: non-production"),
        ["'dbplatfrom:tier' is in a namespace nothing here reads"],
    ),
    (
        "misspelt AWS provider key",
        PROD.replace("aws:region: us-east-1", "aws:region: us-east-1\n  aws:regoin: us-east-1"),
        ["'aws:regoin' is not a setting of the AWS provider", "region"],
    ),
    (
        "misspelt key",
        prod_with("dbplatform:databse: {port: 5432}"),
        ["dbplatform:databse", "is not a known key"],
    ),
    (
        "misspelt field",
        prod_db(multiAZ=True),
        ["dbplatform:database.multiAZ", "is not a known key; did you mean multiAz? (known:"],
    ),
    (
        "health check port out of range",
        prod_with("dbplatform:alarms: {healthCheckUrl: 'https://app.example.com:99999/ready'}"),
        ["dbplatform:alarms.healthCheckUrl 'https://app.example.com:99999/ready'", "1..65535"],
    ),
    (
        "bare https:// endpoint",
        prod_with(
            "dbplatform:alarms: {subscriptions: "
            "[{severity: critical, protocol: https, endpoint: 'https://'}]}"
        ),
        ["dbplatform:alarms.subscriptions[0].endpoint 'https://' must name a host"],
    ),
    (
        "performance insights 730",
        prod_db(performanceInsightsRetentionDays=730),
        ["performanceInsightsRetentionDays 730", "7, 731, or 31 times"],
    ),
    (
        "storage ceiling under 110%",
        prod_db(allocatedStorage=100, maxAllocatedStorage=109),
        ["maxAllocatedStorage 109", "110% of allocatedStorage (100)"],
    ),
    (
        "51 tags",
        prod_with("dbplatform:tags: {" + ", ".join(f"t{i}: v" for i in range(46)) + "}"),
        ["dbplatform:tags 46", "50 tags per resource"],
    ),
    (
        "tag key of 129 characters",
        prod_with("dbplatform:tags: {" + "k" * 129 + ": v}"),
        ["is 129 characters; AWS tags allow 128"],
    ),
    (
        "tag value of 257 characters",
        prod_with("dbplatform:tags: {team: " + "v" * 257 + "}"),
        ["dbplatform:tags.team", "AWS tags allow 256"],
    ),
    (
        "aws: tag prefix",
        prod_with("dbplatform:tags: {'aws:team': x}"),
        ["'aws:team'", "AWS reserves"],
    ),
    (
        "tag charset",
        prod_with("dbplatform:tags: {team: 'a#b'}"),
        ["dbplatform:tags.team 'a#b'", "contains '#'"],
    ),
    (
        "owner tag value",
        prod_with("dbplatform:owner: 'data*platform'"),
        ["dbplatform:owner 'data*platform' is tagged on every resource"],
    ),
    (
        "backup rule name",
        prod_with(
            "dbplatform:backup: {plan: [{name: 'daily backup', schedule: 'cron(0 8 ? * * *)', "
            "retentionDays: 30}]}"
        ),
        ["dbplatform:backup.plan[0].name 'daily backup'", "BackupRuleName"],
    ),
    (
        "vault lock max retention",
        prod_with("dbplatform:backup: {vaultLock: {maxRetentionDays: 36501}}"),
        ["dbplatform:backup.vaultLock.maxRetentionDays 36501", "1..36500"],
    ),
    (
        "vault lock changeable days",
        prod_with("dbplatform:backup: {vaultLock: {changeableForDays: 36501}}"),
        ["dbplatform:backup.vaultLock.changeableForDays 36501", "3..36500"],
    ),
    (
        "reserved master user",
        prod_db(masterUsername="user"),
        ["dbplatform:database.masterUsername 'user' is reserved", "kwlist.h"],
    ),
    (
        "master user of 17 characters",
        prod_db(masterUsername="a" * 17),
        ["masterUsername", "1-16 letters"],
    ),
    (
        "master user named like PostgreSQL's reserved roles",
        prod_db(masterUsername="pg_admin"),
        ["dbplatform:database.masterUsername 'pg_admin' is reserved", "pg_*"],
    ),
    (
        "master user named like a role RDS creates",
        prod_db(masterUsername="rds_superuser"),
        ["dbplatform:database.masterUsername 'rds_superuser' is reserved", "RDS creates"],
    ),
    (
        "YAML 1.1 boolean 'no' (a string to Pulumi)",
        PROD.replace("allocatedStorage: 200", "allocatedStorage: 200\n    multiAz: no"),
        ["key 'multiAz': 'no' is a boolean to PyYAML", "write true or false"],
    ),
    (
        "YAML 1.1 boolean 'on' in a list",
        prod_with("dbplatform:tags: {team: x}").replace("team: x", "team: [on]"),
        ["'on' is a boolean to PyYAML", "write true or false", "line"],
    ),
    (
        "dbplatform:stack is the program's",
        prod_with("dbplatform:stack: other"),
        ["config key 'dbplatform:stack' is not a setting", "stack's name"],
    ),
    (
        "dbplatform:region is aws:region",
        prod_with("dbplatform:region: us-west-2"),
        ["config key 'dbplatform:region' is not a setting", "aws:region"],
    ),
    (
        "app secret named master",
        prod_with("dbplatform:vault: {appSecrets: [{name: master, kind: signing}]}"),
        ["dbplatform:vault.appSecrets[0].name 'master' is reserved", "rotate-secret"],
    ),
    (
        "reserved database name",
        prod_db(dbName="select"),
        ["dbplatform:database.dbName 'select'", "reserved word"],
    ),
    (
        "duplicate subnets",
        prod_with(
            "dbplatform:network: {vpcId: vpc-0123456789abcdef0, subnetIds: "
            "[subnet-0123456789abcdef0, subnet-0123456789abcdef0]}"
        ),
        ["dbplatform:network.subnetIds[1] 'subnet-0123456789abcdef0' is listed twice"],
    ),
    (
        "replica name with a trailing hyphen",
        prod_with("dbplatform:replicas: [{name: r1}, {name: r1-}]"),
        ["dbplatform:replicas[1].name 'r1-'", "must not contain '--' or end with '-'"],
    ),
    (
        "replica name with a double hyphen",
        prod_with("dbplatform:replicas: [{name: r-1}, {name: r--1}]"),
        ["dbplatform:replicas[1].name 'r--1'"],
    ),
    (
        "DR region in another partition",
        prod_with("dbplatform:dr: {region: us-gov-west-1}"),
        ["dbplatform:dr.region 'us-gov-west-1' is in AWS partition aws-us-gov"],
    ),
    (
        "NaN threshold",
        prod_with("dbplatform:alarms: {thresholds: {cpuPercent: {warning: .nan}}}"),
        ["dbplatform:alarms.thresholds.cpuPercent.warning", "finite"],
    ),
    (
        "infinite threshold",
        prod_with("dbplatform:alarms: {thresholds: {cpuPercent: {critical: .inf}}}"),
        ["dbplatform:alarms.thresholds.cpuPercent.critical", "finite"],
    ),
    (
        "restore time not UTC",
        prod_with("dbplatform:restore: {restoreTime: '2026-01-31T03:00:00+02:00'}"),
        ["dbplatform:restore.restoreTime '2026-01-31T03:00:00+02:00'", "UTC"],
    ),
    ("unknown region", PROD.replace("us-east-1", "us-east-9"), ["aws:region 'us-east-9'"]),
    ("not a region", PROD.replace("us-east-1", "moon-1"), ["aws:region 'moon-1'"]),
    (
        "secret where no secret may live",
        prod_with("dbplatform:owner: {secure: v1:abc}"),
        ["dbplatform:owner", "is a secret (set with --secret)", "endpoint may be"],
    ),
    (
        "a whole mapping as a secret",
        prod_with("dbplatform:alarms: {secure: v1:abc}"),
        ["dbplatform:alarms", "cannot be decrypted offline", "--path"],
    ),
    (
        "calendar collision names both config keys",
        prod_with(
            "dbplatform:backup: {plan: [{name: daily, schedule: 'cron(30 14 ? * TUE *)', "
            "retentionDays: 30}]}"
        ),
        ["dbplatform:vault.rotationWindow 'tue:14:00-tue:16:00'", "dbplatform:backup.plan[0]"],
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES]
)
def test_bad_stack_file_is_refused_with_exit_2_naming_the_rule(
    project: Path, content: str | bytes, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(project, content, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err
    if "--secret" in err:  # the advice stays readable in a redacted report (the PR comment)
        assert redact_text(err) == err


@pytest.mark.parametrize(
    ("edit", "check"),
    [
        (prod_db(performanceInsightsRetentionDays=731), "731"),
        (prod_db(performanceInsightsRetentionDays=713), "23 months"),
        (prod_db(allocatedStorage=100, maxAllocatedStorage=110), "exactly 110%"),
        (prod_db(allocatedStorage=1000, maxAllocatedStorage=1100), "exactly 110% of 1000"),
        (
            prod_with("dbplatform:tags: {" + ", ".join(f"t{i}: v" for i in range(45)) + "}"),
            "45 extra tags + 5 base tags = 50",
        ),
        (prod_with("dbplatform:tags: {'team name': 'a b:c/d=e+f-g@h_i.j'}"), "tag charset"),
        # RDS for PostgreSQL's console default master user: RDS accepts it (not a reserved role).
        (prod_db(masterUsername="postgres"), "masterUsername postgres"),
        (
            PROD.replace("allocatedStorage: 200", "allocatedStorage: 200\n    multiAz: TRUE"),
            "YAML 1.2 spelling TRUE",
        ),
        (prod_with("dbplatform:tags: {team: 'yes'}"), "quoted yes is a string"),
    ],
)
def test_values_aws_accepts_load(
    project: Path, edit: str, check: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(project, edit, capsys)
    assert code == 0, f"{check}: {err}"


def test_a_secret_endpoint_stays_opaque_and_round_trips_as_ciphertext(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = PROD.replace(
        "endpoint: oncall-data@example.com", "endpoint:\n          secure: v1:c2VjcmV0"
    )
    (project / "Pulumi.s1.yaml").write_text(content, encoding="utf-8")
    cfg = load_stack("s1", project)
    endpoints = [s.endpoint for s in cfg.alarms.subscriptions]
    assert any(isinstance(e, Secret) and e.ciphertext == "v1:c2VjcmV0" for e in endpoints)
    assert config_cmd.main(["--stack", "s1", "--root", str(project)]) == 0
    out = capsys.readouterr().out
    # Printed as Pulumi stores it (the ciphertext is not the secret), never as the mask.
    assert "secure: v1:c2VjcmV0" in out and Secret.MASK not in out
    (project / "Pulumi.s2.yaml").write_text(out, encoding="utf-8")
    again = [s.endpoint for s in load_stack("s2", project).alarms.subscriptions]
    assert again == endpoints
    assert [getattr(e, "ciphertext", None) for e in again] == [
        getattr(e, "ciphertext", None) for e in endpoints
    ]


def test_an_esc_environment_without_the_cli_names_the_keys_it_may_set(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(project))  # no pulumi binary there
    (project / "Pulumi.s1.yaml").write_text(
        "environment:\n  - data/prod\nconfig:\n  aws:region: us-east-1\n"
        "  dbplatform:owner: data-platform\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_stack("s1", project)
    text = str(exc.value)
    assert 'imports Pulumi ESC environment(s) ["data/prod"]' in text
    assert "dbplatform:dr" in text and "dbplatform:database" in text
    assert "dbplatform:owner," not in text  # set in the file: cannot come from the environment


def test_an_esc_environment_is_resolved_through_the_pulumi_cli(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Pulumi CLI cannot be installed here (DESIGN.md); a stand-in on PATH prints what
    # `pulumi config --json --open` prints (value/secret/objectValue per key) so the loader's
    # half of the contract is tested. Where the CLI exists, the same path runs the real one.
    fake = project / "pulumi"
    answer = {
        "aws:region": {"value": "us-east-1", "secret": False},
        "dbplatform:owner": {"value": "data-platform", "secret": False},
        # non-production: the point is the ESC lookup, not prod's connectivity rules
        "dbplatform:tier": {"value": "non-production", "secret": False},
        "dbplatform:dr": {
            "value": '{"region":"us-west-2"}',
            "objectValue": {"region": "us-west-2"},
            "secret": False,
        },
    }
    fake.write_text(
        f"#!{sys.executable}\nimport sys\nassert sys.argv[1:4] == ['config', '--json', '--open']"
        f"\nprint({json.dumps(json.dumps(answer))})\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(project))
    (project / "Pulumi.s1.yaml").write_text(
        "environment:\n  - data/prod\nconfig:\n  dbplatform:owner: data-platform\n",
        encoding="utf-8",
    )
    cfg = load_stack("s1", project)
    assert cfg.region == "us-east-1"
    assert cfg.dr.region == "us-west-2"


def test_the_effective_config_is_itself_a_valid_stack_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "Pulumi.s1.yaml").write_text(PROD, encoding="utf-8")
    assert config_cmd.main(["--stack", "s1", "--root", str(project)]) == 0
    printed = capsys.readouterr().out
    (project / "Pulumi.s2.yaml").write_text(printed, encoding="utf-8")
    assert load_stack("s2", project).database == load_stack("s1", project).database
    assert "maintenanceWindow: sun:02:00-sun:04:00" in printed  # a default, now explicit
