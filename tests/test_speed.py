"""What keeps the commands near their floor (docs/speed.md): offline commands never import the
AWS SDK, the region list read from botocore's data equals botocore's own answer, and a command's
own process runs with the collector settings of its kind. These run fresh interpreters: they are
about what a process imports and how it is set up."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest

from infra import config

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "prod.json"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_offline_commands_never_import_boto3_or_botocore() -> None:
    done = python(
        "import contextlib, io, sys\n"
        "import scripts.synth, scripts.infra_diff\n"
        "from scripts import guardrails, critical_path\n"
        "from infra.config import load_stack\n"
        "load_stack('prod')\n"  # validates the region against the RDS region list
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert guardrails.main(['--manifest', {str(GOLDEN)!r}]) in (0, 1)\n"
        f"    assert critical_path.main(['--manifest', {str(GOLDEN)!r}]) == 0\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_rds_region_list_is_botocores() -> None:
    session = botocore.session.get_session()
    expected: set[str] = set()
    for partition in ("aws", "aws-us-gov"):
        expected.update(session.get_available_regions("rds", partition_name=partition))
    assert config._known_regions() == frozenset(expected)
    assert "us-east-1" in expected and "cn-north-1" not in expected


def test_the_commands_botocore_loader_reads_botocores_data_as_botocore_does() -> None:
    from dbplatform.ops.aws import PlainJSONFileLoader, data_loader

    ours, theirs = PlainJSONFileLoader(), botocore.loaders.JSONFileLoader()
    finder = botocore.loaders.create_loader()
    paths = [finder.load_data_with_path("endpoints")[1]]  # a .json file
    for service in ("rds", "sts", "ssm", "cloudwatch"):  # .json.gz models, a .json paginator
        version = finder.determine_latest_version(service, "service-2")
        for kind in ("service-2", "paginators-1"):
            paths.append(finder.load_data_with_path(f"{service}/{version}/{kind}")[1])
    for path in paths:
        data, expected = ours.load_file(path), theirs.load_file(path)
        assert data == expected, path
        assert json.dumps(data) == json.dumps(expected), path  # the same key order throughout
    assert ours.load_file(str(ROOT / "no-such-model")) is None
    # the commands' sessions use it: plain dicts, not botocore's OrderedDict per JSON object
    model = data_loader(botocore.session.get_session()).load_service_model("sts", "service-2")
    assert type(model) is dict and type(model["shapes"]) is dict


def test_an_offline_process_does_not_collect_and_an_operation_freezes_its_imports() -> None:
    offline = python(
        "import gc\nfrom dbplatform.entry import run_main\n"
        "run_main(lambda: 0 if not gc.isenabled() else 5, 'x')"
    )
    assert offline.returncode == 0, offline.stderr
    operation = python(
        "import gc\nfrom dbplatform.entry import run_operation\n"
        "run_operation(lambda: 0 if gc.isenabled() and gc.get_freeze_count() > 0 else 5)"
    )
    assert operation.returncode == 0, operation.stderr


def test_calling_main_in_process_leaves_the_collector_alone() -> None:
    import contextlib
    import gc
    import io

    from scripts import critical_path

    before = gc.isenabled()
    with contextlib.redirect_stdout(io.StringIO()):
        assert critical_path.main(["--manifest", str(GOLDEN)]) == 0
    assert gc.isenabled() == before


def test_a_program_run_pauses_the_collector_and_gives_it_back_even_when_it_fails() -> None:
    """`run_program` (synth, and `dr rebuild` inside an operation that keeps collecting) runs
    the program with the collector off, then restores it however the run ends."""
    import gc

    import pytest

    from infra.offline import run_program

    seen: list[bool] = []

    def program() -> None:
        seen.append(gc.isenabled())
        raise RuntimeError("the program failed")

    assert gc.isenabled()  # as in an operational command's process (and every test's)
    with pytest.raises(RuntimeError):
        run_program("staging", program=program)
    assert seen == [False]
    assert gc.isenabled()


def test_the_program_registers_its_resources_on_one_offline_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run_program` answers the SDK's calls to the mock monitor on one thread, in order
    (infra/offline.py `_one_rpc_thread`), not on a pool of threads switching between them."""
    import threading

    from pulumi.runtime.mocks import MockMonitor

    from infra.offline import run_program

    register = MockMonitor.RegisterResource
    threads: set[str] = set()

    def on_thread(self: MockMonitor, request: object) -> object:
        threads.add(threading.current_thread().name)
        return register(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", on_thread)
    recording = run_program("staging")
    assert len(recording.resources) > 100
    assert len(threads) == 1 and threads.pop().startswith("offline"), threads


def test_the_suite_runs_the_program_once_per_inputs_and_hands_out_copies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """tests/conftest.py `shared_run`: the test processes of one run share each distinct program
    run through a folder; every caller gets its own copy, and a run that raises is not kept."""
    from infra.config import ConfigError, read_stack_values
    from tests import conftest

    runs: list[tuple[str, object]] = []
    real = conftest.run_program

    def counted(stack: str, **kwargs: object) -> object:
        runs.append((stack, kwargs.get("values")))
        return real(stack, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(conftest, "run_program", counted)
    monkeypatch.setenv("DBPLATFORM_TEST_RUNS", str(tmp_path))
    values, region = read_stack_values("staging", ROOT)
    first = conftest.shared_run("staging", values=dict(values), region=region)
    again = conftest.shared_run("staging", values=dict(values), region=region)
    assert len(runs) == 1
    assert again == first and again is not first and again.resources[0] is not first.resources[0]
    other = conftest.shared_run("staging", values={**values, "owner": "team-b"}, region=region)
    assert len(runs) == 2 and other != first
    west = conftest.shared_run("staging", values=dict(values), region="us-west-2")
    assert len(runs) == 3 and {r.region for r in west.resources} != {
        r.region for r in first.resources
    }

    broken = {**values, "database": {**values["database"], "engineVersion": "not-a-version"}}
    for _ in range(2):
        with pytest.raises(ConfigError):
            conftest.shared_run("staging", values=broken, region=region)
    assert len(runs) == 5  # refused both times: nothing kept


def test_the_suites_botocore_loaders_share_files_only_with_their_own_kind() -> None:
    """devtools/moto_server.py `load_botocore_data_once`, on in the test processes and the moto
    server: loaders of one kind (class, file loader, search path, add-ons) share each parsed
    file; the commands' plain-dict loader and a loader without add-ons get their own."""
    from dbplatform.ops.aws import PlainJSONFileLoader

    one, two = botocore.loaders.create_loader(), botocore.loaders.create_loader()
    assert one.load_service_model("rds", "service-2") is two.load_service_model("rds", "service-2")
    plain = botocore.loaders.create_loader()
    plain.file_loader = PlainJSONFileLoader()
    other = plain.load_service_model("rds", "service-2")
    assert other is not one.load_service_model("rds", "service-2")
    assert other == one.load_service_model("rds", "service-2")
    # botocore merges a loader's add-ons (sdk-extras) into the model it loads: a loader without
    # them must not get, or give, the merged one
    bare = botocore.loaders.Loader(include_default_extras=False)
    assert bare.load_service_model("rds", "service-2") is not one.load_service_model(
        "rds", "service-2"
    )
    elsewhere = botocore.loaders.create_loader()
    elsewhere.search_paths.insert(0, str(ROOT / "build" / "no-such-models"))
    assert elsewhere.load_service_model("rds", "service-2") is not one.load_service_model(
        "rds", "service-2"
    )


# Every service the commands, seeds and tests make clients of (cloudwatch's model names itself
# "monitoring": a model built without the client's service name would print that).
SERVICES = ("rds", "ssm", "secretsmanager", "cloudwatch", "backup", "sts", "ec2", "kms", "sns")


@pytest.mark.parametrize("service", SERVICES)
def test_the_suites_clients_share_botocores_model_per_description(service: str) -> None:
    """tests/conftest.py `_share_models_and_client_classes`: clients of one service, from
    different sessions and regions, share one model and one class; the model is the one botocore
    itself builds for that client (same description, name, version, signing, metadata,
    operations), the class has a method for each of its operations; a loader with another
    description (the commands' plain-dict loader) gets its own; the rest stays per client."""
    import botocore.client

    from dbplatform.ops.aws import PlainJSONFileLoader

    def client(session: botocore.session.Session, region: str) -> Any:
        return session.create_client(
            service,
            region_name=region,
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="example",
        )

    one = client(botocore.session.get_session(), "us-east-1")
    two = client(botocore.session.get_session(), "us-west-2")
    model = one.meta.service_model
    assert two.meta.service_model is model
    assert type(one) is type(two)
    assert sorted(type(one)._PY_TO_OP_NAME.values()) == sorted(model.operation_names)
    assert one.meta.events is not two.meta.events
    assert (one.meta.region_name, two.meta.region_name) == ("us-east-1", "us-west-2")

    # botocore's own model for this client: its loader (of the session's kind, so the same
    # parsed description) through the unpatched method
    creator = types.SimpleNamespace(
        _loader=botocore.session.get_session().get_component("data_loader")
    )
    own = botocore.client.ClientCreator._load_service_model.__wrapped__(creator, service)
    for attribute in ("service_name", "api_version", "signature_version", "signing_name"):
        assert getattr(model, attribute) == getattr(own, attribute), attribute
    assert model.metadata == own.metadata
    assert model.operation_names == own.operation_names
    assert model._service_description is own._service_description

    plain = botocore.session.get_session()
    loader = botocore.loaders.create_loader()
    loader.file_loader = PlainJSONFileLoader()
    plain.register_component("data_loader", loader)
    other = client(plain, "us-east-1")
    assert other.meta.service_model is not model
    assert type(other) is not type(one)
    assert other.meta.service_model.operation_names == model.operation_names
