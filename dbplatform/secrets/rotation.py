"""Emergency rotation of one of a stack's secrets (runbooks: within 24 hours of a compromise).

Usage: python -m scripts.rotate_secret --stack S --secret NAME [--timeout MINUTES]

The master credential is rotated by its configured rotation function (Secrets Manager
RotateSecret, immediately); an application secret gets a new generated value written as
AWSCURRENT, the old one kept as AWSPREVIOUS. Either way the command waits (bounded) for the new
version to be current and replicated, verifies it, and never prints a secret value.
Exit codes: 0 rotated and verified; 1 failed or not verified; 2 bad usage/config (unknown secret
name); 3 refused (secret missing in AWS, deleted, rotation not configured, not confirmed:
nothing changed); 130 interrupted (re-run: a rotation in progress is waited for, not restarted).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from dbplatform.ops import (
    BadUsage,
    Context,
    Failed,
    Poll,
    Refused,
    Result,
    error_code,
)

COMMAND = "rotate_secret"
MASTER = "master"
DEFAULT_TIMEOUT_MINUTES = 30
CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
# The RDS secret shape the rotation function must leave behind.
MASTER_KEYS = ("engine", "host", "username", "password")
# Same alphabet and floor as the program's generator (infra/components/vault.py): letters and
# digits, at least 4 of each class.
APP_ALPHABET = string.ascii_letters + string.digits
APP_MIN_PER_CLASS = 4


@dataclass(frozen=True)
class Target:
    """The secret asked for, resolved from the stack's config and names."""

    label: str
    """name as the operator knows it: 'master' or the app secret's name"""
    secret_id: str
    """Secrets Manager name"""
    kind: str
    """'master' or 'app'"""
    length: int = 0
    """generated length (app secrets)"""


def resolve_target(ctx: Context, requested: str) -> Target:
    """Map --secret onto one of the stack's secrets; an unknown name is bad usage (exit 2)."""
    names, cfg = ctx.stack.names, ctx.stack.config
    if requested in (MASTER, names.master_secret):
        return Target(MASTER, names.master_secret, "master")
    for spec in cfg.vault.app_secrets:
        if requested in (spec.name, names.app_secret(spec.name)):
            return Target(spec.name, names.app_secret(spec.name), "app", spec.length)
    known = ", ".join([MASTER, *(s.name for s in cfg.vault.app_secrets)])
    raise BadUsage(
        f"--secret {requested!r} is not a secret of stack {ctx.stack.name} (known: {known}); "
        f"application secrets are declared in Pulumi.{ctx.stack.name}.yaml under "
        "dbplatform:vault.appSecrets"
    )


def check_secret_name(ctx: Context) -> None:
    resolve_target(ctx, ctx.args.secret)


def stages(description: Mapping[str, Any]) -> dict[str, list[str]]:
    """version id -> staging labels, from DescribeSecret."""
    return {k: list(v) for k, v in (description.get("VersionIdsToStages") or {}).items()}


def version_with(description: Mapping[str, Any], label: str) -> str | None:
    for version, labels in stages(description).items():
        if label in labels:
            return version
    return None


def describe(sm: BaseClient, target: Target, stack: str) -> dict[str, Any]:
    """DescribeSecret, refusing (exit 3, nothing changed) when the secret is not usable."""
    try:
        desc: dict[str, Any] = sm.describe_secret(SecretId=target.secret_id)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise Refused(
                f"secret {target.secret_id} does not exist in Secrets Manager; nothing was "
                f"changed. Deploy the stack first (pulumi up --stack {stack}), or check "
                "AWS_PROFILE/AWS_REGION point at the stack's account"
            ) from None
        raise
    if desc.get("DeletedDate"):
        raise Refused(
            f"secret {target.secret_id} is scheduled for deletion; nothing was changed. Restore "
            f"it first: aws secretsmanager restore-secret --secret-id {target.secret_id}"
        )
    if version_with(desc, CURRENT) is None:
        raise Refused(
            f"secret {target.secret_id} has no current value to rotate from; nothing was "
            f"changed. Run pulumi up --stack {stack} to write its first version"
        )
    return desc


def fingerprint(value: str) -> str:
    """Compare values without keeping or printing them."""
    return hashlib.sha256(value.encode()).hexdigest()


def generate(length: int) -> str:
    """A new application secret value of the program's shape."""
    while True:
        value = "".join(secrets.choice(APP_ALPHABET) for _ in range(length))
        classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
        if all(sum(c in cls for c in value) >= APP_MIN_PER_CLASS for cls in classes):
            return value


def read_value(sm: BaseClient, secret_id: str, version_id: str) -> str:
    got = sm.get_secret_value(SecretId=secret_id, VersionId=version_id)
    value = got.get("SecretString")
    if not isinstance(value, str) or not value:
        raise Failed(
            f"version {version_id} of {secret_id} has no string value; the rotation did not "
            "produce a usable secret. AWSPREVIOUS still holds the old value: "
            f"aws secretsmanager get-secret-value --secret-id {secret_id} --version-stage "
            "AWSPREVIOUS"
        )
    return value


# --- the operation ---------------------------------------------------------------------------


def rotate(ctx: Context) -> Result:
    target = resolve_target(ctx, ctx.args.secret)
    sm = ctx.client("secretsmanager")
    with ctx.out.phase(f"check {target.secret_id}"):
        desc = describe(sm, target, ctx.stack.name)
    if target.kind == "master":
        return _rotate_master(ctx, sm, target, desc)
    return _rotate_app(ctx, sm, target, desc)


def _rotate_master(ctx: Context, sm: BaseClient, target: Target, desc: Mapping[str, Any]) -> Result:
    current = version_with(desc, CURRENT)
    pending = version_with(desc, PENDING)
    assert current is not None
    resumed = pending is not None and pending != current
    if not resumed and not desc.get("RotationEnabled"):
        raise Refused(
            f"secret {target.secret_id} has no rotation configured; nothing was changed. "
            f"Run pulumi up --stack {ctx.stack.name} (it declares the rotation function), "
            "then re-run this command"
        )
    if resumed and ctx.dry_run:
        return Result(
            f"dry run: a rotation of {target.secret_id} is in progress (version {pending}); "
            "a real run would wait for it and verify it",
            data={"secret": target.secret_id, "kind": target.kind, "pending_version": pending},
        )
    if resumed:
        # A rotation already runs (or an earlier run of this command was interrupted): a
        # second RotateSecret would be refused by Secrets Manager; wait for this one instead.
        ctx.out.info(f"a rotation of {target.secret_id} is already in progress; waiting for it")
        new_version = pending
    else:
        ctx.confirm(
            f"rotate the master credential of stack {ctx.stack.name} now: the database "
            "password changes; clients must re-read the secret (AWSCURRENT)"
        )
        with ctx.out.phase("start rotation"):
            response = ctx.mutate(
                sm,
                "rotate_secret",
                {"SecretId": target.secret_id, "RotateImmediately": True},
            )
        if ctx.dry_run:
            return _dry_run_result(target, current)
        new_version = str(response.get("VersionId") or "")
        if not new_version:
            raise Failed(f"RotateSecret on {target.secret_id} returned no new version id")
    assert new_version is not None

    timeout = ctx.args.timeout * 60.0
    function = str(desc.get("RotationLambdaARN") or ctx.stack.names.rotation_function)
    log_group = f"/aws/lambda/{function.rsplit(':', maxsplit=1)[-1]}"
    with ctx.out.phase("wait for the rotation function"):
        ctx.wait_for(
            f"version {new_version[:8]} to become {CURRENT}",
            lambda: _stage_poll(sm, target.secret_id, new_version),
            timeout=timeout,
            on_timeout=(
                "the old password stays AWSCURRENT until the rotation finishes (nothing is "
                f"lost). Read the function's log: aws logs tail {log_group}; if the rotation "
                "failed, fix the cause, remove the pending label "
                f"(aws secretsmanager update-secret-version-stage --secret-id {target.secret_id} "
                f"--version-stage AWSPENDING --remove-from-version-id {new_version}) and re-run"
            ),
        )
    with ctx.out.phase("verify the new version"):
        after = sm.describe_secret(SecretId=target.secret_id)
        _verify_labels(after, target, new_version, current)
        new = _master_fields(read_value(sm, target.secret_id, new_version), target)
        old = _master_fields(read_value(sm, target.secret_id, current), target)
        if fingerprint(new["password"]) == fingerprint(old["password"]):
            raise Failed(
                f"the new version of {target.secret_id} holds the same password as the old one; "
                "the rotation function did not change it. Read its log and re-run"
            )
        if (new["username"], new["host"]) != (old["username"], old["host"]):
            ctx.out.warn("the new version names another user or host than the previous one")
    replicas = _wait_replicas(ctx, sm, target, timeout)
    return _done(target, current, new_version, replicas, resumed=resumed)


def _rotate_app(ctx: Context, sm: BaseClient, target: Target, desc: Mapping[str, Any]) -> Result:
    current = version_with(desc, CURRENT)
    assert current is not None
    ctx.confirm(
        f"rotate application secret {target.label} of stack {ctx.stack.name} now: the current "
        "value becomes AWSPREVIOUS and readers of AWSCURRENT get a new one"
    )
    value = generate(target.length)
    token = str(uuid.uuid4())
    with ctx.out.phase("write the new value"):
        # PutSecretValue moves AWSCURRENT to the new version and AWSPREVIOUS to the old current
        # in one call: there is no half-rotated state to recover from.
        ctx.mutate(
            sm,
            "put_secret_value",
            {
                "SecretId": target.secret_id,
                "ClientRequestToken": token,
                "SecretString": value,
                "VersionStages": [CURRENT],
            },
        )
    if ctx.dry_run:
        return _dry_run_result(target, current)
    with ctx.out.phase("verify the new version"):
        after = sm.describe_secret(SecretId=target.secret_id)
        _verify_labels(after, target, token, current)
        got = read_value(sm, target.secret_id, token)
        if fingerprint(got) != fingerprint(value):
            raise Failed(f"{target.secret_id} AWSCURRENT does not hold the value just written")
        if len(got) != target.length:
            raise Failed(f"{target.secret_id}: new value has the wrong length")
    replicas = _wait_replicas(ctx, sm, target, ctx.args.timeout * 60.0)
    return _done(target, current, token, replicas, resumed=False)


def _stage_poll(sm: BaseClient, secret_id: str, version: str) -> Poll[bool]:
    desc = sm.describe_secret(SecretId=secret_id)
    labels = stages(desc).get(version, [])
    if CURRENT in labels:
        return Poll(True, "current", True)
    return Poll(False, ", ".join(labels) or "no label (rotation function working)")


def _verify_labels(
    desc: Mapping[str, Any], target: Target, new_version: str, old_version: str
) -> None:
    labels = stages(desc)
    if CURRENT not in labels.get(new_version, []):
        raise Failed(f"{target.secret_id}: version {new_version} is not AWSCURRENT after rotation")
    if PREVIOUS not in labels.get(old_version, []):
        raise Failed(
            f"{target.secret_id}: the old version {old_version} is not kept as AWSPREVIOUS; "
            "check the secret's versions before anything else"
        )


def _master_fields(raw: str, target: Target) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not all(data.get(k) for k in MASTER_KEYS):
        raise Failed(
            f"{target.secret_id}: a version is not the RDS secret JSON ({', '.join(MASTER_KEYS)}); "
            "the database may not match the secret. Compare AWSCURRENT and AWSPREVIOUS"
        )
    return {k: str(data[k]) for k in MASTER_KEYS}


def _wait_replicas(ctx: Context, sm: BaseClient, target: Target, timeout: float) -> dict[str, str]:
    """Wait until every replica region reports InSync (the DR copy holds the new value)."""
    desc = sm.describe_secret(SecretId=target.secret_id)
    if not desc.get("ReplicationStatus"):
        return {}

    def poll() -> Poll[dict[str, str]]:
        seen = sm.describe_secret(SecretId=target.secret_id).get("ReplicationStatus") or []
        status = {str(r["Region"]): str(r.get("Status", "?")) for r in seen}
        failed = {r: s for r, s in status.items() if s == "Failed"}
        if failed:
            raise Failed(
                f"replication of {target.secret_id} to {', '.join(failed)} failed; the primary "
                "holds the new value. Fix the replica (its KMS key) and re-run to verify"
            )
        text = ", ".join(f"{r} {s}" for r, s in sorted(status.items()))
        return Poll(all(s == "InSync" for s in status.values()), text, status)

    with ctx.out.phase("wait for the DR replicas"):
        return ctx.wait_for("secret replicas to be in sync", poll, timeout=timeout) or {}


def _dry_run_result(target: Target, current: str) -> Result:
    return Result(
        f"dry run: would rotate {target.secret_id} ({target.kind}); current version "
        f"{current} would become AWSPREVIOUS",
        data={"secret": target.secret_id, "kind": target.kind, "current_version": current},
    )


def _done(
    target: Target, old: str, new: str, replicas: Mapping[str, str], *, resumed: bool
) -> Result:
    where = f"; replicas in sync: {', '.join(sorted(replicas))}" if replicas else ""
    how = "waited for the rotation in progress" if resumed else "rotated"
    return Result(
        f"{how} {target.secret_id}: version {new} is AWSCURRENT, {old} kept as AWSPREVIOUS"
        f"{where}. Restart or reload the clients that cache it",
        data={
            "secret": target.secret_id,
            "kind": target.kind,
            "new_version": new,
            "previous_version": old,
            "replicas": dict(replicas),
            "resumed": resumed,
        },
    )
