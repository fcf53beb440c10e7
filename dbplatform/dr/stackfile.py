"""The config of a DR stack (`Pulumi.<NEW>.yaml`), derived from the source stack's values.

The DR stack keeps every setting of its source (the same program declares the same
environment) except what cannot carry over to another region: the region itself, region-bound
ids (VPC, subnets, security groups, availability zones) and the DR links back to a region that
may be down. It records where its database came from in `restore:`, so the program adopts
(imports) the restored instance instead of creating an empty one.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from dbplatform.dr.points import iso
from infra.config import NAMESPACE
from infra.naming import STACK_NAME

_REGION_WORDS = {
    "east": "e",
    "west": "w",
    "north": "n",
    "south": "s",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
}


class StackFileError(Exception):
    """The DR stack's config cannot be derived or written; the message says what to do."""


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a DR stack's database came from (the `restore:` group)."""

    source_stack: str
    """the stack rebuilt"""
    source_region: str
    """its region"""
    adopt_identifier: str
    """the restored DB instance the DR stack imports"""
    restored_from: str
    """restore point used (snapshot id or ARN)"""
    restore_time: datetime
    """the moment the restored data reflects"""


@dataclass(frozen=True, kw_only=True)
class TargetNetwork:
    """The VPC the restored instance lives in; the DR stack's groups go into the same VPC."""

    vpc_id: str
    """VPC of the subnet group used by the restore"""
    subnet_ids: tuple[str, ...]
    """its subnets"""


def region_short(region: str) -> str:
    """'us-west-2' -> 'usw2', 'ap-southeast-1' -> 'apse1'."""
    parts = region.split("-")
    return "".join(_REGION_WORDS.get(p, p) for p in parts)


def default_target_stack(source: str, region: str) -> str:
    """The DR stack a rebuild writes without `--as`: `<source>-<short region>`."""
    short = region_short(region)
    head = source[: 24 - len(short) - 1].rstrip("-")
    return f"{head}-{short}"


def check_target_name(source: str, target: str) -> None:
    """Raise StackFileError when `target` cannot name a DR stack of `source`."""
    if not STACK_NAME.match(target):
        raise StackFileError(
            f"--as '{target}' is not a stack name: 1-24 characters of a-z, 0-9 and '-', "
            "starting with a letter"
        )
    if target == source:
        raise StackFileError(
            f"--as '{target}' is the source stack itself; a rebuild writes a new stack "
            f"(e.g. --as {default_target_stack(source, 'us-west-2')})"
        )


def _secure_keys(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return [path]
        return [k for key, v in value.items() for k in _secure_keys(v, f"{path}.{key}")]
    if isinstance(value, list):
        return [k for i, v in enumerate(value) for k in _secure_keys(v, f"{path}[{i}]")]
    return []


def derive_values(
    source_values: dict[str, Any],
    *,
    provenance: Provenance,
    network: TargetNetwork | None,
    throwaway: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The DR stack's `dbplatform:` values and one note per setting changed from the source.

    `throwaway` (a drill): the database is unprotected and deleted without a final snapshot,
    as the drill's restored instance is, so tearing the drill stack down leaves nothing behind.
    """
    secure = [k for key, v in source_values.items() for k in _secure_keys(v, key)]
    if secure:
        raise StackFileError(
            f"stack '{provenance.source_stack}' has encrypted values ({', '.join(secure)}) "
            "that only its own secrets provider can read; set them again on the new stack, "
            "each with --secret, after the rebuild, and remove them from the copy"
        )
    values = copy.deepcopy(source_values)
    notes: list[str] = []

    dr = dict(values.get("dr") or {})
    if dr.get("region") or dr.get("crossRegionReplica") or dr.get("backupReplication", True):
        notes.append(
            f"dr: region null, no cross-region replica, no backup replication (they pointed "
            f"back at {provenance.source_region}); choose a DR region for the new stack once "
            "it serves traffic"
        )
    # The source's DR network settings describe the application's network in this region.
    dr_connect = dict(dr.pop("connect", None) or {})
    dr_cidr = dr.pop("cidr", None)
    dr.update({"region": None, "crossRegionReplica": False, "backupReplication": False})
    values["dr"] = dr

    replicas = values.get("replicas") or []
    if any(isinstance(r, dict) and r.get("availabilityZone") for r in replicas):
        notes.append("replicas: availabilityZone dropped (zones of the source region); RDS picks")
        values["replicas"] = [
            {k: v for k, v in r.items() if k != "availabilityZone"} if isinstance(r, dict) else r
            for r in replicas
        ]

    net = dict(values.get("network") or {})
    if net.get("allowedSecurityGroupIds"):
        notes.append(
            "network.allowedSecurityGroupIds dropped (security groups of the source region); "
            "add the application's security groups of the new region"
        )
        net["allowedSecurityGroupIds"] = []
    peer_cidrs = list(dr_connect.get("peerCidrs") or [])
    if peer_cidrs:
        net["allowedCidrs"] = peer_cidrs
        notes.append(f"network.allowedCidrs {peer_cidrs} (the source's dr.connect.peerCidrs)")
    if network is not None:
        net["vpcId"] = network.vpc_id
        net["subnetIds"] = list(network.subnet_ids)
        # The source stack connected this VPC (dr.connect); it has no internet route, so the
        # rotation function needs the Secrets Manager endpoint.
        net["connect"] = {"mode": "none"}
        net["privateSecretsEndpoint"] = True
        notes.append(
            f"network: vpcId {network.vpc_id} (the VPC the restored database was placed in, "
            "connected by the source stack's dr.connect), a Secrets Manager endpoint in it"
        )
    else:
        if net.get("vpcId") or net.get("subnetIds"):
            net.pop("vpcId", None)
            net.pop("subnetIds", None)
            notes.append("network: source vpcId/subnetIds dropped; the program creates a VPC")
        if dr_cidr:
            net["cidr"] = dr_cidr
        if dr_connect or net.get("connect"):
            net["connect"] = dr_connect or {"mode": "none"}
            notes.append("network: cidr and connect from the source's dr.cidr and dr.connect")
    if net:
        values["network"] = net

    # Route 53 publishes health-check metrics only in one region, so the program puts the health
    # alarm and its topics there; when that is the failed region, `pulumi up` would stall on it.
    from infra.components.alarms import HEALTH_CHECK_METRICS_REGION

    alarms = dict(values.get("alarms") or {})
    if alarms.get("healthCheckUrl") and provenance.source_region == HEALTH_CHECK_METRICS_REGION:
        alarms["healthCheckUrl"] = None
        values["alarms"] = alarms
        notes.append(
            f"alarms.healthCheckUrl null: its alarm must live in {HEALTH_CHECK_METRICS_REGION}, "
            "the source region; set it again once that region is back"
        )

    if throwaway:
        db = dict(values.get("database") or {})
        db.update({"deletionProtection": False, "skipFinalSnapshot": True})
        values["database"] = db
        overrides = list(values.get("safetyOverrides") or [])
        for name in ("allow-no-deletion-protection", "allow-skip-final-snapshot"):
            if name not in overrides:
                overrides.append(name)
        values["safetyOverrides"] = overrides
        notes.append("drill: no deletion protection, no final snapshot (torn down at the end)")

    tags = dict(values.get("tags") or {})
    tags["dr-source-stack"] = provenance.source_stack
    values["tags"] = tags

    values["restore"] = {
        "sourceStack": provenance.source_stack,
        "sourceRegion": provenance.source_region,
        "adoptIdentifier": provenance.adopt_identifier,
        "restoredFrom": provenance.restored_from,
        "restoreTime": iso(provenance.restore_time),
    }
    return values, notes


def render(values: dict[str, Any], region: str, *, header: list[str]) -> str:
    """The stack file's text: a comment header, then `config:` like the committed files."""
    config: dict[str, Any] = {"aws:region": region}
    for key, value in values.items():
        config[f"{NAMESPACE}:{key}"] = value
    body = yaml.safe_dump({"config": config}, sort_keys=False, default_flow_style=False)
    lines = [f"# {line}" if line else "#" for line in header]
    return "\n".join(lines) + "\n" + body


def header_for(provenance: Provenance, command: str, notes: list[str]) -> list[str]:
    return [
        f"DR stack written by `{command}`:",
        f"rebuilt from stack '{provenance.source_stack}' ({provenance.source_region}), data as "
        f"of {iso(provenance.restore_time)},",
        f"restore point {provenance.restored_from}.",
        "The program adopts (imports) the restored instance named in restore.adoptIdentifier.",
        *(f"- {n}" for n in notes),
    ]


def existing_source(root: Path, stack: str) -> str | None:
    """`restore.sourceStack` of an existing `Pulumi.<stack>.yaml`, '' if it has none."""
    path = root / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        return ""
    restore = (data.get("config") or {}).get(f"{NAMESPACE}:restore") or {}
    return str(restore.get("sourceStack") or "") if isinstance(restore, dict) else ""


def write(root: Path, stack: str, text: str) -> Path:
    """Write `Pulumi.<stack>.yaml` under root atomically (a half-written config never loads)."""
    if not STACK_NAME.match(stack):
        raise StackFileError(f"'{stack}' is not a stack name")
    path = root / f"Pulumi.{stack}.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
