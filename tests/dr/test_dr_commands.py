"""`python -m scripts.dr`: restore-points, rebuild and drill against the emulator, as an operator
runs them, and every refusal (exit 3 or 2, nothing created)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from dbplatform.cmdline import parse_args
from infra.config import load_stack
from infra.naming import Names, drill_stack
from infra.offline import run_program
from scripts.dr import build_parser, main
from tests.dr.conftest import (
    DR,
    SOURCE,
    DrEnv,
    not_allowed_to_the_drills_role,
    record_calls,
    venv_only_path,
)
from tests.ops.support import query_error, session_with

PROD = Names("prod")
TARGET = Names("prod-usw2")


@pytest.fixture
def prod_with_dr_copy(dr: DrEnv) -> DrEnv:
    """prod in us-east-1, its DR network and a copied snapshot in us-west-2."""
    dr.seed("prod")
    dr.dr_network("prod")
    dr.copy_snapshot("prod", "prod-daily-1")
    return dr


def test_restore_points_lists_copied_snapshots_and_the_replica_with_its_lag(dr: DrEnv) -> None:
    dr.seed("prod")
    copy = dr.copy_snapshot("prod", "prod-daily-1")
    replica = dr.cross_region_replica("prod", lag_seconds=42)

    run = dr.cli("dr", "restore-points", "--stack", "prod", "--json")

    assert run.code == 0, run.text
    data = run.json
    assert data["region"] == DR
    points = {p["id"]: p for p in data["points"]}
    assert set(points) == {copy, replica}
    assert points[replica]["kind"] == "read-replica"
    assert points[replica]["restorable"] is False
    assert "lag 42s" in points[replica]["detail"]
    assert points[copy]["kind"] == "snapshot" and points[copy]["meets_rpo_objective"] is True
    # freshest first: the snapshot was taken a moment ago, the replica is 42 s behind
    assert [p["id"] for p in data["points"]] == [copy, replica]
    assert 42 <= points[replica]["age_seconds"] < 100
    assert data["best"]["id"] == copy  # what a rebuild would restore
    assert any("dbplatform-prod-dr-vault" in n for n in data["notes"])

    # STS is asked where the command works, never in the source region, which may be down
    signed: list[str] = []
    dr.aws.session.events.register(
        "before-sign.sts.GetCallerIdentity",
        lambda region_name, **_: signed.append(region_name),
    )
    text = dr.main(main, "restore-points", "--stack", "prod")
    assert text.code == 0
    assert signed == [DR] and f") in {DR}" in text.stderr
    assert f"snapshot      {copy}" in text.stdout
    assert "A rebuild now would restore snapshot" in text.stdout


def test_rebuild_restores_with_explicit_groups_writes_the_config_and_prints_what_remains(
    prod_with_dr_copy: DrEnv,
) -> None:
    dr = prod_with_dr_copy
    sg = dr.client("ec2", DR).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{PROD.security_group}-dr"]}]
    )["SecurityGroups"][0]["GroupId"]

    run = dr.cli("dr", "rebuild", "--stack", "prod", "--region", DR, path=venv_only_path())

    assert run.code == 0, run.text
    db = dr.instance(TARGET.primary)
    assert db is not None
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == f"{PROD.subnet_group}-dr"
    assert [g["VpcSecurityGroupId"] for g in db["VpcSecurityGroups"]] == [sg]
    # the DR stack's own parameter group, the one its `pulumi up` declares (ops review row 21)
    assert [g["DBParameterGroupName"] for g in db["DBParameterGroups"]] == [
        TARGET.parameter_group("postgres16")
    ]
    assert db["DeletionProtection"] is True and db["MultiAZ"] is True
    params = dr.client("rds", DR).describe_db_parameters(
        DBParameterGroupName=TARGET.parameter_group("postgres16")
    )["Parameters"]
    # the program's own parameters (rds.force_ssl is PostgreSQL 16's default, not declared)
    assert {"rds.logical_replication", "log_min_duration_statement"} <= {
        p["ParameterName"] for p in params
    }
    # the source is untouched
    assert dr.source_view(PROD.primary)["DBInstanceStatus"] == "available"

    cfg = load_stack("prod-usw2", dr.project)
    assert cfg.region == DR
    assert cfg.restore.source_stack == "prod"
    assert cfg.restore.adopt_identifier == TARGET.primary
    assert cfg.restore.restored_from == "prod-daily-1-us-west-2"
    recording = run_program("prod-usw2", root=dr.project)
    (primary,) = [
        r for r in recording.of_type("aws:rds/instance:Instance") if r.import_id is not None
    ]
    assert primary.import_id == TARGET.primary

    for line in (
        f"cd {dr.project}",
        "pulumi stack init prod-usw2",
        "pulumi preview --stack prod-usw2",
        "pulumi up --stack prod-usw2",
    ):
        assert line in run.stdout
    assert "Pulumi CLI not installed" in run.stdout
    # the to-do holds only steps that work: the secrets step, not a rotation that cannot log in
    assert "dbplatform dr secrets --stack prod --as prod-usw2 --region us-west-2 --yes" in (
        run.stdout
    )
    assert "rotate the master secret" not in run.stdout
    assert "database restored in" in run.stdout and "total RTO incomplete" in run.stdout
    (report_json,) = (dr.project / ".dbplatform" / "dr").glob("*/rebuild-prod-us-west-2.json")
    report = json.loads(report_json.read_text())
    assert report["result"] == "succeeded"
    # honest: the database is back, the environment is not (pulumi up, secrets, cut-over)
    assert report["database_restored_seconds"] is not None
    assert report["rto_seconds"] is None and report["rto_complete"] is False
    assert report["rto_met"] is None
    assert report["rto_incomplete_steps"] == [
        "pulumi up (Pulumi CLI not installed)",
        "secrets carried over (dr secrets)",
        "cut-over",
    ]
    assert report["rto_estimate_remaining_seconds"] > 0  # the DR stack's critical path
    assert report["rpo_seconds"] is not None and report["rpo_met"] is True
    assert {p["name"]: p["status"] for p in report["phases"]}["pulumi up"] == "skipped"
    assert report_json.with_suffix(".svg").exists()
    markdown = report_json.with_suffix(".md").read_text()
    assert "**RTO (total)** incomplete" in markdown and "**Database restored** in" in markdown
    assert "```mermaid\ngantt" in markdown and ":milestone, obj," in markdown
    assert "Legend:" in markdown


def _squat(dr: DrEnv, identifier: str) -> None:
    """An instance nobody's rebuild created, under the identifier a rebuild would use."""
    dr.client("rds", DR).create_db_instance(
        DBInstanceIdentifier=identifier,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="someone",
        MasterUserPassword="not-a-dr-instance",
    )


def test_as_names_a_new_stack_and_a_rerun_resumes_from_the_restored_instance(
    prod_with_dr_copy: DrEnv,
) -> None:
    dr = prod_with_dr_copy
    _squat(dr, TARGET.primary)  # the default target's identifier is taken
    other = Names("prod-dr2")
    first = dr.main(main, "rebuild", "--stack", "prod", "--as", "prod-dr2", "--no-pulumi", "--json")
    assert first.code == 0, first.text
    assert dr.instance(other.primary) is not None
    assert load_stack("prod-dr2", dr.project).restore.adopt_identifier == other.primary

    # the resumed instance may be in use by now: a pending parameter group is reported, and
    # the instance is never rebooted by a re-run (SRE review)
    reboots: list[str] = []

    def pending(parsed: dict[str, Any], **_: Any) -> None:
        for db in parsed.get("DBInstances", []):
            for group in db.get("DBParameterGroups", []):
                group["ParameterApplyStatus"] = "pending-reboot"

    session = session_with(
        [
            ("after-call.rds.DescribeDBInstances", pending),
            ("provide-client-params.rds.RebootDBInstance", lambda **_: reboots.append("x")),
        ]
    )
    again = dr.main(
        main, "rebuild", "--stack", "prod", "--as", "prod-dr2", "--no-pulumi", "--json",
        session=session,
    )  # fmt: skip
    assert again.code == 0, again.text
    assert (
        reboots == [] and "pending-reboot" in again.stderr and "was not rebooted" in (again.stderr)
    )
    phases = {p["name"]: p["status"] for p in again.json["phases"]}
    assert phases["restore database"] == "skipped"  # the same point, the same data: resumed
    # the report speaks of the data the instance holds, restored by the first run
    assert again.json["restore"]["data_time"] == first.json["restore"]["data_time"]
    assert again.json["restore"]["point"]["id"] == "prod-daily-1-us-west-2"
    instances = dr.client("rds", DR).describe_db_instances()["DBInstances"]
    assert sorted(i["DBInstanceIdentifier"] for i in instances) == [other.primary, TARGET.primary]


def test_refusals_exit_3_and_create_nothing(dr: DrEnv) -> None:
    dr.seed("prod")
    dr.dr_network("prod")
    before = dr.state()

    no_point = dr.main(main, "rebuild", "--stack", "prod")
    assert no_point.code == 3
    assert "no restorable recovery point in us-west-2" in no_point.stderr
    # about the DR region it searched, with a command that runs as pasted
    assert "check that backups reach this DR region" in no_point.stderr
    assert "`dbplatform dr restore-points --stack prod --region us-west-2`" in no_point.stderr
    assert dr.state() == before

    dr.copy_snapshot("prod", "prod-daily-1")
    before = dr.state()
    too_old = dr.main(main, "rebuild", "--stack", "prod", "--restore-time", "2020-01-01T00:00:00Z")
    assert too_old.code == 3
    assert "reaches back to 2020-01-01T00:00:00Z" in too_old.stderr
    assert "or use --latest" in too_old.stderr  # rebuild has it
    assert dr.state() == before

    _squat(dr, TARGET.primary)
    before = dr.state()
    taken = dr.main(main, "rebuild", "--stack", "prod")
    assert taken.code == 3
    assert f"already holds DB instance(s) {TARGET.primary}" in taken.stderr
    assert "--as NEW" in taken.stderr
    assert dr.state() == before
    assert not (dr.project / "Pulumi.prod-usw2.yaml").exists()


def test_refusals_after_the_lookups_create_nothing(prod_with_dr_copy: DrEnv) -> None:
    dr = prod_with_dr_copy
    before = dr.state()

    no_group = dr.main(main, "rebuild", "--stack", "prod", "--parameter-group", "hand-made")
    assert no_group.code == 3, no_group.text
    assert "DB parameter group hand-made not found in us-west-2" in no_group.stderr
    assert dr.state() == before

    foreign = dr.project / "Pulumi.prod-usw2.yaml"
    foreign.write_text("config:\n  aws:region: us-west-2\n")
    other_stack = dr.main(main, "rebuild", "--stack", "prod")
    assert other_stack.code == 3, other_stack.text
    assert "is not a DR stack of prod" in other_stack.stderr
    assert dr.state() == before
    assert foreign.read_text() == "config:\n  aws:region: us-west-2\n"


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_a_recovery_point_without_a_backup_role_is_refused_before_anything_is_created(
    dr: DrEnv,
) -> None:
    dr.seed("prod")
    dr.dr_network("prod")
    before = dr.state()
    # moto 5.2.5 has no AWS Backup recovery points: the DR vault's listing is answered here,
    # and STS refuses, so the stack's backup role cannot be derived from the caller's account.
    listing = {
        "RecoveryPoints": [
            {
                "RecoveryPointArn": "arn:aws:backup:us-west-2:123456789012:recovery-point:rp-1",
                "ResourceArn": f"arn:aws:rds:us-east-1:123456789012:db:{PROD.primary}",
                "Status": "COMPLETED",
                "CreationDate": datetime.now(UTC).timestamp() - 600,
            }
        ]
    }

    def recovery_points(**_: Any) -> AWSResponse:
        body = _Body(json.dumps(listing).encode())
        return AWSResponse("http://127.0.0.1/", 200, {"Content-Type": "application/json"}, body)

    session = session_with(
        [
            ("before-send.backup.ListRecoveryPointsByBackupVault", recovery_points),
            ("before-send.sts.GetCallerIdentity", lambda **_: query_error(403, "AccessDenied")),
        ]
    )
    run = dr.main(main, "rebuild", "--stack", "prod", "--no-pulumi", session=session)

    assert run.code == 3, run.text
    assert "pass --backup-role-arn" in run.stderr
    # the parameter group it would need is not created either
    assert dr.state() == before
    assert not (dr.project / "Pulumi.prod-usw2.yaml").exists()


def test_dry_runs_print_the_restore_and_a_drills_teardown_and_create_nothing(
    prod_with_dr_copy: DrEnv,
) -> None:
    dr = prod_with_dr_copy
    before = dr.state()

    rebuild = dr.main(main, "rebuild", "--stack", "prod", "--dry-run", "--json")
    assert rebuild.code == 0, rebuild.text
    planned = [c["operation"] for c in rebuild.json["planned_calls"]]
    assert planned == [
        "PutParameter",  # the DR lock
        "CreateDBParameterGroup",
        "ModifyDBParameterGroup",
        "RestoreDBInstanceFromDBSnapshot",
    ]
    (restore,) = [c for c in rebuild.json["planned_calls"] if c["operation"].startswith("Restore")]
    assert restore["DBInstanceIdentifier"] == TARGET.primary
    assert restore["DBSubnetGroupName"] == f"{PROD.subnet_group}-dr"

    drill = dr.main(main, "drill", "--stack", "prod", "--dry-run", "--json", "--no-pulumi")
    assert drill.code == 0, drill.text
    planned = [c["operation"] for c in drill.json["planned_calls"]]
    assert planned[-2:] == ["DeleteDBInstance", "DeleteDBParameterGroup"]
    assert dr.state() == before
    assert sorted(p.name for p in dr.project.glob("Pulumi.*.yaml")) == [
        "Pulumi.prod.yaml",
        "Pulumi.staging.yaml",
    ]


def test_a_failed_rebuild_keeps_what_it_restored_and_says_so(dr: DrEnv) -> None:
    dr.seed("prod", encrypted=False)  # the config says encrypted: the backup is not
    dr.dr_network("prod")
    dr.copy_snapshot("prod", "prod-daily-1")

    run = dr.main(main, "rebuild", "--stack", "prod", "--no-pulumi")

    assert run.code == 1
    assert "storage encrypted: expected True, got False" in run.stderr
    assert "Created by this run: DB parameter group" in run.stderr
    assert f"DB instance {TARGET.primary} ({DR})" in run.stderr
    # the restored instance holds the recovered data: a rebuild never deletes it
    assert dr.instance(TARGET.primary) is not None


def test_missing_dr_networking_is_refused_naming_what_to_do(dr: DrEnv) -> None:
    dr.seed("prod")
    dr.copy_snapshot("prod", "prod-daily-1")
    before = dr.state()
    run = dr.main(main, "rebuild", "--stack", "prod")
    assert run.code == 3
    assert f"DB subnet group {PROD.subnet_group}-dr" in run.stderr
    assert "--subnet-group" in run.stderr
    assert dr.state() == before


def test_bad_config_and_bad_requests_exit_2(dr: DrEnv) -> None:
    before = dr.state()
    same_region = dr.main(main, "rebuild", "--stack", "prod", "--region", SOURCE)
    assert same_region.code == 2 and "own region" in same_region.stderr
    itself = dr.main(main, "rebuild", "--stack", "prod", "--as", "prod")
    assert itself.code == 2 and "source stack itself" in itself.stderr
    future = dr.main(main, "rebuild", "--stack", "prod", "--restore-time", "2999-01-01T00:00:00Z")
    assert future.code == 2 and "in the future" in future.stderr
    # a drill of the newest point has no use for --max-gap: refused, not ignored (UX review)
    gap = dr.main(main, "drill", "--stack", "prod", "--latest", "--max-gap", "5", "--dry-run")
    assert gap.code == 2 and "--max-gap applies with --restore-time" in gap.stderr, gap.text
    assert "as arn:" not in gap.stderr  # refused before any AWS call (no identity asked)

    broken = dr.project / "Pulumi.prod.yaml"
    broken.write_text(
        broken.read_text().replace("instanceClass: db.r6g.xlarge", "instanceClass: 7")
    )
    invalid = dr.main(main, "rebuild", "--stack", "prod")
    assert invalid.code == 2
    assert "dbplatform:database.instanceClass 7" in invalid.stderr
    assert dr.state() == before


def test_drill_leaves_nothing_behind_and_never_touches_the_source(
    prod_with_dr_copy: DrEnv,
) -> None:
    dr = prod_with_dr_copy
    before = dr.state()
    source_before = dr.source_view(PROD.primary)

    run = dr.cli("dr", "drill", "--stack", "prod", "--json", path=venv_only_path())

    assert run.code == 0, run.text
    assert dr.state() == before
    assert dr.source_view(PROD.primary) == source_before
    data = run.json
    assert data["outcome"] == "done" and data["result"] == "succeeded" and data["kind"] == "drill"
    # without Pulumi the total RTO is not known: the database part is, apart
    assert data["rto_seconds"] is None and data["database_restored_seconds"] is not None
    assert data["rpo_seconds"] is not None
    target = data["target"]["stack"]
    assert target.startswith("prod-drill-")
    assert f"DB instance {Names(target).primary} ({DR})" in data["removed"]
    # the drill's own parameter group, never one shared with the source's name (row 21)
    assert (
        f"DB parameter group {Names(target).parameter_group('postgres16')} ({DR})"
        in (data["removed"])
    )
    assert {c["name"]: c["ok"] for c in data["checks"]}["program adopts the restored instance"]
    report = Path(data["report"])
    assert report.exists() and report.with_suffix(".svg").exists()
    assert (report.parent / f"Pulumi.{target}.yaml").exists()  # evidence, not in the repo
    assert not (dr.project / f"Pulumi.{target}.yaml").exists()


def test_a_failed_drill_still_tears_everything_down(dr: DrEnv) -> None:
    dr.seed("prod", encrypted=False)  # the config says encrypted: the backup is not
    dr.dr_network("prod")
    dr.copy_snapshot("prod", "prod-daily-1")
    before = dr.state()
    source_before = dr.source_view(PROD.primary)

    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi", "--json")

    assert run.code == 1, run.text
    assert run.json["result"] == "failed"
    assert "storage encrypted: expected True, got False" in run.json["message"]
    assert dr.state() == before
    assert dr.source_view(PROD.primary) == source_before


def test_an_interrupted_drill_tears_down_before_exiting_130(prod_with_dr_copy: DrEnv) -> None:
    dr = prod_with_dr_copy
    before = dr.state()
    restored = []

    def note_restore(**_: Any) -> None:
        restored.append(True)

    def ctrl_c_once_restored(**_: Any) -> None:
        if len(restored) == 1:  # the first look at the restored instance: Ctrl-C
            restored.append(True)
            raise KeyboardInterrupt

    session = session_with(
        [
            ("after-call.rds.RestoreDBInstanceFromDBSnapshot", note_restore),
            ("before-call.rds.DescribeDBInstances", ctrl_c_once_restored),
        ]
    )
    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi", session=session)

    assert len(restored) == 2, "the drill never reached its restore"
    assert run.code == 130, run.text
    assert "Traceback" not in run.stderr
    assert dr.state() == before
    (report,) = (dr.project / ".dbplatform" / "dr").glob("*/drill-prod-us-west-2.json")
    data = json.loads(report.read_text())
    assert data["result"] == "interrupted"
    assert f"DB instance {Names(data['target']['stack']).primary} ({DR})" in data["removed"]


def test_a_restore_whose_parameter_group_is_pending_reboot_is_rebooted_once(
    prod_with_dr_copy: DrEnv,
) -> None:
    """SRE review: the group a run creates is modified right before the restore, and RDS asks
    for five minutes before an instance uses it; a static parameter (pg_cron's preload) left
    `pending-reboot` applies at a reboot. moto is always in-sync, so it is made to say so: the
    instance reports pending-reboot until rebooted, then once more `rebooting`, and once more
    available but still pending-reboot (an answer that races the reboot); the drill goes on only
    once the group is in-sync."""
    dr = prod_with_dr_copy
    reboots: list[str] = []
    after_reboot: list[str] = []

    def pending(parsed: dict[str, Any], **_: Any) -> None:
        for db in parsed.get("DBInstances", []):
            if "-drill-" not in db["DBInstanceIdentifier"]:
                continue
            if reboots:
                after_reboot.append(db["DBInstanceStatus"])
                if len(after_reboot) > 2:
                    continue  # rebooted: moto's own answer, available and in-sync
                if len(after_reboot) == 1:
                    db["DBInstanceStatus"] = "rebooting"
            for group in db.get("DBParameterGroups", []):
                group["ParameterApplyStatus"] = "pending-reboot"

    def reboot(params: dict[str, Any], **_: Any) -> None:
        reboots.append(params["DBInstanceIdentifier"])

    looks_before_teardown: list[int] = []

    def teardown(**_: Any) -> None:  # the drill's next change after the restore
        looks_before_teardown.append(len(after_reboot))

    session = session_with(
        [
            ("after-call.rds.DescribeDBInstances", pending),
            ("provide-client-params.rds.RebootDBInstance", reboot),
            ("before-call.rds.ModifyDBInstance", teardown),
        ]
    )
    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi", "--json", session=session)
    assert run.code == 0, run.text
    assert len(reboots) == 1 and "-drill-" in reboots[0]
    # the wait looked past `rebooting` and past available-but-pending to in-sync (three looks),
    # then the verification looked once
    assert looks_before_teardown[0] == 4
    phases = {p["name"]: p for p in run.json["phases"]}
    assert phases["reboot to apply the parameter group"]["status"] == "done"


@pytest.mark.parametrize("state", ["failed-to-apply", "backing-up"])
def test_a_restore_whose_parameters_cannot_apply_fails_and_one_busy_is_waited_for(
    prod_with_dr_copy: DrEnv, state: str
) -> None:
    """failed-to-apply ends the run at once, no reboot; an instance busy backing up (RDS
    refuses a reboot then: botocore rds RebootDBInstance, InvalidDBInstanceStateFault) is
    waited for before the reboot."""
    dr = prod_with_dr_copy
    reboots: list[str] = []
    seen: list[str] = []

    def report(parsed: dict[str, Any], **_: Any) -> None:
        for db in parsed.get("DBInstances", []):
            if "-drill-" not in db["DBInstanceIdentifier"] or reboots:
                continue
            seen.append(db["DBInstanceStatus"])
            groups = db.get("DBParameterGroups", [])
            if state == "failed-to-apply":
                for group in groups:
                    group["ParameterApplyStatus"] = "failed-to-apply"
            else:  # available but still applying, then busy, then ready for the reboot
                for group in groups:
                    group["ParameterApplyStatus"] = (
                        "applying" if len(seen) == 1 else "pending-reboot"
                    )
                if len(seen) == 2:
                    db["DBInstanceStatus"] = "backing-up"

    def reboot(params: dict[str, Any], **_: Any) -> None:
        reboots.append(str(seen[-1:]))

    session = session_with(
        [
            ("after-call.rds.DescribeDBInstances", report),
            ("provide-client-params.rds.RebootDBInstance", reboot),
        ]
    )
    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi", "--json", session=session)
    if state == "failed-to-apply":
        assert run.code == 1 and reboots == [], run.text
        assert "failed to apply" in run.json["message"]
    else:
        assert run.code == 0, run.text
        # waited out `applying` and the backup, then rebooted an available instance
        assert seen[:2] == ["available", "available"] and reboots == ["['available']"]
        assert len(seen) >= 3


def test_every_call_of_a_drill_and_the_janitor_is_one_the_drills_role_allows(
    prod_with_dr_copy: DrEnv,
) -> None:
    """SRE review: the drills job's role (ci/iam/drill.json) lacked the parameter group and
    subnet group calls a drill makes, so CI's drill would have failed before its restore. Every
    call made here must be an action the role allows (by action; drill.json's own tests hold
    the resources and conditions)."""
    dr = prod_with_dr_copy
    made = record_calls(dr.aws.session)
    drill = dr.main(main, "drill", "--stack", "prod", "--no-pulumi", "--yes")
    assert drill.code == 0, drill.text
    janitor = dr.main(main, "janitor", "--stack", "prod", "--yes")
    assert janitor.code == 0, janitor.text
    assert "rds:CreateDBParameterGroup" in made and "rds:RestoreDBInstanceFromDBSnapshot" in made
    assert not_allowed_to_the_drills_role(made) == []


@pytest.mark.pulumi_cli
@pytest.mark.skipif(shutil.which("pulumi") is None, reason="Pulumi CLI not installed")
def test_rebuild_runs_pulumi_up_through_the_automation_api(
    prod_with_dr_copy: DrEnv, tmp_path: Path
) -> None:
    dr = prod_with_dr_copy
    backend = tmp_path / "state"
    backend.mkdir()
    dr.aws.env.update(
        {"PULUMI_BACKEND_URL": f"file://{backend}", "PULUMI_CONFIG_PASSPHRASE": "drill"}
    )
    before = dr.state()
    run = dr.cli("dr", "drill", "--stack", "prod", "--json")
    assert run.code == 0, run.text
    ran = [p for p in run.json["phases"] if p["name"].startswith("pulumi up")]
    assert [p["status"] for p in ran] == ["done"]
    assert any(r.startswith("Pulumi stack") for r in run.json["removed"])
    assert dr.state() == before


def test_a_rebuild_for_an_earlier_time_never_resumes_a_newer_restore(
    prod_with_dr_copy: DrEnv,
) -> None:
    """ops review row 1: asked for data as of T, a re-run must not hand back an earlier run's
    instance holding data after T (exit 0, "RPO 0s" before the fix)."""
    dr = prod_with_dr_copy
    time.sleep(1.1)  # the copies' data times differ by at least a second
    dr.copy_snapshot("prod", "prod-daily-2")
    first = dr.main(main, "rebuild", "--stack", "prod", "--latest", "--no-pulumi", "--json")
    assert first.code == 0, first.text
    assert first.json["restore"]["point"]["id"] == "prod-daily-2-us-west-2"
    points = dr.main(main, "restore-points", "--stack", "prod", "--json").json["points"]
    (older,) = [p["latest"] for p in points if p["id"] == "prod-daily-1-us-west-2"]
    assert older < first.json["restore"]["data_time"]
    stack_file = (dr.project / "Pulumi.prod-usw2.yaml").read_text()
    before = dr.state()

    run = dr.main(main, "rebuild", "--stack", "prod", "--restore-time", older, "--json")

    assert run.code == 3, run.text
    message = run.json["message"]
    assert f"data as of {first.json['restore']['data_time']}" in message
    assert f"prod-daily-1-us-west-2, data as of {older}" in message
    assert dr.state() == before
    assert (dr.project / "Pulumi.prod-usw2.yaml").read_text() == stack_file


def test_a_latest_rerun_resumes_when_the_newest_point_moved_within_the_gap(
    prod_with_dr_copy: DrEnv,
) -> None:
    """SRE review F7: with --latest the newest point moves on between runs; a re-run resumes an
    instance whose data is within --max-gap (default dr.rpoMinutes) of it, and says so."""
    dr = prod_with_dr_copy
    first = dr.main(main, "rebuild", "--stack", "prod", "--no-pulumi", "--json")
    assert first.code == 0, first.text
    held = first.json["restore"]["data_time"]
    time.sleep(1.1)
    dr.copy_snapshot("prod", "prod-daily-2")
    run = dr.main(main, "rebuild", "--stack", "prod", "--latest", "--no-pulumi", "--json")
    assert run.code == 0, run.text
    assert f"--latest: resumed {TARGET.primary} (data as of {held})" in run.text
    assert f"dbplatform heartbeat install --stack {TARGET.stack}" in run.text  # F10


def test_a_latest_rerun_that_resumes_an_older_restore_reports_the_resumed_data(
    prod_with_dr_copy: DrEnv,
) -> None:
    """SRE review item 1: a re-run that resumes the instance restored from an older point must
    report THAT point and measure the RPO from its data (before: the newer point's id and time
    in the output, the report, the JSON and the stack file, and "RPO 0s ... met")."""
    dr = prod_with_dr_copy
    first = dr.main(main, "rebuild", "--stack", "prod", "--latest", "--no-pulumi", "--json")
    assert first.code == 0, first.text
    held = first.json["restore"]["data_time"]
    time.sleep(1.1)  # the copies' data times differ by at least a second
    dr.copy_snapshot("prod", "prod-daily-2")

    run = dr.main(main, "rebuild", "--stack", "prod", "--latest", "--no-pulumi", "--json")

    assert run.code == 0, run.text
    data = run.json
    newer = data["restore"]["newer_point"]
    assert newer["point"]["id"] == "prod-daily-2-us-west-2"
    assert newer["data_time"] > held
    # everything speaks of the data the resumed instance holds
    assert data["restore"]["point"]["id"] == "prod-daily-1-us-west-2"
    assert data["restore"]["data_time"] == held
    reference = datetime.fromisoformat(data["restore"]["reference_time"])
    rpo = (reference - datetime.fromisoformat(held)).total_seconds()
    # (both times shown are cut to whole seconds, the RPO is measured unrounded: up to 1 s apart)
    assert abs(data["rpo_seconds"] - rpo) <= 1
    assert abs(data["restore"]["rpo_seconds"] - rpo) <= 1
    assert data["restore"]["rpo_seconds"] > newer["rpo_seconds"]  # from the older data
    stack_file = load_stack("prod-usw2", dr.project)
    assert stack_file.restore.restored_from == "prod-daily-1-us-west-2"
    assert stack_file.restore.restore_time == held
    report = Path(data["report"]).read_text(encoding="utf-8")
    assert f"- Restore point: snapshot `prod-daily-1-us-west-2`, data as of {held}" in report
    assert "a newer point exists and was **not** restored: snapshot `prod-daily-2-us-west-2`" in (
        report
    )
    # the output says so plainly, and how to rebuild from the newer point keeping this one
    text = dr.main(main, "rebuild", "--stack", "prod", "--latest", "--no-pulumi").stdout
    assert (
        f"Resumed the existing restore {TARGET.primary}: snapshot prod-daily-1-us-west-2, data "
        f"as of {held}; the RPO" in text
    )
    assert (
        f"A newer point exists: snapshot prod-daily-2-us-west-2, data as of {newer['data_time']}"
        in text
    )
    assert (
        "To rebuild from it instead, keeping this restore: dbplatform dr rebuild --stack prod "
        "--region us-west-2 --latest --as prod-usw2b" in text
    )
    assert dr.instance(TARGET.primary) is not None  # nothing deleted


def test_a_different_point_than_the_restored_one_is_refused_with_the_ways_on(
    prod_with_dr_copy: DrEnv,
) -> None:
    dr = prod_with_dr_copy
    first = dr.main(main, "rebuild", "--stack", "prod", "--no-pulumi", "--json")
    assert first.code == 0, first.text
    held = first.json["restore"]["data_time"]
    time.sleep(1.1)  # the copies' data times differ by at least a second
    dr.copy_snapshot("prod", "prod-daily-2")  # a fresher point appears
    before = dr.state()

    # --max-gap 0: only the newest data will do (within the gap, --latest resumes: below)
    run = dr.main(
        main, "rebuild", "--stack", "prod", "--latest", "--max-gap", "0", "--no-pulumi", "--json"
    )

    assert run.code == 3, run.text
    message = run.json["message"]
    assert f"holds {TARGET.primary}" in message and f"data as of {held}" in message
    assert "prod-daily-2-us-west-2" in message  # what was asked for
    assert "--as NEW" in message
    # SRE review item 3: steps that work on the protected instance and keep its data
    region = f"--region {DR}"
    unprotect = (
        f"aws rds modify-db-instance --db-instance-identifier {TARGET.primary} "
        f"--no-deletion-protection --apply-immediately {region}"
    )
    steps = run.json["delete_steps"]
    assert run.json["instance_deletion_protection"] is True
    assert steps[0] == unprotect
    assert steps[1].startswith(
        f"aws rds delete-db-instance --db-instance-identifier {TARGET.primary} "
        f"--final-db-snapshot-identifier {TARGET.primary}-final-"
    )
    assert steps[1].endswith(f" --no-delete-automated-backups {region}")
    assert f"(1) {steps[0]}; then (2) {steps[1]}" in message
    assert "--skip-final-snapshot" not in message
    assert "--delete-automated-backups" not in message
    assert "billed as backup storage" in message  # what the step costs
    assert f"--restore-time {held}" in message  # resume it as it is
    assert "Nothing was created" in message
    assert dr.state() == before
    # resuming it as it is works
    resumed = dr.main(
        main, "rebuild", "--stack", "prod", "--restore-time", held, "--no-pulumi", "--json"
    )
    assert resumed.code == 0, resumed.text
    assert resumed.json["restore"]["point"]["id"] == "prod-daily-1-us-west-2"
    assert resumed.json["rpo_seconds"] == 0


def test_the_printed_delete_steps_keep_the_data_and_lift_protection_first() -> None:
    """SRE review item 3: every printed deletion (rebuild refusal, a drill's or a restore check's
    failed cleanup) keeps a final snapshot and the automated backups (DeleteAutomatedBackups
    defaults to removing them: botocore rds DeleteDBInstanceMessage), and turns deletion
    protection off first when it is, or may be, on (RDS refuses to delete otherwise)."""
    from dbplatform.dr.restore import delete_command, delete_steps, final_snapshot_name

    snap = final_snapshot_name("dbplatform-prod-usw2-pg", "20260301T120000Z-abcdef")
    assert snap == "dbplatform-prod-usw2-pg-final-20260301t120000z-abcdef"
    delete = (
        "aws rds delete-db-instance --db-instance-identifier dbplatform-prod-usw2-pg "
        f"--final-db-snapshot-identifier {snap} --no-delete-automated-backups --region us-west-2"
    )
    unprotect = (
        "aws rds modify-db-instance --db-instance-identifier dbplatform-prod-usw2-pg "
        "--no-deletion-protection --apply-immediately --region us-west-2"
    )
    ident, region = "dbplatform-prod-usw2-pg", "us-west-2"
    assert delete_steps(ident, region, final_snapshot=snap, protected=True) == [unprotect, delete]
    assert delete_steps(ident, region, final_snapshot=snap, protected=False) == [delete]
    unknown = delete_steps(ident, region, final_snapshot=snap, protected=None)
    assert unknown == [f"if deletion protection is on: {unprotect}", delete]
    line = delete_command(ident, region, final_snapshot=snap, protected=False)
    assert line.startswith(delete) and "billed as backup storage" in line


def test_a_drill_whose_identifiers_are_taken_names_a_way_out_it_has(
    dr: DrEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refusal's way out is a command the operator can run as written: a drill has no `--as`
    (rebuild's way out), so its refusal offers a re-run and the janitor (UX review: hints named
    flags the command lacks)."""
    dr.seed("prod")
    dr.dr_network("prod")
    dr.copy_snapshot("prod", "prod-daily-1")
    # the drill's stack is named after its run: fix the run id to know the names it will use
    monkeypatch.setattr("dbplatform.ops.cli._new_run_id", lambda clock: "20260101T000000Z-abc123")
    taken = Names(drill_stack("prod", "abc123")).primary
    _squat(dr, taken)
    before = dr.state()

    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi")

    assert run.code == 3, run.text
    assert f"already holds DB instance(s) {taken}" in run.stderr
    assert "--as" not in run.stderr  # `dr drill --as` is exit 2
    assert "re-run (a drill's stack is named after its run" in run.stderr
    (janitor,) = re.findall(r"`(dbplatform dr janitor [^`]+)`", run.stderr)
    args = parse_args(build_parser(), shlex.split(janitor)[2:])
    assert (args.stack, args.region) == ("prod", [DR])
    assert dr.state() == before
