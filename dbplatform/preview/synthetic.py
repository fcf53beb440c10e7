"""A large, deterministic `pulumi preview --json` document for the size-budget test and the
benchmark: thousands of steps across components, with a few stateful replacements and deletions.
"""

from __future__ import annotations

from typing import Any

from dbplatform.manifest.redact import SECRET_SIG_KEY, SECRET_SIG_VALUE

# A few stateful resources hide among the bulk; the report must still put each on top.
STATEFUL_REPLACED = ("tenant-0007-primary", "tenant-0421-primary", "tenant-1300-primary")
STATEFUL_DELETED = ("tenant-0999-backups",)
SECRET_PLAINTEXT = "Synthetic-Secret-Do-Not-Print-42"

_COMPONENTS = ("Alarms", "Network", "Replicas", "Dashboards", "Parameters")
_ROOT = "urn:pulumi:{stack}::dbplatform::"


def _urn(stack: str, chain: list[str], name: str) -> str:
    return _ROOT.format(stack=stack) + "$".join(chain) + "::" + name


def _state(urn: str, type_token: str, parent: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"urn": urn, "custom": True, "type": type_token, "inputs": inputs, "parent": parent}


def big_preview(steps: int = 2000, stack: str = "prod") -> dict[str, Any]:
    """A PreviewDigest with exactly `steps` steps."""
    env = "dbplatform:index:Environment"
    out: list[dict[str, Any]] = []

    secret = {SECRET_SIG_KEY: SECRET_SIG_VALUE, "value": SECRET_PLAINTEXT}
    for name in STATEFUL_REPLACED:
        chain = [env, "dbplatform:index:Database", "aws:rds/instance:Instance"]
        urn = _urn(stack, chain, name)
        parent = _urn(stack, chain[:2], f"{name}-db")
        old = _state(urn, chain[-1], parent, {"storageEncrypted": False, "password": secret})
        new = _state(urn, chain[-1], parent, {"storageEncrypted": True, "password": secret})
        for op in ("create-replacement", "replace", "delete-replaced"):
            out.append(
                {
                    "op": op,
                    "urn": urn,
                    "oldState": old,
                    "newState": new if op != "delete-replaced" else None,
                    "replaceReasons": ["storageEncrypted"],
                    "detailedDiff": {"storageEncrypted": {"kind": "update-replace"}},
                }
            )
    for name in STATEFUL_DELETED:
        chain = [env, "dbplatform:index:Backups", "aws:backup/vault:Vault"]
        urn = _urn(stack, chain, name)
        parent = _urn(stack, chain[:2], f"{name}-component")
        out.append(
            {
                "op": "delete",
                "urn": urn,
                "oldState": _state(urn, chain[-1], parent, {"name": name}),
                "detailedDiff": None,
            }
        )

    i = 0
    while len(out) < steps:
        component = _COMPONENTS[i % len(_COMPONENTS)]
        chain = [env, f"dbplatform:index:{component}", "aws:cloudwatch/metricAlarm:MetricAlarm"]
        name = f"tenant-{i:04d}-{component.lower()}-cpu-utilization-high"
        urn = _urn(stack, chain, name)
        parent = _urn(stack, chain[:2], f"{stack}-{component.lower()}")
        old_inputs = {
            "alarmDescription": f"CPU above threshold on tenant {i:04d} for 15 minutes",
            "threshold": 80,
            "evaluationPeriods": 3,
            "alarmActions": [f"arn:aws:sns:us-east-1:123456789012:oncall-{i % 7}"],
            "tags": {"Owner": "data-team", "Tenant": f"{i:04d}"},
        }
        new_inputs = dict(old_inputs, threshold=75, evaluationPeriods=5)
        new_inputs["tags"] = {"Owner": "platform-team", "Tenant": f"{i:04d}"}
        kind = i % 10
        if kind < 6:
            out.append(
                {
                    "op": "update",
                    "urn": urn,
                    "oldState": _state(urn, chain[-1], parent, old_inputs),
                    "newState": _state(urn, chain[-1], parent, new_inputs),
                    "diffReasons": ["evaluationPeriods", "tags", "threshold"],
                    "detailedDiff": {
                        "evaluationPeriods": {"kind": "update", "inputDiff": True},
                        "tags.Owner": {"kind": "update", "inputDiff": True},
                        "threshold": {"kind": "update", "inputDiff": True},
                    },
                }
            )
        elif kind < 8:
            out.append(
                {
                    "op": "create",
                    "urn": urn,
                    "newState": _state(urn, chain[-1], parent, new_inputs),
                    "detailedDiff": None,
                }
            )
        elif kind < 9:
            out.append(
                {
                    "op": "delete",
                    "urn": urn,
                    "oldState": _state(urn, chain[-1], parent, old_inputs),
                    "detailedDiff": None,
                }
            )
        else:
            out.append(
                {"op": "same", "urn": urn, "newState": _state(urn, chain[-1], parent, old_inputs)}
            )
        i += 1

    summary: dict[str, int] = {}
    for step in out:
        if step["op"] not in ("create-replacement", "delete-replaced"):
            summary[step["op"]] = summary.get(step["op"], 0) + 1
    return {"steps": out, "diagnostics": [], "changeSummary": summary}
