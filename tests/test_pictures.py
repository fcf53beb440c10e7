"""The pictures people read (README overview, docs/pictures.md, the blue/green cycle) are current,
say what they claim from the code they are drawn from, and are Mermaid that parses.

Two syntax checks: a structural one here (always: balanced blocks, edges between declared nodes,
gantt tasks that Mermaid can place), and Mermaid's own parser when node and the `mermaid` npm
package are installed (`make mermaid`; skipped with the reason otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from dbplatform.bluegreen import model
from dbplatform.bluegreen.cycle import NO_CYCLE, TRANSITIONS, legal_commands, state_diagram
from dbplatform.manifest.render import OVERVIEW_MAX_NODES, alarm_routing, calendar_gantt, overview
from dbplatform.manifest.timing import critical_path, to_gantt
from devtools import gen_docs
from policy import windows
from policy.manifest import Manifest, is_replica

ROOT = Path(__file__).resolve().parent.parent
MERMAID_DIR = Path(os.environ.get("DBPLATFORM_MERMAID_DIR", ROOT / "build" / "mermaid"))


def prod() -> Manifest:
    return gen_docs.prod_manifest(ROOT)  # type: ignore[no-any-return]


def mermaid_blocks() -> list[tuple[str, str]]:
    """(file, diagram) for every Mermaid block in README.md and docs/."""
    out = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for body in re.findall(r"```mermaid\n(.*?)```", text, re.S):
            out.append((path.relative_to(ROOT).as_posix(), body))
    return out


# --- current ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", gen_docs.BLOCKS, ids=lambda b: f"{b.file}:{b.name}")
def test_every_generated_block_matches_its_source(block: gen_docs.Block) -> None:
    text = (ROOT / block.file).read_text(encoding="utf-8")
    assert gen_docs.current_block(text, block.name) == block.render(ROOT).strip(), (
        f"{block.file} block {block.name} is stale: run `make docs`"
    )


# --- what each picture says ------------------------------------------------------------------

NODE = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(\[\(|\(\[|\{\{|\[|\(|\{)")


def flowchart_nodes(diagram: str) -> set[str]:
    return {
        m.group(1)
        for line in diagram.splitlines()
        if (m := NODE.match(line)) and not line.strip().startswith("subgraph")
    }


def test_the_readme_overview_is_small_and_has_what_a_reader_asks_for() -> None:
    m = prod()
    diagram = overview(m)
    nodes = flowchart_nodes(diagram)
    assert len(nodes) <= OVERVIEW_MAX_NODES, sorted(nodes)
    primary = next(r for r in m.db_instances() if not is_replica(r))
    assert f"{primary.physical_name}<br/>primary" in diagram
    assert "Multi-AZ standby" in diagram  # prod is Multi-AZ
    for r in m.db_instances():
        if is_replica(r):
            assert f"{r.physical_name}<br/>" in diagram
    assert "clients<br/>10.20.0.0/16" in diagram  # the stack's allowed CIDR
    assert "secret replicas<br/>4 of 4" in diagram and f"{m.dr_region} (DR region)" in diagram
    assert "dbplatform-prod-vault" in diagram and "DR vault<br/>dbplatform-prod-dr-vault" in diagram
    assert "bv0 -. copies .-> dv0" in diagram
    # alarms reach the pager through the critical topic
    assert "al --> t_critical" in diagram
    # the pager's endpoint is a secret (its key is in the URL): only its protocol shows
    pager = next(line for line in diagram.splitlines() if "https subscriber" in line)
    assert f"t_critical --> {pager.split('(')[0].strip()}" in diagram
    assert "pagerduty" not in diagram


def test_the_overview_stays_small_with_the_most_replicas_rds_allows() -> None:
    m = prod()
    primary = next(r for r in m.db_instances() if not is_replica(r))
    replica = next(r for r in m.db_instances() if is_replica(r))
    from dataclasses import replace

    many = tuple(replace(replica, urn=f"{replica.urn}-{i}", name=f"r{i}") for i in range(15))
    big = replace(m, resources=(*m.resources, *many))
    nodes = flowchart_nodes(overview(big))
    assert len(nodes) <= OVERVIEW_MAX_NODES
    assert "17 read replicas" in overview(big) and primary.physical_name in overview(big)


def test_the_state_diagram_has_every_phase_of_the_record_and_marks_where_writes_are_lost() -> None:
    phases = {
        v
        for k, v in vars(model).items()
        if k.isupper() and isinstance(v, str) and v.islower() and k not in ("OLD_SUFFIX",)
    } - {model.OLD_SUFFIX, model.NEW_SUFFIX}
    drawn = {t.source for t in TRANSITIONS} | {t.target for t in TRANSITIONS}
    assert phases <= drawn, f"phases of model.py missing from cycle.py: {phases - drawn}"
    assert set(model.OPEN_PHASES) <= drawn
    lossy = {(t.source, t.target) for t in TRANSITIONS if t.loses_writes}
    # Writes move to green at the switchover: only a rollback after it loses any.
    assert lossy == {
        (model.SWITCHING, model.ROLLING_BACK),  # switched over, the promote cut short after
        (model.SWITCHED_OVER, model.ROLLING_BACK),
        (model.PROMOTED, model.ROLLING_BACK),
    }
    assert legal_commands(model.STARTED) == ["promote", "rollback"]
    assert legal_commands(model.PROMOTED) == ["finalize", "rollback"]
    assert legal_commands(NO_CYCLE) == ["start"]
    assert state_diagram().count("loses writes") == 3


def test_the_critical_path_gantt_is_as_long_as_the_path() -> None:
    m = prod()
    paths = [critical_path(m, s) for s in ("fresh", "dr-rebuild")]
    chart = to_gantt(paths)
    for p in paths:
        seconds = 0
        for s in p.steps:
            if s.minutes > 0:
                assert f"{s.name} ({s.minutes:g} min)" in chart
                seconds += max(1, round(s.minutes * 60))
        assert abs(seconds / 60 - p.minutes) < 0.1 * len(p.steps)
        assert f"({p.minutes:.0f} min)" in chart
    assert "crit," in chart  # the database steps stand out


def test_the_calendar_gantt_has_every_window_on_its_day_at_its_time() -> None:
    m = prod()
    chart = calendar_gantt(m)
    sections: dict[str, list[str]] = {}
    current = ""
    for line in chart.splitlines():
        if line.strip().startswith("section "):
            current = line.strip().removeprefix("section ")
        elif current:
            sections.setdefault(current, []).append(line.strip())
    for c in m.calendar:
        w = windows.parse_any(c.window)
        day, minute = divmod(w.start, windows.MINUTES_PER_DAY)
        where = "every day" if w.daily else windows.DAYS[day].capitalize()
        row = f"{c.name} ({c.kind}) :{minute // 60:02d}:{minute % 60:02d}, {w.length}m"
        assert row in sections[where], (row, sections)


def test_alarm_routing_counts_every_alarm_once_under_its_severity() -> None:
    m = prod()
    chart = alarm_routing(m)
    counts = [int(x) for x in re.findall(r'"(\d+) \w+ alarms<br/>', chart)]
    assert sum(counts) == len(m.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"))
    assert "t_critical --> " in chart and "https subscriber, critical #1 (endpoint secret)" in chart


def test_each_subscription_is_its_own_subscriber_even_with_its_endpoint_hidden() -> None:
    """UX review: every endpoint is a secret, so every email subscriber read the same and was
    drawn once, and the warning topic seemed to wake the pager's on-call address."""
    m = prod()
    home = [
        s for s in m.of_type("aws:sns/topicSubscription:TopicSubscription")
        if m.region_of(s) == m.region
    ]  # fmt: skip
    for chart in (overview(m), alarm_routing(m)):
        receivers = re.findall(r'^\s*(rx\d+)\(\["([^"]+)"\]\)$', chart, re.M)
        assert len(receivers) == len(home) == 3, receivers
        reach = {
            topic: set(re.findall(rf"^\s*{topic} --> (rx\d+)$", chart, re.M))
            for topic in ("t_critical", "t_warning")
        }
        assert reach["t_critical"] and reach["t_warning"]
        assert not reach["t_critical"] & reach["t_warning"], chart
        # the DR region's copy of a topic reaches the same subscribers as the home one
        for topic in ("t_critical", "t_warning"):
            dr_copy = set(re.findall(rf"^\s*{topic}_us_west_2 --> (rx\d+)$", chart, re.M))
            assert dr_copy == reach[topic]


def test_each_alarm_topic_and_rds_event_subscription_is_its_own_node_in_its_region() -> None:
    # Mermaid merges nodes that share an id: prod's DR-region copy of each topic was once drawn
    # as "SNS 2" (the last dash-part of `alarms-critical-us-west-2`), one node for two topics.
    m = prod()
    topics = m.of_type("aws:sns/topic:Topic")
    assert {m.region_of(t) for t in topics} == {m.region, m.dr_region}, "prod: a topic pair each"

    def topic_nodes(text: str) -> list[tuple[str, str]]:
        return re.findall(r'^\s*(\w+)\{\{"SNS (\w+)"\}\}$', text, re.M)

    ov = overview(m)
    home, dr = ov.split(f'subgraph dr["{m.dr_region} (DR region)"]', 1)
    dr = dr.split("\n  end\n", 1)[0]
    for part, region in ((home, m.region), (dr, m.dr_region)):
        assert sorted(sev for _, sev in topic_nodes(part)) == sorted(
            t.name.split("-")[1] for t in topics if m.region_of(t) == region
        ), (region, part)
    assert len({node for node, _ in topic_nodes(ov)}) == len(topics)
    # the DR region's topics hear only what watches the DR region (UX review: the home alarms
    # box fed the DR critical topic, as if the primary's alarms paged through us-west-2)
    dr_id = next(n for n, sev in topic_nodes(dr) if sev == "critical")
    assert f"aldr --> {dr_id}" in ov and f"al --> {dr_id}" not in ov
    home_rules = [
        r for r in m.of_type("aws:cloudwatch/eventRule:EventRule") if m.region_of(r) == m.region
    ]
    assert f'{len(home_rules)} event rules"]' in home and "aldr[" in dr

    routing = alarm_routing(m)
    drawn = re.findall(
        r'^\s*(\w+)\{\{"SNS topic<br/>([\w-]+)(?:<br/>in ([\w-]+))?"\}\}$', routing, re.M
    )
    assert len({node for node, _, _ in drawn}) == len(drawn) == len(topics), drawn
    assert {(name, region or m.region) for _, name, region in drawn} == {
        (t.physical_name, m.region_of(t)) for t in topics
    }
    # the DR region's EventBridge rules reach the DR region's critical topic, not the home one
    dr_rules = [
        e
        for e in m.of_type("aws:cloudwatch/eventTarget:EventTarget")
        if m.region_of(e) == m.dr_region
    ]
    dr_critical = next(n for n, name, r in drawn if r == m.dr_region and name.endswith("critical"))
    box = re.search(
        rf'^\s*(\w+)\["(\d+) EventBridge rules<br/>[^"]*"\]\n\s*\1 --> {dr_critical}$',
        routing,
        re.M,
    )
    assert box and int(box.group(2)) == len(dr_rules) > 0, routing
    subscriptions = m.of_type("aws:rds/eventSubscription:EventSubscription")
    shown = re.findall(r'^\s*(\w+)\["RDS event subscription \(([\w-]+)\)', routing, re.M)
    assert len({node for node, _ in shown}) == len(shown) == len(subscriptions) > 1
    assert sorted(kind for _, kind in shown) == sorted(
        str(e.get("sourceType")) for e in subscriptions
    )


def test_the_ci_flow_has_every_job_and_every_needs_edge_of_the_workflows() -> None:
    import yaml

    chart = gen_docs.ci_flow(ROOT)
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        jobs = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("jobs") or {}
        box = chart.split(f'["{path.name}: ', 1)[1].split("\n  end\n", 1)[0]
        ids = {}
        for job, spec in jobs.items():
            name = str(spec.get("name") or job).split(" (${{")[0]
            found = re.search(rf'(\w+)\["{re.escape(name)}', box)
            assert found, f"{path.name}: job {job} ({name}) is not drawn"
            ids[job] = found.group(1)
        for job, spec in jobs.items():
            needs = spec.get("needs") or []
            for need in [needs] if isinstance(needs, str) else needs:
                assert f"{ids[need]} --> {ids[job]}" in box, f"{path.name}: {need} -> {job}"
    assert "== merge ==>" in chart  # a merged pull request starts the deploy


# --- syntax ----------------------------------------------------------------------------------

_TASK = re.compile(
    r"^[^:#]+ :(crit, |done, |active, )?(\w+, )?(\d\d:\d\d|after \w+|\d{4}-\d\d-\d\d \d\d:\d\d)"
    r", \d+[smhd]$"
)


def structural_problems(diagram: str) -> list[str]:
    """What would make Mermaid refuse or misdraw a diagram of the kinds generated here."""
    lines = [line for line in diagram.strip().splitlines() if line.strip()]
    kind = lines[0].split()[0]
    problems = []
    if kind == "flowchart":
        # Mermaid merges two declarations of one id into one node: one box drawn for two things
        ids = Counter(
            m.group(1)
            for line in lines[1:]
            if (m := NODE.match(line)) and not line.strip().startswith("subgraph")
        )
        problems += [f"node {i} declared {n} times" for i, n in ids.items() if n > 1]
        opened = sum(1 for x in lines if x.strip().startswith("subgraph "))
        closed = sum(1 for x in lines if x.strip() == "end")
        if opened != closed:
            problems.append(f"{opened} subgraph vs {closed} end")
        inline = {
            m.group(1)
            for line in lines[1:]
            for m in re.finditer(r"(?:^|\s)([A-Za-z_]\w*)(?:\[|\(|\{)", line)
        }
        declared = (
            flowchart_nodes(diagram)
            | inline
            | {
                x.strip().split()[1].split("[")[0]
                for x in lines
                if x.strip().startswith("subgraph ")
            }
        )
        for line in lines[1:]:
            if line.count('"') % 2:
                problems.append(f"unbalanced quotes: {line}")
            edge = re.match(r"^\s*(\w+) (--|-\.|==)[^>]*> (\w+)$", line)
            if edge:
                for end in (edge.group(1), edge.group(3)):
                    if end not in declared:
                        problems.append(f"edge to undeclared node {end}: {line}")
    elif kind == "gantt":
        ids: set[str] = set()
        for line in lines[1:]:
            s = line.strip()
            if s.split()[0] in ("title", "dateFormat", "axisFormat", "tickInterval", "section"):
                continue
            if not _TASK.match(s):
                problems.append(f"task Mermaid cannot place: {s}")
                continue
            after = re.search(r"after (\w+)", s)
            if after and after.group(1) not in ids:
                problems.append(f"`after` an unknown task: {s}")
            tid = re.search(r":(?:crit, )?(\w+), ", s)
            if tid and not re.match(r"\d", tid.group(1)):
                ids.add(tid.group(1))
    elif kind == "stateDiagram-v2":
        notes = sum(1 for x in lines if x.strip().startswith("note "))
        if notes != sum(1 for x in lines if x.strip() == "end note"):
            problems.append("unclosed note")
    else:
        problems.append(f"unexpected diagram type {kind}")
    return problems


@pytest.mark.parametrize("where_body", mermaid_blocks(), ids=lambda wb: wb[0])
def test_each_mermaid_block_is_well_formed(where_body: tuple[str, str]) -> None:
    where, body = where_body
    assert structural_problems(body) == [], where


def test_the_structural_check_catches_what_mermaid_refuses() -> None:
    # b is drawn as a bare id: a generator forgot to declare it
    assert structural_problems('flowchart LR\n  a["x"]\n  a --> b\n')
    assert structural_problems('flowchart LR\n  subgraph s["x"]\n  a["x"]\n')  # no end
    assert structural_problems("gantt\n  dateFormat HH:mm\n  t :a1, after zz, 5m\n")
    assert structural_problems("gantt\n  t: 5 minutes\n")
    # two things drawn under one id: Mermaid shows one box, with the last label
    assert structural_problems('flowchart LR\n  t_2{{"SNS a"}}\n  t_2{{"SNS b"}}\n')


def _mermaid_parser() -> tuple[str, Path] | None:
    node = shutil.which("node")
    if node and (MERMAID_DIR / "node_modules" / "mermaid").is_dir():
        return node, MERMAID_DIR
    return None


@pytest.mark.skipif(
    _mermaid_parser() is None,
    reason=f"node or the mermaid npm package is missing (run `make mermaid` to install it into "
    f"{MERMAID_DIR})",
)
def test_mermaid_itself_parses_every_block() -> None:
    found = _mermaid_parser()
    assert found is not None
    node, folder = found
    blocks = mermaid_blocks()
    done = subprocess.run(
        [node, str(ROOT / "devtools" / "mermaid_parse.mjs"), str(folder)],
        input=json.dumps([body for _, body in blocks]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    bad = [
        (where, r["error"]) for (where, _), r in zip(blocks, results, strict=True) if not r["ok"]
    ]
    assert bad == []
