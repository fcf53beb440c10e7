"""`dbplatform dr pitr`, `dr secrets`, `dr janitor` and `heartbeat` against the emulator (moto on
127.0.0.1), with the data on the suite's real PostgreSQL server, and restore points of another
engine major (ops review row 27)."""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dbplatform.dr.janitor import final_snapshot_id
from dbplatform.dr.restore import TAG_PURPOSE, TAG_RUN, TAG_SOURCE
from dbplatform.ops import LockInfo
from infra.naming import Names, drill_stack
from scripts.dr import main
from scripts.heartbeat import main as heartbeat_main
from tests.dr.conftest import DR, SOURCE, DrEnv, restored_database
from tests.ops.support import FakeClock
from tests.postgres import PgServer

PROD = Names("prod")
STAGING = Names("staging")
TARGET = Names("prod-usw2")


def _snapshot_of_another_major(dr: DrEnv, stack: str, name: str) -> None:
    """What a rollback after a major blue/green leaves: a snapshot of the primary's identifier
    taken while it ran the next major (moto: change the version, snapshot, change it back)."""
    rds = dr.client("rds")
    primary = Names(stack).primary
    before = rds.describe_db_instances(DBInstanceIdentifier=primary)["DBInstances"][0]
    rds.modify_db_instance(
        DBInstanceIdentifier=primary, EngineVersion="17.2", ApplyImmediately=True
    )
    rds.create_db_snapshot(DBInstanceIdentifier=primary, DBSnapshotIdentifier=name)
    rds.modify_db_instance(
        DBInstanceIdentifier=primary, EngineVersion=before["EngineVersion"], ApplyImmediately=True
    )


def test_restore_points_of_another_major_are_listed_excluded_and_never_chosen(dr: DrEnv) -> None:
    dr.seed("prod")
    _snapshot_of_another_major(dr, "prod", "prod-pg-pre-rollback-1")
    run = dr.main(main, "restore-points", "--stack", "prod", "--region", SOURCE, "--json")
    assert run.code == 0, run.text
    points = {p["id"]: p for p in run.json["points"]}
    excluded = points["prod-pg-pre-rollback-1"]
    assert excluded["restorable"] is False
    assert "engine 17.2, not the stack's major 16" in excluded["excluded"]
    assert run.json["best"]["id"] == PROD.primary  # the PITR window of the primary


# ---------------------------------------------------------------------------------------------
# pitr
# ---------------------------------------------------------------------------------------------


def _pitr_time(dr: DrEnv) -> str:
    """A whole second inside the primary's PITR window (moto: from its creation to now)."""
    db = dr.client("rds").describe_db_instances(DBInstanceIdentifier=STAGING.primary)[
        "DBInstances"
    ][0]
    earliest = db["InstanceCreateTime"].astimezone(UTC).replace(microsecond=0)
    when = earliest + timedelta(seconds=1)
    while db["LatestRestorableTime"].astimezone(UTC) < when:
        time.sleep(0.2)
        db = dr.client("rds").describe_db_instances(DBInstanceIdentifier=STAGING.primary)[
            "DBInstances"
        ][0]
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_pitr_restores_time_t_beside_the_primary_verifies_and_prints_the_cutover(
    dr: DrEnv, postgres: PgServer, pg_database: str
) -> None:
    seeded = dr.seed("staging")
    before = dr.source_view(seeded.primary)
    when = _pitr_time(dr)
    connect = restored_database(postgres, pg_database, source="staging")
    calls: list[tuple[str, dict[str, Any]]] = []
    session = dr.aws.session

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    session.events.register("provide-client-params.rds", record)
    run = dr.main(
        functools.partial(main, connect=connect),
        "pitr",
        "--stack",
        "staging",
        "--restore-time",
        when,
        "--yes",
        "--json",
        session=session,
    )

    assert run.code == 0, run.text
    (restore,) = [p for name, p in calls if name == "RestoreDBInstanceToPointInTime"]
    # the stack's own groups: a PITR otherwise gets the defaults
    assert restore["SourceDBInstanceIdentifier"] == seeded.primary
    assert restore["DBSubnetGroupName"] == seeded.subnet_group
    assert restore["VpcSecurityGroupIds"] == [seeded.security_group_id]
    assert restore["DBParameterGroupName"] == seeded.parameter_group
    assert restore["RestoreTime"].strftime("%Y-%m-%dT%H:%M:%SZ") == when
    copy = restore["TargetDBInstanceIdentifier"]
    assert copy.startswith(f"{STAGING.prefix}-pitr-")
    assert dr.instance(copy, SOURCE) is not None
    # the primary is never modified
    assert dr.source_view(seeded.primary) == before
    assert not [
        p
        for name, p in calls
        if p.get("DBInstanceIdentifier") == seeded.primary
        and (name.startswith(("Modify", "Delete", "Reboot")))
    ]
    data = run.json
    assert data["data_verified"] is True
    assert data["restore"]["data_time"] == when  # exactly T, never later
    assert data["rpo_from_data_seconds"] is not None
    assert any("new-db-instance-identifier" in s and copy in s for s in data["cutover"])
    # it logged in with the stack's master secret, which the copy now matches
    secret = json.loads(
        dr.client("secretsmanager").get_secret_value(SecretId=STAGING.master_secret)["SecretString"]
    )
    assert connect.seen[0].password == secret["password"]  # type: ignore[attr-defined]


def test_pitr_refuses_a_time_no_backup_reaches_and_creates_nothing(dr: DrEnv) -> None:
    dr.seed("staging")
    before = dr.state()
    run = dr.main(
        main, "pitr", "--stack", "staging", "--restore-time", "2020-01-01T00:00:00Z", "--yes"
    )
    assert run.code == 3, run.text
    assert "reaches back to 2020-01-01T00:00:00Z" in run.stderr
    assert "--latest" not in run.stderr  # pitr has no such flag (UX review)
    assert dr.state() == before

    future = dr.main(main, "pitr", "--stack", "staging", "--restore-time", "2999-01-01T00:00:00Z")
    assert future.code == 2 and "in the future" in future.stderr
    itself = dr.main(
        main,
        "pitr",
        "--stack",
        "staging",
        "--restore-time",
        _pitr_time(dr),
        "--as",
        STAGING.primary,
    )
    assert itself.code == 2 and "the primary itself" in itself.stderr
    assert dr.state() == before


# ---------------------------------------------------------------------------------------------
# secrets continuity (ops review rows 9, 10; security L-8)
# ---------------------------------------------------------------------------------------------


def _rebuilt(dr: DrEnv) -> dict[str, str]:
    """prod's secret replicas in the DR region, a rebuilt prod-usw2 after `pulumi up` (new
    generated secrets) and its restored instance (the source's old password)."""
    cfg = dr.config("prod")
    sm = dr.client("secretsmanager", DR)
    values = {}
    for spec in cfg.vault.app_secrets:
        values[spec.name] = f"prod-{spec.name}-value"
        sm.create_secret(Name=PROD.app_secret(spec.name), SecretString=values[spec.name])
        sm.create_secret(Name=TARGET.app_secret(spec.name), SecretString="generated-by-pulumi")
    sm.create_secret(
        Name=TARGET.master_secret,
        SecretString=json.dumps({"username": "dbadmin", "password": "new-stack-master-pw"}),
    )
    dr.client("rds", DR).create_db_instance(
        DBInstanceIdentifier=TARGET.primary,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="dbadmin",
        MasterUserPassword="prod-password-at-backup-time",
    )
    return values


def test_secrets_carries_the_source_values_and_aligns_the_master_password(dr: DrEnv) -> None:
    values = _rebuilt(dr)
    assert values, "prod declares application secrets"
    calls: list[tuple[str, dict[str, Any]]] = []
    session = dr.aws.session

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, dict(params)))

    session.events.register("provide-client-params.rds", record)
    run = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes", session=session)

    assert run.code == 0, run.text
    sm = dr.client("secretsmanager", DR)
    for name, value in values.items():
        assert sm.get_secret_value(SecretId=TARGET.app_secret(name))["SecretString"] == value
    (modify,) = [p for name, p in calls if name == "ModifyDBInstance"]
    assert modify["DBInstanceIdentifier"] == TARGET.primary
    assert modify["MasterUserPassword"] == "new-stack-master-pw"
    assert "new-stack-master-pw" not in run.stdout + run.stderr
    assert not any(v in run.stdout + run.stderr for v in values.values())

    again = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes", "--json")
    assert again.code == 0, again.text
    assert again.json["app_secrets_set"] == []  # idempotent


def test_secrets_carries_the_previous_value_of_a_rotated_key(dr: DrEnv) -> None:
    """Review F6: a key rotated after the backup time encrypted the restored rows under what is
    now AWSPREVIOUS; the rebuilt stack must hold it too, under the same label."""
    values = _rebuilt(dr)
    sm = dr.client("secretsmanager", DR)
    name = next(iter(values))
    sm.put_secret_value(SecretId=PROD.app_secret(name), SecretString="prod-rotated-value")
    run = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes")
    assert run.code == 0, run.text
    target = TARGET.app_secret(name)
    assert sm.get_secret_value(SecretId=target)["SecretString"] == "prod-rotated-value"
    previous = sm.get_secret_value(SecretId=target, VersionStage="AWSPREVIOUS")
    assert previous["SecretString"] == values[name]
    again = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes", "--json")
    assert again.code == 0 and again.json["app_secrets_set"] == []  # idempotent


def test_secrets_before_pulumi_up_is_refused_and_changes_nothing(dr: DrEnv) -> None:
    dr.client("rds", DR).create_db_instance(
        DBInstanceIdentifier=TARGET.primary,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="dbadmin",
        MasterUserPassword="prod-password-at-backup-time",
    )
    before = dr.state()
    run = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes")
    assert run.code == 3
    assert f"{TARGET.master_secret} does not exist in {DR} yet: run `pulumi up" in run.stderr
    assert dr.state() == before


# ---------------------------------------------------------------------------------------------
# janitor (ops review row 16)
# ---------------------------------------------------------------------------------------------


def _leftover(
    dr: DrEnv,
    ident: str,
    purpose: str,
    source: str = "prod",
    region: str = SOURCE,
    *,
    tagged: bool = True,
    protected: bool = False,
) -> None:
    tags = [
        {"Key": TAG_PURPOSE, "Value": purpose},
        {"Key": TAG_SOURCE, "Value": source},
        {"Key": TAG_RUN, "Value": "20260101T000000Z-abcdef"},
    ]
    dr.client("rds", region).create_db_instance(
        DBInstanceIdentifier=ident,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="dbadmin",
        MasterUserPassword="leftover-password",
        DeletionProtection=protected,
        Tags=tags if tagged else [],
    )


RC_OLD = PROD.restore_check_instance("20260101t000000z-abcdef")
DRILL_OLD = Names(drill_stack("prod", "abcdef")).primary


class _Later(FakeClock):
    """The janitor's clock, a day after the leftovers were made."""

    def __init__(self) -> None:
        super().__init__()
        self._now = datetime.now(UTC) + timedelta(days=1)


def test_janitor_lists_first_then_removes_only_old_tagged_leftovers(dr: DrEnv) -> None:
    dr.seed("prod")
    _leftover(dr, RC_OLD, "restore-check")
    _leftover(dr, DRILL_OLD, "dr-drill", region=DR)
    staging_rc = Names("staging").restore_check_instance("20260101t000000z-abcdef")
    _leftover(dr, staging_rc, "restore-check", source="staging")
    _leftover(dr, "dbplatform-prod-usw2-pg", "dr-rebuild", region=DR)  # a rebuild: kept
    dr.client("rds", DR).create_db_parameter_group(
        DBParameterGroupName="dbplatform-prod-drill-old-postgres16",
        DBParameterGroupFamily="postgres16",
        Description="drill",
        Tags=[
            {"Key": TAG_PURPOSE, "Value": "dr-drill"},
            {"Key": TAG_SOURCE, "Value": "prod"},
            {"Key": TAG_RUN, "Value": "20260101T000000Z-abcdef"},
        ],
    )
    expired = LockInfo(
        owner="ci",
        operation="dr drill",
        run_id="x",
        acquired="2026-01-01T00:00:00Z",
        expires="2026-01-01T01:00:00Z",
    )
    # the scopes restore checks and drills take (`Context.lock`: `<lock>-<scope>`); another
    # scope's stale lock is an operator's to break (--break-lock), never the janitor's
    for scope in ("dr", "restore-check", "bluegreen"):
        dr.client("ssm", DR).put_parameter(
            Name=f"{PROD.lock_parameter}-{scope}", Value=expired.to_json(), Type="String"
        )
    # a dead rebuild's lock in the source region: the sign of a recovery cut short, kept
    rebuild = dataclasses.replace(expired, operation="dr rebuild")
    dr.client("ssm", SOURCE).put_parameter(
        Name=f"{PROD.lock_parameter}-dr", Value=rebuild.to_json(), Type="String"
    )
    before = dr.state()

    def janitor(*args: str) -> Any:
        return dr.aws.main(
            "janitor", "--stack", "prod", *args, session=dr.aws.session, clock=_Later(), main=main
        )

    listed = janitor("--dry-run", "--json")
    assert listed.code == 0, listed.text
    found = {(o["kind"], o["id"]) for o in listed.json["found"]}
    assert found == {
        ("db-instance", RC_OLD),
        ("db-instance", DRILL_OLD),
        ("db-parameter-group", "dbplatform-prod-drill-old-postgres16"),
        ("lock", f"{PROD.lock_parameter}-dr"),
        ("lock", f"{PROD.lock_parameter}-restore-check"),
    }
    assert dr.state() == before  # a dry run removes nothing

    young = dr.main(main, "janitor", "--stack", "prod", "--dry-run", "--json")
    # the instances were made a moment ago (12 h bound); the group's run and the lock are old
    assert {o["kind"] for o in young.json["found"]} == {"db-parameter-group", "lock"}
    assert len(young.json["found"]) == 3

    unconfirmed = janitor()
    assert unconfirmed.code == 3 and "--yes" in unconfirmed.stderr

    removed = janitor("--yes", "--json")
    assert removed.code == 0, removed.text
    gone = {i for i, _ in dr.state()[SOURCE]["instances"]} | {
        i for i, _ in dr.state()[DR]["instances"]
    }
    assert RC_OLD not in gone and DRILL_OLD not in gone
    assert {staging_rc, "dbplatform-prod-usw2-pg", PROD.primary} <= gone
    # both were copies of the primary's data: each left a final snapshot
    assert final_snapshot_id(DRILL_OLD) in dr.state()[DR]["snapshots"]
    assert final_snapshot_id(RC_OLD) in dr.state()[SOURCE]["snapshots"]
    assert "dbplatform-prod-drill-old-postgres16" not in dr.state()[DR]["parameter_groups"]
    left = dr.state()[DR]["parameters"]
    assert f"{PROD.lock_parameter}-dr" not in left
    assert f"{PROD.lock_parameter}-restore-check" not in left
    assert f"{PROD.lock_parameter}-bluegreen" in left
    assert f"{PROD.lock_parameter}-dr" in dr.state()[SOURCE]["parameters"]  # the rebuild's
    assert not [n for n in left if "-break-" in n]  # the claims were removed too


def test_janitor_never_touches_a_declared_instance_whatever_its_tags(dr: DrEnv) -> None:
    """SRE review F1: the prod primary, deletion-protected, tagged as a restore-check copy."""
    dr.seed("prod")
    rds = dr.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier=PROD.primary)["DBInstances"][0]
    rds.modify_db_instance(
        DBInstanceIdentifier=PROD.primary, DeletionProtection=True, ApplyImmediately=True
    )
    rds.add_tags_to_resource(
        ResourceName=db["DBInstanceArn"],
        Tags=[
            {"Key": TAG_PURPOSE, "Value": "restore-check"},
            {"Key": TAG_SOURCE, "Value": "prod"},
            {"Key": TAG_RUN, "Value": "20260101T000000Z-abcdef"},
        ],
    )
    # a look-alike of the generated pattern that a committed stack file declares: never touched
    lookalike = "prod-rc-20260101t000000z"
    (dr.project / f"Pulumi.{lookalike}.yaml").write_text(
        (dr.project / "Pulumi.prod.yaml").read_text()
    )
    _leftover(dr, Names(lookalike).primary, "restore-check")
    before = dr.state()
    run = dr.aws.main(
        "janitor", "--stack", "prod", "--yes", "--json", session=dr.aws.session,
        clock=_Later(), main=main,
    )  # fmt: skip
    assert run.code == 0, run.text
    assert run.json["found"] == []
    assert dr.state() == before
    after = rds.describe_db_instances(DBInstanceIdentifier=PROD.primary)["DBInstances"][0]
    assert after["DBInstanceStatus"] == "available" and after["DeletionProtection"] is True


def test_janitor_finds_an_untagged_restore_and_never_lifts_deletion_protection(
    dr: DrEnv,
) -> None:
    """F5: an AWS Backup restore killed before its job completed is untagged; a protected
    leftover is reported with the command, and stays as it is."""
    dr.seed("prod")
    _leftover(dr, RC_OLD, "restore-check", tagged=False)
    _leftover(dr, DRILL_OLD, "dr-drill", region=DR, protected=True)
    run = dr.aws.main(
        "janitor", "--stack", "prod", "--yes", "--json", session=dr.aws.session,
        clock=_Later(), main=main,
    )  # fmt: skip
    assert run.code == 1, run.text
    assert {o["id"] for o in run.json["found"]} >= {RC_OLD, DRILL_OLD}
    assert [o["id"] for o in run.json["removed"] if o["kind"] == "db-instance"] == [RC_OLD]
    assert final_snapshot_id(RC_OLD) in dr.state()[SOURCE]["snapshots"]
    assert "--no-deletion-protection" in run.text and DRILL_OLD in run.text
    drill = dr.client("rds", DR).describe_db_instances(DBInstanceIdentifier=DRILL_OLD)
    assert drill["DBInstances"][0]["DeletionProtection"] is True


def test_janitor_deletes_a_failed_restore_without_a_snapshot_after_saying_so(dr: DrEnv) -> None:
    """RDS deletes an instance that is `failed`, `incompatible-restore` or
    `incompatible-network` only with SkipFinalSnapshot (botocore rds/2014-10-31
    DeleteDBInstanceMessage.SkipFinalSnapshot): what a restore that failed leaves. moto never
    enters those states, so DescribeDBInstances is made to say it."""
    dr.seed("prod")
    _leftover(dr, RC_OLD, "restore-check")
    session = dr.aws.session
    deletes: list[dict[str, Any]] = []

    def failed(parsed: dict[str, Any], **_: Any) -> None:
        for db in parsed.get("DBInstances", []):
            if db["DBInstanceIdentifier"] == RC_OLD:
                db["DBInstanceStatus"] = "incompatible-restore"

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name == "DeleteDBInstance":
            deletes.append(dict(params))

    session.events.register("after-call.rds.DescribeDBInstances", failed)
    session.events.register("provide-client-params.rds", record)

    def janitor(*args: str) -> Any:
        return dr.aws.main(
            "janitor", "--stack", "prod", *args, session=session, clock=_Later(), main=main
        )

    listed = janitor("--dry-run")
    assert listed.code == 0, listed.text
    assert f"{RC_OLD} " in listed.stdout and "WITHOUT a final snapshot" in listed.stdout
    assert "'incompatible-restore'" in listed.stdout
    removed = janitor("--yes", "--json")
    assert removed.code == 0, removed.text
    assert deletes == [
        {"DBInstanceIdentifier": RC_OLD, "DeleteAutomatedBackups": False, "SkipFinalSnapshot": True}
    ]
    assert RC_OLD not in {i for i, _ in dr.state()[SOURCE]["instances"]}
    assert final_snapshot_id(RC_OLD) not in dr.state()[SOURCE]["snapshots"]


def test_janitor_finds_the_restore_check_of_a_stack_with_the_longest_name(dr: DrEnv) -> None:
    """A 24-character stack name: the identifier keeps its whole run id (62 of RDS's 63
    characters), so the janitor rebuilds it and finds the leftover."""
    long = "customer-analytics-prod1"
    assert len(long) == 24
    (dr.project / f"Pulumi.{long}.yaml").write_text((dr.project / "Pulumi.prod.yaml").read_text())
    ident = Names(long).restore_check_instance("20260101t000000z-abcdef")
    assert ident.endswith("-rc-20260101t000000z-abcdef") and len(ident) <= 63
    _leftover(dr, ident, "restore-check", source=long)
    run = dr.aws.main(
        "janitor", "--stack", long, "--dry-run", "--json", session=dr.aws.session,
        clock=_Later(), main=main,
    )  # fmt: skip
    assert run.code == 0, run.text
    assert [o["id"] for o in run.json["found"] if o["kind"] == "db-instance"] == [ident]


def test_janitor_refuses_a_bound_below_the_tool_deadlines_unless_forced(dr: DrEnv) -> None:
    """F8: a bound below the longest deadline could remove a running check's instance."""
    dr.seed("prod")
    short = dr.main(main, "janitor", "--stack", "prod", "--older-than", "2", "--dry-run")
    assert short.code == 2 and "--older-than 2" in short.stderr and "--force" in short.stderr
    forced = dr.main(
        main, "janitor", "--stack", "prod", "--older-than", "2", "--force", "--dry-run"
    )
    assert forced.code == 0, forced.text


@pytest.mark.parametrize("hours", ["0", "-1"])
def test_janitor_bound_must_be_positive(dr: DrEnv, hours: str) -> None:
    run = dr.main(main, "janitor", "--stack", "prod", "--older-than", hours)
    assert run.code == 2 and "--older-than" in run.stderr
    assert f"'{hours}' must be a finite number above 0" in run.stderr


# ---------------------------------------------------------------------------------------------
# heartbeat
# ---------------------------------------------------------------------------------------------


def test_heartbeat_install_without_pg_cron_is_refused_and_no_schedule_installs(
    dr: DrEnv, postgres: PgServer, pg_database: str
) -> None:
    dr.seed("staging")

    def connect(endpoint: Any) -> Any:
        return postgres.connect(pg_database)

    hb = functools.partial(heartbeat_main, connect=connect)
    refused = dr.main(hb, "install", "--stack", "staging", "--sql-host", "127.0.0.1")
    assert refused.code == 3, refused.text
    assert "pg_cron" in refused.stderr and "--no-schedule" in refused.stderr
    with postgres.connect(pg_database) as conn:
        assert conn.execute("SELECT to_regclass('dbplatform.heartbeat')").fetchone() == (None,)

    done = dr.main(hb, "install", "--stack", "staging", "--no-schedule", "--sql-host", "x")
    assert done.code == 0, done.text
    status = dr.main(hb, "status", "--stack", "staging", "--sql-host", "x", "--json")
    assert status.code == 0, status.text
    assert status.json["heartbeat"] is not None

    with postgres.connect(pg_database) as conn:
        conn.execute("UPDATE dbplatform.heartbeat SET beat_at = now() - interval '1 hour'")
    stale = dr.main(hb, "status", "--stack", "staging", "--sql-host", "x")
    assert stale.code == 1 and "STALE" in stale.stderr


def test_pitr_that_cannot_connect_says_why(dr: DrEnv) -> None:
    """Review: the `sql: connect` check of pitr recorded only the error's type, so the cause
    (here libpq's, at the end of a long first line with a hint on the next) was lost."""
    dr.seed("staging")
    cause = 'FATAL:  password authentication failed for user "dbadmin"'

    def refused(endpoint: Any) -> Any:
        raise OSError(
            f'connection failed: connection to server at "{endpoint.host}" ({"x" * 150}), '
            f"port {endpoint.port} failed: {cause}\nHINT:  check the master secret"
        )

    run = dr.main(
        functools.partial(main, connect=refused),
        "pitr",
        "--stack",
        "staging",
        "--restore-time",
        _pitr_time(dr),
        "--yes",
        "--json",
    )
    assert run.code == 1, run.text
    (check,) = [c for c in run.json["checks"] if c["name"] == "sql: connect"]
    assert check["ok"] is False
    assert cause in check["actual"] and "HINT:  check the master secret" in check["actual"]
    assert check["actual"].startswith("OSError: connection failed")
