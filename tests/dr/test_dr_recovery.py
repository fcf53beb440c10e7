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


def _pitr_time(dr: DrEnv, names: Names = STAGING) -> str:
    """A whole second inside the primary's PITR window (moto: from its creation to now)."""
    db = dr.client("rds").describe_db_instances(DBInstanceIdentifier=names.primary)["DBInstances"][
        0
    ]
    earliest = db["InstanceCreateTime"].astimezone(UTC).replace(microsecond=0)
    when = earliest + timedelta(seconds=1)
    while db["LatestRestorableTime"].astimezone(UTC) < when:
        time.sleep(0.2)
        db = dr.client("rds").describe_db_instances(DBInstanceIdentifier=names.primary)[
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
    # staging's replica r1 follows the renamed-aside primary: taken off, then re-created
    assert data["replicas"] == [STAGING.replica("r1")]
    assert data["replica_warning"].startswith(
        f"the read replicas {STAGING.replica('r1')} ({SOURCE}) replicate the instance"
    )
    assert any(s.startswith("re-create the read replicas") for s in data["cutover"])
    # it logged in with the stack's master secret, which the copy now matches
    secret = json.loads(
        dr.client("secretsmanager").get_secret_value(SecretId=STAGING.master_secret)["SecretString"]
    )
    assert connect.seen[0].password == secret["password"]  # type: ignore[attr-defined]


def test_pitr_cutover_takes_each_replica_off_and_re_creates_it_from_the_new_primary(
    dr: DrEnv,
) -> None:
    """SRE review item 4: the read replicas replicate the instance, not its name; after the
    rename they serve the data from after T. The steps take the readers off each replica before
    the rename and re-create each from the new primary after it (a plain `pulumi up` does not:
    its state still names the primary's identifier as their source)."""
    dr.seed("prod")
    when = _pitr_time(dr, PROD)
    run = dr.main(main, "pitr", "--stack", "prod", "--restore-time", when, "--dry-run", "--json")
    assert run.code == 0, run.text
    replicas = [PROD.replica("r1"), PROD.replica("r2")]
    assert run.json["replicas"] == replicas
    steps = run.json["steps"]
    off = next(i for i, s in enumerate(steps) if s.startswith("take the readers off"))
    rename = next(
        i for i, s in enumerate(steps) if f"--db-instance-identifier {PROD.primary} " in s
    )
    again = next(i for i, s in enumerate(steps) if s.startswith("re-create the read replicas"))
    assert off < rename < again
    for ident in replicas:
        assert ident in steps[off] and ident in steps[again]
    urns = [
        "urn:pulumi:prod::dbplatform::dbplatform:index:Environment$dbplatform:index:Replicas"
        f"$aws:rds/instance:Instance::replicas-{name}"
        for name in ("r1", "r2")
    ]
    assert (
        f"pulumi preview --stack prod --target-replace '{urns[0]}' --target-replace '{urns[1]}'"
        in (steps[again])
    )
    assert "with pulumi up" in steps[again]
    warning = run.json["replica_warning"]
    assert all(f"{ident} ({SOURCE})" in warning for ident in replicas)
    assert f"serve data from after {when}" in warning
    assert "replicas re-created from the new primary" not in " ".join(steps)  # the old claim
    text = dr.main(main, "pitr", "--stack", "prod", "--restore-time", when, "--dry-run")
    assert f"At the cut-over: the read replicas {replicas[0]} ({SOURCE}), {replicas[1]}" in (
        text.stdout
    )


def test_pitr_names_each_replica_by_the_urn_the_program_gives_it(dr: DrEnv) -> None:
    """The URNs the cut-over passes to `--target-replace` are the program's: the parent's
    qualified type, `$`, the type (pulumi/pulumi resource/urn.go NewURN), read here from the
    recorded parents. With a cross-region replica too (blue/green off: they do not combine)."""
    from dbplatform.dr.pitr import replicas_of
    from infra.config import read_stack_values
    from infra.offline import run_program

    values, region = read_stack_values("prod", dr.project)
    values = json.loads(json.dumps(values))
    values["dr"]["crossRegionReplica"] = True
    values["database"]["blueGreen"] = False
    recording = run_program("prod", root=dr.project, values=values, region=region)
    by_urn = recording.by_urn()
    expected = {}
    for r in recording.of_type("aws:rds/instance:Instance"):
        chain, parent = [r.type], r.parent
        while parent in by_urn:
            chain.insert(0, by_urn[parent].type)
            parent = by_urn[parent].parent
        urn = f"urn:pulumi:prod::dbplatform::{'$'.join(chain)}::{r.name}"
        expected[r.inputs["identifier"]] = urn
    ours = replicas_of(recording.config)
    assert [r.identifier for r in ours] == [
        PROD.replica("r1"),
        PROD.replica("r2"),
        PROD.cross_region_replica,
    ]
    assert {r.identifier: r.urn for r in ours} == {
        k: v for k, v in expected.items() if k != PROD.primary
    }
    assert ours[-1].region == DR


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
    _target_after_pulumi_up(dr)
    return values


def _target_after_pulumi_up(dr: DrEnv) -> None:
    """prod-usw2 as `pulumi up` leaves it: new generated secrets, and its restored instance with
    the source's password."""
    sm = dr.client("secretsmanager", DR)
    for spec in dr.config("prod").vault.app_secrets:
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
    # a signing key is never retired (only encryption keys are: secrets/rotation.py), so its
    # unlabelled AWSPREVIOUS is no reason to warn about lost keys (SRE re-review)
    assert next(s for s in dr.config("prod").vault.app_secrets if s.name == name).kind != (
        "encryption"
    )
    assert "carries no DBPLATFORM-RETIRED" not in run.text and "warning" not in run.stderr
    target = TARGET.app_secret(name)
    assert sm.get_secret_value(SecretId=target)["SecretString"] == "prod-rotated-value"
    previous = sm.get_secret_value(SecretId=target, VersionStage="AWSPREVIOUS")
    assert previous["SecretString"] == values[name]
    again = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes", "--json")
    assert again.code == 0 and again.json["app_secrets_set"] == []  # idempotent


KEY0 = "OriginalDataKey0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM"


def test_secrets_carries_the_retired_keys_of_an_encryption_key_rotated_twice(dr: DrEnv) -> None:
    """SRE review item 2: after two rotations the first key is held only under its
    DBPLATFORM-RETIRED-* label (dbplatform/secrets/rotation.py); rows not yet re-encrypted need
    it, so the DR stack must hold it too, under the same label (before: AWSCURRENT and
    AWSPREVIOUS only, the first key lost)."""
    from scripts.rotate_secret import main as rotate_main

    cfg = dr.config("prod")
    source = dr.client("secretsmanager")
    for spec in cfg.vault.app_secrets:  # replicated to the DR region, as vault.replicateToDr
        source.create_secret(
            Name=PROD.app_secret(spec.name),
            SecretString=KEY0 if spec.name == "data-encryption-key" else f"{spec.name}-value",
            AddReplicaRegions=[{"Region": DR}],
        )
    for _ in range(2):
        rotated = dr.main(
            rotate_main,
            "--stack", "prod", "--yes", "--secret", "data-encryption-key", "--reencryption-planned",
        )  # fmt: skip
        assert rotated.code == 0, rotated.text
    dek = PROD.app_secret("data-encryption-key")
    replica = dr.client("secretsmanager", DR)
    labels = sorted(
        label
        for stages in replica.describe_secret(SecretId=dek)["VersionIdsToStages"].values()
        for label in stages
        if label.startswith("DBPLATFORM-RETIRED-")
    )
    assert len(labels) == 2, labels
    first = [
        label
        for label in labels
        if replica.get_secret_value(SecretId=dek, VersionStage=label)["SecretString"] == KEY0
    ]
    assert len(first) == 1  # the first key: no longer AWSCURRENT nor AWSPREVIOUS
    assert replica.get_secret_value(SecretId=dek, VersionStage="AWSPREVIOUS")["SecretString"] != (
        KEY0
    )
    _target_after_pulumi_up(dr)

    run = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes", "--json")

    assert run.code == 0, run.text
    target = TARGET.app_secret("data-encryption-key")
    for label in labels:  # every retired key, under its label, with the source's value
        theirs = replica.get_secret_value(SecretId=dek, VersionStage=label)["SecretString"]
        ours = replica.get_secret_value(SecretId=target, VersionStage=label)["SecretString"]
        assert ours == theirs
    assert replica.get_secret_value(SecretId=target, VersionStage=first[0])["SecretString"] == KEY0
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):  # the two newest keys, as before
        assert (
            replica.get_secret_value(SecretId=target, VersionStage=stage)["SecretString"]
            == replica.get_secret_value(SecretId=dek, VersionStage=stage)["SecretString"]
        )
    assert run.json["retired_versions"] == {target: labels}
    assert run.json["warnings"] == []
    assert KEY0 not in run.stdout + run.stderr
    again = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes")
    assert again.code == 0, again.text
    assert f"{target} holds the retired key(s) {', '.join(labels)} as the source does" in (
        again.stdout
    )
    assert "0 application secret(s) set" in again.stdout  # idempotent


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


def test_secrets_warns_when_an_encryption_keys_older_value_has_no_retired_label(
    dr: DrEnv,
) -> None:
    """A key rotated outside rotate-secret (a PutSecretValue by hand) keeps its old value as
    AWSPREVIOUS with no DBPLATFORM-RETIRED-* label: keys older than it are not findable, and
    the command says so, naming the secret and how to list its versions."""
    _rebuilt(dr)
    dek = PROD.app_secret("data-encryption-key")
    dr.client("secretsmanager", DR).put_secret_value(SecretId=dek, SecretString="rotated-by-hand")
    run = dr.main(main, "secrets", "--stack", "prod", "--region", DR, "--yes")
    assert run.code == 0, run.text
    assert f"{dek}: its AWSPREVIOUS version carries no DBPLATFORM-RETIRED-* label" in run.stderr
    assert f"list-secret-version-ids --secret-id {dek}" in run.stderr
