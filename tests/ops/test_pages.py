"""dbplatform.ops.aws.pages: every page of a marker-paged call, and no endless loop on an endpoint
that hands the same token back (botocore's paginator refuses that too: PaginationError)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import PaginationError

from dbplatform.ops.aws import pages


def _endpoint(tokens: list[str | None]) -> Any:
    calls: list[dict[str, Any]] = []

    def call(**params: Any) -> dict[str, Any]:
        calls.append(params)
        following = tokens[len(calls) - 1]
        return {"Items": [len(calls)], **({"Marker": following} if following else {})}

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_every_page_with_the_token_it_was_given() -> None:
    call = _endpoint(["a", "b", None])
    items = [i for page in pages(call, {"Q": 1}, "Marker") for i in page["Items"]]
    assert items == [1, 2, 3]
    assert call.calls == [{"Q": 1}, {"Q": 1, "Marker": "a"}, {"Q": 1, "Marker": "b"}]


def test_a_token_that_comes_back_is_refused_not_followed_forever() -> None:
    call = _endpoint(["a", "b", "a", "b"])
    with pytest.raises(PaginationError):
        list(pages(call, {}, "Marker"))
    assert len(call.calls) == 3


def test_a_page_inside_a_key() -> None:
    def call(**params: Any) -> dict[str, Any]:
        return {"EngineDefaults": {"Parameters": [1], "Marker": None if params else "m"}}

    assert len(list(pages(call, {}, "Marker", within="EngineDefaults"))) == 2


# Each `pages()` call in dbplatform: (service, operation, token, within). The rule is botocore's
# paginator model for the operation (botocore/data/<service>/<version>/paginators-1.json, the
# AWS SDK's own paging rules): the request token, and where the response carries the next one.
PAGED_CALLS = [
    ("rds", "DescribeDBInstances", "Marker", None),  # dbplatform/ops/rds.describe_instances
    ("rds", "DescribeEngineDefaultParameters", "Marker", "EngineDefaults"),  # bluegreen/checks
    ("cloudwatch", "DescribeAlarms", "NextToken", None),  # bluegreen/checks.alarms_firing
]


@pytest.mark.parametrize(("service", "operation", "token", "within"), PAGED_CALLS)
def test_each_paged_call_uses_the_token_botocores_paginator_uses(
    service: str, operation: str, token: str, within: str | None
) -> None:
    import botocore.session

    model = botocore.session.get_session().get_paginator_model(service)
    config = model.get_paginator(operation)
    assert config["input_token"] == token
    assert config["output_token"] == (f"{within}.{token}" if within else token)


def test_every_paged_call_in_the_commands_is_in_the_table() -> None:
    import re
    from pathlib import Path

    from botocore import xform_name

    root = Path(__file__).resolve().parents[2] / "dbplatform"
    calls = {
        m.group(1)
        for path in root.rglob("*.py")
        for m in re.finditer(r"pages\(\s*\w+\.(\w+),", path.read_text(encoding="utf-8"))
    }
    assert calls == {xform_name(op) for _, op, _, _ in PAGED_CALLS}
