"""How long a fresh `pulumi up` and a DR rebuild take at best: the slowest chain (critical path)
of the manifest's dependency graph, each resource weighted by its typical creation time.

Pulumi creates a resource as soon as everything it depends on exists, so the deployment can end
no sooner than its longest weighted chain. The program must not serialise what could run in
parallel: for this data tier the chain should be the unavoidable one, network -> primary ->
replica (or a cross-region copy of the primary), and tests/test_critical_path.py asserts it.

The minutes below are typical values, not guarantees; the bounds are the Pulumi AWS provider's
default create timeouts (pulumi-aws 7 / terraform-provider-aws resource docs, "Timeouts"), and
the RDS figures follow the RDS User Guide's descriptions of what each operation does (a Multi-AZ
create provisions and synchronises a standby; a read replica is created from a snapshot of its
source; a cross-region replica first copies that snapshot across regions).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from policy.manifest import RDS_INSTANCE, Manifest, Resource, is_replica

Scenario = Literal["fresh", "dr-rebuild"]
SCENARIOS: tuple[Scenario, ...] = ("fresh", "dr-rebuild")

# RDS instances: minutes until `available` (provider default create timeout 40m; this program
# sets 120m, infra/components/database.py TIMEOUTS).
PRIMARY_SINGLE_AZ_MINUTES = 10.0
PRIMARY_MULTI_AZ_MINUTES = 20.0  # + standby provisioning and initial synchronisation
READ_REPLICA_MINUTES = 15.0  # snapshot of the source, restore, catch up on WAL
CROSS_REGION_REPLICA_MINUTES = 35.0  # + cross-region snapshot copy
RESTORE_MINUTES = 25.0  # restore from a snapshot / recovery point (DR rebuild, adopted instance)

# Typical minutes per resource type (fresh create). Sources in the comments; a type missing here
# counts DEFAULT_MINUTES and is flagged in the report as an estimate.
CREATE_MINUTES: Mapping[str, float] = {
    # network: the provider waits for `available` and then sets DNS attributes (timeouts 10-20m)
    "aws:ec2/vpc:Vpc": 1.0,
    "aws:ec2/subnet:Subnet": 0.5,
    "aws:ec2/routeTable:RouteTable": 0.2,
    "aws:ec2/routeTableAssociation:RouteTableAssociation": 0.1,
    "aws:ec2/securityGroup:SecurityGroup": 0.3,
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": 0.1,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": 0.1,
    # interface endpoints go pending -> available, typically a few minutes (timeout 10m)
    "aws:ec2/vpcEndpoint:VpcEndpoint": 2.0,
    # Seconds-long EC2/IAM control-plane calls; a peering accepted in the same account is
    # active at once, and a transit gateway attachment takes minutes (pending -> available).
    "aws:ec2/route:Route": 0.1,
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": 0.2,
    "aws:ec2/flowLog:FlowLog": 0.2,
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection": 0.5,
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": 3.0,
    "aws:rds/subnetGroup:SubnetGroup": 0.2,
    "aws:rds/parameterGroup:ParameterGroup": 0.2,
    # KMS: CreateKey is immediate; the provider waits for the key and its policy to propagate
    "aws:kms/key:Key": 0.5,
    "aws:kms/alias:Alias": 0.1,
    # IAM is eventually consistent; the provider retries role use for up to 2 minutes
    "aws:iam/role:Role": 0.3,
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": 0.1,
    "aws:iam/rolePolicy:RolePolicy": 0.1,
    "aws:cloudwatch/logGroup:LogGroup": 0.1,
    "aws:cloudwatch/metricAlarm:MetricAlarm": 0.1,
    "aws:cloudwatch/dashboard:Dashboard": 0.1,
    "aws:cloudwatch/eventRule:EventRule": 0.1,
    "aws:cloudwatch/eventTarget:EventTarget": 0.1,
    "aws:sns/topic:Topic": 0.1,
    "aws:sns/topicPolicy:TopicPolicy": 0.1,
    # email/https subscriptions stay "pending confirmation"; the provider does not wait for it
    "aws:sns/topicSubscription:TopicSubscription": 0.1,
    "aws:route53/healthCheck:HealthCheck": 0.2,
    # the provider waits for the subscription to become active: usually under a minute
    # (timeout 40m)
    "aws:rds/eventSubscription:EventSubscription": 0.5,
    "aws:secretsmanager/secret:Secret": 0.1,
    "aws:secretsmanager/secretVersion:SecretVersion": 0.1,
    "aws:secretsmanager/secretRotation:SecretRotation": 0.1,
    # a CloudFormation stack creating a VPC-attached Lambda (ENIs take minutes; timeout 30m)
    "aws:serverlessrepository/cloudFormationStack:CloudFormationStack": 4.0,
    "aws:backup/vault:Vault": 0.1,
    "aws:backup/vaultLockConfiguration:VaultLockConfiguration": 0.1,
    "aws:backup/vaultPolicy:VaultPolicy": 0.1,
    "aws:backup/plan:Plan": 0.1,
    "aws:backup/selection:Selection": 0.2,
    "aws:backup/restoreTestingPlan:RestoreTestingPlan": 0.1,
    "aws:backup/restoreTestingSelection:RestoreTestingSelection": 0.1,
    # the provider waits until the source's backups are `replicating` (timeout 75m): it copies
    # the latest snapshot to the DR region first
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": 20.0,
}
DEFAULT_MINUTES = 0.5
# Rotating immediately runs the rotation Lambda once (four steps against the database).
ROTATE_IMMEDIATELY_MINUTES = 1.0


@dataclass(frozen=True)
class Step:
    """One resource on the critical path."""

    urn: str
    name: str
    type: str
    region: str
    minutes: float
    basis: str
    """where the minutes come from: the type table, an RDS role, or an estimate"""
    finish: float
    """minutes from the start of the deployment until this resource exists"""


@dataclass(frozen=True)
class CriticalPath:
    """The slowest chain of one scenario."""

    stack: str
    scenario: Scenario
    steps: tuple[Step, ...]
    resources: int
    """cloud resources in the scenario's graph (providers are not counted: synth's count)"""

    @property
    def minutes(self) -> float:
        return self.steps[-1].finish if self.steps else 0.0


def weight(m: Manifest, r: Resource, scenario: Scenario) -> tuple[float, str]:
    """(typical minutes, basis) for creating `r` in a scenario."""
    if not r.custom or r.type.startswith("pulumi:providers:") or r.type.startswith("random:"):
        return 0.0, "no cloud call"
    if r.type == RDS_INSTANCE:
        if is_replica(r):
            source = m.replication_source(r)
            source_region = m.region_of(source) if source else m.region
            if m.region_of(r) != source_region:
                return CROSS_REGION_REPLICA_MINUTES, "RDS cross-region read replica"
            return READ_REPLICA_MINUTES, "RDS read replica"
        if scenario == "dr-rebuild" or r.import_id:
            return RESTORE_MINUTES, "RDS restore from a recovery point"
        if r.get("multiAz") is True:
            return PRIMARY_MULTI_AZ_MINUTES, "RDS Multi-AZ instance"
        return PRIMARY_SINGLE_AZ_MINUTES, "RDS Single-AZ instance"
    if r.type == "aws:secretsmanager/secretRotation:SecretRotation" and (
        r.get("rotateImmediately") is not False
    ):
        return ROTATE_IMMEDIATELY_MINUTES, "rotation runs once at create"
    if r.type in CREATE_MINUTES:
        return CREATE_MINUTES[r.type], "type table"
    return DEFAULT_MINUTES, "estimate (type not in the table)"


class CycleError(ValueError):
    """The manifest's dependencies form a cycle (the program could never deploy)."""


def _graph(m: Manifest, scenario: Scenario) -> tuple[dict[str, Resource], dict[str, list[str]]]:
    """Nodes and each node's direct prerequisites (components expanded to their resources)."""
    nodes = {r.urn: r for r in m.resources if r.custom}
    if scenario == "dr-rebuild":
        # The environment is rebuilt from its backups in one region; the resources that exist to
        # copy it elsewhere (DR-region vaults, replicas, replication) are not part of it.
        nodes = {u: r for u, r in nodes.items() if m.region_of(r) == m.region}
    prereqs: dict[str, list[str]] = {}
    for urn, r in nodes.items():
        deps: set[str] = set()
        for d in (*r.dependencies, *([r.provider] if r.provider else [])):
            target = m.by_urn.get(d)
            if target is None:
                continue
            if target.custom:
                deps.add(d)
            else:  # depending on a component waits for everything inside it
                deps.update(c.urn for c in m.custom_descendants(d))
        prereqs[urn] = sorted(d for d in deps if d in nodes and d != urn)
    return nodes, prereqs


def critical_path(m: Manifest, scenario: Scenario = "fresh") -> CriticalPath:
    """The slowest dependency chain of a scenario (ties broken by URN, so it is stable)."""
    nodes, prereqs = _graph(m, scenario)
    finish: dict[str, float] = {}
    best_prev: dict[str, str | None] = {}
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(urn: str) -> float:
        # Iterative DFS: a generated environment can be wide, and chains are never deep, but a
        # stack of frames is still cheaper than relying on the recursion limit.
        stack: list[tuple[str, int]] = [(urn, 0)]
        while stack:
            node, i = stack.pop()
            if i == 0:
                if state.get(node) == 2:
                    continue
                if state.get(node) == 1:
                    raise CycleError(f"dependency cycle through {nodes[node].name}")
                state[node] = 1
            deps = prereqs[node]
            if i < len(deps):
                stack.append((node, i + 1))
                dep = deps[i]
                if state.get(dep) == 1:
                    raise CycleError(f"dependency cycle through {nodes[dep].name}")
                if state.get(dep) != 2:
                    stack.append((dep, 0))
                continue
            prev = max(deps, key=lambda d: (finish[d], _neg(d)), default=None)
            finish[node] = weight(m, nodes[node], scenario)[0] + (finish[prev] if prev else 0.0)
            best_prev[node] = prev
            state[node] = 2
        return finish[urn]

    for urn in sorted(nodes):
        visit(urn)
    if not nodes:
        return CriticalPath(m.stack, scenario, (), 0)
    end: str | None = max(nodes, key=lambda u: (finish[u], _neg(u)))
    chain: list[str] = []
    while end is not None:
        chain.append(end)
        end = best_prev[end]
    steps = []
    for urn in reversed(chain):
        r = nodes[urn]
        minutes, basis = weight(m, r, scenario)
        # a DR rebuild recreates the home region's resources in the DR region (dr.region; a
        # rebuild's --region may name another)
        where = (m.dr_region or m.region) if scenario == "dr-rebuild" else m.region_of(r)
        steps.append(Step(urn, r.name, r.type, where, minutes, basis, finish[urn]))
    counted = sum(1 for r in nodes.values() if not r.type.startswith("pulumi:providers:"))
    return CriticalPath(m.stack, scenario, tuple(steps), counted)


def _neg(urn: str) -> tuple[int, ...]:
    """Sort key that prefers the smaller URN among equals under max()."""
    return tuple(-ord(c) for c in urn)


def to_text(p: CriticalPath) -> str:
    where = f" in {p.steps[0].region}" if p.steps else ""
    title = {
        "fresh": "fresh `pulumi up`",
        "dr-rebuild": f"DR rebuild{where} (restore the primary, recreate the rest)",
    }[p.scenario]
    lines = [
        f"{p.stack}: {title}: {p.minutes:.1f} min at best, along {len(p.steps)} of "
        f"{p.resources} resources",
        f"  {'minutes':>7}  {'at':>6}  resource (type, region; basis)",
    ]
    for s in p.steps:
        lines.append(
            f"  {s.minutes:>7.1f}  {s.finish:>6.1f}  {s.name} ({s.type}, {s.region}; {s.basis})"
        )
    return "\n".join(lines) + "\n"


def to_json(p: CriticalPath) -> dict[str, object]:
    return {
        "stack": p.stack,
        "scenario": p.scenario,
        "minutes": round(p.minutes, 2),
        "resources": p.resources,
        "steps": [
            {
                "urn": s.urn,
                "name": s.name,
                "type": s.type,
                "region": s.region,
                "minutes": s.minutes,
                "finish": round(s.finish, 2),
                "basis": s.basis,
            }
            for s in p.steps
        ],
    }


def _duration(minutes: float) -> str:
    """A Mermaid gantt duration: whole seconds, so a 0.1-minute step still shows."""
    return f"{max(1, round(minutes * 60))}s"


def to_gantt(paths: list[CriticalPath]) -> str:
    """The critical paths as a Mermaid `gantt`: one section per scenario, one bar per step.

    Each bar starts when its predecessor ends (`after`), so the chart's length is the path's
    minutes, and the bars read left to right in the order Pulumi must create them.
    """
    lines = [
        "gantt",
        f"  title {paths[0].stack if paths else ''}: critical path at typical create times",
        "  dateFormat HH:mm",
        "  axisFormat %H:%M",
    ]
    titles = {"fresh": "fresh up", "dr-rebuild": "DR rebuild"}
    for si, p in enumerate(paths):
        lines.append(f"  section {titles[p.scenario]} ({p.minutes:.0f} min)")
        prev: str | None = None
        for i, s in enumerate(p.steps):
            if s.minutes <= 0:
                continue  # providers and random values: no cloud call, no time
            label = s.name.replace(":", " ").replace("#", " ")
            task = f"s{si}_{i}"
            kind = "crit, " if s.minutes >= 10 else ""
            when = f"after {prev}" if prev else "00:00"
            lines.append(
                f"  {label} ({s.minutes:g} min) :{kind}{task}, {when}, {_duration(s.minutes)}"
            )
            prev = task
    return "\n".join(lines) + "\n"
