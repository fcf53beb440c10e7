"""Deterministic physical names for every resource of a stack, shared with scripts/.

The operational commands find a stack's database from its committed config and these names,
without the Pulumi CLI or state, so a name must depend only on project, stack and role.
Names are clamped to AWS's length and charset limits; a clamped name keeps a short hash of
the full name so two long names never collide.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass

PROJECT = "dbplatform"

# RDS DB instance identifiers: 1-63 letters, digits, hyphens; first a letter; no "--" or
# trailing hyphen (botocore rds/2014-10-31 CreateDBInstanceMessage.DBInstanceIdentifier).
# The blue/green "-old1" suffix must still fit, so we keep 5 chars spare.
RDS_ID_LIMIT = 63
RDS_ID_MAX = RDS_ID_LIMIT - len("-old1")
STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    s = re.sub(r"-{2,}", "-", s).strip("-")
    return s or "x"


def _clamp(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[: limit - 7].rstrip('-')}-{digest}"


# What restore checks and drills create, in IAM's wildcards (IAM User Guide, "IAM JSON policy
# elements: Resource": `*` is any run of characters, `?` exactly one) and fnmatch's: a restore
# check's `<project>-<stack>-rc-<run id>` (run id `20261202t142100z-3f10f0`), a drill's primary
# `<project>-<stack>-drill-<6 hex>-pg` and its parameter group. The drills CI role may tag,
# change and delete only resources so named (devtools/iam_policies.py), so no stack may declare
# one (infra/config.py refuses it), but a drill's own throwaway stack.
GENERATED_INSTANCES = (f"{PROJECT}-*-rc-????????t??????z-??????", f"{PROJECT}-*-drill-??????-pg")
GENERATED_PARAMETER_GROUPS = f"{PROJECT}-*-drill-??????-postgres*"


def generated_shape(name: str) -> str | None:
    """The shape of `name` among what restore checks and drills create, else None."""
    for shape in (*GENERATED_INSTANCES, GENERATED_PARAMETER_GROUPS):
        if fnmatch.fnmatchcase(name, shape):
            return shape
    return None


def drill_stack(source: str, run_id: str) -> str:
    """A throwaway stack name for one drill, unique per run (at most 24 characters)."""
    tail = f"drill-{run_id}"
    head = source[: 24 - len(tail) - 1].rstrip("-")
    return f"{head}-{tail}"


def rds_identifier(*parts: str, limit: int = RDS_ID_MAX) -> str:
    """An RDS identifier from parts, lower-case, starting with a letter, within `limit` (by
    default room is left for blue/green's `-old1`)."""
    name = _slug("-".join(parts))
    if not name[0].isalpha():
        name = f"db-{name}"
    return _clamp(name, limit)


@dataclass(frozen=True)
class Names:
    """Physical names of one stack's resources. `Names("prod").primary` -> `dbplatform-prod-pg`."""

    stack: str
    project: str = PROJECT

    @property
    def prefix(self) -> str:
        return _slug(f"{self.project}-{self.stack}")

    # --- database ---
    @property
    def primary(self) -> str:
        return rds_identifier(self.prefix, "pg")

    def replica(self, name: str) -> str:
        return rds_identifier(self.prefix, "pg", name)

    @property
    def cross_region_replica(self) -> str:
        return rds_identifier(self.prefix, "pg", "dr")

    def parameter_group(self, family: str) -> str:
        # The family is in the name: a major upgrade (blue/green) needs a second group of the
        # new family beside the old one, and parameter group names are unique per region.
        return _clamp(_slug(f"{self.prefix}-{family}"), 255)

    @property
    def subnet_group(self) -> str:
        return _clamp(_slug(f"{self.prefix}-db"), 255)

    @property
    def security_group(self) -> str:
        return _clamp(f"{self.prefix}-db", 255)

    # The DR region's pilot-light network: `scripts.dr rebuild` restores into these by name.
    @property
    def dr_subnet_group(self) -> str:
        return f"{self.subnet_group}-dr"

    @property
    def dr_security_group(self) -> str:
        return f"{self.security_group}-dr"

    def final_snapshot(self, identifier: str) -> str:
        return rds_identifier(identifier, "final")

    def flow_log_role(self, suffix: str = "") -> str:
        """The role VPC Flow Logs assumes to write the created VPC's (suffix '-dr': DR's) logs."""
        return _clamp(f"{self.prefix}-flow-logs{suffix}", 64)

    @property
    def monitoring_role(self) -> str:
        return _clamp(f"{self.prefix}-rds-monitoring", 64)

    # --- vault ---
    @property
    def master_secret(self) -> str:
        return f"{self.project}/{self.stack}/db/master"

    def app_secret(self, name: str) -> str:
        return f"{self.project}/{self.stack}/app/{_slug(name)}"

    def kms_alias(self, purpose: str) -> str:
        return f"alias/{self.prefix}-{_slug(purpose)}"

    @property
    def rotation_function(self) -> str:
        """The master secret's rotation Lambda (its logs: /aws/lambda/<this>)."""
        return _clamp(f"{self.prefix}-rotate-master", 64)

    # --- backups ---
    @property
    def backup_vault(self) -> str:
        return _clamp(f"{self.prefix}-vault", 50)

    @property
    def dr_backup_vault(self) -> str:
        return _clamp(f"{self.prefix}-dr-vault", 50)

    @property
    def backup_plan(self) -> str:
        return _clamp(f"{self.prefix}-plan", 50)

    @property
    def backup_selection(self) -> str:
        return _clamp(f"{self.prefix}-db", 50)

    @property
    def backup_role(self) -> str:
        """The IAM role AWS Backup assumes, for the plan, restore tests and restore checks."""
        return _clamp(f"{self.prefix}-backup", 64)

    # Restore-testing names allow letters, digits and underscores only.
    @property
    def restore_testing_plan(self) -> str:
        return _clamp(f"{self.prefix}_restore_test", 50).replace("-", "_")

    @property
    def restore_testing_selection(self) -> str:
        return _clamp(f"{self.prefix}_db", 50).replace("-", "_")

    # --- monitoring ---
    def topic(self, severity: str) -> str:
        return _clamp(f"{self.prefix}-alarms-{severity}", 256)

    def alarm(self, identifier: str, metric: str) -> str:
        return _clamp(f"{identifier}-{_slug(metric)}", 255)

    @property
    def dashboard(self) -> str:
        return _clamp(f"{self.prefix}-database", 255)

    # --- operations ---
    @property
    def lock_parameter(self) -> str:
        return f"/{self.project}/{self.stack}/ops/lock"

    def lock(self, scope: str) -> str:
        """The operations lock of one scope (`bluegreen`, `secrets`, `dr`, `restore-check`)."""
        return f"{self.lock_parameter}-{scope}"

    @property
    def bluegreen_state_parameter(self) -> str:
        """Where `scripts.bluegreen` keeps the phase of a deployment, beside the lock."""
        return f"/{self.project}/{self.stack}/ops/bluegreen"

    def restore_check_instance(self, run_id: str) -> str:
        """`dbplatform-<stack>-rc-<run id>`. A blue/green cycle never renames it, so it may use
        all 63 characters (botocore rds/2014-10-31 RestoreDBInstanceToPointInTimeMessage.
        TargetDBInstanceIdentifier: 1 to 63 letters, digits or hyphens): the longest stack
        name (24) with a run id (23) makes 62, never clamped, so the janitor reads the run id
        back from every such identifier."""
        return rds_identifier(self.prefix, "rc", run_id, limit=RDS_ID_LIMIT)
