"""RDS look-ups every command needs: an instance that may not exist, and waiting for one to go."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dbplatform.ops.aws import error_code, pages
from dbplatform.ops.context import Context, Poll


def describe_instance(rds: BaseClient, identifier: str) -> dict[str, Any] | None:
    """The DB instance, or None when it does not exist (any other AWS error is raised)."""
    try:
        items = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
    except ClientError as exc:
        if error_code(exc) == "DBInstanceNotFound":
            return None
        raise
    return dict(items[0]) if items else None


def describe_instances(rds: BaseClient, identifiers: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The DB instances among `identifiers` that exist, by identifier: one DescribeDBInstances
    call (a `db-instance-id` filter lists only those, and an absent one is no error).

    Rule (RDS API reference, DescribeDBInstances `Filters`, as shipped in botocore's
    rds/2014-10-31/service-2.json.gz): `db-instance-id` accepts DB instance identifiers and ARNs and
    lists only the instances identified; `DBInstanceIdentifier`, by contrast, must name an
    existing instance (DBInstanceNotFound otherwise). Identifiers here are as RDS stores them,
    lower case (infra.naming)."""
    wanted = [i for i in dict.fromkeys(identifiers) if i]
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    params = {"Filters": [{"Name": "db-instance-id", "Values": wanted}]}
    for page in pages(rds.describe_db_instances, params, "Marker"):
        for inst in page.get("DBInstances", []):
            found[inst["DBInstanceIdentifier"]] = dict(inst)
    return found


def wait_instance_gone(
    ctx: Context, identifier: str, *, timeout: float, region: str | None = None
) -> None:
    """Wait (bounded, with progress) until the instance no longer exists."""
    rds = ctx.client("rds", region)

    def poll() -> Poll[bool]:
        inst = describe_instance(rds, identifier)
        return Poll(inst is None, str(inst.get("DBInstanceStatus")) if inst else "gone", True)

    ctx.wait_for(f"deletion of {identifier}", poll, timeout=timeout)
