"""Shared fixtures: the real program run for a committed stack under Pulumi mocks."""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
import pickle
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devtools.moto_server import load_botocore_data_once, start_zygote, stop_zygote  # noqa: E402
from infra.config import committed_stacks, read_stack_values  # noqa: E402
from infra.offline import Recording, run_program  # noqa: E402
from tests.postgres import PgServer, running  # noqa: E402

STACKS = committed_stacks(ROOT)


def _share_models_and_client_classes() -> None:
    """One botocore `ServiceModel` and one client class per service description, for every
    client the suite creates (some 1,600: each in-process command run builds its own).

    - botocore builds a new model, with empty caches, for every client: each client resolved its
      operations' shapes, their members and the service's error shapes again on its first call
      of each (a first call that returns an error rebuilt the error-code table over all of rds's
      shapes: 8.9 ms of a fresh client's CPU against 3.9 ms with a shared model).
    - It also builds a new class, with a method and a lazy docstring per operation (~2.5 ms for
      rds, ~8 ms for ec2). The class depends only on the model (and on `creating-client-class`
      hooks, which no test registers).

    A model is read, not changed: its caches hold only what it derives from the description.
    botocore's only edits in place (its s3 and s3-control handlers rewrite an operation's http
    and endpoint dicts) write into the description, which botocore already shares between every
    client of a loader; this project makes no s3 client. Each client keeps its own session,
    endpoint, events, config and connection. The unpatched methods stay reachable as
    `__wrapped__` (tests/test_speed.py compares the shared model with botocore's own).
    """
    import botocore.client
    from botocore.model import ServiceModel

    creator = botocore.client.ClientCreator
    load, build = creator._load_service_model, creator._create_client_class
    # (service name, id of the parsed description) -> [the description, kept alive so its id
    # stays its own; its model; its client class once built]
    shared: dict[tuple[str, int], list[Any]] = {}

    def entry(service_name: str, description: Any) -> list[Any]:
        key = (service_name, id(description))
        if key not in shared:
            model = ServiceModel(description, service_name=service_name)
            shared[key] = [description, model, None]
        return shared[key]

    def load_service_model(
        self: Any, service_name: str, api_version: str | None = None
    ) -> ServiceModel:
        description = self._loader.load_service_model(
            service_name, "service-2", api_version=api_version
        )
        return entry(service_name, description)[1]  # type: ignore[no-any-return]

    def create_client_class(self: Any, service_name: str, service_model: Any) -> type:
        shared_entry = entry(service_name, service_model._service_description)
        if shared_entry[2] is None:
            shared_entry[2] = build(self, service_name, service_model)
        return shared_entry[2]  # type: ignore[no-any-return]

    load_service_model.__wrapped__ = load  # type: ignore[attr-defined]
    create_client_class.__wrapped__ = build  # type: ignore[attr-defined]
    creator._load_service_model = load_service_model
    creator._create_client_class = create_client_class


def _remember_handler_checks() -> None:
    """A new botocore session registers some 140 built-in event handlers, and for each one
    botocore checks the handler takes **kwargs (`inspect.getfullargspec`) and rewrites the
    event name through its alias table: ~6 ms per session, ~13 ms with its first client. The
    suite builds a session per in-process command run, as a process would, some hundreds in all.

    Both answers depend only on the handler's function and the event name, so the suite keeps
    them: the kwargs check per function's code, the alias per event name for sessions that use
    botocore's own alias table. Each session still registers every handler in its own emitter.
    """
    import types

    from botocore import hooks

    check = hooks.accepts_kwargs
    checked: dict[types.CodeType, bool] = {}

    def accepts_kwargs(func: Any) -> bool:
        # Whether a function takes **kwargs is a property of its code object (boto3 makes a new
        # closure per session over the same code). A function with attributes of its own
        # (`__wrapped__`, `__signature__`, a partialmethod's) may answer otherwise: asked each
        # time, as botocore does.
        plain = getattr(func, "__func__", func)
        if not isinstance(plain, types.FunctionType) or plain.__dict__:
            return bool(check(func))
        if plain.__code__ not in checked:
            checked[plain.__code__] = bool(check(func))
        return checked[plain.__code__]

    hooks.accepts_kwargs = accepts_kwargs

    aliased: dict[str, str] = {}
    init = hooks.EventAliaser.__init__

    def alias_init(self: Any, event_emitter: Any, event_aliases: Any = None) -> None:
        init(self, event_emitter, event_aliases)
        if event_aliases is None or event_aliases == hooks.EVENT_ALIASES:  # copies pass a copy
            # botocore's own table, so no later change to this aliaser's table can leak into
            # the shared answers
            self._event_aliases = hooks.EVENT_ALIASES
            self._alias_name_cache = aliased

    hooks.EventAliaser.__init__ = alias_init  # type: ignore[method-assign]


_share_models_and_client_classes()
_remember_handler_checks()
load_botocore_data_once()  # the tests', seeds' and in-process commands' sessions share files


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported (pulumi, pulumi_aws's service packages, boto3: some
    hundreds of thousands of objects that live as long as the worker) out of the collector.

    Each full collection then walks only what the tests allocate instead of the whole import
    heap again; the collector stays on, so a test's cycles are still freed. The commands' own
    processes do the same (dbplatform/entry.py); docs/speed.md has the figures.
    """
    if os.environ.get("DBPLATFORM_TEST_GC") == "default":  # to measure the difference
        return
    if any(item.path.is_relative_to(ROOT / "tests" / "infra") for item in session.items):
        # The program's service packages (~480 modules) load on first use: load them now, so
        # they are frozen too, in the workers that will run the program.
        import pulumi_aws as aws

        for package in ("ec2", "rds", "cloudwatch", "route53", "iam", "backup", "kms", "sns"):
            getattr(aws, package)
    gc.collect()
    gc.freeze()
    # A worker keeps what its tests load for the rest of the run: botocore's parsed service
    # models (rds alone is some 100 k objects), recordings, hypothesis's databases. With the
    # default thresholds (700, 10, 10) full collections walked all of it over and over: the
    # workers spent about 25 s in the collector, 15 s in full collections. With these, about
    # 12 s. Nothing is left uncollected, only later: about 85 MB more at a worker's peak
    # (docs/speed.md).
    gc.set_threshold(10_000, 10, 100)


# Where the test processes of one run leave the program's recordings for each other: a new,
# empty folder the controlling process makes in pytest_configure, before it starts the workers
# (they inherit the variable), so no run reads another's recordings.
_SHARED_RUNS = "DBPLATFORM_TEST_RUNS"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            # Started in the background of a non-interactive shell (`make test &` in a script),
            # the run inherits SIGINT ignored, and so would every worker and command it starts:
            # Python keeps an inherited ignore. The tests that send a command SIGINT (a CI
            # cancellation, an operator's Ctrl-C) need it delivered as a terminal would.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        os.environ[_SHARED_RUNS] = folder = tempfile.mkdtemp(prefix="dbplatform-runs-")
        config.add_cleanup(lambda: shutil.rmtree(folder, True))
        # The test processes' moto servers are forked from one warmed process (a fresh one
        # spends about a second of CPU importing and loading before it has answered every
        # service once): started here, in the background, before the workers; ended last.
        zygote = start_zygote(folder)
        config.add_cleanup(lambda: stop_zygote(zygote))


def shared_run(
    stack: str, *, values: dict[str, Any] | None = None, region: str | None = None
) -> Recording:
    """`run_program(stack, root=ROOT, values=values, region=region)`, run once per suite for the
    same inputs: the program is deterministic (test_synth proves same input, same bytes), and a
    run costs 0.3-0.4 s of CPU. The first test process to ask runs it, the others wait for it and
    read its pickle. Each caller gets its own copy; a run that raises is not kept."""
    folder = os.environ.get(_SHARED_RUNS)
    try:
        # JSON, so equal inputs give one key whatever the order of their mappings (a tuple and
        # a list are the same value to the stack file reader too)
        inputs = json.dumps([stack, values, region], sort_keys=True, default=repr)
    except TypeError:  # keys that do not sort: run it, unshared
        folder = None
    if folder is None:
        return _run_uncollected(stack, values, region)
    path = Path(folder) / hashlib.sha256(inputs.encode()).hexdigest()
    with open(path.with_suffix(".lock"), "wb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if path.exists():
            recording: Recording = pickle.loads(path.read_bytes())  # noqa: S301 - our own file
            return recording
        recording = _run_uncollected(stack, values, region)
        path.with_suffix(".tmp").write_bytes(pickle.dumps(recording, pickle.HIGHEST_PROTOCOL))
        path.with_suffix(".tmp").replace(path)
        return recording


def _run_uncollected(stack: str, values: dict[str, Any] | None, region: str | None) -> Recording:
    """`run_program`, its garbage kept instead of collected: a worker's speed for memory.

    A run leaves some 58 k objects in reference cycles (the SDK's tasks, coroutines and
    closures, `pulumi/output.py`); the collector walking them, and everything the worker holds
    when they reach the older generations, was a quarter of a run's CPU. Instead, what the
    collector tracks when the run ends (the run's objects, and what the worker held before) moves
    to its permanent generation (`gc.freeze`) and is not walked again: about 10 MB a run kept,
    until `_KEEP_AT_MOST` runs' worth are collected at once (docs/speed.md). Objects that lose their
    last reference are still freed. The commands keep collecting: this is the suite's choice.
    """
    _KEPT_RUNS[0] += 1
    if _KEPT_RUNS[0] % _KEEP_AT_MOST == 0:
        gc.unfreeze()  # _KEEP_AT_MOST runs' worth: collected once, then frozen afresh
        gc.collect()
    else:
        gc.collect(1)  # the tests' own young garbage (a socket in a cycle) is not kept
    enabled = gc.isenabled()
    gc.disable()  # run_program leaves the collector as it found it
    try:
        return run_program(stack, root=ROOT, values=values, region=region)
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


# About 68 k objects and 10 MB a run are kept; every this many runs, everything is collected.
# A worker runs 12-47 programs in a whole suite (2026-12-02), so in practice none collects them:
# at 15, each such collection walked about 900 k objects for 1.5 s of CPU, about 6 s a suite,
# and freed nothing a later test needed. At 60 a worker keeps at most about 0.6 GB of the
# machine's 24 GiB, and a long single-worker run (`pytest -p no:xdist`) still stays bounded.
_KEEP_AT_MOST = 60
_KEPT_RUNS = [0]


_CACHE: dict[str, Recording] = {}


def record(stack: str) -> Recording:
    """The committed stack's recording: one object per test process, one run per suite."""
    if stack not in _CACHE:
        _CACHE[stack] = shared_run(stack)
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
        return shared_run(stack, values=values, region=region or file_region)

    return _run


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    """A real PostgreSQL server on 127.0.0.1 for this test process (tests/postgres.py)."""
    with running() as server:
        yield server


@pytest.fixture
def pg_database(postgres: PgServer) -> str:
    """A fresh, empty database on the test server; its name."""
    return postgres.create_database()
