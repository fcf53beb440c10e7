"""The deployment's critical path is the unavoidable chain: the network, then the primary, then
what copies the primary (a replica, a cross-region replica, backup replication). Anything the
program serialises on top of that would show up here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from dbplatform.manifest.timing import (
    CROSS_REGION_REPLICA_MINUTES,
    READ_REPLICA_MINUTES,
    RESTORE_MINUTES,
    CriticalPath,
    Scenario,
    critical_path,
    to_text,
    weight,
)
from infra.offline import Recording, from_recording
from policy.manifest import Manifest
from scripts import critical_path as cli
from tests.conftest import STACKS, record

NETWORK_CHAIN = ["aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:rds/subnetGroup:SubnetGroup"]
RDS = "aws:rds/instance:Instance"
COPIES_OF_THE_PRIMARY = {
    RDS,  # a read replica, same region or cross-region
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication",
}
# After the last copy of the primary, only resources that watch it may follow (an RDS event
# subscription's source ids must exist, an alarm takes the identifier), and they are quick.
TAIL_MINUTES = 1.0


def assert_unavoidable(path: CriticalPath, m: Manifest, copy_name: str | None = None) -> None:
    """network -> primary -> one copy of the primary, then at most a short watching tail."""
    types = [s.type for s in path.steps]
    assert types[:3] == NETWORK_CHAIN, types
    primary = path.steps[3]
    assert primary.type == RDS and primary.name == "database-primary", primary
    copy = path.steps[4]
    assert copy.type in COPIES_OF_THE_PRIMARY, copy
    assert copy.urn in {r.urn for r in m.resources if primary.urn in r.dependencies}
    if copy_name is not None:
        assert copy.name == copy_name
    tail = path.steps[5:]
    assert all(s.type not in COPIES_OF_THE_PRIMARY for s in tail), tail
    assert sum(s.minutes for s in tail) <= TAIL_MINUTES, tail
    # and the copy on the path is the slowest copy of the primary: nothing else was serialised
    rebuilt = [r for r in m.resources if path.scenario == "fresh" or m.region_of(r) == m.region]
    copies = [
        weight(m, r, path.scenario)[0]
        for r in rebuilt
        if r.type in COPIES_OF_THE_PRIMARY and primary.urn in r.dependencies
    ]
    assert copy.minutes == max(copies)


def _path(m: Manifest, scenario: Scenario = "fresh") -> CriticalPath:
    return critical_path(m, scenario)


@pytest.mark.parametrize("stack", STACKS)
def test_fresh_up_critical_path_is_the_unavoidable_chain(stack: str) -> None:
    m = from_recording(record(stack))
    assert_unavoidable(_path(m), m)


def test_cross_region_replica_variant(run_variant: Callable[..., Recording]) -> None:
    m = from_recording(
        run_variant("prod", database={"blueGreen": False}, dr={"crossRegionReplica": True})
    )
    path = _path(m)
    assert_unavoidable(path, m, copy_name="replicas-dr")
    assert path.steps[4].minutes == CROSS_REGION_REPLICA_MINUTES
    # the DR region's network and key are built while the primary is created, not after it
    on_path = {s.name for s in path.steps}
    assert not any(name.startswith("dr-network") for name in on_path)


def test_dr_rebuild_restores_the_primary_then_copies_it() -> None:
    m = from_recording(record("prod"))
    path = _path(m, "dr-rebuild")
    assert_unavoidable(path, m)
    assert path.steps[3].minutes == RESTORE_MINUTES
    # the home region's resources, not the copies elsewhere, are rebuilt, in the DR region
    assert {m.region_of(m.by_urn[s.urn]) for s in path.steps} == {"us-east-1"}
    assert {s.region for s in path.steps} == {"us-west-2"}
    assert to_text(path).startswith("prod: DR rebuild in us-west-2 (restore the primary")
    # the count is the one synth reports: cloud resources, the providers not among them
    rebuilt = [r for r in m.resources if r.custom and m.region_of(r) == m.region]
    assert path.resources == sum(1 for r in rebuilt if not r.type.startswith("pulumi:providers:"))
    fresh = _path(m)
    assert fresh.resources == sum(
        1 for r in m.resources if r.custom and not r.type.startswith("pulumi:providers:")
    )


def test_a_serialised_replica_would_lengthen_the_path() -> None:
    m = from_recording(record("prod"))
    r1 = next(r for r in m.resources if r.name == "replicas-r1")
    serial = replace(
        m,
        resources=tuple(
            replace(r, dependencies=(*r.dependencies, r1.urn)) if r.name == "replicas-r2" else r
            for r in m.resources
        ),
    )
    fresh = _path(serial)
    assert [s.name for s in fresh.steps][3:6] == ["database-primary", "replicas-r1", "replicas-r2"]
    assert fresh.minutes >= fresh.steps[3].finish + 2 * READ_REPLICA_MINUTES
    with pytest.raises(AssertionError):
        assert_unavoidable(fresh, serial)


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_type_has_a_weight(stack: str) -> None:
    m = from_recording(record(stack))
    guessed = {r.type for r in m.resources if weight(m, r, "fresh")[1].startswith("estimate")}
    assert guessed == set(), "add these types to CREATE_MINUTES with a source"


def test_cli_reports_both_scenarios(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "prod.json"
    path.write_text(from_recording(record("prod")).to_json(), encoding="utf-8")
    assert cli.main(["--manifest", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [p["scenario"] for p in data["paths"]] == ["fresh", "dr-rebuild"]
    assert data["paths"][0]["steps"][3]["name"] == "database-primary"
    assert cli.main(["--manifest", str(path), "--scenario", "fresh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prod: fresh `pulumi up`: ")
    assert "database-primary (aws:rds/instance:Instance, us-east-1; RDS Multi-AZ instance)" in out


def test_cli_cycle_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = from_recording(record("staging"))
    primary = next(r for r in m.resources if r.name == "database-primary")
    replica = next(r for r in m.resources if r.name == "replicas-r1")
    looped = replace(
        m,
        resources=tuple(
            replace(r, dependencies=(*r.dependencies, replica.urn)) if r.urn == primary.urn else r
            for r in m.resources
        ),
    )
    path = tmp_path / "loop.json"
    path.write_text(looped.to_json(), encoding="utf-8")
    assert cli.main(["--manifest", str(path)]) == 1
    assert "dependency cycle" in capsys.readouterr().err
