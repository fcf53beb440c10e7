"""Render a manifest for people: a reviewer's Markdown summary and a Mermaid drawing of the
environment (regions, components, the resources inside, replication and backup-copy arrows).

Both are pure functions of the manifest, so they are as deterministic as the manifest itself.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from infra.stateful import STATEFUL_TYPES
from policy import windows
from policy.manifest import RDS_INSTANCE, Manifest, Resource, is_replica, points_to
from policy.manifest import SECRET as SECRET_VALUE
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
        f"Written offline by `dbplatform synth --stack {m.stack} --format markdown` from "
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


# ---------------------------------------------------------------------------------------------
# Pictures people read at page width: the overview, alarm routing, the weekly calendar
# ---------------------------------------------------------------------------------------------

SNS_TOPIC = "aws:sns/topic:Topic"
SNS_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
EVENT_RULE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET = "aws:cloudwatch/eventTarget:EventTarget"
RDS_EVENTS = "aws:rds/eventSubscription:EventSubscription"
SECRET = "aws:secretsmanager/secret:Secret"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
# The README's overview stays readable at GitHub's ~900 px column only when it is small: more
# read replicas than this become one node ("5 read replicas").
_REPLICAS_DRAWN = 3
OVERVIEW_MAX_NODES = 20


def _q(text: str) -> str:
    """A Mermaid node label: double quotes would end it, so they become single ones."""
    return text.replace('"', "'")


def _topics(m: Manifest) -> dict[str, Resource]:
    return {t.urn: t for t in m.of_type(SNS_TOPIC)}


def _topic_of(m: Manifest, r: Resource) -> Resource | None:
    """The SNS topic an alarm, event target or subscription sends to (its declared dependency)."""
    topics = _topics(m)
    for dep in r.dependencies:
        if dep in topics:
            return topics[dep]
    target = r.get("targetId")
    if isinstance(target, str):  # event targets name the topic (`critical-topic`)
        for t in topics.values():
            if t.name.endswith("-" + target.removesuffix("-topic")):
                return t
    return None


def _severity(m: Manifest, topic: Resource) -> str:
    """`critical` for the topic `alarms-critical` and for its DR-region copy
    `alarms-critical-us-west-2` (the region is not part of the severity)."""
    name, region = topic.name, m.region_of(topic)
    name = name.removesuffix(f"-{region}") if region else name
    return name.rsplit("-", 1)[-1]


def _topic_id(m: Manifest, topic: Resource) -> str:
    """One Mermaid node id per topic: `t_critical` in the stack's region, `t_critical_us_west_2`
    in another (Mermaid merges nodes that share an id, so two topics must never share one)."""
    sev = re.sub(r"\W", "_", _severity(m, topic))
    region = m.region_of(topic)
    return f"t_{sev}" if region == m.region else f"t_{sev}_" + re.sub(r"\W", "_", region)


def _routed(m: Manifest, topic: Resource) -> bool:
    """Whether an alarm, an EventBridge target or an RDS event subscription sends to `topic`."""
    sources = (*m.of_type(METRIC_ALARM), *m.of_type(EVENT_TARGET), *m.of_type(RDS_EVENTS))
    return any(_topic_of(m, r) is topic for r in sources)


def _subscriber(m: Manifest, sub: Resource) -> str:
    """`pager (https: events.pagerduty.com)`, `email: oncall@example.com`; for an endpoint that
    is a secret, which subscription it is: `email subscriber, critical #2 (endpoint secret)`.

    One subscriber per subscription of the stack file: the copies of a subscription in each
    region (`alarms-critical-email-1` and `...-us-west-2`) are one; two subscriptions whose
    endpoints are hidden are never drawn as one (a warning would seem to wake the pager)."""
    protocol, endpoint = str(sub.get("protocol") or "?"), str(sub.get("endpoint") or "?")
    if endpoint == SECRET_VALUE:  # an endpoint is a credential (a pager's key): it never shows
        region = m.region_of(sub)
        name = sub.name.removesuffix(f"-{region}") if region else sub.name
        parts = name.rsplit("-", 3)  # <component>-<tier>-<protocol>-<index> (infra alarms.py)
        if len(parts) == 4 and parts[2] == protocol and parts[3].isdigit():
            return f"{protocol} subscriber, {parts[1]} #{int(parts[3]) + 1} (endpoint secret)"
        return f"{protocol} subscriber {name} (endpoint secret)"
    if protocol in ("https", "http"):
        host = endpoint.split("://", 1)[-1].split("/", 1)[0]
        kind = "pager" if "pagerduty" in host or "opsgenie" in host else "webhook"
        return f"{kind} ({protocol}: {host})"
    return f"{protocol}: {endpoint}"


def _clients(m: Manifest) -> str:
    """Who may connect to PostgreSQL, from the primary region's ingress rules on 5432."""
    sources = sorted(
        str(r.get("cidrIpv4"))
        for r in m.of_type(INGRESS)
        if m.region_of(r) == m.region and r.get("fromPort") == 5432 and r.get("cidrIpv4")
    )
    return "clients<br/>" + ", ".join(sources) if sources else "clients"


def overview(m: Manifest) -> str:
    """A small `flowchart LR` of what matters to a reader (at most OVERVIEW_MAX_NODES nodes).

    The primary with its Multi-AZ standby, the replicas, the clients, the vault of secrets and
    its DR replicas, the backups and the DR vault, and the alarms to the pager. The full graph
    of every resource is `mermaid()` (docs/pictures.md).
    """
    lines = ["flowchart LR"]
    dr = m.dr_region
    instances = m.db_instances()
    primaries = [r for r in instances if not is_replica(r)]
    replicas = [r for r in instances if is_replica(r)]
    local = [r for r in replicas if m.region_of(r) == m.region]
    remote = [r for r in replicas if m.region_of(r) != m.region]
    secrets = [s for s in m.of_type(SECRET) if m.region_of(s) == m.region]
    replicated = [s for s in secrets if s.get("replicas")]
    vaults = m.of_type(BACKUP_VAULT)
    home_vaults = [v for v in vaults if m.region_of(v) == m.region]
    dr_vaults = [v for v in vaults if m.region_of(v) != m.region]
    pitr = m.of_type(BACKUPS_REPLICATION)
    alarms = [a for a in m.of_type(METRIC_ALARM) if m.region_of(a) == m.region]
    rules = [r for r in m.of_type(EVENT_RULE) if m.region_of(r) == m.region]
    # what watches the DR region notifies the DR region's topics (each region its own)
    dr_alarms = [a for a in m.of_type(METRIC_ALARM) if m.region_of(a) != m.region]
    dr_rules = [r for r in m.of_type(EVENT_RULE) if m.region_of(r) != m.region]
    topics = sorted(_topics(m).values(), key=lambda t: t.name)
    subs = m.of_type(SNS_SUBSCRIPTION)

    lines.append(f'  app(["{_q(_clients(m))}"])')
    lines.append(f'  subgraph home["{m.region} (primary region)"]')
    for i, p in enumerate(primaries):
        engine = f"PostgreSQL {p.get('engineVersion') or ''}".strip()
        lines.append(
            f'    db{i}[("{_q(p.physical_name or p.name)}<br/>primary · {engine}<br/>'
            f'{p.get("instanceClass") or ""}")]'
        )
        if p.get("multiAz") is True:
            lines.append(f'    sb{i}[("Multi-AZ standby<br/>synchronous, other AZ")]')
    if len(local) > _REPLICAS_DRAWN:
        lines.append(f'    rr[("{len(local)} read replicas")]')
    else:
        for i, r in enumerate(local):
            lines.append(f'    rr{i}[("{_q(r.physical_name or r.name)}<br/>read replica")]')
    if secrets:
        lines.append(f'    sec["Secrets Manager<br/>{len(secrets)} secrets (master rotated)"]')
    for i, v in enumerate(home_vaults):
        lines.append(f'    bv{i}["backup vault<br/>{_q(v.physical_name or v.name)}"]')
    if alarms or rules:
        lines.append(f'    al["{len(alarms)} CloudWatch alarms<br/>{len(rules)} event rules"]')
    home_topics = [t for t in topics if m.region_of(t) == m.region]
    dr_topics = [t for t in topics if m.region_of(t) != m.region]
    for t in home_topics:
        lines.append(f'    {_topic_id(m, t)}{{{{"SNS {_severity(m, t)}"}}}}')
    lines.append("  end")
    if dr and (remote or replicated or dr_vaults or pitr or dr_topics or dr_alarms or dr_rules):
        lines.append(f'  subgraph dr["{dr} (DR region)"]')
        for i, r in enumerate(remote):
            lines.append(f'    xr{i}[("{_q(r.physical_name or r.name)}<br/>cross-region replica")]')
        if replicated:
            lines.append(f'    secdr["secret replicas<br/>{len(replicated)} of {len(secrets)}"]')
        for i, v in enumerate(dr_vaults):
            lines.append(f'    dv{i}["DR vault<br/>{_q(v.physical_name or v.name)}"]')
        if pitr:
            lines.append('    pitr["PITR backups<br/>(automated backups replication)"]')
        if dr_alarms or dr_rules:
            counts = ((len(dr_alarms), "CloudWatch alarms"), (len(dr_rules), "event rules"))
            watch = "<br/>".join(f"{n} {what}" for n, what in counts if n)
            lines.append(f'    aldr["{watch}"]')
        for t in dr_topics:
            lines.append(f'    {_topic_id(m, t)}{{{{"SNS {_severity(m, t)}"}}}}')
        lines.append("  end")
    receivers = sorted({_subscriber(m, s) for s in subs})
    for i, text in enumerate(receivers):
        lines.append(f'  rx{i}(["{_q(text)}"])')

    # edges
    for i, p in enumerate(primaries):
        lines.append(f"  app -- SQL :5432 --> db{i}")
        if p.get("multiAz") is True:
            lines.append(f"  db{i} -. sync .-> sb{i}")
    src = "db0" if primaries else None
    if src:
        if len(local) > _REPLICAS_DRAWN:
            lines.append(f"  {src} -- replicates --> rr")
        else:
            lines += [f"  {src} -- replicates --> rr{i}" for i in range(len(local))]
        lines += [f"  {src} -- replicates --> xr{i}" for i in range(len(remote))]
        lines += [f"  {src} -. backup .-> bv{i}" for i in range(len(home_vaults))]
        if pitr:
            lines.append(f"  {src} -. PITR .-> pitr")
        if secrets:
            lines.append(f"  sec -. credentials .-> {src}")
    if replicated:
        lines.append("  sec -. replicates .-> secdr")
    for i in range(len(home_vaults)):
        lines += [f"  bv{i} -. copies .-> dv{j}" for j in range(len(dr_vaults))]
    if (alarms or rules) and src:
        lines.append(f"  {src} -. metrics .-> al")
    for t in topics:
        if _routed(m, t):
            home = m.region_of(t) == m.region
            if (home and (alarms or rules)) or (not home and (dr_alarms or dr_rules)):
                lines.append(f"  {'al' if home else 'aldr'} --> {_topic_id(m, t)}")
    for t in topics:
        for text in sorted({_subscriber(m, s) for s in subs if _topic_of(m, s) is t}):
            lines.append(f"  {_topic_id(m, t)} --> rx{receivers.index(text)}")
    return "\n".join(lines) + "\n"


def alarm_routing(m: Manifest) -> str:
    """`flowchart LR`: alarm sources by severity -> SNS topic -> subscribers.

    A topic in another region than the stack's (the DR region's copy of a severity) is its own
    node, named with its region, with the alarms and rules of that region."""
    topics = sorted(_topics(m).values(), key=lambda t: (m.region_of(t) != m.region, t.name))
    lines = ["flowchart LR"]
    subs = m.of_type(SNS_SUBSCRIPTION)
    receivers = sorted({_subscriber(m, s) for s in subs})
    for t in topics:
        sev, tid = _severity(m, t), _topic_id(m, t)
        key = tid.removeprefix("t_")
        alarms = [a for a in m.of_type(METRIC_ALARM) if _topic_of(m, a) is t]
        targets = [e for e in m.of_type(EVENT_TARGET) if _topic_of(m, e) is t]
        metrics = sorted({str(a.get("metricName")) for a in alarms})
        shown = ", ".join(metrics[:4]) + (
            f" and {len(metrics) - 4} more" if len(metrics) > 4 else ""
        )
        if alarms:
            lines.append(f'  a_{key}["{len(alarms)} {sev} alarms<br/>{_q(shown)}"]')
            lines.append(f"  a_{key} --> {tid}")
        if targets:
            rules = ", ".join(
                sorted(str(e.get("rule")).removeprefix(f"{m.project}-{m.stack}-") for e in targets)
            )
            lines.append(f'  e_{key}["{len(targets)} EventBridge rules<br/>{_q(rules)}"]')
            lines.append(f"  e_{key} --> {tid}")
        where = "" if m.region_of(t) == m.region else f"<br/>in {m.region_of(t)}"
        lines.append(f'  {tid}{{{{"SNS topic<br/>{_q(t.physical_name or t.name)}{where}"}}}}')
    for i, e in enumerate(m.of_type(RDS_EVENTS)):
        cats = ", ".join(str(c) for c in e.get("eventCategories") or [])
        source = str(e.get("sourceType") or "all sources")
        target = _topic_of(m, e) or next(iter(topics), None)
        if target is not None:
            lines.append(f'  rds_events{i}["RDS event subscription ({_q(source)})<br/>{_q(cats)}"]')
            lines.append(f"  rds_events{i} --> {_topic_id(m, target)}")
    for i, text in enumerate(receivers):
        lines.append(f'  rx{i}(["{_q(text)}"])')
    for t in topics:
        for text in sorted({_subscriber(m, s) for s in subs if _topic_of(m, s) is t}):
            lines.append(f"  {_topic_id(m, t)} --> rx{receivers.index(text)}")
    return "\n".join(lines) + "\n"


def calendar_gantt(m: Manifest) -> str:
    """The weekly maintenance calendar as a Mermaid `gantt` over one day (UTC).

    A week-wide axis would make an hour five pixels wide at page width, so the axis is a day:
    one section for the windows that open every day, then one per weekday that has its own
    windows. Mermaid draws a `HH:mm` chart in the reader's time zone consistently on both the
    bars and the axis, so the times read as written (UTC).
    """
    lines = [
        "gantt",
        f"  title {m.stack}: maintenance calendar, UTC (one row per window)",
        "  dateFormat HH:mm",
        "  axisFormat %H:%M",
    ]
    daily: list[tuple[int, str, windows.Window]] = []
    weekly: dict[int, list[tuple[int, str, windows.Window]]] = {}
    for c in m.calendar:
        w = windows.parse_any(c.window)
        day, minute = divmod(w.start % windows.MINUTES_PER_WEEK, windows.MINUTES_PER_DAY)
        entry = (minute, f"{c.name} ({c.kind})".replace(":", " "), w)
        if w.daily:
            daily.append(entry)
        else:
            weekly.setdefault(day, []).append(entry)
    sections = ([("every day", daily)] if daily else []) + [
        (windows.DAYS[d].capitalize(), weekly[d]) for d in sorted(weekly)
    ]
    for title, entries in sections:
        lines.append(f"  section {title}")
        for minute, label, w in sorted(entries, key=lambda e: (e[0], e[1])):
            lines.append(f"  {label} :{minute // 60:02d}:{minute % 60:02d}, {w.length}m")
    return "\n".join(lines) + "\n"
