"""Turning a chosen restore point into a DB instance, placed explicitly, and removing it again.

A restore without explicit groups lands in the default VPC's subnet group, the default security
group and the default parameter group; every restore here names all three. Instances a command
creates carry a run-id tag, and `delete_owned` deletes only an instance whose identifier and tag
both say this run created it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dbplatform.dr.points import Choice, Kind
from dbplatform.ops import Context, Failed, Poll, Refused, error_code
from dbplatform.ops.rds import describe_instance
from infra.naming import rds_identifier

TAG_RUN = "dbplatform:run-id"
TAG_PURPOSE = "dbplatform:purpose"
TAG_SOURCE = "dbplatform:source-stack"
# RDS states a restore never leaves on its own: waiting longer cannot help.
FAILED_STATES = {
    "failed",
    "incompatible-restore",
    "incompatible-network",
    "incompatible-parameters",
    "inaccessible-encryption-credentials",
    "storage-full",
}
DELETE_RETRY_SECONDS = 1800.0


@dataclass
class Deadline:
    """One `--timeout` for a whole run (SRE review F4): every wait gets what is left of it,
    less `reserve`, which is kept for the run's own cleanup. A CI step's timeout then only has
    to exceed `--timeout` (see .github/workflows/drills.yml and its test)."""

    seconds: float
    monotonic: Callable[[], float]
    reserve: float = 0.0
    start: float = 0.0

    def __post_init__(self) -> None:
        self.reserve = min(self.reserve, self.seconds / 4)
        self.start = self.monotonic()

    def left(self) -> float:
        """Seconds a wait may still take (0: the deadline has passed; the wait fails at once)."""
        return max(self.start + self.seconds - self.reserve - self.monotonic(), 0.0)

    def cleanup(self) -> float:
        """Seconds cleanup may take: its reserve, or more when the waits ended early."""
        return max(self.start + self.seconds - self.monotonic(), 0.0)


@dataclass(frozen=True, kw_only=True)
class Groups:
    """The subnet group, security groups and parameter group a restore is placed with."""

    subnet_group: str
    """DB subnet group name"""
    vpc_id: str
    """its VPC"""
    subnet_ids: tuple[str, ...]
    """its subnets"""
    security_group_ids: tuple[str, ...]
    """VPC security groups"""
    parameter_group: str
    """DB parameter group name"""


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Everything about the new instance that is not the data."""

    identifier: str
    """the new DB instance identifier"""
    groups: Groups
    """networking and parameters"""
    instance_class: str
    """db.<family>.<size>"""
    multi_az: bool
    """standby in a second AZ"""
    port: int
    """PostgreSQL port"""
    deletion_protection: bool
    """refuse deletion (a rebuilt production database)"""
    iam_auth: bool
    """IAM database authentication"""
    tags: dict[str, str]
    """tags, the run-id tag included"""


@dataclass(frozen=True, kw_only=True)
class Call:
    """One AWS call, as data: printed by --dry-run, asserted by Stubber tests."""

    service: str
    method: str
    params: dict[str, Any]


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def restore_call(choice: Choice, placement: Placement, *, backup_role_arn: str | None) -> Call:
    """The AWS call that restores `choice` with `placement`."""
    p, g = choice.point, placement.groups
    common: dict[str, Any] = {
        "DBSubnetGroupName": g.subnet_group,
        "VpcSecurityGroupIds": list(g.security_group_ids),
        "DBParameterGroupName": g.parameter_group,
        "DBInstanceClass": placement.instance_class,
        "MultiAZ": placement.multi_az,
        "Port": placement.port,
        "PubliclyAccessible": False,
        "StorageType": "gp3",
        "DeletionProtection": placement.deletion_protection,
        "EnableIAMDatabaseAuthentication": placement.iam_auth,
        "CopyTagsToSnapshot": True,
        "Tags": tag_list(placement.tags),
    }
    if p.kind is Kind.AUTOMATED_BACKUP:
        params: dict[str, Any] = {"TargetDBInstanceIdentifier": placement.identifier}
        if p.id.startswith("arn:"):
            params["SourceDBInstanceAutomatedBackupsArn"] = p.id
        else:
            params["SourceDBInstanceIdentifier"] = p.id
        if choice.restore_time is not None:
            params["RestoreTime"] = choice.restore_time
        else:
            params["UseLatestRestorableTime"] = True
        return Call(
            service="rds", method="restore_db_instance_to_point_in_time", params=params | common
        )
    if p.kind is Kind.SNAPSHOT:
        params = {"DBInstanceIdentifier": placement.identifier, "DBSnapshotIdentifier": p.id}
        return Call(
            service="rds", method="restore_db_instance_from_db_snapshot", params=params | common
        )
    if p.kind is Kind.RECOVERY_POINT:
        if not backup_role_arn:
            raise Refused(
                f"restoring AWS Backup recovery point {p.id} needs an IAM role for AWS Backup; "
                "pass --backup-role-arn"
            )
        # AWS Backup takes RDS restore settings as string metadata; tags are added afterwards.
        metadata = {
            "DBInstanceIdentifier": placement.identifier,
            "DBSubnetGroupName": g.subnet_group,
            "VpcSecurityGroupIds": json.dumps(list(g.security_group_ids)),
            "DBParameterGroupName": g.parameter_group,
            "DBInstanceClass": placement.instance_class,
            "MultiAZ": str(placement.multi_az).lower(),
            "Port": str(placement.port),
            "PubliclyAccessible": "false",
            "StorageType": "gp3",
            "DeletionProtection": str(placement.deletion_protection).lower(),
            "CopyTagsToSnapshot": "true",
        }
        return Call(
            service="backup",
            method="start_restore_job",
            params={
                "RecoveryPointArn": p.id,
                "IamRoleArn": backup_role_arn,
                "ResourceType": "RDS",
                "Metadata": metadata,
                "IdempotencyToken": placement.tags.get(TAG_RUN, placement.identifier),
            },
        )
    raise Refused(
        f"{p.kind} {p.id} cannot be restored from: promote the replica instead "
        f"(aws rds promote-read-replica --db-instance-identifier {p.id} --region {p.region})"
    )


def tags_of(rds: BaseClient, db: dict[str, Any]) -> dict[str, str]:
    tags = db.get("TagList")
    if tags is None:
        tags = rds.list_tags_for_resource(ResourceName=db["DBInstanceArn"]).get("TagList", [])
    return {t["Key"]: t["Value"] for t in tags}


def parameter_group_exists(rds: BaseClient, name: str) -> bool:
    try:
        # AWS answers DBParameterGroupNotFound; some emulators an empty list.
        found = rds.describe_db_parameter_groups(DBParameterGroupName=name)
    except ClientError as exc:
        if error_code(exc) != "DBParameterGroupNotFound":
            raise
        return False
    return bool(found.get("DBParameterGroups"))


def backup_role_arn(ctx: Context) -> str | None:
    """The stack's AWS Backup role (`Names.backup_role`, declared by the program); None when
    the caller's account cannot be read."""
    parts = (ctx.identity() or "").split(":")
    if len(parts) < 5 or not parts[4]:
        return None
    return f"arn:aws:iam::{parts[4]}:role/{ctx.stack.names.backup_role}"


def stack_groups(ctx: Context, region: str, what: str, *, advice: str = "") -> Groups:
    """The stack's own subnet, security and parameter groups in `region`, or Refused (exit 3,
    nothing created): a restore given no groups gets the account's defaults (botocore rds
    RestoreDBInstanceToPointInTime / RestoreDBInstanceFromDBSnapshot: DBSubnetGroupName,
    VpcSecurityGroupIds and DBParameterGroupName default when omitted). `what` names the
    instance about to be created ("the copy", "the temporary instance")."""
    cfg, names = ctx.stack.config, ctx.stack.names
    with ctx.out.phase("look up the stack's subnet, security and parameter groups"):
        groups, missing = find_groups(
            ctx.client("rds", region),
            ctx.client("ec2", region),
            region=region,
            subnet_group=names.subnet_group,
            security_group=names.security_group,
            parameter_group=names.parameter_group(cfg.parameter_family),
        )
        if groups is None:  # inside the phase: its end line says `refused after`
            raise Refused(
                f"the stack's {', '.join(missing)} not found in {region}: {what} must use the "
                f"stack's own groups (a restore otherwise gets the defaults){advice}. Nothing "
                "was created",
                data={"missing": missing},
            )
    return groups


def find_groups(
    rds: BaseClient,
    ec2: BaseClient,
    *,
    region: str,
    subnet_group: str,
    security_group: str,
    parameter_group: str | None,
) -> tuple[Groups | None, list[str]]:
    """Look the groups up by name (a security group also by id); returns what is missing.

    `parameter_group` None skips that lookup (the caller creates it). Returns Groups only when
    the subnet group and security group both exist.
    """
    missing: list[str] = []
    vpc_id = ""
    subnet_ids: tuple[str, ...] = ()
    try:
        sg_desc = rds.describe_db_subnet_groups(DBSubnetGroupName=subnet_group)["DBSubnetGroups"][0]
        vpc_id = str(sg_desc["VpcId"])
        subnet_ids = tuple(str(s["SubnetIdentifier"]) for s in sg_desc.get("Subnets", []))
    except ClientError as exc:
        if error_code(exc) != "DBSubnetGroupNotFoundFault":
            raise
        missing.append(f"DB subnet group {subnet_group}")
    sg_ids: tuple[str, ...] = ()
    if security_group.startswith("sg-"):
        filters = [{"Name": "group-id", "Values": [security_group]}]
    else:
        filters = [{"Name": "group-name", "Values": [security_group]}]
        if vpc_id:
            filters.append({"Name": "vpc-id", "Values": [vpc_id]})
    groups = ec2.describe_security_groups(Filters=filters).get("SecurityGroups", [])
    if groups:
        sg_ids = (str(groups[0]["GroupId"]),)
        if vpc_id and groups[0].get("VpcId") not in (None, vpc_id):
            missing.append(f"security group {security_group} in VPC {vpc_id}")
    else:
        missing.append(f"security group {security_group}")
    if parameter_group is not None and not parameter_group_exists(rds, parameter_group):
        missing.append(f"DB parameter group {parameter_group}")
    if missing or not vpc_id:
        return None, missing
    return (
        Groups(
            subnet_group=subnet_group,
            vpc_id=vpc_id,
            subnet_ids=subnet_ids,
            security_group_ids=sg_ids,
            parameter_group=parameter_group or "",
        ),
        missing,
    )


def start(ctx: Context, call: Call, region: str, identifier: str) -> dict[str, Any]:
    """Send the restore call (or print it under --dry-run); records only the new instance as
    touched (the source it reads from is not changed)."""
    response = ctx.mutate(ctx.client(call.service, region), call.method, call.params, track=False)
    if not ctx.dry_run:
        ctx.touch(f"rds:{identifier}")
    return response


def parameter_status(db: dict[str, Any]) -> dict[str, str]:
    """Parameter group -> its ParameterApplyStatus on the instance (botocore rds/2014-10-31
    DBParameterGroupStatus: applying, failed-to-apply, in-sync, pending-database-upgrade,
    pending-reboot)."""
    return {
        str(g.get("DBParameterGroupName")): str(g.get("ParameterApplyStatus"))
        for g in db.get("DBParameterGroups") or []
    }


def wait_available(
    ctx: Context, region: str, identifier: str, *, timeout: float, in_sync: bool = False
) -> dict[str, Any]:
    """Wait until the instance is available and its parameter groups no longer `applying`
    (`in_sync`: every group in-sync, as after a reboot that applies them); Failed when it
    enters a state it never leaves, or a group fails to apply."""
    rds = ctx.client("rds", region)

    def poll() -> Poll[dict[str, Any]]:
        db = describe_instance(rds, identifier)
        if db is None:
            return Poll(False, "not visible yet")
        status = str(db.get("DBInstanceStatus"))
        if status in FAILED_STATES:
            raise Failed(f"restored instance {identifier} is {status}; see its RDS events")
        groups = parameter_status(db)
        if "failed-to-apply" in groups.values():  # waiting longer changes nothing
            raise Failed(
                f"the parameter group of restored instance {identifier} failed to apply "
                f"({groups}); check its parameters in the RDS console"
            )
        settled = (
            set(groups.values()) <= {"in-sync"} if in_sync else "applying" not in groups.values()
        )
        return Poll(status == "available" and settled, f"{status}, parameters {groups}", db)

    db = ctx.wait_for(f"{identifier} available", poll, timeout=timeout)
    assert db is not None
    return db


def wait_restore_job(ctx: Context, region: str, job_id: str, *, timeout: float) -> str:
    """Wait for an AWS Backup restore job; returns the restored resource's ARN."""
    backup = ctx.client("backup", region)

    def poll() -> Poll[str]:
        job = backup.describe_restore_job(RestoreJobId=job_id)
        status = str(job.get("Status"))
        if status in ("FAILED", "ABORTED"):
            raise Failed(f"AWS Backup restore job {job_id} {status}: {job.get('StatusMessage')}")
        return Poll(status == "COMPLETED", status, str(job.get("CreatedResourceArn", "")))

    arn = ctx.wait_for(f"restore job {job_id}", poll, timeout=timeout)
    return arn or ""


def set_master_password(
    ctx: Context, region: str, identifier: str, password: str, *, timeout: float
) -> dict[str, Any]:
    """Set an instance's master password (applied immediately) and wait until RDS has applied
    it; returns the instance's description. The password never reaches output or audit
    (`ctx.mutate` redacts it)."""
    rds = ctx.client("rds", region)
    ctx.mutate(
        rds,
        "modify_db_instance",
        {
            "DBInstanceIdentifier": identifier,
            "MasterUserPassword": password,
            "ApplyImmediately": True,
        },
    )
    if ctx.dry_run:
        return {}

    def poll() -> Poll[dict[str, Any]]:
        db = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        pending = db.get("PendingModifiedValues") or {}
        status = str(db.get("DBInstanceStatus"))
        done = status == "available" and "MasterUserPassword" not in pending
        return Poll(done, status, db)

    db = ctx.wait_for(f"{identifier} new master password", poll, timeout=timeout)
    assert db is not None
    return db


def delete_owned(
    rds: BaseClient,
    identifier: str,
    run_id: str,
    *,
    mutate: Callable[[BaseClient, str, dict[str, Any]], dict[str, Any]],
    sleep: Callable[[float], None],
    monotonic: Callable[[], float],
    retry_seconds: float = DELETE_RETRY_SECONDS,
    poll_seconds: float = 15.0,
    untagged_ok: bool = False,
) -> str:
    """Delete `identifier` without a final snapshot if this run created it.

    Returns 'deleted', 'absent' (never created, or already gone) or 'not-ours' (an instance of
    that name without this run's tag: left alone). `untagged_ok` also accepts an instance with
    no run-id tag at all (AWS Backup restores are tagged only once the job ends; the identifier
    itself holds the run id). An instance still being created cannot be deleted yet; that is
    retried for `retry_seconds`.
    """
    deadline = monotonic() + retry_seconds
    while True:
        db = describe_instance(rds, identifier)
        if db is None:
            return "absent"
        owner = tags_of(rds, db).get(TAG_RUN)
        if owner != run_id and not (untagged_ok and owner is None):
            return "not-ours"
        if db.get("DBInstanceStatus") == "deleting":
            return "deleted"
        try:
            if db.get("DeletionProtection"):
                mutate(
                    rds,
                    "modify_db_instance",
                    {
                        "DBInstanceIdentifier": identifier,
                        "DeletionProtection": False,
                        "ApplyImmediately": True,
                    },
                )
            mutate(
                rds,
                "delete_db_instance",
                {
                    "DBInstanceIdentifier": identifier,
                    "SkipFinalSnapshot": True,
                    "DeleteAutomatedBackups": True,
                },
            )
            return "deleted"
        except ClientError as exc:
            code = error_code(exc)
            if code == "DBInstanceNotFound":
                return "absent"
            if code != "InvalidDBInstanceState" or monotonic() >= deadline:
                raise
        sleep(poll_seconds)


def delete_run_instance(
    ctx: Context,
    region: str,
    identifier: str,
    *,
    untagged_ok: bool,
    retry_seconds: float = DELETE_RETRY_SECONDS,
) -> str:
    """`delete_owned` with the context's mutations, clock and poll interval."""
    return delete_owned(
        ctx.client("rds", region),
        identifier,
        ctx.run_id,
        mutate=ctx.mutate,
        sleep=ctx.clock.sleep,
        monotonic=ctx.clock.monotonic,
        poll_seconds=ctx.poll_seconds(),
        untagged_ok=untagged_ok,
        retry_seconds=retry_seconds,
    )


def final_snapshot_name(identifier: str, run_id: str) -> str:
    """A final snapshot's name for `identifier`, unique per run (RDS snapshot identifiers: 1 to
    255 letters, digits and hyphens, a letter first, no double or trailing hyphen; botocore
    rds DeleteDBInstanceMessage.FinalDBSnapshotIdentifier)."""
    return rds_identifier(identifier, "final", run_id.lower(), limit=255)


def delete_steps(
    identifier: str, region: str, *, final_snapshot: str, protected: bool | None
) -> list[str]:
    """The commands that delete `identifier` by hand without losing what it holds.

    RDS refuses DeleteDBInstance while deletion protection is on (botocore rds
    ModifyDBInstanceMessage.DeletionProtection: "The database can't be deleted when deletion
    protection is enabled"), so that is turned off first (`protected` None: not known, the step
    is printed as conditional). The deletion takes a final snapshot and keeps the automated
    backups: DeleteAutomatedBackups defaults to removing them at once (botocore rds
    DeleteDBInstanceMessage.DeleteAutomatedBackups), so `--no-delete-automated-backups` is
    passed; retained, they expire with the instance's retention period and are billed until
    then (AWS RDS User Guide, "Retaining automated backups"). Never `--skip-final-snapshot`
    or `--delete-automated-backups`: only an operator who knows the instance holds nothing
    worth keeping may change the command so, as for a throwaway restore that is failed,
    incompatible-restore or incompatible-network, which RDS deletes only so
    (FAILED_RESTORE_NOTE)."""
    steps = []
    if protected is not False:
        steps.append(
            ("if deletion protection is on: " if protected is None else "")
            + f"aws rds modify-db-instance --db-instance-identifier {identifier} "
            f"--no-deletion-protection --apply-immediately --region {region}"
        )
    steps.append(
        f"aws rds delete-db-instance --db-instance-identifier {identifier} "
        f"--final-db-snapshot-identifier {final_snapshot} --no-delete-automated-backups "
        f"--region {region}"
    )
    return steps


DELETE_COST = (
    "the final snapshot and the retained automated backups are billed as backup storage until "
    "deleted; the backups expire after the instance's retention period"
)
"""What `delete_steps` costs, said wherever they are printed."""

FAILED_RESTORE_NOTE = (
    "if the instance is failed, incompatible-restore or incompatible-network (a restore that "
    "went wrong), RDS deletes it only with --skip-final-snapshot: use that instead of the "
    "final snapshot (botocore rds DeleteDBInstanceMessage.SkipFinalSnapshot)"
)
"""Said beside `delete_command` where the instance is a throwaway restore that may have failed."""


def delete_command(
    identifier: str, region: str, *, final_snapshot: str, protected: bool | None
) -> str:
    """`delete_steps` on one line, numbered, with what they cost."""
    steps = delete_steps(identifier, region, final_snapshot=final_snapshot, protected=protected)
    numbered = [f"({i}) {s}" for i, s in enumerate(steps, 1)] if len(steps) > 1 else steps
    return "; then ".join(numbered) + f" ({DELETE_COST})"
