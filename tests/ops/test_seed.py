"""The test harness's own safety: `devtools.seed` writes only to a local emulator."""

from __future__ import annotations

import re
from typing import Any

import boto3
import pytest

from devtools.seed import NotLocal, seed_stack
from infra.config import load_stack
from tests.ops.support import ROOT


def test_seed_refuses_when_any_service_would_leave_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", "https://kms.example.invalid")
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )

    def never_send(**_: Any) -> None:
        raise AssertionError("a request was about to be sent")

    session.events.register("before-send", never_send)  # so a broken guard sends nothing
    with pytest.raises(NotLocal, match=re.escape("kms endpoint is https://kms.example.invalid")):
        seed_stack(session, load_stack("staging", ROOT))
