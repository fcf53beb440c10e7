"""Every role the program declares carries the permissions boundary the CI deploy role demands
(devtools/iam_policies.py: iam:CreateRole only with iam:PermissionsBoundary = that policy; IAM
refuses a role without it with AccessDenied)."""

from __future__ import annotations

import pytest

from devtools.iam_policies import BOUNDARY_NAME
from infra.components._common import PERMISSIONS_BOUNDARY_NAME
from infra.offline import Recording

ROLE = "aws:iam/role:Role"


def test_the_program_names_the_boundary_the_deploy_policy_demands() -> None:
    assert PERMISSIONS_BOUNDARY_NAME == BOUNDARY_NAME


@pytest.mark.parametrize("stack", ["prod", "staging"])
def test_every_role_carries_the_boundary(stack: str, request: pytest.FixtureRequest) -> None:
    rec: Recording = request.getfixturevalue(stack)
    roles = rec.of_type(ROLE)
    # the RDS monitoring, AWS Backup and VPC flow logs roles (the flow logs one when the stack
    # creates its VPC)
    assert len(roles) >= 2
    for role in roles:
        # arn:<partition>:iam::<account>:policy/<name> (IAM User Guide, "IAM ARNs"); the offline
        # mocks answer getPartition with `aws` and getCallerIdentity with 123456789012.
        assert role.inputs.get("permissionsBoundary") == (
            f"arn:aws:iam::123456789012:policy/{BOUNDARY_NAME}"
        ), role.name
