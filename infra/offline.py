"""Run the real Pulumi program for a stack without the CLI or a cloud, and record what it declares.

The program runs under Pulumi's mocks in preview mode with the stack's committed config, so
values only the cloud can assign (ARNs, endpoints, generated passwords) stay unknown, exactly as
in `pulumi preview`. A recording monitor keeps every registration: type, name, parent,
dependencies, options and inputs. Tests, `scripts.synth` and the guardrails build on this.
"""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.config import NAMESPACE, ROOT, StackConfig, load_config, read_stack_values
from infra.naming import PROJECT
from policy.manifest import (
    KNOWN_AFTER_DEPLOY,
    SECRET,
    CalendarRow,
    Manifest,
    Resource,
    is_known,
)

_STACK_TYPE = "::pulumi:pulumi:Stack::"


@dataclass
class Recorded:
    """One resource registration as the engine would receive it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    dependencies: list[str]
    protect: bool
    retain_on_delete: bool
    ignore_changes: list[str]
    replace_on_changes: list[str]
    delete_before_replace: bool
    import_id: str | None
    provider: str | None
    region: str | None
    custom_timeouts: dict[str, str]
    inputs: dict[str, Any]


@dataclass
class Recording:
    """Everything one run of the program declared."""

    stack: str
    config: StackConfig
    resources: list[Recorded] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_token]

    def by_name(self, name: str) -> Recorded:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r}")
        return matches[0]

    def by_urn(self) -> dict[str, Recorded]:
        return {r.urn: r for r in self.resources}


def _plain(value: Any) -> Any:
    """Inputs as plain JSON-able data: unknowns become a marker, secrets are redacted."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return KNOWN_AFTER_DEPLOY
    if rpc.is_rpc_secret(value):
        return SECRET
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_resource_sig:
            return value.get("urn")
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the wire format has only doubles; 20 was declared, not 20.0
    return value


_DROP = object()


def _strip_unknowns(value: Any) -> Any:
    """Inputs echoed as state, minus anything unknown (a secret wrapping an unknown included)."""
    from pulumi.output import Unknown
    from pulumi.runtime import rpc

    if isinstance(value, Unknown) or value == rpc.UNKNOWN:
        return _DROP
    if isinstance(value, dict):
        if rpc.is_rpc_secret(value) and _strip_unknowns(value.get("value")) is _DROP:
            return _DROP
        out = {k: _strip_unknowns(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, list):
        items = [_strip_unknowns(v) for v in value]
        return _DROP if any(i is _DROP for i in items) else items
    return value


def _make_mocks(region: str, sink: list[Recorded]) -> Any:
    import pulumi

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
            # Echo the inputs back: cloud-computed attributes are absent and so stay unknown.
            state = _strip_unknowns(args.inputs)
            return (None, state if isinstance(state, dict) else {})

        def call(self, args: pulumi.runtime.MockCallArgs) -> dict:  # type: ignore[override]
            if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": "123456789012", "arn": "", "userId": "", "id": ""}
            if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                provider = args.provider.rsplit("::", 1)[0] if args.provider else ""
                provider_region = (
                    next((r.inputs.get("region") for r in sink if r.urn == provider), None)
                    or region
                )
                names = [f"{provider_region}{c}" for c in "abcdef"]
                return {"names": names, "zoneIds": names, "id": str(provider_region)}
            if args.token == "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
            raise NotImplementedError(
                f"the program called {args.token}, which the offline runner does not emulate: "
                "derive the value from config instead"
            )

    return _Mocks()


def _make_monitor(mocks: Any, sink: list[Recorded], default_region: str) -> Any:
    from pulumi.runtime import rpc
    from pulumi.runtime.mocks import MockMonitor

    class _RecordingMonitor(MockMonitor):
        def RegisterResource(self, request: Any) -> Any:
            response = super().RegisterResource(request)
            if request.type == "pulumi:pulumi:Stack":
                return response
            inputs = rpc.deserialize_properties(request.object, keep_unknowns=True)
            timeouts = request.customTimeouts
            sink.append(
                Recorded(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    custom=bool(request.custom),
                    parent=None
                    if not request.parent or _STACK_TYPE in request.parent
                    else request.parent,
                    dependencies=sorted(set(request.dependencies)),
                    protect=bool(request.protect),
                    retain_on_delete=bool(request.retainOnDelete),
                    ignore_changes=sorted(request.ignoreChanges),
                    replace_on_changes=sorted(request.replaceOnChanges),
                    delete_before_replace=bool(request.deleteBeforeReplace),
                    import_id=request.importId or None,
                    # a provider reference is "<provider urn>::<provider id>"
                    provider=request.provider.rsplit("::", 1)[0] if request.provider else None,
                    region=default_region,
                    custom_timeouts={
                        k: v
                        for k, v in (
                            ("create", timeouts.create),
                            ("update", timeouts.update),
                            ("delete", timeouts.delete),
                        )
                        if v
                    },
                    inputs=_plain(inputs),
                )
            )
            return response

    return _RecordingMonitor(mocks)


def _resolve_provider_regions(resources: list[Recorded]) -> None:
    """A resource under an explicit provider is in that provider's region.

    A provider declared without a region uses the stack's (`aws:region`), like the engine's.
    """
    regions: dict[str, str | None] = {}
    for r in resources:
        if r.type == "pulumi:providers:aws":
            r.region = r.inputs.get("region") or r.region
            regions[r.urn] = r.region
    for r in resources:
        if r.provider in regions:
            r.region = regions[r.provider]


def _skip_source_positions() -> None:
    """Offline only: do not walk the Python stack for every registration.

    The SDK records each resource's source position for the engine's diagnostics; nothing
    offline reads it, and walking the stack is about a fifth of a synth's time.
    """
    from pulumi.runtime import resource
    from pulumi.runtime.proto import source_pb2

    resource._get_stack_trace = source_pb2.StackTrace


_ONE_THREAD: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _one_rpc_thread() -> None:
    """Offline only: the SDK's calls to the monitor run on one thread, in the order made.

    The SDK hands each registration to the event loop's thread pool, built for a real engine
    that answers over gRPC; under mocks each such job is one synchronous call to the mock
    monitor (pulumi/runtime/mocks.py), which no other job waits on.
    One thread does the same work with less switching between threads: ~8% of a synth. Set once
    per event loop (the SDK keeps one per thread) and left for the process, as the SDK's is.
    """
    from concurrent.futures import ThreadPoolExecutor

    from pulumi.runtime.sync_await import _ensure_event_loop

    loop = _ensure_event_loop()
    if loop not in _ONE_THREAD:
        _ONE_THREAD[loop] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="offline")
        loop.set_default_executor(_ONE_THREAD[loop])


def pulumi_config(stack: str, values: dict[str, Any], region: str | None) -> dict[str, str]:
    """Stack values in the engine's form: `namespace:key` -> string (objects as JSON)."""
    out = {
        f"{NAMESPACE}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in values.items()
    }
    if region is not None:
        out["aws:region"] = str(region)
    return out


def run_program(
    stack: str,
    *,
    root: Path = ROOT,
    values: dict[str, Any] | None = None,
    region: str | None = None,
    program: Callable[[], None] | None = None,
) -> Recording:
    """Run the program (or `program`) for `stack` under mocks and return what it declared.

    `values`/`region` replace the committed `Pulumi.<stack>.yaml` (tests feed variants).
    Raises ConfigError, before any Pulumi state is touched, when the config is invalid.
    """
    import pulumi
    from pulumi.runtime import settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    if values is None:
        values, file_region = read_stack_values(stack, root)
        region = file_region if region is None else region
    config = load_config(stack, values, region, root=root)

    _skip_source_positions()
    _one_rpc_thread()
    # Reset everything a previous run left in the process-wide runtime state.
    settings.ROOT.set(None)
    pulumi.runtime.set_all_config(pulumi_config(stack, values, config.region))
    sink: list[Recorded] = []
    mocks = _make_mocks(config.region, sink)
    monitor = _make_monitor(mocks, sink, config.region)
    pulumi.runtime.set_mocks(mocks, project=NAMESPACE, stack=stack, preview=True, monitor=monitor)
    root_resource = settings.get_root_resource()
    settings.SETTINGS.outputs.clear()

    if program is None:
        from infra.program import run

        program = run
    outputs: dict[str, Any] = {}

    async def _collect() -> None:
        assert root_resource is not None
        stack_outputs = getattr(root_resource, "outputs", {})
        for key, value in stack_outputs.items():
            out = pulumi.Output.from_input(value)
            known = await out.is_known()
            secret = await out.is_secret()
            if secret:
                outputs[key] = SECRET
            elif not known:
                outputs[key] = KNOWN_AFTER_DEPLOY
            else:
                outputs[key] = _plain(await out.future(with_unknowns=True))

    # The collector paused for the run: the SDK's futures and tasks would set off several full
    # collections over everything imported (docs/speed.md). An operational command that
    # synthesises (dr rebuild) keeps collecting before and after; the run's garbage is bounded.
    enabled = gc.isenabled()
    gc.disable()
    try:
        _sync_await(run_pulumi_func(program))
        _sync_await(_collect())
    finally:
        if enabled:
            gc.enable()
    _resolve_provider_regions(sink)
    return Recording(stack=stack, config=config, resources=sink, outputs=outputs)


def from_recording(rec: Recording) -> Manifest:
    """The manifest of one run of the program (see infra.offline.run_program)."""
    cfg = rec.config
    resources = []
    for r in rec.resources:
        # pulumi-aws 7 can place a single resource in another region with a `region` input.
        region = r.inputs.get("region")
        resources.append(
            Resource(
                urn=r.urn,
                type=r.type,
                name=r.name,
                inputs=r.inputs,
                custom=r.custom,
                parent=r.parent,
                dependencies=tuple(sorted(r.dependencies)),
                protect=r.protect,
                retain_on_delete=r.retain_on_delete,
                ignore_changes=tuple(sorted(r.ignore_changes)),
                replace_on_changes=tuple(sorted(r.replace_on_changes)),
                delete_before_replace=r.delete_before_replace,
                import_id=r.import_id,
                provider=r.provider,
                region=region if isinstance(region, str) and is_known(region) else r.region,
                custom_timeouts=dict(r.custom_timeouts),
            )
        )
    calendar = sorted(
        cfg.calendar(), key=lambda e: (e.window.intervals()[0][0], e.name)
    )  # the order windows.render_calendar shows them in
    return Manifest(
        project=PROJECT,
        stack=rec.stack,
        tier=cfg.tier,
        region=cfg.region,
        dr_region=cfg.dr.region,
        resources=tuple(sorted(resources, key=lambda r: r.urn)),
        outputs=dict(sorted(rec.outputs.items())),
        calendar=tuple(
            CalendarRow(name=e.name, kind=e.kind, window=e.window.to_rds()) for e in calendar
        ),
    )


# ---------------------------------------------------------------------------------------------
# References between resources. Under mocks (and in `pulumi preview`) ARNs and ids are unknown,
# so "X refers to Y" is decided from a known name or ARN when there is one, and otherwise from
# the dependency the unknown value carries (X depends on Y).
# ---------------------------------------------------------------------------------------------
