"""Render a manifest for people: a reviewer's Markdown summary and a Mermaid drawing of the
environment (regions, components, the resources inside, replication and backup-copy arrows).

Both are pure functions of the manifest, so they are as deterministic as the manifest itself.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from infra.stateful import STATEFUL_TYPES
from policy import windows
from policy.manifest import RDS_INSTANCE, Manifest, Resource, is_replica, points_to
from policy.rules import BACKUP_VAULT, BACKUPS_REPLICATION, copies_to, plans_selecting

_DASH = "—"
# In the drawing, more than this many resources of one type in one component become one node
# ("65 × cloudwatch/metricAlarm"); the types the arrows connect are always drawn one by one.
_COLLAPSE_OVER = 4
_ALWAYS_DRAWN = frozenset({RDS_INSTANCE, BACKUP_VAULT, BACKUPS_REPLICATION})


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text.replace("|", "\\|").replace("\n", " ")


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _short_type(type_token: str) -> str:
    """`aws:rds/instance:Instance` -> `rds/instance`; components and providers keep their name."""
    parts = type_token.split(":")
    if len(parts) != 3 or "/" not in parts[1]:
        return type_token
    module = parts[1]
    return f"{parts[0]}/{module[len('index/') :]}" if module.startswith("index/") else module


def _protections(r: Resource) -> tuple[str, str, str]:
    """(deletion protection, final snapshot, encryption) cells for one stateful resource."""
    if r.type == RDS_INSTANCE:
        deletion = _yes(r.get("deletionProtection") is True)
        if is_replica(r):
            final = "replica (none)"
        elif r.get("skipFinalSnapshot") is True:
            final = "**skipped**"
        else:
            final = f"`{r.get('finalSnapshotIdentifier') or '?'}`"
        encrypted = _yes(r.get("storageEncrypted") is True)
        return deletion, final, encrypted
    key = {
        "aws:secretsmanager/secret:Secret": "kmsKeyId",
        "aws:backup/vault:Vault": "kmsKeyArn",
    }.get(r.type)
    encrypted = _yes(bool(r.get(key))) if key else _DASH
    if r.type == "aws:kms/key:Key":
        encrypted = f"rotation {_yes(r.get('enableKeyRotation') is True)}"
    return _DASH, _DASH, encrypted


def markdown(m: Manifest) -> str:
    """A reviewer's summary: counts by type, stateful resources and protections, the calendar."""
    custom = [r for r in m.resources if r.custom and not r.type.startswith("pulumi:providers:")]
    components = [r for r in m.resources if not r.custom]
    lines = [
        f"# `{m.stack}`: declared infrastructure",
        "",
        f"Region `{m.region}` · tier `{m.tier}` · DR region `{m.dr_region or 'none'}` · "
        f"{len(custom)} cloud resources in {len(components)} components.",
        "",
        f"Written offline by `python -m scripts.synth --stack {m.stack} --format markdown` from "
        f"`Pulumi.{m.stack}.yaml`. Values shown as `(known after deploy)` are assigned by AWS; "
        "secret values are redacted.",
        "",
        "## Resources by type",
        "",
        "| type | count |",
        "|---|---:|",
    ]
    for type_token, count in sorted(Counter(r.type for r in custom).items()):
        lines.append(f"| `{type_token}` | {count} |")

    lines += [
        "",
        "## Stateful resources and their protections",
        "",
        "| resource | type | physical name | region | protect | retain on delete "
        "| deletion protection | final snapshot | encryption |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(STATEFUL_TYPES)
    stateful = sorted(
        (r for r in custom if r.type in STATEFUL_TYPES),
        key=lambda r: (order.index(r.type), m.region_of(r) != m.region, r.name),
    )
    for r in stateful:
        deletion, final, encrypted = _protections(r)
        lines.append(
            f"| `{r.name}` | {_short_type(r.type)} | `{r.physical_name or _DASH}` "
            f"| {m.region_of(r)} | {_yes(r.protect)} | {_yes(r.retain_on_delete)} "
            f"| {deletion} | {final} | {encrypted} |"
        )

    lines += ["", "## Maintenance calendar (UTC)", ""]
    if m.calendar:
        entries = [
            windows.CalendarEntry(c.name, windows.parse_any(c.window), c.kind) for c in m.calendar
        ]
        lines.append(windows.render_calendar(entries))
    else:
        lines.append("No calendar in this manifest.")

    lines += ["", "## Stack exports", "", "| export | value |", "|---|---|"]
    for key, value in sorted(m.outputs.items()):
        lines.append(f"| `{key}` | {_cell(value)} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Mermaid
# ---------------------------------------------------------------------------------------------


def _edges(m: Manifest, ids: dict[str, str]) -> list[str]:
    """Replication and backup arrows, each as one Mermaid line."""
    out: set[str] = set()
    instances = m.db_instances()
    for r in instances:
        source = m.replication_source(r) if is_replica(r) else None
        if source is not None and source.urn in ids and r.urn in ids:
            cross = m.region_of(source) != m.region_of(r)
            label = "replicates cross-region" if cross else "replicates"
            out.add(f"  {ids[source.urn]} -- {label} --> {ids[r.urn]}")
    vaults = m.of_type(BACKUP_VAULT)
    for inst in instances:
        for plan in plans_selecting(m, inst):
            for rule in plan.get("rules") or []:
                if not isinstance(rule, dict):
                    continue
                target = next(
                    (v for v in vaults if points_to(plan, rule.get("targetVaultName"), v)), None
                )
                if target is not None and inst.urn in ids and target.urn in ids:
                    out.add(f"  {ids[inst.urn]} -. backup .-> {ids[target.urn]}")
                for action in rule.get("copyActions") or []:
                    if not isinstance(action, dict) or target is None:
                        continue
                    for dest in vaults:
                        region = m.region_of(dest)
                        if dest.urn != target.urn and copies_to(m, plan, action, region, [dest]):
                            out.add(f"  {ids[target.urn]} -. copies to DR .-> {ids[dest.urn]}")
    for rep in m.of_type(BACKUPS_REPLICATION):
        for inst in instances:
            if points_to(rep, rep.get("sourceDbInstanceArn"), inst, m.region):
                out.add(f"  {ids[inst.urn]} -. PITR backups .-> {ids[rep.urn]}")
    return sorted(out)


def mermaid(m: Manifest) -> str:
    """A `flowchart LR` of the environment: one box per region, one per component inside it."""
    nodes = sorted(
        (r for r in m.resources if r.custom and not r.type.startswith("pulumi:providers:")),
        key=lambda r: r.urn,
    )
    groups: dict[tuple[str, str], list[Resource]] = {}
    for r in nodes:
        component = m.component_of(r)
        groups.setdefault((m.region_of(r), component.urn if component else ""), []).append(r)

    ids: dict[str, str] = {}
    lines = ["flowchart LR"]
    regions = sorted({region for region, _ in groups}, key=lambda x: (x != m.region, x))
    for ri, region in enumerate(regions):
        role = "primary region" if region == m.region else "DR region"
        lines.append(f'  subgraph r{ri}["{region} ({role})"]')
        comps = sorted(c for reg, c in groups if reg == region)
        for ci, comp_urn in enumerate(comps):
            comp = m.by_urn.get(comp_urn)
            title = f"{comp.type.rsplit(':', 1)[-1]}: {comp.name}" if comp else "stack"
            lines.append(f'    subgraph r{ri}c{ci}["{title}"]')
            members = groups[(region, comp_urn)]
            per_type = Counter(r.type for r in members)
            collapsed: set[str] = set()
            for r in members:
                node = f"n{len(ids)}"
                if per_type[r.type] > _COLLAPSE_OVER and r.type not in _ALWAYS_DRAWN:
                    if r.type in collapsed:
                        continue
                    collapsed.add(r.type)
                    label = f"{per_type[r.type]} × {_short_type(r.type)}"
                else:
                    label = f"{r.physical_name or r.name}<br/>{_short_type(r.type)}"
                ids[r.urn] = node
                lines.append(f'      {node}["{label.replace(chr(34), chr(39))}"]')
            lines.append("    end")
        lines.append("  end")
    lines += _edges(m, ids)
    return "\n".join(lines) + "\n"
