"""Fixtures of the DR tests: the operations tests' moto server (one per test process, reset per
test) plus a throwaway project directory, so a rebuild's `Pulumi.<NEW>.yaml` never lands in the
repository, and helpers that arrange the DR region as the program and AWS would leave it."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from dbplatform.dr.sql import Connect as SqlConnect
from dbplatform.dr.sql import Endpoint, install
from devtools.seed import Seeded, report_replica_lag, seed_stack
from infra.config import StackConfig, load_stack
from infra.naming import Names
from tests.ops.conftest import aws, moto_server  # noqa: F401 - fixtures shared with tests/ops
from tests.ops.support import AwsEnv, FakeClock, Run, run_module
from tests.postgres import PgServer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "us-east-1"
CA_BUNDLE = "rds-ca-bundle.pem"
DR = "us-west-2"


@dataclass
class DrEnv:
    """The emulator, a project directory of its own, and ways to arrange and inspect both."""

    aws: AwsEnv
    project: Path
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return self.aws.env

    def client(self, service: str, region: str = SOURCE) -> Any:
        # Building a boto3 client costs more than most calls to the emulator: keep them.
        if (service, region) not in self._clients:
            self._clients[service, region] = self.aws.client(service, region)
        return self._clients[service, region]

    def config(self, stack: str) -> StackConfig:
        return load_stack(stack, self.project)

    # --- arranging ---------------------------------------------------------------------------
    def seed(self, stack: str, *, encrypted: bool | None = None) -> Seeded:
        """The stack's resources in its region, as `pulumi up` would leave them."""
        cfg = self.config(stack)
        if encrypted is not None:
            cfg = replace(cfg, database=replace(cfg.database, storage_encrypted=encrypted))
        return seed_stack(self.aws.session, cfg, with_alarms=False)

    def dr_network(self, stack: str, region: str = DR) -> tuple[str, str]:
        """The DR-region subnet group and security group the program keeps with
        a configured dr.region (`<prefix>-db-dr`); returns (subnet group, security group id)."""
        n = Names(stack)
        ec2, rds = self.client("ec2", region), self.client("rds", region)
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=region + z)[
                "Subnet"
            ]["SubnetId"]
            for i, z in enumerate("ab")
        ]
        rds.create_db_subnet_group(
            DBSubnetGroupName=f"{n.subnet_group}-dr",
            DBSubnetGroupDescription="dr",
            SubnetIds=subnets,
        )
        sg = ec2.create_security_group(
            GroupName=f"{n.security_group}-dr", Description="dr", VpcId=vpc
        )["GroupId"]
        return f"{n.subnet_group}-dr", sg

    def copy_snapshot(self, stack: str, name: str, region: str = DR) -> str:
        """Snapshot the primary and copy it to `region` (what a DR copy job does)."""
        primary = Names(stack).primary
        snap = self.client("rds").create_db_snapshot(
            DBInstanceIdentifier=primary, DBSnapshotIdentifier=name
        )["DBSnapshot"]
        copy = f"{name}-{region}"
        self.client("rds", region).copy_db_snapshot(
            SourceDBSnapshotIdentifier=snap["DBSnapshotArn"],
            TargetDBSnapshotIdentifier=copy,
            SourceRegion=SOURCE,
        )
        return copy

    def cross_region_replica(self, stack: str, lag_seconds: float, region: str = DR) -> str:
        n = Names(stack)
        arn = self.client("rds").describe_db_instances(DBInstanceIdentifier=n.primary)[
            "DBInstances"
        ][0]["DBInstanceArn"]
        rds = self.client("rds", region)
        # The program leaves the DR replica on the region's default parameters; moto would carry
        # the primary's group name across regions (and fail on it), so name one that exists.
        rds.create_db_parameter_group(
            DBParameterGroupName="replica-defaults",
            DBParameterGroupFamily="postgres16",
            Description="stands in for default.postgres16",
        )
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=n.cross_region_replica,
            SourceDBInstanceIdentifier=arn,
            DBInstanceClass="db.r6g.large",
            DBParameterGroupName="replica-defaults",
        )
        report_replica_lag(self.aws.session, region, n.cross_region_replica, lag_seconds)
        return n.cross_region_replica

    # --- acting ------------------------------------------------------------------------------
    def cli(self, module: str, *args: str, path: str | None = None, process: bool = False) -> Run:
        """`python -m scripts.<module> ARGS` as an operator runs it, with this test's project
        directory (`run_module`: in this process unless `process=True`)."""
        env = {
            **self.env,
            "DBPLATFORM_PROJECT_DIR": str(self.project),
            "PGSSLROOTCERT": str(self.project / CA_BUNDLE),
        }
        if path is not None:
            env["PATH"] = path
        return run_module(f"scripts.{module}", args, env=env, process=process)

    def main(
        self,
        main: Callable[..., int],
        *args: str,
        session: boto3.Session | None = None,
    ) -> Run:
        """The command in-process (cheap), with the fast clock and the test's session (its
        parsed service models are reused)."""
        return self.aws.main(
            *args, session=session or self.aws.session, clock=FakeClock(), main=main
        )

    # --- asserting ---------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Every resource kind a rebuild or drill could create, in both regions."""
        out: dict[str, Any] = {}
        for region in (SOURCE, DR):
            rds, ec2, ssm = (self.client(s, region) for s in ("rds", "ec2", "ssm"))
            out[region] = {
                "instances": sorted(
                    (i["DBInstanceIdentifier"], i["DBInstanceStatus"])
                    for i in rds.describe_db_instances()["DBInstances"]
                ),
                "snapshots": sorted(
                    s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]
                ),
                "parameter_groups": sorted(
                    g["DBParameterGroupName"]
                    for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                ),
                "subnet_groups": sorted(
                    g["DBSubnetGroupName"]
                    for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]
                ),
                "security_groups": sorted(
                    g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                ),
                "vpcs": sorted(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]),
                "parameters": sorted(
                    p["Name"] for p in ssm.describe_parameters().get("Parameters", [])
                ),
            }
        return out

    def source_view(self, identifier: str) -> dict[str, Any]:
        """What a DR operation must never change about the source's primary."""
        db = self.instance(identifier, SOURCE)
        assert db is not None
        keep = (
            "DBInstanceStatus",
            "DBInstanceClass",
            "EngineVersion",
            "DeletionProtection",
            "MultiAZ",
            "VpcSecurityGroups",
            "DBParameterGroups",
            "DBSubnetGroup",
            "TagList",
            "ReadReplicaDBInstanceIdentifiers",
        )
        return {k: db.get(k) for k in keep}

    def instance(self, identifier: str, region: str = DR) -> dict[str, Any] | None:
        rds = self.client("rds", region)
        found = [
            i
            for i in rds.describe_db_instances()["DBInstances"]
            if i["DBInstanceIdentifier"] == identifier
        ]
        return found[0] if found else None


@pytest.fixture
def dr(aws: AwsEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DrEnv:  # noqa: F811
    """A clean emulator and a project directory holding copies of the committed stack files."""
    project = tmp_path / "project"
    project.mkdir()
    for f in [*ROOT.glob("Pulumi*.yaml"), ROOT / "restore-checks.yaml"]:
        shutil.copy(f, project / f.name)
    monkeypatch.setenv("DBPLATFORM_PROJECT_DIR", str(project))
    # The operator's RDS CA bundle, as the SQL checks require one before any AWS call. moto's
    # instances have no database, so no connection ever uses it: a test that reaches the data
    # passes its own connection (the suite's server) or --skip-sql-checks.
    (project / CA_BUNDLE).write_text("(no certificate: never read by a test)\n", encoding="utf-8")
    monkeypatch.setenv("PGSSLROOTCERT", str(project / CA_BUNDLE))
    return DrEnv(aws=aws, project=project)


def restored_database(postgres: PgServer, dbname: str, *, source: str = "prod") -> SqlConnect:
    """A factory standing in for the connection to a restored instance: moto's instances hold no
    data, so the data a restore would bring is a database on the suite's real server, with the
    heartbeat installed and one beat written."""
    conn = postgres.connect(dbname)
    try:
        install(conn, source)
    finally:
        conn.close()
    seen: list[Endpoint] = []

    def connect(endpoint: Endpoint) -> Any:
        seen.append(endpoint)
        return postgres.connect(dbname)

    connect.seen = seen  # type: ignore[attr-defined]
    return connect


def venv_only_path() -> str:
    """A PATH with this interpreter's directory only: no `pulumi` CLI on it."""
    return os.path.dirname(sys.executable)


def not_allowed_to_the_drills_role(made: set[str]) -> list[str]:
    """The `service:Operation` calls in `made` that no Allow statement of ci/iam/drill.json
    names (by action, wildcards included): what CI's drills job would be refused."""
    import fnmatch
    import json

    policy = json.loads((ROOT / "ci" / "iam" / "drill.json").read_text(encoding="utf-8"))
    allowed = [
        action
        for st in policy["Statement"]
        if st["Effect"] == "Allow"
        for action in (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])
    ]
    return sorted(m for m in made if not any(fnmatch.fnmatchcase(m, a) for a in allowed))


def record_calls(session: Any) -> set[str]:
    """Every call a session's clients make from now on, as `service:Operation`."""
    made: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        made.add(f"{model.service_model.service_name}:{model.name}")

    session.events.register("provide-client-params", record)
    return made
