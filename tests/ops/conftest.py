"""Fixtures of the operations tests: one moto server per test process (xdist worker), reset
before each test, and the environment that points boto3 and the commands at it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.moto_server import MotoServer, start
from tests.ops.support import AwsEnv, client_env


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws(
    moto_server: MotoServer, tmp_path: os.PathLike[str], monkeypatch: pytest.MonkeyPatch
) -> AwsEnv:
    """A clean emulator; this process's environment (for in-process runs) points at it."""
    from pathlib import Path

    moto_server.reset()
    tmp = Path(tmp_path)
    audit = tmp / "audit.jsonl"
    env = client_env(moto_server, audit, tmp)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(("AWS_", "DBPLATFORM_")):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("DBPLATFORM_PROJECT_DIR", raising=False)
    return AwsEnv(server=moto_server, audit_log=audit, env=env)
