"""A DR refusal's way out is a command the operator can run as written: a drill has no `--as`,
so its refusal must not offer one (UX review: hints named flags the command lacks)."""

from __future__ import annotations

import re
import shlex

import pytest

from dbplatform.cmdline import parse_args
from infra.naming import Names, drill_stack
from scripts.dr import build_parser, main
from tests.dr.conftest import DR, DrEnv, dr  # noqa: F401 - the DR tests' fixture

pytestmark = pytest.mark.moto

RUN_TAIL = "abc123"


def test_a_drill_whose_identifiers_are_taken_names_a_way_out_it_has(
    dr: DrEnv,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dr.seed("prod")
    dr.dr_network("prod")
    dr.copy_snapshot("prod", "prod-daily-1")
    # the drill's stack is named after its run: fix the run id to know the names it will use
    monkeypatch.setattr(
        "dbplatform.ops.cli._new_run_id", lambda clock: f"20260101T000000Z-{RUN_TAIL}"
    )
    taken = Names(drill_stack("prod", RUN_TAIL)).primary
    dr.client("rds", DR).create_db_instance(
        DBInstanceIdentifier=taken,
        Engine="postgres",
        DBInstanceClass="db.t4g.micro",
        AllocatedStorage=20,
        MasterUsername="someone",
        MasterUserPassword="not-a-drill-instance",
    )
    before = dr.state()

    run = dr.main(main, "drill", "--stack", "prod", "--no-pulumi")

    assert run.code == 3, run.text
    assert f"already holds DB instance(s) {taken}" in run.stderr
    assert "--as" not in run.stderr  # rebuild's way out; `dr drill --as` is exit 2
    assert "re-run (a drill's stack is named after its run" in run.stderr
    (janitor,) = re.findall(r"`(dbplatform dr janitor [^`]+)`", run.stderr)
    args = parse_args(build_parser(), shlex.split(janitor)[2:])
    assert (args.stack, args.region) == ("prod", [DR])
    assert dr.state() == before
