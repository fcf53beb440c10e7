"""Typed, frozen stack configuration, validated as a whole.

One loader serves two callers: the Pulumi program (values from the engine) and scripts/ (values
read straight from `Pulumi.<stack>.yaml`, no Pulumi runtime). Defaults live only in
`Pulumi.yaml` (each key's `default`); a stack file overrides them field by field. Every problem
found is collected and raised at once in one `ConfigError`, each line naming the stack, the key,
the value and the rule, so an operator fixes a config in one pass.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import ipaddress
import json
import math
import re
import types
import typing
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra import aws_rules
from infra.naming import PROJECT, STACK_NAME, Names, drill_stack, generated_shape
from policy import inputs, instance_classes, windows
from policy.windows import cron_window

ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIR_ENV = "DBPLATFORM_PROJECT_DIR"
# libyaml's safe loader when PyYAML has it (the same safe constructors, several times faster):
# every command and synth reads these files first.
SAFE_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAMESPACE = PROJECT
# Top-level keys of a stack settings file that Pulumi defines (pkg/workspace ProjectStack):
# config, environment (Pulumi ESC imports) and the secrets provider's fields.
STACK_FILE_KEYS = ("config", "environment", "secretsprovider", "encryptedkey", "encryptionsalt")
# Namespaces whose keys the program or its providers read; any other is a typo or leftover.
KNOWN_NAMESPACES = (NAMESPACE, "aws", "pulumi", "random")
# StackConfig fields the loader sets itself; a `dbplatform:` key of that name would be overwritten.
INTERNAL_FIELDS = {"stack": "the stack's name", "region": "from aws:region"}


class _StrictLoader(SAFE_YAML_LOADER):
    """A safe loader that refuses what PyYAML silently accepts: a key written twice (the last
    would win) and keys that are not non-empty strings (Pulumi config keys are strings)."""


def _strict_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[str, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` merges are YAML's way to repeat keys on purpose
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key_node.value!r} must be a string (quote it)"
                if isinstance(key_node, yaml.ScalarNode)
                else f"a key must be a string, not a {key_node.id}",
                key_node.start_mark,
            )
        if not key_node.value.strip():
            raise yaml.constructor.ConstructorError(
                None, None, "a key is empty", key_node.start_mark
            )
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key_node.value}' is also set on line "
                f"{seen[key_node.value]}; YAML keeps only the last: remove one",
                key_node.start_mark,
            )
        seen[key_node.value] = line
    for key_node, value_node in node.value:
        if _yaml11_bool(value_node):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key '{key_node.value}': {value_node.value!r} is a boolean to PyYAML (YAML 1.1) "
                "but a string to Pulumi (YAML 1.2): write true or false",
                value_node.start_mark,
            )
    loader.flatten_mapping(node)
    return dict(loader.construct_pairs(node, deep=True))


def _yaml11_bool(node: Any) -> bool:
    """True for an unquoted yes/no/on/off: PyYAML (YAML 1.1) reads a boolean, Pulumi's Go YAML
    (gopkg.in/yaml.v3, YAML 1.2 core schema) reads the string, so the two would disagree."""
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:bool"
        and not node.style  # plain (libyaml says "", PyYAML None): quoted text is a string
        and node.value.lower() not in ("true", "false")
    )


def _strict_bool(loader: Any, node: yaml.ScalarNode) -> bool:
    if _yaml11_bool(node):  # in a list, where no key can be named: the line is
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{node.value!r} is a boolean to PyYAML (YAML 1.1) but a string to Pulumi "
            "(YAML 1.2): write true or false",
            node.start_mark,
        )
    return bool(loader.construct_yaml_bool(node))


def _strict_int(loader: Any, node: yaml.ScalarNode) -> int:
    # Python refuses to read an integer of more than sys.get_int_max_str_digits() (4300) digits
    # with a ValueError that PyYAML does not turn into a YAMLError: a traceback, not exit 2.
    try:
        return int(loader.construct_yaml_int(node))
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"a number of {len(node.value)} digits is larger than any setting takes",
            node.start_mark,
        ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _strict_mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:bool", _strict_bool)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _strict_int)


def load_yaml(data: bytes, source: str, limit: int = inputs.MAX_STACK_FILE_BYTES) -> Any:
    """A YAML file's bytes as data, or InputError with one line naming `source` and the rule."""
    text = inputs.decode(data, source, limit)
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise inputs.InputError(f"{source} is not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise inputs.InputError(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:
        raise inputs.InputError(f"{source} nests deeper than {inputs.MAX_DEPTH} levels") from None
    inputs.check_shape(doc, source)
    return doc


class ConfigError(Exception):
    """Every problem of one stack's config; `problems` holds one line per problem."""

    def __init__(self, stack: str, problems: list[str], *, fix: str | None = None) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        # a name that is no stack name has no file to fix: the --stack value is the problem
        what = fix or (f"Pulumi.{stack}.yaml" if STACK_NAME.match(stack) else "the stack name")
        super().__init__(
            f"stack '{stack}': {len(problems)} config problem(s); fix {what}:\n{lines}"
        )


def missing_stack_file(stack: str, root: Path) -> ConfigError:
    """No Pulumi.<stack>.yaml: the --stack value or a file to create, never a file to fix.
    The message says how `root` was chosen: run from a folder with its own Pulumi.yaml, a user
    otherwise cannot tell why the command looked in the checkout instead (UX review)."""
    there = ", ".join(committed_stacks(root)) or "none"
    return ConfigError(
        stack,
        [
            f"Pulumi.{stack}.yaml not found in {root} (stacks there: {there}); or create it. "
            + _project_dir_reason(root)
        ],
        fix="the stack name",
    )


def _project_dir_reason(root: Path) -> str:
    """Why the stack files are read from `root` (`project_dir`'s rule), and how to choose
    another folder."""
    import os

    how = (
        f"set {PROJECT_DIR_ENV}=FOLDER to read the stack files of another folder (synth: "
        "--root FOLDER)"
    )
    override = os.environ.get(PROJECT_DIR_ENV)
    if override and Path(override).resolve() == root.resolve():
        return f"That folder is the one {PROJECT_DIR_ENV} names"
    if root.resolve() != ROOT:
        return "That folder was given with --root"
    here = Path.cwd().resolve()
    other = next((f for f in (here, *here.parents) if (f / "Pulumi.yaml").is_file()), None)
    ignored = (
        f" ({other / 'Pulumi.yaml'} is not read)" if other is not None and other != ROOT else ""
    )
    return (
        "That folder is the checkout dbplatform is installed from: the working directory does "
        f"not choose it{ignored}; {how}"
    )


class ProjectError(ConfigError):
    """The project folder itself cannot be used (another checkout, no Pulumi.yaml): exit 2."""

    def __init__(self, problem: str) -> None:
        self.stack = ""
        self.problems = [problem]
        Exception.__init__(self, problem)


def doc(text: str, *, secret: bool = False) -> Any:
    """Field metadata: the one-line description of a config field; `secret` when the field may
    hold a `pulumi config set --secret` value."""
    return field(metadata={"doc": text, "secret": secret})


class Secret(str):
    """A `secure:` value read from a stack file: its text is the mask, its ciphertext opaque.

    Offline (synth, guardrails, the operations) nothing decrypts it: the manifest shows the
    mask, and format rules that need the plaintext are left to the program, which Pulumi hands
    the decrypted value. Under the engine a secret arrives as plain text and is checked in full.
    """

    MASK = "[secret]"
    ciphertext: str

    def __new__(cls, ciphertext: str) -> Secret:
        obj = super().__new__(cls, cls.MASK)
        obj.ciphertext = ciphertext
        return obj

    def __repr__(self) -> str:
        return "Secret([secret])"


def opt(text: str, default: Any) -> Any:
    """An optional field of a list item (items have no defaults in Pulumi.yaml)."""
    return field(default=default, metadata={"doc": text})


# ---------------------------------------------------------------------------------------------
# Shapes. Field names are snake_case here and camelCase in YAML (`engine_version` <->
# `engineVersion`). Groups have no Python defaults: Pulumi.yaml holds them.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConnectConfig:
    """How a created VPC reaches the application's network (peering or a transit gateway)."""

    mode: str = doc("none | peering | transitGateway")
    peer_vpc_id: str | None = doc("the application's VPC (peering; same account and region)")
    peer_cidrs: tuple[str, ...] = doc("the application's CIDRs, routed to from the database")
    peer_route_table_ids: tuple[str, ...] = doc(
        "the application's route tables that get a route back (peering)"
    )
    transit_gateway_id: str | None = doc("the transit gateway to attach to (transitGateway)")
    peer_owner_id: str | None = doc("the peer VPC's account (peering): null, this account only")
    peer_region: str | None = doc("the peer VPC's region (peering): null or the VPC's own")


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """Where the database lives and who may reach it."""

    vpc_id: str | None = doc("existing VPC id; null creates an isolated VPC for the stack")
    subnet_ids: tuple[str, ...] = doc("existing private subnet ids (>= 2 AZs) with vpcId")
    cidr: str = doc("CIDR of the created VPC (ignored with vpcId)")
    az_count: int = doc("availability zones of the created VPC's private subnets (2..6)")
    allowed_cidrs: tuple[str, ...] = doc("CIDRs admitted to the PostgreSQL port")
    allowed_security_group_ids: tuple[str, ...] = doc("security groups admitted to the port")
    connect: ConnectConfig = doc("how a created VPC reaches the application (peering | TGW)")
    private_secrets_endpoint: bool | None = doc(
        "a Secrets Manager interface endpoint for rotation; null = only in a created VPC"
    )


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    """The primary PostgreSQL instance."""

    engine_version: str = doc(
        "PostgreSQL major version, e.g. '16' (MAJOR.MINOR only without automatic minor upgrades)"
    )
    instance_class: str = doc("RDS instance class, db.<family>.<size>")
    allocated_storage: int = doc("initial gp3 storage, GiB")
    max_allocated_storage: int = doc("storage autoscaling ceiling, GiB (>= 110% of allocated)")
    multi_az: bool = doc("standby in a second AZ (prod requires it)")
    deletion_protection: bool = doc("refuse DeleteDBInstance (prod requires it)")
    storage_encrypted: bool = doc("encrypt storage with the stack's CMK (prod requires it)")
    skip_final_snapshot: bool = doc("skip the final snapshot on delete (prod forbids it)")
    performance_insights_retention_days: int = doc("7, 31 x months (1..23), or 731")
    monitoring_interval: int = doc("enhanced monitoring seconds: 0, 1, 5, 10, 15, 30, 60")
    maintenance_window: str = doc("weekly window ddd:hh24:mi-ddd:hh24:mi, UTC")
    db_name: str = doc("initial database name")
    master_username: str = doc("master user name")
    port: int = doc("PostgreSQL port")
    blue_green: bool = doc("keep the instance ready for RDS Blue/Green deployments")
    slow_query_ms: int = doc("log statements slower than this (log_min_duration_statement)")
    auto_minor_version_upgrade: bool = doc("apply minor versions in the maintenance window")
    iam_auth: bool = doc("IAM database authentication")
    upgrade_target_version: str | None = doc(
        "also declare the parameter group of this newer major version, for a blue/green upgrade"
    )


@dataclass(frozen=True, kw_only=True)
class ReplicaConfig:
    """One same-region read replica."""

    name: str = doc("short name, unique in the stack (a-z, 0-9, -)")
    instance_class: str | None = opt("class; null = the primary's", None)
    availability_zone: str | None = opt("AZ; null lets RDS choose", None)
    maintenance_window: str | None = opt(
        "weekly window; null = staggered after the primary's", None
    )


@dataclass(frozen=True, kw_only=True)
class PlanRuleConfig:
    """One AWS Backup plan rule."""

    name: str = doc("rule name, unique in the plan")
    schedule: str = doc("AWS Backup cron: cron(M H ? * * *) daily or cron(M H ? * DOW *) weekly")
    retention_days: int = doc("days a recovery point is kept")
    continuous: bool = opt("continuous backup (PITR, <= 35 days)", False)
    copy_to_dr: bool = opt("copy recovery points to the DR region's vault", True)
    start_window_minutes: int = opt("minutes a job may wait to start", 60)


@dataclass(frozen=True, kw_only=True)
class VaultLockConfig:
    """AWS Backup Vault Lock (compliance mode once the grace period passes)."""

    enabled: bool = doc("lock the vault (prod should)")
    min_retention_days: int = doc("no recovery point may be kept for less")
    max_retention_days: int = doc("no recovery point may be kept for more")
    changeable_for_days: int = doc("grace days before the lock becomes immutable (>= 3)")


@dataclass(frozen=True, kw_only=True)
class BackupConfig:
    """RDS automated backups and the AWS Backup plan."""

    retention_days: int = doc("automated backup (PITR) retention, 0..35 days")
    window: str = doc("daily automated backup window hh24:mi-hh24:mi UTC, >= 30 min")
    plan: tuple[PlanRuleConfig, ...] = doc("AWS Backup plan rules")
    vault_lock: VaultLockConfig = doc("vault lock settings")
    restore_testing: bool = doc("AWS Backup restore-testing plan for the database")
    restore_testing_schedule: str = doc("restore-testing cron, daily by default")


APP_SECRET_KINDS = ("signing", "encryption", "token")


@dataclass(frozen=True, kw_only=True)
class AppSecretConfig:
    """An application secret generated by the program."""

    name: str = doc("secret name (a-z, 0-9, -)")
    kind: str = doc(
        "signing | encryption | token: how rotation treats it (docs/operations.md#secret-kinds)"
    )
    length: int = opt("generated length, 32..4096", 64)
    description: str = opt("what it is for", "")


@dataclass(frozen=True, kw_only=True)
class VaultConfig:
    """Secrets Manager, the secrets CMK and rotation."""

    rotation_days: int = doc("rotate the master secret at least every N days (7..365)")
    rotation_window: str = doc("weekly window in which rotation runs, ddd:hh24:mi-ddd:hh24:mi")
    app_secrets: tuple[AppSecretConfig, ...] = doc("application secrets to generate")
    replicate_to_dr: bool = doc("replicate secrets to the DR region (when dr.region is set)")


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """A warning and a critical level for one alarm."""

    warning: float = doc("warning tier")
    critical: float = doc("critical tier")


@dataclass(frozen=True, kw_only=True)
class ThresholdsConfig:
    """Alarm thresholds (defaults from the runbooks' alerting sections)."""

    cpu_percent: Threshold = doc("CPUUtilization above, %")
    free_storage_percent: Threshold = doc("FreeStorageSpace below, % of allocated storage")
    freeable_memory_percent: Threshold = doc("FreeableMemory below, % of the class's memory")
    connections_percent: Threshold = doc("DatabaseConnections above, % of max_connections")
    read_latency_ms: Threshold = doc("ReadLatency above, ms")
    write_latency_ms: Threshold = doc("WriteLatency above, ms")
    disk_queue_depth: Threshold = doc("DiskQueueDepth above")
    max_used_transaction_ids: Threshold = doc("MaximumUsedTransactionIDs above (wraparound)")
    replication_slot_lag_gib: Threshold = doc("OldestReplicationSlotLag above, GiB")
    transaction_logs_disk_percent: Threshold = doc("TransactionLogsDiskUsage above, % of storage")
    cpu_credit_balance: Threshold = doc("CPUCreditBalance below (burstable classes only)")
    replica_lag_seconds: Threshold = doc("ReplicaLag above, seconds (replicas only)")


@dataclass(frozen=True, kw_only=True)
class SubscriptionConfig:
    """Who is told when an alarm of a tier fires."""

    severity: str = doc("critical | warning")
    protocol: str = doc("email | https")
    endpoint: str = doc("address or https URL; may be a secret (`secure:`)", secret=True)


@dataclass(frozen=True, kw_only=True)
class AlarmsConfig:
    """SNS topics, subscriptions, thresholds, health check, dashboard."""

    subscriptions: tuple[SubscriptionConfig, ...] = doc("topic subscriptions")
    thresholds: ThresholdsConfig = doc("alarm thresholds")
    health_check_url: str | None = doc("application readiness URL for a Route 53 check")
    dashboard: bool = doc("CloudWatch dashboard for the environment")


@dataclass(frozen=True, kw_only=True)
class DrConfig:
    """Disaster recovery: the DR region and what is kept there."""

    region: str | None = doc("DR region; null = no DR copies")
    cross_region_replica: bool = doc("a read replica in the DR region (not with blue/green)")
    backup_replication: bool = doc("replicate automated backups (PITR) to the DR region")
    backup_replication_retention_days: int = doc("retention of replicated backups, 1..35")
    cidr: str = doc("CIDR of the DR region's pilot-light VPC (must not overlap the others)")
    connect: ConnectConfig = doc("how the DR VPC reaches the application's DR network")
    rpo_minutes: int = doc("recovery point objective, minutes")
    rto_minutes: int = doc("recovery time objective, minutes")


@dataclass(frozen=True, kw_only=True)
class RestoreConfig:
    """Set only on a stack rebuilt by `dbplatform dr rebuild`: where its database came from."""

    source_stack: str | None = doc("the stack this one was rebuilt from")
    source_region: str | None = doc("region of the source stack")
    adopt_identifier: str | None = doc("restored DB instance to import into this stack")
    restored_from: str | None = doc("restore point used (ARN, snapshot id or time)")
    restore_time: str | None = doc("point in time restored to, ISO 8601 UTC")


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """The whole validated config of one stack."""

    stack: str = doc("stack name")
    region: str = doc("aws:region")
    tier: str = doc("production | non-production; production enforces the safety rules")
    owner: str = doc("owning team, tagged on every resource")
    cost_center: str = doc("cost centre, tagged on every resource")
    tags: dict[str, str] = doc("extra tags merged into every resource's tags")
    safety_overrides: tuple[str, ...] = doc("named exceptions to the production safety rules")
    network: NetworkConfig = doc("network")
    database: DatabaseConfig = doc("primary instance")
    replicas: tuple[ReplicaConfig, ...] = doc("same-region read replicas")
    backup: BackupConfig = doc("backups")
    vault: VaultConfig = doc("secrets")
    alarms: AlarmsConfig = doc("monitoring")
    dr: DrConfig = doc("disaster recovery")
    restore: RestoreConfig = doc("restore provenance (DR stacks)")
    break_glass_roles: tuple[str, ...] = doc(
        "IAM role names that alone may disable, delete or re-policy the stack's KMS keys"
    )
    deploy_roles: tuple[str, ...] = doc(
        "IAM role names that run `pulumi up`: they may also re-policy the stack's KMS keys"
    )

    @property
    def is_production(self) -> bool:
        return self.tier == "production"

    @property
    def engine_major(self) -> str:
        return self.database.engine_version.split(".")[0]

    @property
    def parameter_family(self) -> str:
        return f"postgres{self.engine_major}"

    @property
    def upgrade_parameter_family(self) -> str | None:
        """The family of a pending major upgrade's parameter group, if one is declared."""
        target = self.database.upgrade_target_version
        if target is None or target.split(".")[0] == self.engine_major:
            return None  # left in place after the upgrade: nothing more to declare
        return f"postgres{target.split('.')[0]}"

    def base_tags(self) -> dict[str, str]:
        """The tags every taggable resource carries; extra `tags` cannot override them."""
        return {
            **self.tags,
            "project": PROJECT,
            "stack": self.stack,
            "owner": self.owner,
            "cost-center": self.cost_center,
            "managed-by": "pulumi",
        }

    def replica_windows(self) -> dict[str, windows.Window]:
        """Each replica's maintenance window: its own if set, else staggered after the primary's.

        Derived windows avoid every other window of the calendar, so a replica is never patched
        while a backup, a restore test or a secret rotation runs.
        """
        primary = windows.parse_weekly(self.database.maintenance_window)
        explicit = {
            r.name: windows.parse_weekly(r.maintenance_window)
            for r in self.replicas
            if r.maintenance_window
        }
        derived = [r.name for r in self.replicas if not r.maintenance_window]
        avoid = [e.window for e in self._fixed_calendar()] + list(explicit.values())
        staggered = windows.stagger(primary, len(derived), avoid)
        return {**explicit, **dict(zip(derived, staggered, strict=True))}

    def _fixed_calendar(self) -> list[windows.CalendarEntry]:
        entries = [
            windows.CalendarEntry(
                "primary maintenance",
                windows.parse_weekly(self.database.maintenance_window),
                "maintenance",
            ),
            windows.CalendarEntry(
                "automated backup", windows.parse_daily(self.backup.window), "backup"
            ),
            windows.CalendarEntry(
                "master secret rotation",
                windows.parse_weekly(self.vault.rotation_window),
                "rotation",
            ),
        ]
        for rule in self.backup.plan:
            w = cron_window(rule.schedule, rule.start_window_minutes)
            entries.append(windows.CalendarEntry(f"backup plan rule {rule.name}", w, "backup-plan"))
        if self.backup.restore_testing:
            w = cron_window(self.backup.restore_testing_schedule, 60)
            entries.append(windows.CalendarEntry("restore test", w, "restore-test"))
        return entries

    def calendar(self) -> list[windows.CalendarEntry]:
        """Every recurring window of the environment (see `windows.render_calendar`)."""
        entries = self._fixed_calendar()
        for name, w in self.replica_windows().items():
            entries.append(windows.CalendarEntry(f"replica {name} maintenance", w, "maintenance"))
        return entries


# ---------------------------------------------------------------------------------------------
# Generic loading: raw dicts -> dataclasses, collecting type errors with their key paths
# ---------------------------------------------------------------------------------------------


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


# Control characters and the Unicode line and paragraph separators (U+2028, U+2029): shown as
# escapes, so one problem is one line ("".splitlines() breaks at all of them).
_LINE_BREAKING = ("Cc", "Zl", "Zp")


def quote(value: Any) -> str:
    """A value as a message shows it: strings quoted, the rest as JSON, long ones shortened."""
    if isinstance(value, str):
        # control characters as escapes, so a problem stays on its line ('a\\nb')
        shown = "".join(
            repr(c)[1:-1] if unicodedata.category(c) in _LINE_BREAKING else c for c in value
        )
        text = f"'{shown}'"
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):  # keys of mixed types cannot be sorted
            text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:199] + "…"


class _Problems:
    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.lines: list[str] = []

    def add(self, key: str, value: Any, rule: str, *, namespace: str = NAMESPACE) -> None:
        shown = "(not set)" if value is None else quote(value)  # not YAML's `null`
        self.lines.append(f"{self.stack}: {namespace}:{key} {shown} {rule}")


_MISSING = object()


def is_secure(raw: Any) -> bool:
    """Whether `raw` is how a stack file stores a `pulumi config set --secret` value."""
    return isinstance(raw, dict) and len(raw) == 1 and "secure" in raw


def _build(tp: Any, raw: Any, key: str, probs: _Problems, *, secret_ok: bool = False) -> Any:
    """Convert `raw` to type `tp`; record a problem and return _MISSING when it does not fit."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if raw is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, raw, key, probs, secret_ok=secret_ok)
    if is_secure(raw):
        if secret_ok and tp is str and isinstance(raw["secure"], str) and raw["secure"]:
            return Secret(raw["secure"])
        where = (
            "only alarms.subscriptions[].endpoint may be a secret"
            if tp is str or not dataclasses.is_dataclass(tp)
            else "a whole mapping cannot be decrypted offline; make only its secret fields "
            f"secret, each set with --path '{NAMESPACE}:{key}.<field>' and --secret"
        )
        # (no `config set ... --secret` on one line: redacted reports hide the rest of such a
        # line, dbplatform/manifest/redact.py, and this advice must stay readable there)
        probs.add(
            key,
            "secure:…",
            f"is a secret (set with --secret), but {where}; it becomes part of names, "
            "tags or decisions the offline commands must read in plaintext",
        )
        return _MISSING
    if dataclasses.is_dataclass(tp):
        if not isinstance(raw, dict):
            probs.add(key, raw, "must be a mapping of fields")
            return _MISSING
        return _build_dataclass(tp, raw, key, probs)
    if origin is tuple:
        if not isinstance(raw, list):
            probs.add(key, raw, "must be a list")
            return _MISSING
        items = [_build(args[0], v, f"{key}[{i}]", probs) for i, v in enumerate(raw)]
        return _MISSING if any(i is _MISSING for i in items) else tuple(items)
    if origin is dict:
        if not isinstance(raw, dict):
            probs.add(key, raw, "must be a mapping of strings to strings")
            return _MISSING
        bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, str)]
        for k in bad:
            probs.add(f"{key}.{k}", raw[k], "must be a string (quote it in YAML)")
        return _MISSING if bad else dict(raw)
    if tp is bool:
        if not isinstance(raw, bool):
            probs.add(key, raw, "must be true or false")
            return _MISSING
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            probs.add(key, raw, "must be a whole number")
            return _MISSING
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            probs.add(key, raw, "must be a number")
            return _MISSING
        try:
            value = float(raw)
        except OverflowError:  # an integer beyond any float
            value = math.inf
        if not math.isfinite(value):
            probs.add(key, str(raw), "must be a finite number (not NaN or infinity)")
            return _MISSING
        return value
    if tp is str:
        if not isinstance(raw, str):
            rule = "must be set" if raw is None else "must be a string (quote it in YAML)"
            probs.add(key, raw, rule)
            return _MISSING
        return raw
    raise TypeError(f"config field type {tp!r} is not supported")  # a bug in this module


def _did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """`; did you mean instanceClass?` for a misspelt name (difflib's closest, at most 3), or
    nothing: the full list of valid names alone leaves the reader to find the one they meant."""
    import difflib  # only on the error path: every command imports this module

    near = difflib.get_close_matches(word, list(choices), n=3)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def _build_dataclass(cls: Any, raw: dict[str, Any], key: str, probs: _Problems) -> Any:
    hints = _hints(cls)
    fields = {camel(f.name): f for f in dataclasses.fields(cls)}
    for unknown in sorted((k for k in raw if k not in fields), key=str):
        known = sorted(f for f in fields if key or f not in INTERNAL_FIELDS)
        probs.add(
            f"{key}.{unknown}" if key else str(unknown),
            "…" if is_secure(raw[unknown]) else raw[unknown],
            f"is not a known key{_did_you_mean(str(unknown), known)} (known: "
            + ", ".join(known)
            + ")",
        )
    values: dict[str, Any] = {}
    broken = False
    for yaml_name, f in fields.items():
        sub = f"{key}.{yaml_name}" if key else yaml_name
        if yaml_name not in raw:
            if f.default is dataclasses.MISSING:
                probs.add(sub, None, "is required")
                broken = True
            continue
        value = _build(
            hints[f.name], raw[yaml_name], sub, probs, secret_ok=f.metadata.get("secret", False)
        )
        if value is _MISSING:
            broken = True
        else:
            values[f.name] = value
    return _MISSING if broken else cls(**values)


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _merge(default: Any, override: Any) -> Any:
    """Stack values over project defaults, mapping by mapping; lists and scalars replace."""
    if isinstance(default, dict) and isinstance(override, dict) and not is_secure(override):
        out = dict(default)
        for k, v in override.items():
            out[k] = _merge(default.get(k), v) if k in default else v
        return out
    return override


# ---------------------------------------------------------------------------------------------
# Project defaults and the two entry points
# ---------------------------------------------------------------------------------------------


def project_dir(cwd: Path | None = None) -> Path:
    """Where the commands read Pulumi.yaml and the stack files: $DBPLATFORM_PROJECT_DIR (a
    deliberate choice: this code with another folder's stack files, as CI jobs and tests do);
    else the checkout this code was installed from.

    Run from inside ANOTHER checkout of this project, the command would mix this checkout's
    program with that one's stack files, and a base-branch synth would silently describe the
    head's code: that is refused (ProjectError, exit 2) with the command to run instead.
    """
    import os

    override = os.environ.get(PROJECT_DIR_ENV)
    if override:
        return Path(override).resolve()
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        marker = folder / "Pulumi.yaml"
        if not (marker.is_file() and (folder / "infra").is_dir()):
            continue
        try:
            head = marker.read_text(encoding="utf-8")[:4096]
        except (OSError, UnicodeDecodeError):
            continue
        if not re.search(rf"^name:\s*{PROJECT}\s*$", head, re.MULTILINE):
            continue
        if marker.resolve().parent != ROOT:  # a folder of links to this checkout is this one
            raise ProjectError(
                f"this dbplatform runs the code of {ROOT}, but the working directory is in "
                f"another checkout, {folder}: run {folder}/.venv/bin/dbplatform (after "
                f"`make setup` there), or set {PROJECT_DIR_ENV}={folder} to use this code "
                "with that checkout's stack files on purpose"
            )
        break
    if not (ROOT / "Pulumi.yaml").is_file():
        raise ProjectError(
            f"no Pulumi.yaml beside the installed code ({ROOT}): dbplatform runs from its "
            f"checkout (`make setup` installs it editable); set {PROJECT_DIR_ENV} to the "
            "folder holding Pulumi.yaml and the stack files"
        )
    return ROOT


@functools.lru_cache(maxsize=8)
def _project_file_cached(path: Path, mtime_ns: int) -> dict[str, Any]:
    data = load_yaml(path.read_bytes(), path.name)
    return data if isinstance(data, dict) else {}


def project_file(root: Path = ROOT) -> dict[str, Any]:
    """Pulumi.yaml as data (read once per change of the file: every load reads its defaults)."""
    path = root / "Pulumi.yaml"
    try:
        return copy.deepcopy(_project_file_cached(path, path.stat().st_mtime_ns))
    except inputs.InputError as exc:
        raise ConfigError("project", [str(exc)]) from None


def project_defaults(root: Path = ROOT) -> dict[str, Any]:
    """`{key: default}` for every `dbplatform:` key documented in Pulumi.yaml."""
    out: dict[str, Any] = {}
    for full_key, spec in (project_file(root).get("config") or {}).items():
        ns, _, key = str(full_key).partition(":")
        if ns == NAMESPACE and isinstance(spec, dict) and "default" in spec:
            out[key] = spec["default"]
    return out


def load_config(
    stack: str,
    values: dict[str, Any],
    region: Any,
    *,
    root: Path = ROOT,
    warnings: list[str] | None = None,
) -> StackConfig:
    """Build and validate a stack's config from its `dbplatform:` values (namespace stripped).

    With `warnings` (ops commands that only read, and rollback): a config that builds but breaks
    a validation rule is returned and the problems are appended there instead of raised.
    """
    probs = _Problems(stack)
    if not isinstance(stack, str) or not STACK_NAME.match(stack):
        probs.lines.append(
            f"{stack}: stack name {quote(stack)} must be 1-24 characters of a-z, 0-9 and '-', "
            "starting with a letter (it is part of every physical name)"
        )
    merged: dict[str, Any] = dict(project_defaults(root))
    for key, value in values.items():
        merged[key] = _merge(merged.get(key), value) if key in merged else value
    merged["stack"] = stack
    if region is None:
        probs.lines.append(f"{stack}: aws:region is required (the stack's AWS region)")
        region = ""
    elif type_problems := AWS_SETTINGS["region"]("region", region):
        # named as the stack file's key, not as the dbplatform field it fills
        for key, value, rule in type_problems:
            probs.add(key, value, rule, namespace="aws")
        region = ""
    merged["region"] = region
    cfg = _build_dataclass(StackConfig, merged, "", probs)
    if cfg is not _MISSING and not probs.lines and warnings is not None:
        _validate(cfg, probs)
        warnings.extend(probs.lines)
        assert isinstance(cfg, StackConfig)
        return cfg
    if cfg is not _MISSING:
        _validate(cfg, probs)
    if probs.lines:
        raise ConfigError(stack, probs.lines)
    assert isinstance(cfg, StackConfig)
    return cfg


def read_stack_values(stack: str, root: Path = ROOT) -> tuple[dict[str, Any], Any]:
    """The `dbplatform:` values and `aws:region` of `Pulumi.<stack>.yaml`.

    Read as Pulumi reads it: keys are `namespace:name`, written once; `secure:` values stay
    ciphertext (opaque `Secret`s); an `environment:` import is resolved through the Pulumi CLI
    (`resolve_environment`) or refused, naming the keys it may set.
    """
    if not isinstance(stack, str) or not STACK_NAME.match(stack):
        raise ConfigError(
            str(stack),
            [
                f"stack name {quote(stack)} must be 1-24 characters of a-z, 0-9 and '-', "
                "starting with a letter (it is part of every physical name)"
            ],
        )
    path = root / f"Pulumi.{stack}.yaml"
    try:
        data = load_yaml(path.read_bytes(), path.name) or {}
    except FileNotFoundError:
        raise missing_stack_file(stack, root) from None
    except OSError as exc:
        raise ConfigError(stack, [f"{path.name}: cannot read it ({exc.strerror or exc})"]) from None
    except inputs.InputError as exc:
        raise ConfigError(stack, [str(exc)]) from None
    if not isinstance(data, dict):
        raise ConfigError(stack, [f"{path.name} must be a mapping with a 'config:' key"])
    problems = [
        f"{path.name}: top-level key {quote(str(key))} is not a stack settings key "
        f"(Pulumi knows: {', '.join(STACK_FILE_KEYS)})"
        for key in data
        if key not in STACK_FILE_KEYS
    ]
    config = data.get("config", {} if data.get("environment") else None)
    if not isinstance(config, dict):
        raise ConfigError(stack, [*problems, f"{path.name} has no 'config:' mapping"])
    values: dict[str, Any] = {}
    for full_key, value in config.items():
        ns, colon, key = str(full_key).partition(":")
        if not colon or not ns or not key:
            problems.append(
                f"{path.name}: config key {quote(str(full_key))} must be "
                "'namespace:name' (Pulumi's form), "
                f"e.g. {quote(f'{NAMESPACE}:{full_key}')}"
            )
        elif ns not in KNOWN_NAMESPACES:
            problems.append(
                f"{path.name}: config key {quote(str(full_key))} is in a namespace "
                f"nothing here reads{_did_you_mean(ns, KNOWN_NAMESPACES)} "
                f"(known: {', '.join(KNOWN_NAMESPACES)})"
            )
        elif ns == "aws" and key not in AWS_SETTINGS:
            problems.append(
                f"{path.name}: config key {quote(str(full_key))} is not a setting of "
                f"the AWS provider{_did_you_mean(key, AWS_SETTINGS)} "
                f"(pulumi-aws reads: {', '.join(sorted(AWS_SETTINGS))})"
            )
        elif ns == NAMESPACE and key in INTERNAL_FIELDS:
            problems.append(
                f"{path.name}: config key {quote(str(full_key))} is not a setting: "
                "the program fills it in "
                f"({INTERNAL_FIELDS[key]}); remove it"
            )
        elif ns == NAMESPACE:
            values[key] = value
    problems += aws_setting_problems(config, path.name)
    if problems:
        raise ConfigError(stack, problems)
    region = config.get("aws:region")
    if data.get("environment"):
        values, region = resolve_environment(stack, root, data["environment"], values, region)
    return values, region


# ---------------------------------------------------------------------------------------------
# The stack file's `aws:` settings: the pulumi-aws provider's configuration
# ---------------------------------------------------------------------------------------------

# One problem of an `aws:` value: its key after `aws:` (with the path inside it), the value, and
# the rule it breaks.
_AwsProblem = tuple[str, Any, str]
_AwsCheck = Callable[[str, Any], list[_AwsProblem]]


def _kind(raw: Any) -> str:
    if isinstance(raw, bool):
        return "true/false"
    if isinstance(raw, (int, float)):
        return "a number"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "a mapping"
    return "text" if isinstance(raw, str) else "empty"


def _aws_text(
    what: str,
    detail: str = "",
    pattern: str | None = None,
    *,
    lo: int = 1,
    hi: int | None = None,
    controls: str = "",
) -> _AwsCheck:
    """Text of `lo`..`hi` characters without control characters (but `controls`), all of it
    matching `pattern` (ASCII classes, as AWS's patterns are): `what` it is, and `detail` of the
    rule."""
    # compiled on first use (re's cache), not while every command imports this module
    rule = f"must be {what}: {detail}" if detail else f"must be {what}"

    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if is_secure(raw):  # a `--path --secret` value: the provider checks it decrypted
            return []
        if not isinstance(raw, str):
            return [(key, raw, f"must be {what} (text, not {_kind(raw)})")]
        if (
            len(raw) < lo
            or (hi is not None and len(raw) > hi)
            or any(unicodedata.category(c) == "Cc" and c not in controls for c in raw)
            or (pattern is not None and not re.fullmatch(pattern, raw, re.ASCII))
        ):
            return [(key, raw, rule)]
        return []

    return check


def _aws_flag(key: str, raw: Any) -> list[_AwsProblem]:
    # `pulumi config set aws:insecure true` stores the text "true"; the provider's config reads
    # true/True/false/False (pulumi's Config.get_bool), and YAML's own booleans.
    if is_secure(raw) or isinstance(raw, bool) or raw in ("true", "True", "false", "False"):
        return []
    return [(key, raw, "must be true or false")]


_HIDDEN = "…"
"""A value a message does not show."""

# The provider's whole numbers are Go ints (terraform-provider-aws schema.TypeInt, 64-bit).
_GO_INT_MAX = 2**63 - 1


def _aws_whole(lo: int, why: str) -> _AwsCheck:
    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if is_secure(raw):
            return []
        value = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
        if isinstance(raw, str) and re.fullmatch(r"-?[0-9]{1,19}", raw):
            value = int(raw)  # `pulumi config set aws:maxRetries 5` stores the text "5"
        if value is None or value < lo:
            return [(key, raw, f"must be a whole number of at least {lo}{why}")]
        if value > _GO_INT_MAX:
            return [(key, raw, f"must be a whole number of at most {_GO_INT_MAX} (a Go int)")]
        return []

    return check


def _aws_choice(*values: str) -> _AwsCheck:
    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if is_secure(raw) or raw in values:
            return []
        return [(key, raw, f"must be one of {', '.join(values)}")]

    return check


def _aws_url(key: str, raw: Any) -> list[_AwsProblem]:
    if is_secure(raw):
        return []
    if not isinstance(raw, str):
        return [(key, raw, f"must be an http:// or https:// URL (text, not {_kind(raw)})")]
    rule = url_rule(raw, ("http", "https"), max_path=None)
    return [(key, raw, rule)] if rule else []


# Go's proxy settings (aws-sdk-go-base hands httpProxy/httpsProxy to
# golang.org/x/net/http/httpproxy): a value without a scheme or host is read again as
# "http://" + value (parseProxy), and net/http's Transport takes http, https, socks5 and socks5h.
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


def _aws_proxy(key: str, raw: Any) -> list[_AwsProblem]:
    if is_secure(raw):  # a proxy URL may carry a password
        return []
    if not isinstance(raw, str):
        return [(key, raw, f"must be a proxy URL or host:port (text, not {_kind(raw)})")]
    url = raw if "://" in raw else f"http://{raw}"
    rule = url_rule(url, _PROXY_SCHEMES, max_path=None)
    return [(key, raw, rule)] if rule else []


def _aws_sts_region(key: str, raw: Any) -> list[_AwsProblem]:
    if is_secure(raw):
        return []
    if not isinstance(raw, str) or not _REGION.match(raw):
        return [(key, raw, "must be an AWS region name like 'us-east-1'")]
    known = region_partitions()
    if known and raw not in known:
        return [(key, raw, "is not a region in botocore's partition data (endpoints.json)")]
    return []


def _aws_list(item: _AwsCheck, what: str, *, empty_ok: bool = True) -> _AwsCheck:
    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if not isinstance(raw, list) or (not raw and not empty_ok):
            return [(key, raw, f"must be a list of {what}")]
        return [p for i, value in enumerate(raw) for p in item(f"{key}[{i}]", value)]

    return check


def _aws_fields(what: str, fields: dict[str, _AwsCheck]) -> _AwsCheck:
    """A mapping of the fields of one of the provider's nested settings (its `_inputs.py`)."""

    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if not isinstance(raw, dict):
            return [(key, raw, f"must be a mapping of {what}'s fields ({', '.join(fields)})")]
        out: list[_AwsProblem] = []
        for name, value in raw.items():
            if name in fields:
                out += fields[name](f"{key}.{name}", value)
            else:
                out.append(
                    (
                        f"{key}.{name}",
                        _HIDDEN,  # its name is the mistake; its value may be a token
                        f"is not a field of {what} (fields: {', '.join(fields)})",
                    )
                )
        return out

    return check


def _aws_tags(key: str, raw: Any) -> list[_AwsProblem]:
    """Tags, with the rules every tag in this project follows (`tag_text_rule`)."""
    if not isinstance(raw, dict):
        return [(key, raw, "must be a mapping of tag keys to values")]
    out: list[_AwsProblem] = []
    for k, v in raw.items():
        if rule := tag_text_rule(k, MAX_TAG_KEY):
            out.append((key, k, f"is not a valid tag key: it {rule}"))
        if is_secure(v):  # a `--path --secret` value: the provider checks it decrypted
            continue
        if not isinstance(v, str):
            out.append((f"{key}.{k}", v, f"must be a tag value (text, not {_kind(v)})"))
        elif rule := tag_text_rule(v, MAX_TAG_VALUE):
            out.append((f"{key}.{k}", v, f"is not a valid tag value: it {rule}"))
    return out


def _aws_json(rule: str, hi: int | None) -> _AwsCheck:
    # A policy may be pretty-printed, or a YAML block ending in a newline: STS's
    # sessionPolicyDocumentType allows tab, LF and CR (botocore sts model), and the provider asks
    # only for JSON (terraform-provider-aws validation.StringIsJSON).
    text = _aws_text(rule, lo=1, hi=hi, controls="\t\n\r")

    def check(key: str, raw: Any) -> list[_AwsProblem]:
        if is_secure(raw):
            return []
        if problems := text(key, raw):
            return problems
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            return [(key, raw, f"must be {rule}: it is not JSON")]
        return []

    return check


_DURATION_PART = r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
}


def _aws_duration(key: str, raw: Any) -> list[_AwsProblem]:
    # terraform-provider-aws validAssumeRoleDuration: a Go duration (time.ParseDuration) of
    # 15 minutes to 12 hours, which is STS's DurationSeconds 900..43200 (botocore sts model).
    rule = "must be a duration of 15m to 12h, like '1h' or '90m' (units ns, us, ms, s, m, h)"
    if is_secure(raw):
        return []
    # Go's ParseDuration takes a leading sign: '+1h' is one hour
    if not isinstance(raw, str) or not re.fullmatch(f"[+]?(?:{_DURATION_PART})+", raw):
        return [(key, raw, rule)]
    seconds = sum(float(n) * _DURATION_SECONDS[u] for n, u in re.findall(_DURATION_PART, raw))
    return [] if 900 <= seconds <= 43200 else [(key, raw, rule)]


# STS AssumeRole / AssumeRoleWithWebIdentity parameters (botocore sts model: arnType 20-2048,
# roleSessionNameType 2-64 of [\w+=,.@-], externalIdType 2-1224 of [\w+=,.@:/-],
# sourceIdentityType 2-256 of [\w+=,.@-], clientTokenType 4-20000; tests compare with the model).
# The ARNs are IAM role and policy ARNs (IAM User Guide, "IAM identifiers").
_ROLE_ARN = _aws_text(
    "an IAM role ARN",
    "arn:aws:iam::ACCOUNT:role/NAME, 20-2048 characters",
    r"arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/[\w+=,.@/-]+",
    lo=20,
    hi=2048,
)
_POLICY_ARNS = _aws_list(
    _aws_text(
        "an IAM policy ARN",
        "arn:aws:iam::ACCOUNT|aws:policy/NAME, 20-2048 characters",
        r"arn:aws(?:-[a-z]+)*:iam::(?:[0-9]{12}|aws):policy/[\w+=,.@/-]+",
        lo=20,
        hi=2048,
    ),
    "IAM policy ARNs",
)
_SESSION_NAME = _aws_text(
    "a session name", "2-64 letters, digits or + = , . @ _ -", r"[\w+=,.@-]+", lo=2, hi=64
)
_ASSUME_ROLE: dict[str, _AwsCheck] = {
    "duration": _aws_duration,
    "externalId": _aws_text(
        "an external ID",
        "2-1224 letters, digits or + = , . @ : / _ -",
        r"[\w+=,.@:/-]+",
        lo=2,
        hi=1224,
    ),
    "policy": _aws_json("an IAM policy as JSON text", None),
    "policyArns": _POLICY_ARNS,
    "roleArn": _ROLE_ARN,
    "sessionName": _SESSION_NAME,
    # STS takes 2-256 characters, but the provider refuses more than 64
    # (terraform-provider-aws validAssumeRoleSourceIdentity: StringLenBetween(2, 64))
    "sourceIdentity": _aws_text(
        "a source identity", "2-64 letters, digits or + = , . @ _ -", r"[\w+=,.@-]+", lo=2, hi=64
    ),
    "tags": _aws_tags,
    "transitiveTagKeys": _aws_list(_aws_text("a tag key", "1-128 characters", hi=128), "tag keys"),
}
_WEB_IDENTITY: dict[str, _AwsCheck] = {
    "duration": _aws_duration,
    "policy": _aws_json("an IAM policy as JSON text of at most 2048 characters", 2048),
    "policyArns": _POLICY_ARNS,
    "roleArn": _ROLE_ARN,
    "sessionName": _SESSION_NAME,
    "webIdentityToken": _aws_text("an OIDC token", "4-20000 characters", lo=4, hi=20000),
    "webIdentityTokenFile": _aws_text("a file path"),
}
_ACCOUNT_IDS = _aws_list(
    # AWS account IDs are 12 digits (AWS Organizations `AccountId` in botocore's model,
    # ^\d{12}$); an unquoted 123456789012 is a YAML number of the same digits, accepted.
    lambda key, raw: (
        []
        if not isinstance(raw, bool) and re.fullmatch(r"[0-9]{12}", str(raw))
        else [(key, raw, "must be a 12-digit AWS account ID (quote it: '012345678901')")]
    ),
    "account IDs",
    empty_ok=False,  # the provider reads an empty list as not set: no account would be refused
)


def _aws_endpoints(key: str, raw: Any) -> list[_AwsProblem]:
    """A list of mappings of a service name to the URL of its endpoint."""
    import difflib

    known = _endpoint_services()

    def entry(at: str, value: Any) -> list[_AwsProblem]:
        if not isinstance(value, dict):
            return [(at, value, "must be a mapping of service names to endpoint URLs")]
        out: list[_AwsProblem] = []
        for name, url in value.items():
            if known and name not in known:
                near = difflib.get_close_matches(str(name), known, n=3)
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                out.append((f"{at}.{name}", url, f"is not a service aws:endpoints takes{hint}"))
            else:
                out += _aws_url(f"{at}.{name}", url)
        return out

    return _aws_list(entry, "mappings of service names to endpoint URLs")(key, raw)


@functools.cache
def _endpoint_services() -> tuple[str, ...]:
    """The service names `aws:endpoints` takes (pulumi-aws `ProviderEndpointArgsDict`, read as
    text only when the setting is used); empty when the provider is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or spec.origin is None:
        return ()
    try:
        text = (Path(spec.origin).parent / "_inputs.py").read_text(encoding="utf-8")
    except OSError:
        return ()
    start = text.find("class ProviderEndpointArgsDict(")
    body = text[start : text.find("\nclass ", start + 1)] if start >= 0 else ""
    return tuple(n.rstrip("_") for n in re.findall(r"^    (\w+): NotRequired", body, re.M))


_NON_EMPTY = "non-empty text without control characters"
_PATHS = _aws_list(_aws_text("a file path", _NON_EMPTY), "file paths")
# Every `aws:` setting the pinned pulumi-aws reads (the names in its `config/vars.py`), checked
# against the type its `ProviderArgs` gives it (provider.py; nested settings: `_inputs.py`) and
# the rule of the terraform-provider-aws schema it wraps (internal/provider/sdkv2/provider.go:
# enumerations, ConflictsWith, 0 read as unset) or of the AWS API the value goes to.
# tests/unit/test_config_aws_keys.py keeps the names equal to the provider's.
AWS_SETTINGS: dict[str, _AwsCheck] = {
    # IAM `accessKeyIdType` (botocore iam model): 16-128 of [\w]
    "accessKey": _aws_text(
        "an access key ID", "16-128 letters, digits or _", r"\w+", lo=16, hi=128
    ),
    "allowedAccountIds": _ACCOUNT_IDS,
    "assumeRoleWithWebIdentity": _aws_fields("aws:assumeRoleWithWebIdentity", _WEB_IDENTITY),
    "assumeRoles": _aws_list(_aws_fields("an aws:assumeRoles entry", _ASSUME_ROLE), "roles"),
    "customCaBundle": _aws_text("a PEM file path", _NON_EMPTY),
    "defaultTags": _aws_fields("aws:defaultTags", {"tags": _aws_tags}),
    "ec2MetadataServiceEndpoint": _aws_url,
    "ec2MetadataServiceEndpointMode": _aws_choice("IPv4", "IPv6"),
    "endpoints": _aws_endpoints,
    "forbiddenAccountIds": _ACCOUNT_IDS,
    "httpProxy": _aws_proxy,
    "httpsProxy": _aws_proxy,
    "ignoreTags": _aws_fields(
        "aws:ignoreTags",
        {
            "keyPrefixes": _aws_list(
                _aws_text("a tag key prefix", "1-128 characters", hi=128), "tag key prefixes"
            ),
            "keys": _aws_list(_aws_text("a tag key", "1-128 characters", hi=128), "tag keys"),
        },
    ),
    "insecure": _aws_flag,
    "maxRetries": _aws_whole(1, " (the provider reads 0 as not set, and retries 25 times)"),
    "noProxy": _aws_text("a comma-separated list of hosts", _NON_EMPTY),
    # A profile is a section `[profile NAME]` of the AWS config file (AWS SDKs and Tools
    # Reference Guide, "Shared config and credentials files"); botocore's configloader reads
    # NAME as one shell word, so spaces at either end never match a profile.
    "profile": _aws_text(
        "a profile name", f"{_NON_EMPTY}, no spaces at either end", r"\S(?:.*\S)?"
    ),
    # Only the type here: whether the region exists is a rule of `_validate` (region_rule), so
    # the read-only operations can still warn instead of refusing (load_config's `warnings`).
    "region": _aws_text("a region name like 'us-east-1'"),
    "retryMode": _aws_choice("standard", "adaptive"),
    # NormalizeS3USEast1RegionalEndpoint reads any other text as not set.
    "s3UsEast1RegionalEndpoint": _aws_choice("legacy", "regional"),
    "s3UsePathStyle": _aws_flag,
    "secretKey": _aws_text("a secret access key", _NON_EMPTY),
    "sharedConfigFiles": _PATHS,
    "sharedCredentialsFiles": _PATHS,
    "skipCredentialsValidation": _aws_flag,
    "skipMetadataApiCheck": _aws_flag,
    "skipRegionValidation": _aws_flag,
    "skipRequestingAccountId": _aws_flag,
    "stsRegion": _aws_sts_region,
    "tagPolicyCompliance": _aws_choice("error", "warning", "disabled"),
    "token": _aws_text("a session token", _NON_EMPTY),
    "tokenBucketRateLimiterCapacity": _aws_whole(
        1, " (the capacity of the SDK's retry token bucket)"
    ),
    "useDualstackEndpoint": _aws_flag,
    "useFipsEndpoint": _aws_flag,
    "userAgents": _aws_list(_aws_text("a product like 'name/1.0'", _NON_EMPTY), "products"),
}
# The settings dbplatform itself reads from the file (the region, and the operations' profile and
# account guards): nothing decrypts a `secure:` value offline, so there it is refused.
# The settings the offline commands read from the file (the region) and those the operations read
# too (their profile and account guards): nothing decrypts a `secure:` value there, so a secret
# one is refused where it is read; elsewhere a secret is the provider's to check, decrypted.
AWS_READ_OFFLINE = ("region",)
AWS_READ_BY_OPERATIONS = ("region", "profile", "allowedAccountIds", "forbiddenAccountIds")
# Credentials: their values are never printed, secret or not (a message goes to CI logs).
_AWS_CREDENTIALS = ("accessKey", "secretKey", "token")


# What a message about an `aws:` setting shows (it goes to terminals, CI logs, --json and the audit
# log). A key Pulumi marks secret, credentials and role settings (tokens, external IDs, policies,
# session tags): no value, no rule's account of it (characters, length), no name found inside it
# but known fields. Elsewhere a name inside a value that is no known field is shown only if plain.
_AWS_NEVER_SHOWN = (*_AWS_CREDENTIALS, "assumeRoles", "assumeRoleWithWebIdentity")
# Settings holding URLs: a value is shown only when it has no '@', so no user or password.
_AWS_URLS = ("httpProxy", "httpsProxy", "ec2MetadataServiceEndpoint", "endpoints")
_PATH_PART = r"\.([^.\[]*)|(\[[0-9]+\])"
_PLAIN_NAME = r"[A-Za-z0-9_-]{1,64}"


def _field_names() -> frozenset[str]:
    """Every field name a setting's rules know (`_ASSUME_ROLE`, `_WEB_IDENTITY`, ...)."""
    return frozenset(
        {*_ASSUME_ROLE, *_WEB_IDENTITY, "tags", "keys", "keyPrefixes", *_endpoint_services()}
    )


def _shown_path(key: str, sub: str, *, hidden: bool) -> str:
    """A problem's path (`assumeRoles[0].tags.team`) as a message may show it: a name inside the
    value that is no known field is '…' when the value is hidden or the name is not plain (a
    tag key, a misspelt field: it could be a token, or hold a newline that forges a line)."""
    parts = [key]
    for name, index in re.findall(_PATH_PART, sub[len(key) :]):
        if index:
            parts.append(index)
        elif name in _field_names() or (not hidden and re.fullmatch(_PLAIN_NAME, name, re.ASCII)):
            parts.append(f".{name}")
        else:  # and nothing after it: a name may itself hold '[digits]' or '.'
            parts.append(f".{_HIDDEN}")
            break
    return "".join(parts)


def _shown_value(key: str, value: Any) -> str:
    if key in _AWS_URLS:
        return quote(value) if isinstance(value, str) and "@" not in value else f"'{_HIDDEN}'"
    return quote(value)


def _rule_of_hidden(rule: str) -> str:
    """A rule as said of a hidden value: its first words, without what it says of the value
    (characters, lengths, the parts of a URL)."""
    if rule.startswith("must be"):
        return re.split(r"[(:;]", rule, maxsplit=1)[0].rstrip()
    if rule.startswith("is not a field of "):  # names only the setting's own fields
        return rule
    return "breaks the setting's rule (its value is not shown: check it where it is set)"


def aws_setting_problems(
    config: dict[Any, Any],
    source: str,
    *,
    read_here: tuple[str, ...] = AWS_READ_OFFLINE,
    secret_keys: frozenset[str] = frozenset(),
) -> list[str]:
    """One line per `aws:` setting in a stack file's `config:` whose value breaks its type or
    AWS's rule (a name the provider does not read is refused by `read_stack_values`).

    The one check of these values, for the offline commands (through `read_stack_values`), the
    operations (through it and `aws_settings`, `read_here` their own keys) and the program
    under `pulumi up`, which passes the values the engine decrypted and `secret_keys`, the
    full keys Pulumi marks secret: no value under those keys, nor any credential or web
    identity token, is shown in a message.
    """
    lines: list[str] = []
    for full_key, raw in config.items():
        ns, _, key = str(full_key).partition(":")
        if ns != "aws" or key not in AWS_SETTINGS:
            continue
        if raw is None:
            lines.append(f"{source}: aws:{key} has no value: set one, or remove the key")
        elif is_secure(raw) and key in read_here:
            lines.append(
                f"{source}: aws:{key} is a secret (set with --secret), but dbplatform reads it "
                "from the file, where nothing decrypts it: set it without --secret"
            )
        elif not is_secure(raw):  # any other secret: the provider checks it decrypted
            hidden = str(full_key) in secret_keys or key in _AWS_NEVER_SHOWN
            for sub, value, rule in AWS_SETTINGS[key](key, raw):
                path = _shown_path(key, sub, hidden=hidden)
                if hidden:
                    lines.append(f"{source}: aws:{path} '{_HIDDEN}' {_rule_of_hidden(rule)}")
                else:
                    lines.append(f"{source}: aws:{path} {_shown_value(key, value)} {rule}")
    if config.get("aws:allowedAccountIds") and config.get("aws:forbiddenAccountIds"):
        lines.append(
            f"{source}: aws:allowedAccountIds and aws:forbiddenAccountIds are both set; the AWS "
            "provider takes one or the other (ConflictsWith): keep one"
        )
    return lines


ASSUME_ROLE_KEYS = ("aws:assumeRoles", "aws:assumeRoleWithWebIdentity")


@dataclass(frozen=True)
class AwsSettings:
    """The stack file's `aws:` provider settings the operations honour (docs/config.md)."""

    profile: str | None = None
    allowed_accounts: tuple[str, ...] | None = None
    forbidden_accounts: tuple[str, ...] = ()
    assume_role_key: str | None = None
    """The `aws:assumeRole...` key the file sets, if any (the operations refuse it)."""


def aws_settings(stack: str, root: Path = ROOT) -> AwsSettings:
    """`aws:profile`, `aws:allowedAccountIds`, `aws:forbiddenAccountIds` and whether a role
    to assume is set in `Pulumi.<stack>.yaml` (already loaded once by `load_stack`,
    which refused a file it cannot read); ConfigError naming the key for a wrong value, from
    the same check as the offline commands' (`aws_setting_problems`)."""
    path = root / f"Pulumi.{stack}.yaml"
    data = load_yaml(path.read_bytes(), path.name) or {}
    config = data.get("config") if isinstance(data, dict) else None
    config = config if isinstance(config, dict) else {}
    problems = aws_setting_problems(config, path.name, read_here=AWS_READ_BY_OPERATIONS)
    if problems:
        raise ConfigError(stack, problems)

    def accounts(key: str) -> tuple[str, ...] | None:
        raw = config.get(f"aws:{key}")
        return None if raw is None else tuple(str(item) for item in raw)

    profile = config.get("aws:profile")
    # pulumi-aws's role settings (its config/vars.py: assumeRoles, assumeRoleWithWebIdentity).
    assume = next((k for k in ASSUME_ROLE_KEYS if k in config), None)
    return AwsSettings(
        profile=profile if isinstance(profile, str) else None,
        allowed_accounts=accounts("allowedAccountIds"),
        forbidden_accounts=accounts("forbiddenAccountIds") or (),
        assume_role_key=assume,
    )


@functools.cache
def aws_provider_keys() -> frozenset[str]:
    """The `aws:` config keys the installed pulumi-aws provider reads (its `config/vars.py`),
    read as text so nothing imports the provider; empty when it is not installed. Tests keep
    AWS_SETTINGS equal to it."""
    import importlib.util

    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or spec.origin is None:
        return frozenset()
    try:
        text = (Path(spec.origin).parent / "config" / "vars.py").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    # names hold digits too: ec2MetadataServiceEndpoint, s3UsePathStyle
    return frozenset(re.findall(r"__config__\.get\w*\('([A-Za-z0-9]+)'\)", text))


def resolve_environment(
    stack: str, root: Path, environment: Any, values: dict[str, Any], region: Any
) -> tuple[dict[str, Any], Any]:
    """The values of a stack file that imports Pulumi ESC environments, as Pulumi resolves them.

    Only the Pulumi CLI can open an environment (it needs Pulumi Cloud), so its answer is the
    truth: `pulumi config --json --open` prints the stack's config with the environments'
    values merged in, secrets blinded. Without the CLI the file is refused, naming every key
    that may come from the environment, rather than read with those keys silently defaulted.
    """
    import shutil
    import subprocess

    path = root / f"Pulumi.{stack}.yaml"
    cli = shutil.which("pulumi")
    if cli is None:
        unset = [
            f"{NAMESPACE}:{camel(f.name)}"
            for f in dataclasses.fields(StackConfig)
            if f.name not in ("stack", "region") and camel(f.name) not in values
        ]
        if region is None:
            unset.insert(0, "aws:region")
        raise ConfigError(
            stack,
            [
                f"{path.name} imports Pulumi ESC environment(s) {quote(environment)} and the "
                "pulumi CLI is not on PATH to open them; these keys may come from them: "
                f"{', '.join(unset)}. Install the Pulumi CLI and log in, or set them in "
                f"{path.name}"
            ],
        )
    try:
        out = subprocess.run(
            [cli, "config", "--json", "--open", "--stack", stack, "--cwd", str(root)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        resolved = inputs.loads_json(out, "pulumi config --json")
    except subprocess.CalledProcessError as exc:
        raise ConfigError(
            stack,
            [
                f"{path.name} imports environment(s) {quote(environment)}; "
                f"`pulumi config --json --open` failed: {exc.stderr.strip()[-500:]}"
            ],
        ) from None
    except (OSError, subprocess.TimeoutExpired, inputs.InputError) as exc:
        raise ConfigError(
            stack, [f"{path.name}: cannot resolve its environment(s): {exc}"]
        ) from None
    if not isinstance(resolved, dict):
        raise ConfigError(stack, [f"{path.name}: `pulumi config --json` printed no object"])
    out_values: dict[str, Any] = {}
    for full_key, entry in resolved.items():
        ns, _, key = str(full_key).partition(":")
        if not isinstance(entry, dict):
            continue
        if entry.get("secret"):
            value: Any = {"secure": "(from the Pulumi CLI, not shown)"}
        elif "objectValue" in entry:
            value = entry["objectValue"]
        else:
            value = entry.get("value")
        if full_key == "aws:region":
            region = value
        elif ns == NAMESPACE:
            out_values[key] = value
    return out_values, region


def load_stack(stack: str, root: Path = ROOT, *, warnings: list[str] | None = None) -> StackConfig:
    """Load and validate `Pulumi.<stack>.yaml` without the Pulumi runtime (used by scripts/);
    `warnings`: see load_config."""
    values, region = read_stack_values(stack, root)
    return load_config(stack, values, region, root=root, warnings=warnings)


def committed_stacks(root: Path = ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


# ---------------------------------------------------------------------------------------------
# Rules across fields
# ---------------------------------------------------------------------------------------------

# override -> (DatabaseConfig field, the value production refuses without the override)
SAFETY_OVERRIDES: dict[str, tuple[str, bool]] = {
    "allow-single-az": ("multi_az", False),
    "allow-no-deletion-protection": ("deletion_protection", False),
    "allow-unencrypted-storage": ("storage_encrypted", False),
    "allow-skip-final-snapshot": ("skip_final_snapshot", True),
}
SUPPORTED_MAJORS = ("13", "14", "15", "16", "17")
# The name `rotate-secret --secret` uses for the master user's secret; no app secret may take it.
MASTER_SECRET_NAME = "master"
_BASE_TAG_KEYS = {"project", "stack", "owner", "cost-center", "managed-by"}
_VERSION = aws_rules.ENGINE_VERSION
_REGION = re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-(gov-)?[a-z]+-\d$")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,19}$")
_PG_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
# RDS CreateDBInstance MasterUsername (botocore rds 2014-10-31 service-2.json, the same text as
# the CreateDBInstance API reference): "1 to 16 letters, numbers, or underscores; first a
# letter; can't be a reserved word for the chosen database engine". The "1 to 63" sometimes
# quoted for PostgreSQL is Lightsail's CreateRelationalDatabase, not RDS (docs/config.md).
_MASTER_USER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
# Roles RDS for PostgreSQL creates itself ("Understanding PostgreSQL roles and permissions":
# rdsadmin, rdsrepladmin, rds_superuser) and PostgreSQL's own reserved role names (`public`, and
# `pg_*`: CREATE ROLE refuses both, "Role names beginning with pg_ are reserved"). `postgres` is
# NOT reserved: it is the console's default master user name for RDS for PostgreSQL and RDS
# accepts it.
_RESERVED_USERS = {"rdsadmin", "rdsrepladmin", "rds_superuser", "public"}
_RESERVED_USER_PREFIXES = ("pg_",)
# PostgreSQL's RESERVED_KEYWORD entries (src/include/parser/kwlist.h, PostgreSQL 13-17; the
# "reserved" rows of the docs' Appendix C "SQL Key Words"): RDS refuses them as the master
# user name and as the initial database name.
PG_RESERVED_WORDS = frozenset(
    [
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "constraint",
        "create",
        "current_catalog",
        "current_date",
        "current_role",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "from",
        "grant",
        "group",
        "having",
        "in",
        "initially",
        "intersect",
        "into",
        "lateral",
        "leading",
        "limit",
        "localtime",
        "localtimestamp",
        "not",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "placing",
        "primary",
        "references",
        "returning",
        "select",
        "session_user",
        "some",
        "symmetric",
        "system_user",
        "table",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "when",
        "where",
        "window",
        "with",
    ]
)
# AWS tag rules (botocore rds service-2.json `Tag`; "Tagging AWS resources", AWS General
# Reference): at most 50 tags per resource, keys 1-128 and values 0-256 Unicode characters of
# letters, digits, white space and _ . : / = + - @; the aws: (and for RDS rds:) prefix reserved.
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256
_RESERVED_TAG_PREFIXES = ("aws:", "rds:")
# AWS Backup BackupRuleName (botocore backup service-2.json): ^[a-zA-Z0-9\-\_\.]{1,50}$
_BACKUP_RULE_NAME = re.compile(r"^[a-zA-Z0-9\-_.]{1,50}$")
# PutBackupVaultLockConfiguration (botocore backup model docs): retention 1..36500 days,
# ChangeableForDays 3..36500.
VAULT_LOCK_MAX_DAYS = 36500
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VPC = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG = re.compile(r"^sg-[0-9a-f]{8,17}$")


# The botocore data loader `_endpoints` reads through, once one is given (`read_endpoints_with`).
_ENDPOINTS_LOADER: list[Any] = []


def read_endpoints_with(loader: Any) -> None:
    """Read botocore's endpoint data through `loader` (a `botocore.loaders.Loader`) from now on.

    An operational command passes the loader its AWS session uses, so endpoints.json (1.2 MB) is
    parsed once for both the stack file's region check and the clients' endpoint resolver.
    Offline commands never call this: they read the file as JSON, without botocore.
    """
    if loader in _ENDPOINTS_LOADER:
        return
    _ENDPOINTS_LOADER[:] = [loader]
    for cached in (_endpoints, _known_regions, region_partitions):
        cached.cache_clear()


@functools.cache
def _endpoints() -> dict[str, Any]:
    """botocore's partition and endpoint data (`botocore/data/endpoints.json`, shipped offline),
    read as the JSON file it is: a botocore session or loader costs ~0.1 s of imports and every
    offline command would pay it (perf.md §3). Empty when botocore is not installed."""
    if _ENDPOINTS_LOADER:
        loaded: dict[str, Any] = _ENDPOINTS_LOADER[0].load_data("endpoints")
        return loaded
    import importlib.util

    spec = importlib.util.find_spec("botocore")
    if spec is None or not spec.submodule_search_locations:
        return {}
    data_dir = Path(next(iter(spec.submodule_search_locations))) / "data"
    with open(data_dir / "endpoints.json", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


@functools.cache
def _known_regions() -> frozenset[str]:
    # botocore's partition data is the authority on which regions exist, with botocore's rule
    # of `get_available_regions` (an RDS endpoint named like a region of its partition);
    # tests/test_speed.py checks the two agree.
    regions: set[str] = set()
    for partition in _endpoints().get("partitions", []):
        if partition["partition"] in ("aws", "aws-us-gov"):
            endpoints = partition["services"].get("rds", {}).get("endpoints", {})
            regions.update(name for name in endpoints if name in partition["regions"])
    return frozenset(regions)


def tag_text_rule(text: str, limit: int) -> str | None:
    """Why `text` cannot be a tag key/value of at most `limit` characters, or None."""
    if len(text) > limit:
        return f"is {len(text)} characters; AWS tags allow {limit}"
    bad = sorted(
        {
            c
            for c in text
            if not (c.isalnum() or c in "_.:/=+-@" or unicodedata.category(c).startswith("Z"))
        }
    )
    if bad:
        return (
            f"contains {''.join(bad)!r}; AWS tags allow letters, digits, spaces and _ . : / = + - @"
        )
    if text.lower().startswith(_RESERVED_TAG_PREFIXES):
        return "starts with 'aws:' or 'rds:', which AWS reserves for its own tags"
    return None


@functools.cache
def region_partitions() -> dict[str, str]:
    """{region: partition} from botocore's endpoints data (ships offline with botocore)."""
    data = _endpoints()
    return {
        region: part["partition"]
        for part in data.get("partitions", [])
        for region in part.get("regions", {})
    }


def region_rule(value: str) -> str | None:
    """Why `value` is not a usable region, or None when it is."""
    # The program writes `arn:aws:` ARNs, so the regions of the other partitions (aws-cn) are
    # refused by name even though botocore knows them.
    if not _REGION.match(value):
        return "is not an AWS region name (like 'us-east-1')"
    known = _known_regions()
    if known and value not in known:
        return "is not a region where RDS is available"
    return None


def _validate(cfg: StackConfig, p: _Problems) -> None:
    """Rules across fields, one group of keys at a time; windows found valid feed later groups."""
    if cfg.region and (rule := region_rule(cfg.region)):
        p.add("region", cfg.region, rule, namespace="aws")
    _validate_stack(cfg, p)
    maint = _validate_database(cfg, p)
    bwin = _validate_backup(cfg, p, maint)
    _validate_replicas(cfg, p, maint, bwin)
    _validate_network(cfg.network, p)
    _validate_connectivity(cfg, p)
    _validate_vault(cfg, p, maint, bwin)
    _validate_alarms(cfg.alarms, p)
    _validate_storage_alarms(cfg, p)
    if not p.lines:  # the calendar is only built from windows that all parse
        _validate_calendar(cfg, p)
    _validate_dr(cfg, p)
    _validate_restore(cfg, p)
    _validate_reserved_names(cfg, p)


def _validate_reserved_names(cfg: StackConfig, p: _Problems) -> None:
    """No declared DB identifier or parameter group may have the shape of what a restore check
    or a drill creates: CI's drills role may tag, change and delete resources so named
    (infra/naming.py GENERATED_INSTANCES, devtools/iam_policies.py). A drill's own throwaway
    stack (`restore.sourceStack` S, named `drill_stack(S, run)`) is the one exception."""
    source = cfg.restore.source_stack
    if source and cfg.stack == drill_stack(source, cfg.stack.rsplit("-", 1)[-1]):
        return
    names = Names(cfg.stack)

    def why(ident: str, shape: str) -> str:
        return (
            f"gives {ident}, the shape of what a drill or restore check creates ({shape}), which "
            "CI's drills role may delete: choose another name"
        )

    for ident in (
        names.primary,
        names.cross_region_replica,
        names.parameter_group(cfg.parameter_family),
    ):
        if shape := generated_shape(ident):
            p.lines.append(f"{cfg.stack}: stack name {quote(cfg.stack)} {why(ident, shape)}")
            break
    for i, r in enumerate(cfg.replicas):
        if shape := generated_shape(names.replica(r.name)):
            p.add(f"replicas[{i}].name", r.name, why(names.replica(r.name), shape))


# Stacks that hold production data, fixed here rather than only by a line of their stack file: a
# one-line `tier: non-production` in Pulumi.prod.yaml would otherwise lift `protect` from every
# stateful resource and turn every guardrail advisory (security review M-2). Changing this set is
# a change to code that CODEOWNERS review.
PRODUCTION_STACKS = frozenset({"prod"})


def _validate_stack(cfg: StackConfig, p: _Problems) -> None:
    for role in cfg.break_glass_roles:
        if not aws_rules.IAM_ROLE.match(role):
            p.add(
                "breakGlassRoles",
                role,
                "is not an IAM role name (1-64 of letters, digits, _+=,.@-)",
            )
    for role in cfg.deploy_roles:
        if not aws_rules.IAM_ROLE.match(role):
            p.add("deployRoles", role, "is not an IAM role name (1-64 of letters, digits, _+=,.@-)")
    if cfg.is_production and not cfg.deploy_roles:
        p.add(
            "deployRoles",
            [],
            "must name the role that runs `pulumi up`: KMS refuses to create a key whose policy "
            "stops its creator from re-policying it (kms-lockout)",
        )
    if cfg.is_production and not cfg.break_glass_roles:
        p.add(
            "breakGlassRoles",
            [],
            "must name the role that may disable or delete a production key (nobody else may)",
        )
    if cfg.tier not in ("production", "non-production"):
        p.add("tier", cfg.tier, "must be 'production' or 'non-production'")
    if cfg.tier != "production" and cfg.stack in PRODUCTION_STACKS:
        p.add(
            "tier",
            cfg.tier,
            f"must be 'production': '{cfg.stack}' is a production stack in code "
            "(PRODUCTION_STACKS in infra/config.py)",
        )
    if not cfg.owner.strip():
        p.add("owner", cfg.owner, "must name the owning team")
    for o in cfg.safety_overrides:
        if o not in SAFETY_OVERRIDES:
            p.add(
                "safetyOverrides",
                o,
                f"is not a known override (known: {', '.join(SAFETY_OVERRIDES)})",
            )
    for k, v in cfg.tags.items():
        if k in _BASE_TAG_KEYS:
            p.add(f"tags.{k}", v, "overrides a base tag; set owner/costCenter instead")
            continue
        if not k.strip():
            p.add("tags", k, "has an empty tag key")
        elif rule := tag_text_rule(k, MAX_TAG_KEY):
            p.add("tags", k, f"is not a valid tag key: it {rule}")
        if rule := tag_text_rule(v, MAX_TAG_VALUE):
            p.add(f"tags.{k}", v, f"is not a valid tag value: it {rule}")
    extra = len([k for k in cfg.tags if k not in _BASE_TAG_KEYS])
    if extra + len(_BASE_TAG_KEYS) > MAX_TAGS:
        p.add(
            "tags",
            extra,
            f"holds {extra} tags; with the {len(_BASE_TAG_KEYS)} base tags that exceeds AWS's "
            f"{MAX_TAGS} tags per resource (at most {MAX_TAGS - len(_BASE_TAG_KEYS)} extra tags)",
        )
    for key, value in (("owner", cfg.owner), ("costCenter", cfg.cost_center)):
        if rule := tag_text_rule(value, MAX_TAG_VALUE):
            p.add(key, value, f"is tagged on every resource and it {rule}")
    if cfg.is_production:
        for override, (attr, unsafe) in SAFETY_OVERRIDES.items():
            value = getattr(cfg.database, attr)
            if value is unsafe and override not in cfg.safety_overrides:
                p.add(
                    f"database.{camel(attr)}",
                    value,
                    f"is unsafe for a production stack; keep the default or add "
                    f"'{override}' to {NAMESPACE}:safetyOverrides",
                )


def _validate_database(cfg: StackConfig, p: _Problems) -> windows.Window | None:
    """The primary's settings; returns its maintenance window when it parses."""
    db = cfg.database
    try:
        instance_classes.resolve(db.instance_class)
    except ValueError as exc:
        p.add("database.instanceClass", db.instance_class, str(exc))
    for key, version in (
        ("database.engineVersion", db.engine_version),
        ("database.upgradeTargetVersion", db.upgrade_target_version),
    ):
        if version is None:
            continue
        if rule := aws_rules.engine_version_rule(
            version, db.auto_minor_version_upgrade and key == "database.engineVersion"
        ):
            p.add(key, version, rule)
        elif version.split(".")[0] not in SUPPORTED_MAJORS:
            p.add(
                key,
                version,
                f"has a major version RDS does not offer (one of {', '.join(SUPPORTED_MAJORS)})",
            )
    target = db.upgrade_target_version
    if (
        target is not None
        and _VERSION.match(target)
        and target.split(".")[0] in SUPPORTED_MAJORS
        and cfg.engine_major.isdigit()
        and int(target.split(".")[0]) < int(cfg.engine_major)
    ):
        p.add(
            "database.upgradeTargetVersion",
            target,
            f"is older than database.engineVersion ({db.engine_version}); RDS cannot "
            "downgrade: remove it",
        )
    if not 20 <= db.allocated_storage <= 65536:
        p.add("database.allocatedStorage", db.allocated_storage, "must be 20..65536 GiB for gp3")
    # Integer arithmetic: 110% of 100 GiB is exactly 110, which `100 * 1.1` is not.
    if db.max_allocated_storage != 0 and (
        db.max_allocated_storage * 10 < db.allocated_storage * 11
        or db.max_allocated_storage > 65536
    ):
        p.add(
            "database.maxAllocatedStorage",
            db.max_allocated_storage,
            f"must be 0 (no autoscaling) or between 110% of allocatedStorage "
            f"({db.allocated_storage}) and 65536 GiB",
        )
    pi = db.performance_insights_retention_days
    if not aws_rules.performance_insights_retention_ok(pi):
        p.add(
            "database.performanceInsightsRetentionDays",
            pi,
            "must be 7, 731, or 31 times a number of months 1..23 (RDS's valid values)",
        )
    if db.monitoring_interval not in (0, 1, 5, 10, 15, 30, 60):
        p.add(
            "database.monitoringInterval",
            db.monitoring_interval,
            "must be 0, 1, 5, 10, 15, 30 or 60",
        )
    if not 1150 <= db.port <= 65535:
        p.add("database.port", db.port, "must be 1150..65535")
    if not _PG_IDENT.match(db.db_name):
        p.add("database.dbName", db.db_name, "must start with a letter; letters, digits, _; <= 63")
    elif db.db_name.lower() in PG_RESERVED_WORDS | {"rdsadmin", "template0", "template1"}:
        p.add(
            "database.dbName",
            db.db_name,
            "is a PostgreSQL reserved word or a database RDS keeps (kwlist.h, RDS docs)",
        )
    if not _MASTER_USER.match(db.master_username):
        p.add(
            "database.masterUsername",
            db.master_username,
            "must be 1-16 letters, digits or _, starting with a letter (RDS MasterUsername)",
        )
    elif (
        (low := db.master_username.lower()) in _RESERVED_USERS
        or low in PG_RESERVED_WORDS
        or low.startswith(_RESERVED_USER_PREFIXES)
    ):
        p.add(
            "database.masterUsername",
            db.master_username,
            "is reserved: a PostgreSQL reserved word (kwlist.h) or role name (public, pg_*) "
            f"or a role RDS creates ({', '.join(sorted(_RESERVED_USERS - {'public'}))})",
        )
    if db.slow_query_ms < -1:
        p.add("database.slowQueryMs", db.slow_query_ms, "must be -1 (off) or >= 0")
    maint = _window(p, "database.maintenanceWindow", db.maintenance_window, windows.parse_weekly)
    if maint and not 30 <= maint.length <= 24 * 60:
        p.add(
            "database.maintenanceWindow", db.maintenance_window, "must last 30 minutes to 24 hours"
        )
    return maint


def _validate_backup(
    cfg: StackConfig, p: _Problems, maint: windows.Window | None
) -> windows.Window | None:
    """Automated backups, the plan, the vault lock; returns the backup window when it parses."""
    bk, lock = cfg.backup, cfg.backup.vault_lock
    if not 0 <= bk.retention_days <= 35:
        p.add("backup.retentionDays", bk.retention_days, "must be 0..35 days")
    elif bk.retention_days < 1 and cfg.is_production:
        p.add("backup.retentionDays", bk.retention_days, "must be >= 1 in production")
    elif bk.retention_days < 1 and (
        cfg.replicas or cfg.database.blue_green or cfg.dr.backup_replication
    ):
        p.add(
            "backup.retentionDays",
            bk.retention_days,
            "must be >= 1 when replicas, blue/green or backup replication are on "
            "(RDS needs automated backups for them)",
        )
    continuous = [r for r in bk.plan if r.continuous]
    if len(continuous) > 1:
        p.add("backup.plan", [r.name for r in continuous], "has more than one continuous rule")
    elif continuous and continuous[0].retention_days != bk.retention_days:
        # AWS Backup takes over the instance's automated-backup retention once a continuous
        # rule covers it; two different numbers would be a permanent diff on every `pulumi up`.
        p.add(
            "backup.retentionDays",
            bk.retention_days,
            f"must equal the continuous rule's retentionDays ({continuous[0].retention_days}): "
            "AWS Backup manages the instance's PITR retention once it backs it up continuously",
        )
    bwin = _window(p, "backup.window", bk.window, windows.parse_daily)
    if bwin and bwin.length < 30:
        p.add("backup.window", bk.window, "must last at least 30 minutes")
    if bwin and maint and (at := bwin.first_overlap(maint)) is not None:
        p.add(
            "backup.window",
            bk.window,
            f"overlaps maintenance window '{cfg.database.maintenance_window}' on "
            f"{windows.day_name(at)}",
        )
    rule_names = [r.name for r in bk.plan]
    for i, rule in enumerate(bk.plan):
        key = f"backup.plan[{i}]"
        if not _BACKUP_RULE_NAME.match(rule.name):
            p.add(
                f"{key}.name",
                rule.name,
                "must be 1-50 letters, digits, '-', '_' or '.' (AWS Backup BackupRuleName)",
            )
        elif rule_names.count(rule.name) > 1:
            p.add(f"{key}.name", rule.name, "is used by more than one rule")
        if rule.continuous and not 1 <= rule.retention_days <= 35:
            p.add(
                f"{key}.retentionDays", rule.retention_days, "must be 1..35 for a continuous rule"
            )
        elif not 1 <= rule.retention_days <= 36500:
            p.add(f"{key}.retentionDays", rule.retention_days, "must be 1..36500 days")
        if not 60 <= rule.start_window_minutes <= 720:
            p.add(f"{key}.startWindowMinutes", rule.start_window_minutes, "must be 60..720")
        _window(
            p,
            f"{key}.schedule",
            rule.schedule,
            functools.partial(cron_window, length_minutes=rule.start_window_minutes),
        )
        if (
            lock.enabled
            and not lock.min_retention_days <= rule.retention_days <= lock.max_retention_days
        ):
            p.add(
                f"{key}.retentionDays",
                rule.retention_days,
                f"is outside the vault lock's {lock.min_retention_days}..{lock.max_retention_days} "
                "days (backup.vaultLock); AWS Backup would refuse the recovery points",
            )
    if lock.enabled:
        # PutBackupVaultLockConfiguration (botocore backup model): retention 1..36500 days,
        # ChangeableForDays 3..36500.
        if not 1 <= lock.min_retention_days <= lock.max_retention_days:
            p.add(
                "backup.vaultLock.minRetentionDays",
                lock.min_retention_days,
                f"must be >= 1 and <= maxRetentionDays ({lock.max_retention_days})",
            )
        if not 1 <= lock.max_retention_days <= VAULT_LOCK_MAX_DAYS:
            p.add(
                "backup.vaultLock.maxRetentionDays",
                lock.max_retention_days,
                f"must be 1..{VAULT_LOCK_MAX_DAYS} days (AWS Backup Vault Lock)",
            )
        if not 3 <= lock.changeable_for_days <= VAULT_LOCK_MAX_DAYS:
            p.add(
                "backup.vaultLock.changeableForDays",
                lock.changeable_for_days,
                f"must be 3..{VAULT_LOCK_MAX_DAYS} days (AWS Backup Vault Lock)",
            )
    if bk.restore_testing:
        _window(
            p,
            "backup.restoreTestingSchedule",
            bk.restore_testing_schedule,
            functools.partial(cron_window, length_minutes=60),
        )
    return bwin


def _validate_replicas(
    cfg: StackConfig, p: _Problems, maint: windows.Window | None, bwin: windows.Window | None
) -> None:
    names = [r.name for r in cfg.replicas]
    for i, r in enumerate(cfg.replicas):
        key = f"replicas[{i}]"
        if not _NAME.match(r.name):
            p.add(
                f"{key}.name",
                r.name,
                "must be 1-20 characters of a-z, 0-9, '-', starting with a letter",
            )
        elif "--" in r.name or r.name.endswith("-"):
            p.add(
                f"{key}.name",
                r.name,
                "must not contain '--' or end with '-' (RDS DB instance identifiers cannot)",
            )
        elif names.count(r.name) > 1:
            p.add(f"{key}.name", r.name, "is used by more than one replica; names must be unique")
        if r.name == "dr":
            p.add(f"{key}.name", r.name, "is reserved for the cross-region replica")
        if r.instance_class is not None:
            try:
                instance_classes.resolve(r.instance_class)
            except ValueError as exc:
                p.add(f"{key}.instanceClass", r.instance_class, str(exc))
        if r.availability_zone is not None and not (
            r.availability_zone.startswith(cfg.region)
            and re.match(r"^[a-z]$", r.availability_zone[len(cfg.region) :])
        ):
            p.add(
                f"{key}.availabilityZone",
                r.availability_zone,
                f"is not an availability zone of {cfg.region}",
            )
        if r.maintenance_window is not None:
            rw = _window(p, f"{key}.maintenanceWindow", r.maintenance_window, windows.parse_weekly)
            for name, other in (
                ("the primary's maintenance window", maint),
                ("the backup window", bwin),
            ):
                if rw and other and rw.overlaps(other):
                    p.add(f"{key}.maintenanceWindow", r.maintenance_window, f"overlaps {name}")
    if len(cfg.replicas) > 15:
        p.add("replicas", len(cfg.replicas), "has more than the 15 read replicas RDS allows")


def _validate_network(net: NetworkConfig, p: _Problems) -> None:
    if net.vpc_id is not None:
        if not _VPC.match(net.vpc_id):
            p.add("network.vpcId", net.vpc_id, "is not a VPC id (vpc-...)")
        if len(net.subnet_ids) < 2:
            p.add(
                "network.subnetIds",
                list(net.subnet_ids),
                "must list >= 2 subnets (in >= 2 AZs) with vpcId",
            )
        for i, subnet in enumerate(net.subnet_ids):
            if not _SUBNET.match(subnet):
                p.add(f"network.subnetIds[{i}]", subnet, "is not a subnet id (subnet-...)")
            elif subnet in net.subnet_ids[:i]:
                p.add(
                    f"network.subnetIds[{i}]",
                    subnet,
                    "is listed twice (a DB subnet group needs distinct subnets in >= 2 AZs)",
                )
    else:
        if net.subnet_ids:
            p.add(
                "network.subnetIds",
                list(net.subnet_ids),
                "needs network.vpcId (or remove it to create a VPC)",
            )
        try:
            vnet = ipaddress.ip_network(net.cidr)
            if vnet.version != 4 or not 16 <= vnet.prefixlen <= 24:
                p.add("network.cidr", net.cidr, "must be an IPv4 CIDR from /16 to /24")
        except ValueError:
            p.add("network.cidr", net.cidr, "is not a CIDR")
        if not 2 <= net.az_count <= 6:
            p.add("network.azCount", net.az_count, "must be 2..6 (RDS subnet groups need >= 2 AZs)")
    for i, c in enumerate(net.allowed_cidrs):
        if rule := _private_cidr_rule(c):
            p.add(f"network.allowedCidrs[{i}]", c, rule)
        elif c in net.allowed_cidrs[:i]:
            p.add(f"network.allowedCidrs[{i}]", c, "is listed twice")
    for i, sg in enumerate(net.allowed_security_group_ids):
        if not _SG.match(sg):
            p.add(
                f"network.allowedSecurityGroupIds[{i}]", sg, "is not a security group id (sg-...)"
            )
        elif sg in net.allowed_security_group_ids[:i]:
            p.add(f"network.allowedSecurityGroupIds[{i}]", sg, "is listed twice")


# Where a database client may sit: the private ranges of RFC 1918 and the shared address space
# of RFC 6598. Any CIDR outside them (0.0.0.0/1, 1.0.0.0/8, ...) reaches into the internet, and
# every CIDR inside them has a prefix of /8 or longer. docs/vault-backups-alarms.md explains
# the choice; security groups (allowedSecurityGroupIds) are the narrower alternative.
PRIVATE_RANGES = tuple(
    ipaddress.ip_network(c)
    for c in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)


def _private_cidr_rule(cidr: str) -> str | None:
    """Why `cidr` may not be admitted to (or routed from) the database, or None."""
    try:
        net = ipaddress.ip_network(cidr)
    except ValueError:
        return "is not a CIDR (host bits must be zero)"
    if net.version != 4 or not any(net.subnet_of(r) for r in PRIVATE_RANGES):  # type: ignore[arg-type]
        return (
            "is not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
            "100.64.0.0/10): it would admit the internet"
        )
    return None


_TGW = re.compile(r"^tgw-[0-9a-f]{8,17}$")
_RTB = re.compile(r"^rtb-[0-9a-f]{8,17}$")


def _validate_connect(
    key: str, c: ConnectConfig, own_cidr: str | None, p: _Problems, region: str
) -> None:
    """One connect block: its mode's ids are present and well-formed, its CIDRs are private."""
    # The program accepts its own peering request (auto_accept), which AWS allows only within
    # one account and region (terraform-provider-aws vpc_peering_connection `auto_accept`;
    # botocore ec2 CreateVpcPeeringConnection.PeerOwnerId/PeerRegion): a foreign peer needs
    # the accepter side declared in the peer's account or region (infra review N8).
    if c.peer_owner_id is not None:
        p.add(
            f"{key}.peerOwnerId",
            c.peer_owner_id,
            "must be null: peering is declared within this account only (a cross-account "
            "peering needs an accepter in the peer's account; use a transit gateway)",
        )
    if c.peer_region is not None and c.peer_region != region:
        p.add(
            f"{key}.peerRegion",
            c.peer_region,
            f"must be null or {region!r}: peering is declared within one region only (a "
            "cross-region peering needs an accepter in the peer's region)",
        )
    if c.mode not in ("none", "peering", "transitGateway"):
        p.add(f"{key}.mode", c.mode, "must be 'none', 'peering' or 'transitGateway'")
        return
    if c.mode == "none":
        return
    if not c.peer_cidrs:
        p.add(f"{key}.peerCidrs", [], f"must list the application's CIDRs with mode {c.mode}")
    for cidr in c.peer_cidrs:
        if rule := _private_cidr_rule(cidr):
            p.add(f"{key}.peerCidrs", cidr, rule)
        elif own_cidr and _overlaps(cidr, own_cidr):
            p.add(f"{key}.peerCidrs", cidr, f"overlaps the database VPC's CIDR {own_cidr}")
    if c.mode == "peering":
        if c.peer_vpc_id is None or not _VPC.match(c.peer_vpc_id):
            p.add(f"{key}.peerVpcId", c.peer_vpc_id, "must be the application's VPC id (vpc-...)")
        if not c.peer_route_table_ids:
            p.add(
                f"{key}.peerRouteTableIds",
                [],
                "must list the application's route tables that route back to the database",
            )
        for rtb in c.peer_route_table_ids:
            if not _RTB.match(rtb):
                p.add(f"{key}.peerRouteTableIds", rtb, "is not a route table id (rtb-...)")
    if c.mode == "transitGateway" and (
        c.transit_gateway_id is None or not _TGW.match(c.transit_gateway_id)
    ):
        p.add(f"{key}.transitGatewayId", c.transit_gateway_id, "must be a transit gateway id")


def _overlaps(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b))
    except ValueError:
        return False


def _validate_connectivity(cfg: StackConfig, p: _Problems) -> None:
    """A created VPC must be connected to the application's network; the DR VPC likewise."""
    net, dr = cfg.network, cfg.dr
    created = net.vpc_id is None
    _validate_connect("network.connect", net.connect, net.cidr if created else None, p, cfg.region)
    if not created and net.connect.mode != "none":
        p.add(
            "network.connect.mode",
            net.connect.mode,
            "applies to a created VPC only; with network.vpcId the database is already in "
            "the application's VPC: set it to 'none'",
        )
    if cfg.is_production and created and net.connect.mode == "none":
        p.add(
            "network.connect.mode",
            "none",
            "leaves a production database unreachable: run it in the application's VPC "
            "(network.vpcId and subnetIds) or connect the created VPC (peering or "
            "transitGateway with the application's ids)",
        )
    if dr.region is None:
        return
    try:
        ipaddress.ip_network(dr.cidr)
    except ValueError:
        p.add("dr.cidr", dr.cidr, "is not a CIDR")
        return
    if rule := _private_cidr_rule(dr.cidr):
        p.add("dr.cidr", dr.cidr, rule)
    others = [("network.cidr", net.cidr)] if created else []
    others += [("network.connect.peerCidrs", c) for c in net.connect.peer_cidrs]
    others += [("network.allowedCidrs", c) for c in net.allowed_cidrs]
    for key, other in others:
        if _overlaps(dr.cidr, other):
            p.add(
                "dr.cidr",
                dr.cidr,
                f"overlaps {key} {other}: the DR VPC could never be routed to from there",
            )
    _validate_connect("dr.connect", dr.connect, dr.cidr, p, dr.region or cfg.region)
    if cfg.is_production and dr.connect.mode == "none":
        p.add(
            "dr.connect.mode",
            "none",
            "leaves the production DR database unreachable after a failover: connect the DR "
            "VPC to the application's DR network (peering or transitGateway)",
        )


def _validate_vault(
    cfg: StackConfig, p: _Problems, maint: windows.Window | None, bwin: windows.Window | None
) -> None:
    vault = cfg.vault
    if not 7 <= vault.rotation_days <= 365:
        p.add(
            "vault.rotationDays",
            vault.rotation_days,
            "must be 7..365 (rotation runs in the weekly vault.rotationWindow)",
        )
    rot = _window(p, "vault.rotationWindow", vault.rotation_window, windows.parse_weekly)
    if rot:
        if not 60 <= rot.length <= 24 * 60:
            p.add("vault.rotationWindow", vault.rotation_window, "must last 1 to 24 hours")
        # Secrets Manager opens rotation windows on the hour, for whole hours, within one UTC day.
        if rot.start % 60 or rot.length % 60:
            p.add(
                "vault.rotationWindow",
                vault.rotation_window,
                "must start and end on the hour (Secrets Manager rotation windows are whole hours)",
            )
        elif rot.start % windows.MINUTES_PER_DAY + rot.length > windows.MINUTES_PER_DAY:
            p.add(
                "vault.rotationWindow",
                vault.rotation_window,
                "must end by midnight UTC (Secrets Manager rotation windows cannot cross days)",
            )
        for name, other in (("maintenance window", maint), ("backup window", bwin)):
            if other and rot.overlaps(other):
                p.add("vault.rotationWindow", vault.rotation_window, f"overlaps the {name}")
    secret_names = [s.name for s in vault.app_secrets]
    for i, s in enumerate(vault.app_secrets):
        if not _NAME.match(s.name) or "--" in s.name or s.name.endswith("-"):
            p.add(
                f"vault.appSecrets[{i}].name",
                s.name,
                "must be 1-20 characters of a-z, 0-9, '-', starting with a letter, without "
                "'--' or a trailing '-' (it is part of the secret's name)",
            )
        elif s.name == MASTER_SECRET_NAME:
            p.add(
                f"vault.appSecrets[{i}].name",
                s.name,
                "is reserved: rotate-secret's master names the master user's secret",
            )
        elif secret_names.count(s.name) > 1:
            p.add(f"vault.appSecrets[{i}].name", s.name, "is used by more than one secret")
        if not 32 <= s.length <= 4096:
            p.add(f"vault.appSecrets[{i}].length", s.length, "must be 32..4096")
        if s.kind not in APP_SECRET_KINDS:
            p.add(f"vault.appSecrets[{i}].kind", s.kind, f"must be one of {APP_SECRET_KINDS}")


def _validate_alarms(alarms: AlarmsConfig, p: _Problems) -> None:
    seen: set[tuple[str, str, str]] = set()
    for i, sub in enumerate(alarms.subscriptions):
        key = f"alarms.subscriptions[{i}]"
        if sub.severity not in ("critical", "warning"):
            p.add(f"{key}.severity", sub.severity, "must be 'critical' or 'warning'")
        if sub.protocol not in ("email", "https"):
            p.add(f"{key}.protocol", sub.protocol, "must be 'email' or 'https'")
        elif isinstance(sub.endpoint, Secret):
            pass  # opaque offline; the program checks the plaintext Pulumi decrypts
        elif sub.protocol == "email":
            if not _EMAIL.match(sub.endpoint) or len(sub.endpoint) > 254:
                p.add(f"{key}.endpoint", sub.endpoint, "is not an email address")
        elif rule := url_rule(sub.endpoint, ("https",)):
            p.add(f"{key}.endpoint", sub.endpoint, rule)
        triple = (sub.severity, sub.protocol, sub.endpoint)
        if triple in seen and not isinstance(sub.endpoint, Secret):
            p.add(f"{key}.endpoint", sub.endpoint, f"is subscribed twice to {sub.severity}")
        seen.add(triple)
    url = alarms.health_check_url
    if url is not None and (rule := url_rule(url, ("http", "https"))):
        p.add("alarms.healthCheckUrl", url, rule)
    _validate_thresholds(alarms.thresholds, p)


def url_rule(url: str, schemes: tuple[str, ...], *, max_path: int | None = 255) -> str | None:
    """Why `url` is not a usable URL of `schemes` with a host, or None.

    Route 53 health checks take a host of <= 255 characters, a port 1..65535 and a resource
    path of <= 255 characters (botocore route53 model: FullyQualifiedDomainName, Port,
    ResourcePath); SNS https subscriptions need a host as well. `max_path` None: no Route 53
    path limit (the provider's endpoints and proxies).
    """
    kinds = " or ".join(f"{s}://" for s in schemes)
    if any(c.isspace() for c in url):
        return f"must be a {kinds} URL without spaces"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        # not the parser's own words: they quote the host and port, where a password may be
        return "is not a valid URL (its host or port cannot be read; a port must be 1..65535)"
    if parts.scheme not in schemes:
        return f"must be a {kinds} URL"
    if not parts.hostname:
        return f"must name a host after {parts.scheme}://"
    if port is not None and not 1 <= port <= 65535:
        return "has a port outside 1..65535"
    if len(parts.hostname) > 255:
        return "has a host longer than 255 characters"
    if max_path is not None and len(parts.path or "/") + len(parts.query) > max_path:
        return f"has a path longer than {max_path} characters (Route 53 ResourcePath)"
    return None


# RDS storage autoscaling triggers when free space is <= 10 % of the allocation for 5 minutes
# (RDS User Guide, "Managing capacity automatically with Amazon RDS storage autoscaling").
AUTOSCALING_TRIGGER_FREE_PERCENT = 10


def _validate_storage_alarms(cfg: StackConfig, p: _Problems) -> None:
    critical = cfg.alarms.thresholds.free_storage_percent.critical
    if cfg.database.max_allocated_storage and critical >= AUTOSCALING_TRIGGER_FREE_PERCENT:
        p.add(
            "alarms.thresholds.freeStoragePercent.critical",
            critical,
            f"must be below RDS's storage autoscaling trigger ({AUTOSCALING_TRIGGER_FREE_PERCENT} "
            "% free) while database.maxAllocatedStorage is set, or every autoscale pages",
        )


def _validate_calendar(cfg: StackConfig, p: _Problems) -> None:
    """Nothing scheduled collides where AWS or safety requires it."""
    try:
        calendar = cfg.calendar()
    except windows.WindowError as exc:
        p.add("replicas", [r.name for r in cfg.replicas], f"cannot be scheduled: {exc}")
        return
    keys = _calendar_keys(cfg)
    for a, b, at in windows.collisions(calendar):
        if {a.kind, b.kind} == {"backup-plan", "restore-test"}:
            continue  # a restore test may run while a copy job runs
        key_a, value_a = keys.get(a.name, (a.name, a.window.to_rds()))
        key_b, value_b = keys.get(b.name, (b.name, b.window.to_rds()))
        p.add(
            key_a,
            value_a,
            f"({a.name}, {a.window.to_rds()}) overlaps {NAMESPACE}:{key_b} {quote(value_b)} "
            f"({b.name}, {b.window.to_rds()}) on {windows.day_name(at)}; move one of them",
        )


def _calendar_keys(cfg: StackConfig) -> dict[str, tuple[str, Any]]:
    """{calendar entry name: (the config key that sets its window, that key's value)}."""
    out: dict[str, tuple[str, Any]] = {
        "primary maintenance": ("database.maintenanceWindow", cfg.database.maintenance_window),
        "automated backup": ("backup.window", cfg.backup.window),
        "master secret rotation": ("vault.rotationWindow", cfg.vault.rotation_window),
        "restore test": ("backup.restoreTestingSchedule", cfg.backup.restore_testing_schedule),
    }
    for i, rule in enumerate(cfg.backup.plan):
        out[f"backup plan rule {rule.name}"] = (f"backup.plan[{i}].schedule", rule.schedule)
    for i, r in enumerate(cfg.replicas):
        # A replica without its own window gets one derived from the primary's: the key to
        # change is then the replica's (set one) or the primary's.
        out[f"replica {r.name} maintenance"] = (
            f"replicas[{i}].maintenanceWindow",
            r.maintenance_window,
        )
    return out


def _validate_dr(cfg: StackConfig, p: _Problems) -> None:
    dr = cfg.dr
    if dr.region is not None:
        if rule := region_rule(dr.region):
            p.add("dr.region", dr.region, rule)
        elif dr.region == cfg.region:
            p.add("dr.region", dr.region, "must differ from the stack's region")
        elif (part := region_partitions().get(dr.region)) != (
            home := region_partitions().get(cfg.region)
        ) and home:
            p.add(
                "dr.region",
                dr.region,
                f"is in AWS partition {part}, the stack's region {cfg.region} in {home}: "
                "snapshots, backups and secrets cannot be copied across partitions",
            )
    elif dr.cross_region_replica or dr.backup_replication:
        on = " and ".join(
            f"dr.{key}"
            for key, value in (
                ("crossRegionReplica", dr.cross_region_replica),
                ("backupReplication", dr.backup_replication),
            )
            if value
        )
        p.add("dr.region", None, f"is required with {on}: set it, or turn {on} off")
    if dr.cross_region_replica and cfg.database.blue_green:
        p.add(
            "dr.crossRegionReplica",
            True,
            "cannot be combined with database.blueGreen: RDS Blue/Green deployments do not "
            "support cross-Region read replicas; turn one of them off",
        )
    if not 1 <= dr.backup_replication_retention_days <= 35:
        p.add(
            "dr.backupReplicationRetentionDays",
            dr.backup_replication_retention_days,
            "must be 1..35",
        )
    if dr.rpo_minutes < 1:
        p.add("dr.rpoMinutes", dr.rpo_minutes, "must be >= 1")
    if dr.rto_minutes < 1:
        p.add("dr.rtoMinutes", dr.rto_minutes, "must be >= 1")


def _validate_restore(cfg: StackConfig, p: _Problems) -> None:
    """Restore provenance, set on stacks rebuilt by `dbplatform dr rebuild`."""
    rs = cfg.restore
    if rs.adopt_identifier is not None:
        if rs.source_stack is None:
            p.add("restore.sourceStack", None, "is required with restore.adoptIdentifier")
        if (
            not re.match(r"^[a-z][a-z0-9-]{0,62}$", rs.adopt_identifier)
            or "--" in rs.adopt_identifier
        ):
            p.add(
                "restore.adoptIdentifier", rs.adopt_identifier, "is not an RDS instance identifier"
            )
    if rs.source_region is not None and (rule := region_rule(rs.source_region)):
        p.add("restore.sourceRegion", rs.source_region, rule)
    if rs.restore_time is not None:
        try:
            when = datetime.datetime.fromisoformat(rs.restore_time.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.utcoffset() != datetime.timedelta(0):
            p.add(
                "restore.restoreTime",
                rs.restore_time,
                "must be an ISO 8601 time in UTC (e.g. 2026-01-31T03:00:00Z)",
            )
    if rs.source_stack is not None and rs.source_stack == cfg.stack:
        p.add("restore.sourceStack", rs.source_stack, "must name another stack than this one")


# metric -> True when higher is worse (warning must then be below critical)
_HIGHER_IS_WORSE = {
    "cpu_percent": True,
    "free_storage_percent": False,
    "freeable_memory_percent": False,
    "connections_percent": True,
    "read_latency_ms": True,
    "write_latency_ms": True,
    "disk_queue_depth": True,
    "max_used_transaction_ids": True,
    "replication_slot_lag_gib": True,
    "transaction_logs_disk_percent": True,
    "cpu_credit_balance": False,
    "replica_lag_seconds": True,
}
_PERCENT = {
    "cpu_percent",
    "free_storage_percent",
    "freeable_memory_percent",
    "connections_percent",
    "transaction_logs_disk_percent",
}


def _validate_thresholds(t: ThresholdsConfig, p: _Problems) -> None:
    for f in dataclasses.fields(t):
        th: Threshold = getattr(t, f.name)
        key = f"alarms.thresholds.{camel(f.name)}"
        for tier in ("warning", "critical"):
            v = getattr(th, tier)
            if v < 0 or (f.name in _PERCENT and v > 100):
                rng = "0..100" if f.name in _PERCENT else ">= 0"
                p.add(f"{key}.{tier}", v, f"is out of range ({rng})")
        if _HIGHER_IS_WORSE[f.name] and th.warning >= th.critical:
            p.add(f"{key}.warning", th.warning, f"must be below critical ({th.critical})")
        if not _HIGHER_IS_WORSE[f.name] and th.warning <= th.critical:
            p.add(f"{key}.warning", th.warning, f"must be above critical ({th.critical})")
    if t.max_used_transaction_ids.critical > 2_000_000_000:
        p.add(
            "alarms.thresholds.maxUsedTransactionIds.critical",
            t.max_used_transaction_ids.critical,
            "must be below 2,000,000,000 (wraparound stops writes at 2^31)",
        )


def _window(
    p: _Problems, key: str, text: str, parse: typing.Callable[[str], windows.Window]
) -> windows.Window | None:
    try:
        return parse(text)
    except windows.WindowError as exc:
        p.add(key, text, f"is invalid: {exc}")
        return None
