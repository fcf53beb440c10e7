"""The day-2 catalogue: edits people make to a live stack, and what `pulumi up` must do with each.

Each row is proved in tests/infra/test_day2_catalogue.py: the real program is synthesised before
and after the edit, `dbplatform.manifest.diff` computes the change against the provider facts
(infra/provider_facts.py), and the verdict, the refused steps and the infra diff's exit code must
be the ones written here. docs/day2-changes.md is rendered from these rows
(`python -m tests.infra.day2_catalogue` rewrites it; a test fails when it is stale).

A row with `pending` states the REQUIRED behaviour of a fix the infra branch makes; its test is a
strict xfail until that branch is merged, and `today` says what happens before it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.provider_facts import (
    FORCE_NEW,
    RDS_INSTANCE,
    REFUSALS,
    SECURITY_GROUP,
    SG_INGRESS_RULE,
    VAULT_LOCK,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "day2-changes.md"

_RDS_MODIFY = "botocore rds 2014-10-31 ModifyDBInstance.{}"
_NOT_FORCE_NEW = (
    "terraform-provider-aws internal/service/rds/instance.go: `{}` has no `ForceNew` "
    "(ModifyDBInstance)"
)
_INFRA = "fixed by the infra branch: "


@dataclass(frozen=True, kw_only=True)
class Edit:
    """One edit of a committed stack and what `pulumi up` must do with it."""

    id: str
    edit: str
    """what the person changes, in their words"""
    stack: str
    head: Mapping[str, Any]
    """config groups after the edit (merged over the committed stack file, like run_variant)"""
    base: Mapping[str, Any] = field(default_factory=dict)
    """config groups before the edit, when the committed file is not the starting point"""
    verdict: str
    """what `pulumi up` does (dbplatform.manifest.diff.VERDICTS)"""
    flagged: bool
    """the infra diff exits 3: needs an explicit approval"""
    refusals: tuple[str, ...] = ()
    """provider-fact ids of the refused steps (at least these; none when empty)"""
    actions: Mapping[str, str] = field(default_factory=dict)
    """resource name -> action it must get"""
    weakened: tuple[str, ...] = ()
    """protections the diff must report weakened (Weakening.what)"""
    why: str
    sources: tuple[str, ...] = ()
    """sources besides the refusal facts'"""
    pending: str | None = None
    """xfail reason while the infra branch's fix is not merged"""
    today: str | None = None
    """what happens before that fix"""
    config_may_refuse: str | None = None
    """the config key a stricter validator may refuse outright (exit 2), which is just as safe"""
    up: str | None = None
    """what `pulumi up` itself does when it differs from `verdict`, the infra diff's verdict
    (the diff refuses what the provider would silently hide)"""

    @property
    def all_sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.sources, *(REFUSALS[f].source for f in self.refusals))))


PROD_REPLICAS = [
    {"name": "r1", "availabilityZone": "us-east-1b"},
    {"name": "r2", "availabilityZone": "us-east-1c"},
]

CATALOGUE: tuple[Edit, ...] = (
    Edit(
        id="instance-class",
        edit="primary instance class db.r6g.xlarge → db.r6g.2xlarge",
        stack="prod",
        head={"database": {"instanceClass": "db.r6g.2xlarge"}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update", "replicas-r1": "update"},
        why="ModifyDBInstance in place; a short outage (a Multi-AZ failover) in the next "
        "maintenance window, since applyImmediately is false; replicas without a class follow",
        sources=(_RDS_MODIFY.format("DBInstanceClass"), _NOT_FORCE_NEW.format("instance_class")),
    ),
    Edit(
        id="storage-grow",
        edit="allocated storage 200 → 300 GiB",
        stack="prod",
        head={"database": {"allocatedStorage": 300}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="ModifyDBInstance grows storage online (at least +10 %, AWS rounds up)",
        sources=(
            _RDS_MODIFY.format("AllocatedStorage"),
            _NOT_FORCE_NEW.format("allocated_storage"),
        ),
    ),
    Edit(
        id="storage-shrink",
        edit="allocated storage 200 → 150 GiB",
        stack="prod",
        head={"database": {"allocatedStorage": 150}},
        verdict="refused by AWS",
        up="no-op (the provider suppresses the decrease); refused by infra-diff",
        flagged=True,
        refusals=("rds-storage-shrink",),
        why="storage never shrinks; prod sets maxAllocatedStorage, and with autoscaling on the "
        "provider's allocated_storage DiffSuppressFunc hides a decrease, so `pulumi up` does "
        "nothing and the config silently stops describing the instance: the infra diff refuses "
        "it before merge (to shrink: a new instance and a dump/restore)",
    ),
    Edit(
        id="storage-ceiling",
        edit="storage autoscaling ceiling 2000 → 3000 GiB",
        stack="prod",
        head={"database": {"maxAllocatedStorage": 3000}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="MaxAllocatedStorage is modified in place, without an outage",
        sources=(
            _RDS_MODIFY.format("MaxAllocatedStorage"),
            _NOT_FORCE_NEW.format("max_allocated_storage"),
        ),
    ),
    Edit(
        id="engine-minor",
        edit="engine 16.4 → 16.6 (automatic minor upgrades off)",
        stack="prod",
        base={"database": {"engineVersion": "16.4", "autoMinorVersionUpgrade": False}},
        head={"database": {"engineVersion": "16.6", "autoMinorVersionUpgrade": False}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="a minor upgrade in place, in the maintenance window (an outage of minutes)",
        sources=(_RDS_MODIFY.format("EngineVersion"),),
    ),
    Edit(
        id="engine-major-only",
        edit="engine 16.4 → 16 (name the major only)",
        stack="prod",
        # a pinned minor with automatic upgrades is refused by config validation now
        # (infra/aws_rules.engine_version_rule): the base is a stack pinned without them
        base={"database": {"engineVersion": "16.4", "autoMinorVersionUpgrade": False}},
        head={"database": {"engineVersion": "16"}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="no call to AWS: the provider keeps the running version when the configured one is "
        "a dotted prefix of it, so RDS's own minor upgrades never turn into a downgrade",
        sources=(
            "terraform-provider-aws internal/service/rds `compareActualEngineVersion`",
            "pulumi_aws 7.51.1 rds/instance.py engine_version: 'you can provide a prefix of the "
            "version such as 8.0'",
        ),
    ),
    Edit(
        id="engine-downgrade",
        edit="engine 16.6 → 16.4",
        stack="prod",
        base={"database": {"engineVersion": "16.6", "autoMinorVersionUpgrade": False}},
        head={"database": {"engineVersion": "16.4", "autoMinorVersionUpgrade": False}},
        verdict="refused by AWS",
        flagged=True,
        refusals=("rds-engine-downgrade",),
        why="RDS has no downgrade; the way back is a restore to a new instance",
    ),
    Edit(
        id="engine-major",
        edit="engine 16 → 17 in the stack file",
        stack="prod",
        base={"database": {"engineVersion": "16"}},
        head={"database": {"engineVersion": "17"}},
        verdict="refused by AWS",
        flagged=True,
        refusals=("rds-major-upgrade-not-allowed",),
        actions={"database-primary": "update"},
        why="the program never allows an in-place major upgrade (irreversible, long outage): "
        "`dbplatform bluegreen` does it, then writes the new major into the stack file",
    ),
    Edit(
        id="replica-add",
        edit="add a read replica r3",
        stack="prod",
        head={"replicas": [*PROD_REPLICAS, {"name": "r3"}]},
        verdict="update",
        flagged=False,
        actions={"replicas-r3": "create", "alarms-rds-events": "update"},
        why="CreateDBInstanceReadReplica, with its alarms; the RDS event subscription gains "
        "the new source in place",
        sources=(
            "botocore rds 2014-10-31 CreateDBInstanceReadReplica",
            "botocore rds 2014-10-31 AddSourceIdentifierToSubscription",
        ),
    ),
    Edit(
        id="replica-remove",
        edit="remove read replica r2",
        stack="prod",
        head={"replicas": PROD_REPLICAS[:1]},
        verdict="delete",
        flagged=False,
        actions={"replicas-r2": "delete"},
        why="a replica holds no data of its own: it is deleted (no final snapshot, which RDS "
        "refuses for replicas) with its alarms",
        sources=("botocore rds 2014-10-31 DeleteDBInstance.FinalDBSnapshotIdentifier",),
    ),
    Edit(
        id="replica-az",
        edit="move replica r1 from us-east-1b to us-east-1a",
        stack="prod",
        head={"replicas": [{"name": "r1", "availabilityZone": "us-east-1a"}, PROD_REPLICAS[1]]},
        verdict="replace",
        flagged=False,
        actions={"replicas-r1": "replace"},
        why="availabilityZone forces a new instance; a replica is re-created from the primary, "
        "delete first (its identifier is fixed), readers of r1 are down meanwhile",
        sources=(FORCE_NEW[RDS_INSTANCE]["availabilityZone"],),
    ),
    Edit(
        id="port",
        edit="PostgreSQL port 5432 → 6432",
        stack="prod",
        head={"database": {"port": 6432}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update", "network-from-cidr-0": "update"},
        why="ModifyDBInstance DBPortNumber restarts the instance (clients must follow); the "
        "security group rules are modified in place, the group itself must not be replaced",
        sources=(
            _RDS_MODIFY.format("DBPortNumber"),
            FORCE_NEW[SG_INGRESS_RULE]["securityGroupId"],
            FORCE_NEW[SECURITY_GROUP]["description"],
        ),
    ),
    Edit(
        id="backup-window",
        edit="backup window 04:30-05:30 → 05:00-06:00",
        stack="prod",
        head={"backup": {"window": "05:00-06:00"}},
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="PreferredBackupWindow is modified in place, without an outage",
        sources=(_RDS_MODIFY.format("PreferredBackupWindow"),),
    ),
    Edit(
        id="rotation-window",
        edit="master password rotation window tue:14:00-tue:16:00 → wed:14:00-wed:16:00",
        stack="prod",
        head={"vault": {"rotationWindow": "wed:14:00-wed:16:00"}},
        verdict="update",
        flagged=False,
        actions={"vault-master-rotation": "update"},
        why=(
            "RotateSecret with the new schedule, and the provider sends RotateImmediately with "
            "it, true since the rotation was made (security M-8): Secrets Manager rotates the "
            "master password at once, during the deploy, not in the new window. A client that "
            "opens a connection with the password it read before fails until it reads the "
            "secret again; make the edit in a quiet hour (rotationDays likewise)"
        ),
        sources=(
            "terraform-provider-aws internal/service/secretsmanager/secret_rotation.go: Update "
            "calls RotateSecret with `rotate_immediately` when `rotation_rules` change",
            "botocore secretsmanager 2017-10-17 RotateSecret.RotateImmediately",
        ),
    ),
    Edit(
        id="dr-backup-replication-retention",
        edit="DR automated-backup replication retention 7 → 14 days",
        stack="prod",
        head={"dr": {"backupReplicationRetentionDays": 14}},
        verdict="replace",
        flagged=False,
        actions={"backups-replication": "replace"},
        why=(
            "the replication has no Update: it is stopped (the backups it copied stay, "
            "RETAINED, until their own retention ends) and started again with the new "
            "retention, stop first (deleteBeforeReplace). If the start fails (a key, a quota), "
            "nothing replicates until an `up` succeeds: check the DR Region's automated "
            "backups after the deploy"
        ),
        sources=(
            "terraform-provider-aws internal/service/rds/instance_automated_backups_replication"
            ".go: every argument `ForceNew: true`, Delete is "
            "StopDBInstanceAutomatedBackupsReplication",
            "botocore rds 2014-10-31 StartDBInstanceAutomatedBackupsReplication",
        ),
    ),
    Edit(
        id="network-cidr",
        edit="the database's VPC 10.40.0.0/16 → 10.43.0.0/16",
        stack="prod",
        head={"network": {"cidr": "10.43.0.0/16"}},
        verdict="refused by AWS",
        flagged=True,
        refusals=("ec2-subnet-in-use",),
        actions={
            "network-vpc": "replace",
            "network-private-0": "replace",
            "network-db": "replace",
            "network-isolated": "replace",
        },
        why=(
            "a VPC's CIDR cannot change: a new VPC, and through their vpcId new subnets, route "
            "table and security group; the old subnets cannot be deleted while the database "
            "runs in them, and the database does not move with its subnet group. Move it by a "
            "restore into the new network (dbplatform dr rebuild), not by this edit"
        ),
        sources=("terraform-provider-aws internal/service/ec2/vpc_.go, schema `ForceNew: true`",),
    ),
    Edit(
        id="dr-network-cidr",
        edit="the DR pilot-light VPC 10.42.0.0/16 → 10.43.0.0/16 (nothing runs in it)",
        stack="prod",
        head={"dr": {"cidr": "10.43.0.0/16"}},
        verdict="replace",
        flagged=False,
        actions={
            "dr-network-vpc": "replace",
            "dr-network-private-0": "replace",
            "dr-network-db": "replace",
            "dr-network-peering": "replace",
        },
        why=(
            "a new VPC and, through their vpcId, new subnets, route table, security group "
            "(its name is unique per VPC only, so the new one is no clash), flow log and "
            "peering; the DB subnet group is given the new subnets in place (ModifyDBSubnetGroup "
            "with another VPC's subnets while no instance uses it: unverified on AWS). Nothing "
            "runs there until a DR rebuild, so nothing refuses the deletes"
        ),
        sources=("terraform-provider-aws internal/service/ec2/vpc_.go, schema `ForceNew: true`",),
    ),
    Edit(
        id="retention",
        edit="backup retention 7 → 14 days (and the continuous rule with it)",
        stack="prod",
        head={
            "backup": {
                "retentionDays": 14,
                "plan": [
                    {
                        "name": "continuous",
                        "schedule": "cron(0 10 ? * * *)",
                        "retentionDays": 14,
                        "continuous": True,
                        "copyToDr": True,
                    },
                    {
                        "name": "daily",
                        "schedule": "cron(0 8 ? * * *)",
                        "retentionDays": 30,
                        "copyToDr": True,
                    },
                ],
            }
        },
        verdict="update",
        flagged=False,
        actions={"database-primary": "update"},
        why="BackupRetentionPeriod and the backup plan's rule are modified in place",
        sources=(_RDS_MODIFY.format("BackupRetentionPeriod"),),
    ),
    Edit(
        id="app-secret-add",
        edit="add an application secret",
        stack="prod",
        head={
            "vault": {
                "appSecrets": [
                    {
                        "name": "jwt-signing-key",
                        "kind": "signing",
                        "length": 64,
                        "description": "signs session JWTs",
                    },
                    {
                        "name": "data-encryption-key",
                        "kind": "encryption",
                        "length": 64,
                        "description": "application-level field encryption",
                    },
                    {
                        "name": "webhook-secret",
                        "kind": "signing",
                        "length": 48,
                        "description": "verifies inbound webhooks",
                    },
                    {
                        "name": "api-signing-key",
                        "kind": "signing",
                        "length": 64,
                        "description": "signs API tokens",
                    },
                ]
            }
        },
        verdict="create",
        flagged=False,
        actions={"vault-app-api-signing-key": "create"},
        why="a new secret and its version; nothing existing changes",
        sources=("botocore secretsmanager 2017-10-17 CreateSecret",),
    ),
    Edit(
        id="app-secret-remove",
        edit="remove an application secret",
        stack="prod",
        head={
            "vault": {
                "appSecrets": [
                    {
                        "name": "jwt-signing-key",
                        "kind": "signing",
                        "length": 64,
                        "description": "signs session JWTs",
                    },
                    {
                        "name": "data-encryption-key",
                        "kind": "encryption",
                        "length": 64,
                        "description": "application-level field encryption",
                    },
                ]
            }
        },
        verdict="blocked by protect",
        flagged=True,
        refusals=("pulumi-protect",),
        actions={"vault-app-webhook-secret": "delete"},
        why="the secret is protected in prod: removing it takes a deliberate `protect` lift "
        "first; then Secrets Manager keeps it 30 days (recovery window)",
    ),
    Edit(
        id="dr-off",
        edit="turn DR off (dr.region null)",
        stack="prod",
        head={
            "dr": {"region": None, "backupReplication": False},
            "vault": {"replicateToDr": False},
            "backup": {
                "plan": [
                    {
                        "name": "continuous",
                        "schedule": "cron(0 10 ? * * *)",
                        "retentionDays": 7,
                        "continuous": True,
                        "copyToDr": False,
                    },
                    {
                        "name": "daily",
                        "schedule": "cron(0 8 ? * * *)",
                        "retentionDays": 30,
                        "copyToDr": False,
                    },
                ]
            },
        },
        verdict="blocked by protect",
        flagged=True,
        refusals=("pulumi-protect",),
        actions={"backups-dr-vault": "delete"},
        weakened=("vaultLock", "policyDeny"),
        why="the DR vault, its lock and the DR keys are protected: the DR copies are kept "
        "until someone lifts `protect` on purpose (and the locked vault outlives its lock)",
    ),
    Edit(
        id="dr-on",
        edit="turn DR on in staging (dr.region us-west-2)",
        stack="staging",
        head={"dr": {"region": "us-west-2"}},
        verdict="update",
        flagged=False,
        why="new DR-region resources are created and the secrets gain a replica region in "
        "place; nothing is replaced",
        sources=(
            "terraform-provider-aws internal/service/secretsmanager/secret.go: `replica` "
            "updated in place (ReplicateSecretToRegions)",
        ),
    ),
    Edit(
        id="alarm-threshold",
        edit="CPU warning threshold 80 → 75 %",
        stack="prod",
        head={"alarms": {"thresholds": {"cpuPercent": {"warning": 75, "critical": 90}}}},
        verdict="update",
        flagged=False,
        actions={"alarms-primary-cpu-warning": "update"},
        why="PutMetricAlarm overwrites the alarm in place (only its name forces a new one)",
        sources=(FORCE_NEW["aws:cloudwatch/metricAlarm:MetricAlarm"]["name"],),
    ),
    Edit(
        id="tier",
        edit="tier production → non-production in Pulumi.prod.yaml",
        stack="prod",
        head={"tier": "non-production"},
        config_may_refuse="dbplatform:tier",
        verdict="update",
        flagged=True,
        weakened=("tier", "protect", "policyDeny"),
        why="`protect` comes off every stateful resource (the next edit could delete them) and "
        "every production key policy loses its Deny statements: PutKeyPolicy, which the CI "
        "deploy role's IAM policy denies (ci/iam/deploy.json `NoPrivilegeEscalation`), so the "
        "update from CI fails with AccessDenied; run it as the break-glass role. The diff flags "
        "both",
        sources=(
            "Pulumi docs, resource option `protect`",
            "docs/vault-backups-alarms.md, Key guard",
        ),
    ),
    Edit(
        id="break-glass-add",
        edit="add a second break-glass role",
        stack="prod",
        head={"breakGlassRoles": ["dbplatform-break-glass", "dbplatform-break-glass-2"]},
        verdict="update",
        flagged=True,
        weakened=("policyDeny",),
        why="every guarded key policy is rewritten in place (PutKeyPolicy, which the CI deploy "
        "role's IAM policy denies: run the update as the break-glass role); a Deny that exempts "
        "one more role is weaker, so the diff flags it. Changing `deployRoles` likewise, run as "
        "the break-glass role: KMS refuses a policy that locks out its caller",
        sources=("botocore kms 2014-11-01 PutKeyPolicy",),
    ),
    Edit(
        id="staging-replace",
        edit="rename the initial database in staging (dbName app → app2)",
        stack="staging",
        head={"database": {"dbName": "app2"}},
        verdict="replace",
        flagged=True,
        actions={"database-primary": "replace", "database-final-snapshot-suffix": "replace"},
        why="dbName forces a new, empty instance under the same identifier: staging deletes "
        "the old one first (a create-first collides, DBInstanceAlreadyExists) after a final "
        "snapshot whose name is drawn anew for each replacement; the data is in that snapshot, "
        "not in the new instance, so the diff flags it",
        sources=(
            FORCE_NEW[RDS_INSTANCE]["dbName"],
            REFUSALS["unique-name"].source,
        ),
    ),
    Edit(
        id="deletion-protection-off",
        edit="deletion protection off (with allow-no-deletion-protection)",
        stack="prod",
        head={
            "database": {"deletionProtection": False},
            "safetyOverrides": ["allow-no-deletion-protection"],
        },
        verdict="update",
        flagged=True,
        weakened=("deletionProtection",),
        actions={"database-primary": "update"},
        why="ModifyDBInstance lifts it in place; a weakening the diff flags",
        sources=(_RDS_MODIFY.format("DeletionProtection"),),
    ),
    Edit(
        id="vault-lock-change",
        edit="vault lock max retention 400 → 500 days",
        stack="prod",
        head={"backup": {"vaultLock": {"maxRetentionDays": 500}}},
        verdict="blocked by protect",
        flagged=True,
        refusals=("pulumi-protect", "backup-vault-lock-immutable"),
        actions={"backups-vault-lock": "replace"},
        weakened=("vaultLock",),
        why="every lock field forces a new lock; past its lock date AWS refuses to change or "
        "delete it, and the lock is protected",
        sources=(FORCE_NEW[VAULT_LOCK]["maxRetentionDays"],),
    ),
    Edit(
        id="vault-lock-off",
        edit="vault lock off",
        stack="prod",
        head={"backup": {"vaultLock": {"enabled": False}}},
        verdict="blocked by protect",
        flagged=True,
        refusals=("pulumi-protect", "backup-vault-lock-immutable"),
        actions={"backups-vault-lock": "delete"},
        weakened=("vaultLock",),
        why="a compliance-mode lock cannot be removed after its lock date; the lock is protected",
    ),
    Edit(
        id="unencrypted",
        edit="storage encryption off (with allow-unencrypted-storage)",
        stack="prod",
        head={
            "database": {"storageEncrypted": False},
            "safetyOverrides": ["allow-unencrypted-storage"],
        },
        verdict="blocked by protect",
        flagged=True,
        refusals=("pulumi-protect", "rds-deletion-protection"),
        actions={"database-primary": "replace"},
        why="encryption cannot change in place: a new, empty instance; stopped by `protect` "
        "and by deletion protection",
        sources=(FORCE_NEW[RDS_INSTANCE]["storageEncrypted"],),
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """docs/day2-changes.md, from CATALOGUE."""
    lines = [
        "# Day-2 changes: what `pulumi up` does with an edit",
        "",
        "<!-- generated by `python -m tests.infra.day2_catalogue` from "
        "tests/infra/day2_catalogue.py; do not edit by hand -->",
        "",
        "Each row is an edit people make to a live stack. The suite synthesises the stack "
        "before and after it (the real program under mocks), computes the change with "
        "`dbplatform infra-diff`'s diff against the provider facts in "
        "`infra/provider_facts.py`, and checks the verdict below "
        "(`tests/infra/test_day2_catalogue.py`).",
        "",
        "Verdicts: **blocked by protect** (the Pulumi engine stops before any step: a protected "
        "resource would be deleted or replaced; lift `protect` in its own reviewed change), "
        "**refused by AWS** (`pulumi up` fails at that step), **replace**, **delete**, "
        "**update** (in place), **create**. *Flagged* means `dbplatform infra-diff` exits 3: "
        "data at risk, a step that would be refused, or protection weakened; CI then needs an "
        "explicit approval.",
        "",
        "| edit | stack | `pulumi up` | flagged | why | source |",
        "|---|---|---|---|---|---|",
    ]
    for e in CATALOGUE:
        outcome = f"**{e.up}**" if e.up else f"**{e.verdict}**"
        if e.pending:
            outcome += f" (today: {e.today}; {e.pending})"
        refused = f" Refused: {', '.join(f'`{f}`' for f in e.refusals)}." if e.refusals else ""
        weak = f" Weakened: {', '.join(e.weakened)}." if e.weakened else ""
        lines.append(
            f"| {_cell(e.edit)} | {e.stack} | {_cell(outcome)} | "
            f"{'yes (exit 3)' if e.flagged else 'no'} | {_cell(e.why)}.{refused}{weak} | "
            f"{_cell('; '.join(e.all_sources) or '—')} |"
        )
    lines += [
        "",
        "## The provider facts",
        "",
        "| refusal | by | rule | error | source |",
        "|---|---|---|---|---|",
    ]
    for r in REFUSALS.values():
        lines.append(
            f"| `{r.id}` | {r.who} | {_cell(r.rule)} | {_cell(r.error)} | {_cell(r.source)} |"
        )
    lines += [
        "",
        "Replacement-forcing properties (`ForceNew` in the provider's schema) per type are in "
        "`infra/provider_facts.py` (`FORCE_NEW`), each with the provider file it was read in.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC.relative_to(ROOT)}\n")
