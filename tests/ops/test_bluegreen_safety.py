"""Blue/green safety against moto: finalize deletes only tagged retired instances (a forged
record cannot delete the primary), the wrong account or region is refused rather than "nothing
to do", a half-done rollback is named by status and the other commands, the rollback states
its outage and never claims writability without a write, and -vv hides secret values."""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import pytest

from tests.ops.support import AwsEnv, session_with

PRIMARY = "dbplatform-staging-pg"


def test_finalize_refuses_a_record_naming_the_live_primary(aws: AwsEnv) -> None:
    aws.promoted("staging")
    record = aws.record("staging")
    record["retired"] = [PRIMARY]  # a forged or hand-edited record
    record["soak_until"] = "2020-01-01T00:00:00Z"
    aws.client("ssm").put_parameter(
        Name="/dbplatform/staging/ops/bluegreen",
        Value=json.dumps(record),
        Type="String",
        Overwrite=True,
    )
    run = aws.main("finalize", "--stack", "staging", "--yes")
    assert run.code == 3, run.text
    assert f"{PRIMARY} is a live instance name" in run.stderr
    assert PRIMARY in aws.instances()  # still there


def test_finalize_refuses_an_untagged_retired_entry(aws: AwsEnv) -> None:
    aws.promoted("staging")
    rds = aws.client("rds")
    old = rds.describe_db_instances(DBInstanceIdentifier=PRIMARY + "-old1")["DBInstances"][0]
    rds.remove_tags_from_resource(ResourceName=old["DBInstanceArn"], TagKeys=["dbplatform:role"])
    run = aws.main("finalize", "--stack", "staging", "--yes", "--ignore-soak")
    assert run.code == 3, run.text
    assert "is not tagged dbplatform:role=retired-blue" in run.stderr
    assert PRIMARY + "-old1" in aws.instances()


def test_a_promoted_cycle_finalizes(aws: AwsEnv) -> None:
    aws.promoted("staging")
    run = aws.main("finalize", "--stack", "staging", "--yes", "--ignore-soak")
    assert run.code == 0, run.text
    assert PRIMARY + "-old1" not in aws.instances() and PRIMARY in aws.instances()


class _Terminal(io.StringIO):
    """An operator at a terminal typing `text`."""

    def isatty(self) -> bool:
        return True


def test_finalize_says_rollback_ends_with_it_before_it_asks(
    aws: AwsEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """UX review: the confirmation stated the deletion cost but not that this is the step after
    which `rollback` can no longer return to the old version."""
    aws.promoted("staging")
    before = aws.instances()
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    run = aws.main("finalize", "--stack", "staging", "--ignore-soak")
    assert run.code == 3 and "not confirmed; nothing was changed" in run.stderr, run.text
    asked = run.stderr.split("Proceed? [y/N]")[0]
    assert f"delete {PRIMARY}-old1 (final snapshot first)" in asked
    assert "After this, rollback is no longer possible" in asked
    assert "PostgreSQL 16" in asked  # the version there is then no command back to
    assert aws.instances() == before

    # without a terminal the refusal says it too, and --yes records it in the log
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    no_tty = aws.main("finalize", "--stack", "staging", "--ignore-soak")
    assert no_tty.code == 3 and "Add --yes to confirm" in no_tty.stderr
    assert "rollback is no longer possible" in no_tty.stderr
    done = aws.main("finalize", "--stack", "staging", "--ignore-soak", "--yes")
    assert done.code == 0, done.text
    assert "confirmed by --yes: delete" in done.stderr
    assert "rollback is no longer possible" in done.stderr


def test_finalize_after_a_rollback_says_where_the_windows_writes_are_left(aws: AwsEnv) -> None:
    aws.promoted("staging")
    since = aws.record("staging")["switchover_at"]
    rolled = aws.main("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
    assert rolled.code == 0, rolled.text
    record = aws.record("staging")
    run = aws.main("finalize", "--stack", "staging", "--ignore-soak")
    assert run.code == 3, run.text
    assert f"delete {PRIMARY}-new1 (final snapshot first)" in run.stderr
    start, end = record["data_window"]
    assert f"the writes it took between {start} and {end} are then only in snapshots" in run.stderr
    assert record["rollback_snapshot"] in run.stderr


def test_no_primary_where_it_looks_is_refused_naming_account_and_region(aws: AwsEnv) -> None:
    # nothing seeded: as with the wrong AWS_PROFILE, account or region
    for op in ("rollback", "finalize", "promote"):
        run = aws.main(op, "--stack", "staging", "--yes")
        assert run.code == 3, (op, run.text)
        assert "account 123456789012, region us-east-1" in run.stderr
        assert "AWS_PROFILE" in run.stderr


def test_a_half_done_rollback_is_named_by_every_command(aws: AwsEnv) -> None:
    aws.promoted("staging")
    since = aws.record("staging")["switchover_at"]

    def interrupt_after(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        raise KeyboardInterrupt

    session = session_with([("after-call.rds.ModifyDBInstance", interrupt_after)])
    args = ("rollback", "--stack", "staging", "--accept-data-window", since, "--yes")
    cut = aws.main(*args, session=session)
    assert cut.code == 130, cut.text
    assert "during 'swap identifiers back'" in cut.stderr
    assert PRIMARY not in aws.instances()
    status = aws.main("status", "--stack", "staging")
    assert "re-run `dbplatform bluegreen rollback" in status.text
    for op in ("promote", "finalize", "start"):
        run = aws.main(op, "--stack", "staging", "--yes")
        assert run.code == 3, (op, run.text)
        assert "half done" in run.stderr, (op, run.stderr)
        assert "re-run `dbplatform bluegreen rollback --stack staging`" in run.stderr, op
        assert "`dbplatform bluegreen promote" not in run.stderr, op  # start offered it (ops 7)
    done = aws.main(*args)
    assert done.code == 0, done.text


def test_rollback_states_the_outage_and_never_claims_writability_without_sql(
    aws: AwsEnv,
) -> None:
    aws.promoted("staging")
    since = aws.record("staging")["switchover_at"]
    no_tty = aws.main("rollback", "--stack", "staging", "--accept-data-window", since)
    assert no_tty.code == 3
    assert "2 renames, each about 10 minutes" in no_tty.stderr
    assert "STOP ALL TRAFFIC" in no_tty.stderr  # no fence without SQL
    # the cost is said whatever answers the question (UX review): a dry run, and --yes in CI
    dry = aws.main("rollback", "--stack", "staging", "--accept-data-window", since, "--dry-run")
    assert dry.code == 0, dry.text
    assert "DRY-RUN: the real run asks to confirm: roll dbplatform-staging-pg back" in dry.stderr
    assert "2 renames, each about 10 minutes" in dry.stderr
    # kept with -q, which hides progress: the log's only record of the cost (UX review)
    quiet = aws.main(
        "rollback", "--stack", "staging", "--accept-data-window", since, "--dry-run", "-q"
    )
    assert quiet.code == 0 and "DRY-RUN: the real run asks to confirm: roll" in quiet.stderr
    assert "look up the deployment" not in quiet.stderr  # progress is hidden
    run = aws.main(
        "rollback", "--stack", "staging", "--accept-data-window", since, "--yes", "--json"
    )
    assert run.code == 0, run.text
    assert "confirmed by --yes: roll dbplatform-staging-pg back" in run.stderr
    assert "STOP ALL TRAFFIC" in run.stderr

    out = run.json
    assert out["sql_checks"] == "skipped" and out["fenced_at"] is None
    assert "UNKNOWN" in " ".join(out["writability"])
    assert "accepts writes" not in run.stdout
    assert aws.audit()[-1]["args"]["skip_sql_checks"] is True
    rds = aws.client("rds")
    aside = rds.describe_db_instances(DBInstanceIdentifier=PRIMARY + "-new1")["DBInstances"][0]
    tags = {
        t["Key"]: t["Value"]
        for t in rds.list_tags_for_resource(ResourceName=aside["DBInstanceArn"])["TagList"]
    }
    assert tags["dbplatform:role"] == "retired-green"


def test_start_without_a_ca_bundle_exits_2_naming_the_download(
    aws: AwsEnv, monkeypatch: Any
) -> None:
    monkeypatch.delenv("PGSSLROOTCERT", raising=False)
    aws.seed("staging")
    run = aws.main(
        "start", "--stack", "staging", "--engine-version", "17.2", "--sql-host", "127.0.0.1"
    )
    assert run.code == 2, run.text
    assert "global-bundle.pem" in run.stderr and "--skip-sql-checks" in run.stderr
    assert aws.deployments() == {}


def test_a_newer_validation_rule_warns_in_status_and_rollback_but_blocks_start(
    aws: AwsEnv, tmp_path: Any, monkeypatch: Any
) -> None:
    import shutil

    from tests.ops.support import ROOT

    aws.seed("staging")
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    text = (ROOT / "Pulumi.staging.yaml").read_text()
    # A backup window inside the maintenance window (sun:02:00-sun:04:00): valid YAML and
    # shapes, but it breaks a validation rule (as a rule tightened in a newer checkout would).
    text = text.replace(
        "  dbplatform:backup:\n", "  dbplatform:backup:\n    window: '02:30-03:30'\n"
    )
    (tmp_path / "Pulumi.staging.yaml").write_text(text)
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(tmp_path))

    status = aws.main("status", "--stack", "staging")
    assert status.code == 0, status.text
    assert "warning: config (not enforced by bluegreen status)" in status.stderr
    assert "backup.window" in status.stderr
    rollback = aws.main("rollback", "--stack", "staging", "--yes")
    assert rollback.code == 0, rollback.text  # nothing to roll back, and it could look
    start = aws.main("start", "--stack", "staging", "--engine-version", "17.2")
    assert start.code == 2 and "backup.window" in start.stderr


def test_a_minor_upgrade_is_gated_on_greens_replica_lag(aws: AwsEnv) -> None:
    aws.seed("staging", target_family=None)
    version = aws.instances()[PRIMARY]
    major, minor = version.split(".")[:2]
    start = aws.main("start", "--stack", "staging", "--engine-version", f"{major}.{int(minor) + 2}")
    assert start.code == 0, start.text
    refused = aws.main("promote", "--stack", "staging", "--yes")
    assert refused.code == 3
    assert "no ReplicaLag datapoint for dbplatform-staging-pg-green-" in refused.stderr
    assert "OldestReplicationSlotLag" not in refused.stderr  # physical replication
    aws.report_green_lag(1.0)
    ok = aws.main("promote", "--stack", "staging", "--yes")
    assert ok.code == 0, ok.text


def test_a_cancel_while_green_is_created_waits_before_lifting_its_protection(
    aws: AwsEnv,
) -> None:
    # RDS refuses ModifyDBInstance on an instance that is not available (botocore rds
    # 2014-10-31: InvalidDBInstanceStateFault); moto does not, so the test shows green as real
    # RDS would while it is created, and checks the modify waits for 'available' (ops review).
    aws.started("staging", lag=None)
    (green,) = [i for i in aws.instances() if i.startswith(PRIMARY + "-green")]
    rds = aws.client("rds")
    rds.modify_db_instance(DBInstanceIdentifier=green, DeletionProtection=True)
    shown = {"creating": 0}

    def creating(parsed: dict[str, Any], **_: Any) -> None:
        for inst in parsed.get("DBInstances", []):
            if inst["DBInstanceIdentifier"] == green and shown["creating"] < 2:
                shown["creating"] += 1
                inst["DBInstanceStatus"] = "creating"

    modified_after: list[int] = []

    def modify(params: dict[str, Any], **_: Any) -> None:
        if params.get("DBInstanceIdentifier") == green:
            modified_after.append(shown["creating"])

    session = session_with(
        [
            ("after-call.rds.DescribeDBInstances", creating),
            ("provide-client-params.rds.ModifyDBInstance", modify),
        ]
    )
    run = aws.main("rollback", "--stack", "staging", "--yes", session=session)
    assert run.code == 0, run.text
    assert f"green {green} is 'creating': waiting until it is available" in run.stderr
    assert modified_after == [2]  # once, after both 'creating' answers
    assert green not in aws.instances() and aws.record("staging")["phase"] == "cancelled"


def test_a_cancel_refuses_a_green_that_will_never_be_available(aws: AwsEnv) -> None:
    # Waiting on 'incompatible-parameters' would wait out the hour for nothing (SRE re-review).
    aws.started("staging", lag=None)
    (green,) = [i for i in aws.instances() if i.startswith(PRIMARY + "-green")]
    aws.client("rds").modify_db_instance(DBInstanceIdentifier=green, DeletionProtection=True)

    def stuck(parsed: dict[str, Any], **_: Any) -> None:
        for inst in parsed.get("DBInstances", []):
            if inst["DBInstanceIdentifier"] == green:
                inst["DBInstanceStatus"] = "incompatible-parameters"

    before = aws.state()
    session = session_with([("after-call.rds.DescribeDBInstances", stuck)])
    run = aws.main("rollback", "--stack", "staging", "--yes", session=session)
    assert run.code == 3, run.text
    assert f"green {green} is 'incompatible-parameters', which does not end by itself" in (
        run.stderr
    )
    assert "--no-delete-target" in run.stderr and "nothing was changed" in run.stderr
    assert aws.state() == before
