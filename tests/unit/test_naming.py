"""Physical names: deterministic, within AWS limits, shared by the program and scripts."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from infra.naming import RDS_ID_MAX, Names, rds_identifier

RDS_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def test_names_are_deterministic_and_readable() -> None:
    n = Names("prod")
    assert n.primary == "dbplatform-prod-pg"
    assert n.replica("r1") == "dbplatform-prod-pg-r1"
    assert n.parameter_group("postgres16") == "dbplatform-prod-postgres16"
    assert n.master_secret == "dbplatform/prod/db/master"
    assert n.topic("critical") == "dbplatform-prod-alarms-critical"
    assert n.final_snapshot(n.primary) == "dbplatform-prod-pg-final"
    assert n.lock_parameter == "/dbplatform/prod/ops/lock"
    assert n.lock("dr") == "/dbplatform/prod/ops/lock-dr"  # each scope's own parameter
    assert n.bluegreen_state_parameter == "/dbplatform/prod/ops/bluegreen"
    # scripts find these by name: restore checks assume the role, rotate_secret reads the logs
    assert n.backup_role == "dbplatform-prod-backup"
    assert n.rotation_function == "dbplatform-prod-rotate-master"
    assert (n.dr_subnet_group, n.dr_security_group) == ("dbplatform-prod-db-dr",) * 2
    assert Names("eu-prod-2").restore_testing_plan == "dbplatform_eu_prod_2_restore_test"
    assert Names("prod") == Names("prod") and Names("prod").primary != Names("staging").primary


@given(parts=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=4))
def test_rds_identifiers_always_fit_the_rules(parts: list[str]) -> None:
    ident = rds_identifier(*parts)
    assert len(ident) <= RDS_ID_MAX
    assert RDS_ID.match(ident), ident
    assert len(ident + "-old1") <= 63  # blue/green renames the old blue to <id>-old1


def test_long_names_stay_unique_after_clamping() -> None:
    a = rds_identifier("x" * 80, "one")
    b = rds_identifier("x" * 80, "two")
    assert a != b and len(a) <= RDS_ID_MAX
