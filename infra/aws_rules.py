"""AWS's own rules for the values the program sends, each with where the rule is written.

Pulumi's mocks accept any value; AWS does not. Names, versions, retention periods, parameter
apply methods, event categories and metric units are checked here, against the rule of the API
that receives them, by the config validation (infra/config.py) and by the tests that read the
synthesized manifests of every committed stack (tests/infra/test_aws_rules.py).

Sources, abbreviated below:
- [botocore <service>] the service model shipped with botocore (`botocore/data/<service>/`),
  the same text as the API reference; the tests read the enums and patterns from it directly.
- [RDS-EVENTS] Amazon RDS User Guide, "Amazon RDS event categories and event messages"
  (USER_Events.Messages.html): categories per source type.
- [RDS-METRICS] Amazon RDS User Guide, "Amazon CloudWatch metrics for Amazon RDS"
  (rds-metrics.html): metric names, units, the DBInstanceIdentifier dimension.
- [RDS-PG-PARAMS] Amazon RDS User Guide, "Working with parameters on your RDS for PostgreSQL
  DB instance" and `aws rds describe-engine-default-parameters --db-parameter-group-family
  postgres16` (ApplyType); for the PostgreSQL-native ones also pg_settings.context on the real
  server (`postmaster` = static), which tests/infra/test_aws_rules.py checks.
- [TF-RDS] terraform-provider-aws internal/service/rds (the code pulumi-aws runs):
  `compareActualEngineVersion` keeps the configured engine_version only when it is a dotted
  prefix of the running version.
"""

from __future__ import annotations

import re

# --- RDS ------------------------------------------------------------------------------------

# [botocore rds] CreateDBInstance.DBInstanceIdentifier: 1-63 letters, digits or hyphens, first
# a letter, no trailing hyphen and no two consecutive hyphens.
DB_INSTANCE_ID = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{0,62}(?<!-)$")
# [botocore rds] DeleteDBInstance.FinalDBSnapshotIdentifier: 1-255, same charset.
DB_SNAPSHOT_ID = re.compile(r"^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{0,254}(?<!-)$")
# [botocore rds] CreateDBParameterGroup.DBParameterGroupName: 1-255, same charset (lower-cased).
DB_PARAMETER_GROUP = re.compile(r"^(?!.*--)[a-z][a-z0-9-]{0,254}(?<!-)$")
# [botocore rds] CreateDBSubnetGroup.DBSubnetGroupName: <= 255 letters, digits, periods,
# underscores, spaces or hyphens; not "default".
DB_SUBNET_GROUP = re.compile(r"^(?!default$)[a-zA-Z0-9._ -]{1,255}$")
# [botocore rds] CreateEventSubscription.SubscriptionName: "less than 255 characters"; the
# console adds "letters, numbers and hyphens, first a letter", which we keep to.
RDS_EVENT_SUBSCRIPTION = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,253}$")

# [TF-RDS] + pulumi_aws rds/instance.py `engine_version` docstring: with automatic minor
# upgrades, give a prefix ("16"); a full MAJOR.MINOR is then rewritten by RDS and every later
# `pulumi up` asks for a downgrade, which ModifyDBInstance refuses.
ENGINE_VERSION = re.compile(r"^\d+(\.\d+)?$")


def engine_version_rule(version: str, auto_minor_version_upgrade: bool) -> str | None:
    """Why RDS (through the provider) would not keep `version`, or None."""
    if not ENGINE_VERSION.match(version):
        return "must be 'MAJOR' or 'MAJOR.MINOR'"
    if "." in version and auto_minor_version_upgrade:
        return (
            "pins a minor version while database.autoMinorVersionUpgrade is true: RDS upgrades "
            "the minor and every later `pulumi up` would ask for a downgrade, which RDS refuses; "
            f"give the major only ('{version.split('.', maxsplit=1)[0]}')"
        )
    return None


def performance_insights_retention_ok(days: int) -> bool:
    """[botocore rds] PerformanceInsightsRetentionPeriod: 7, month * 31 (months 1..23), or 731."""
    return days in (7, 731) or (days % 31 == 0 and 31 <= days <= 23 * 31)


# [RDS-PG-PARAMS] ApplyType of every parameter the program sets. RDS refuses `immediate` for a
# static parameter ([botocore rds] Parameter.ApplyMethod: "immediate | pending-reboot";
# ModifyDBParameterGroup: "You can use the immediate value with dynamic parameters only").
PARAMETER_APPLY_TYPE: dict[str, str] = {
    "rds.force_ssl": "dynamic",
    "rds.logical_replication": "static",
    "log_min_duration_statement": "dynamic",
    "log_connections": "dynamic",
    "log_disconnections": "dynamic",
    "log_lock_waits": "dynamic",
    "log_temp_files": "dynamic",
    "log_autovacuum_min_duration": "dynamic",
    # pg_cron for the heartbeat (docs/dr.md): both are read at server start (pg_cron README;
    # RDS "Scheduling maintenance with the PostgreSQL pg_cron extension").
    "shared_preload_libraries": "static",
    "cron.database_name": "static",
}


def apply_method_rule(parameter: str, method: str) -> str | None:
    """Why RDS would refuse `method` for `parameter`, or None."""
    kind = PARAMETER_APPLY_TYPE.get(parameter)
    if kind is None:
        return f"is not a parameter whose apply type is recorded in {__name__}"
    if method not in ("immediate", "pending-reboot"):
        return "apply method must be 'immediate' or 'pending-reboot'"
    if kind == "static" and method != "pending-reboot":
        return "is static: RDS only accepts 'pending-reboot'"
    return None


# [RDS-EVENTS] categories RDS accepts per source type (lower case, as the API takes them).
RDS_EVENT_CATEGORIES: dict[str, frozenset[str]] = {
    "db-instance": frozenset(
        {
            "availability",
            "backup",
            "configuration change",
            "creation",
            "deletion",
            "failover",
            "failure",
            "low storage",
            "maintenance",
            "notification",
            "read replica",
            "recovery",
            "restoration",
            "security",
            "security patching",
        }
    ),
    "db-parameter-group": frozenset({"configuration change"}),
}

# [RDS-METRICS] AWS/RDS metrics the program alarms on, with their CloudWatch unit.
RDS_METRIC_UNITS: dict[str, str] = {
    "CPUUtilization": "Percent",
    "FreeStorageSpace": "Bytes",
    "FreeableMemory": "Bytes",
    "DatabaseConnections": "Count",
    "ReadLatency": "Seconds",
    "WriteLatency": "Seconds",
    "DiskQueueDepth": "Count",
    "MaximumUsedTransactionIDs": "Count",
    "OldestReplicationSlotLag": "Bytes",
    "TransactionLogsDiskUsage": "Bytes",
    "CPUCreditBalance": "Count",
    "ReplicaLag": "Seconds",
}
RDS_METRIC_DIMENSION = "DBInstanceIdentifier"

# --- AWS Backup -----------------------------------------------------------------------------

# [botocore backup] CreateBackupVault.BackupVaultName pattern.
BACKUP_VAULT = re.compile(r"^[a-zA-Z0-9\-_]{2,50}$")
# [botocore backup] BackupPlanName / RuleName / SelectionName: 1-50 alphanumeric or '-_.'.
BACKUP_PLAN = BACKUP_RULE = BACKUP_SELECTION = re.compile(r"^[a-zA-Z0-9\-_.]{1,50}$")
# [botocore backup] CreateRestoreTestingPlan: "only alphanumeric characters and underscores",
# starting with a letter, up to 50.
RESTORE_TESTING_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]{0,49}$")
# [botocore backup] CopyJob.State enum minus the healthy ones; BackupJobState likewise;
# RestoreJobStatus for restore (and restore-testing) jobs, whose events carry `status`.
COPY_JOB_STATES = frozenset({"CREATED", "RUNNING", "COMPLETED", "FAILED", "PARTIAL"})
RESTORE_JOB_STATUSES = frozenset({"PENDING", "RUNNING", "COMPLETED", "ABORTED", "FAILED"})

# AWS Backup, Secrets Manager and restore-testing schedules: the six-field cron of
# "Schedule expressions for rules" (EventBridge user guide), which AWS Backup and Secrets
# Manager both use: minutes hours day-of-month month day-of-week year, with '?' in exactly one
# of day-of-month and day-of-week.
_CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")


def cron_rule(expression: str) -> str | None:
    """Why `expression` is not a six-field AWS cron expression, or None."""
    m = _CRON.match(expression)
    if not m:
        return "must be cron(minutes hours day-of-month month day-of-week year)"
    dom, dow = m.group(3), m.group(5)
    if (dom == "?") == (dow == "?"):
        return "must have '?' in exactly one of day-of-month and day-of-week"
    return None


# --- names of other services ----------------------------------------------------------------

# [botocore kms] CreateAlias.AliasName: alias/ + [a-zA-Z0-9/_-], 1-256, not alias/aws/.
KMS_ALIAS = re.compile(r"^alias/(?!aws/)[a-zA-Z0-9/_-]{1,250}$")
# [botocore secretsmanager] CreateSecret.Name: 1-512 of ASCII letters, digits and /_+=.@-.
SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
# The same doc: "Do not end your secret name with a hyphen followed by six characters" (it reads
# as the ARN's random suffix in partial-ARN lookups). Advice, not a refusal: the committed
# `webhook-secret` does so (docs/vault-backups-alarms.md).
SECRET_NAME_ARN_SUFFIX_LOOKALIKE = re.compile(r"-[A-Za-z0-9]{6}$")
# [botocore cloudwatch] PutMetricAlarm.AlarmName: 1-255 UTF-8, no ASCII control characters.
ALARM_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")
# [botocore events] PutRule.Name and PutTargets Target.Id: 1-64 of [.\-_A-Za-z0-9].
EVENT_RULE_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
# [botocore sns] CreateTopic.Name: 1-256 ASCII letters, digits, underscores, hyphens.
SNS_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# [botocore iam] CreateRole.RoleName: 1-64 of [\w+=,.@-].
IAM_ROLE = re.compile(r"^[\w+=,.@-]{1,64}$")
# [botocore ec2] CreateSecurityGroup.GroupName: up to 255 characters, not starting "sg-".
SECURITY_GROUP = re.compile(r"^(?!sg-).{1,255}$")


def alarm_period_rule(period: int, evaluation_periods: int) -> str | None:
    """[botocore cloudwatch] PutMetricAlarm.Period and EvaluationPeriods: 10, 20, 30 or a
    multiple of 60; period x evaluations at most one day, or seven days for periods >= 1 h."""
    if period not in (10, 20, 30) and period % 60:
        return "period must be 10, 20, 30 or a multiple of 60 seconds"
    limit = 7 * 86400 if period >= 3600 else 86400
    if period * evaluation_periods > limit:
        return f"period x evaluation periods must be at most {limit} seconds"
    return None
