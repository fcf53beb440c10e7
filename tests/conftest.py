"""Shared fixtures: the real program run for a committed stack under Pulumi mocks."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.config import committed_stacks, read_stack_values  # noqa: E402
from infra.offline import Recording, run_program  # noqa: E402
from tests.postgres import PgServer, running  # noqa: E402

STACKS = committed_stacks(ROOT)
_CACHE: dict[str, Recording] = {}


def record(stack: str) -> Recording:
    """The committed stack's recording; each stack runs once per test process."""
    if stack not in _CACHE:
        _CACHE[stack] = run_program(stack, root=ROOT)
    return _CACHE[stack]


@pytest.fixture(params=STACKS)
def stack_recording(request: pytest.FixtureRequest) -> Recording:
    """Parametrised over every committed Pulumi.<stack>.yaml."""
    return record(request.param)


@pytest.fixture
def prod() -> Recording:
    return record("prod")


@pytest.fixture
def staging() -> Recording:
    return record("staging")


@pytest.fixture
def run_variant() -> Callable[..., Recording]:
    """Run the program for a committed stack with some config values replaced.

    `run_variant("prod", database={"multiAz": False})` merges each given group over the
    committed values (mappings merge, lists and scalars replace), like a stack file edit.
    """

    def _run(stack: str, region: str | None = None, **groups: Any) -> Recording:
        values, file_region = read_stack_values(stack, ROOT)
        values = dict(values)
        for key, value in groups.items():
            old = values.get(key)
            values[key] = (
                {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
            )
        return run_program(stack, root=ROOT, values=values, region=region or file_region)

    return _run


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1 for this test process (tests/postgres.py)."""
    with running(tmp_path_factory.mktemp("postgres")) as server:
        yield server


@pytest.fixture
def pg_database(postgres: PgServer) -> str:
    """A fresh, empty database on the test server; its name."""
    return postgres.create_database()
