"""Emergency rotation of one of a stack's secrets (runbooks: within 24 hours of a compromise).

Usage: dbplatform rotate-secret --stack S --secret NAME [--timeout MINUTES]

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
from infra.config import MASTER_SECRET_NAME

COMMAND = "rotate_secret"
MASTER = MASTER_SECRET_NAME
DEFAULT_TIMEOUT_MINUTES = 30
CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
# An encryption key's versions keep a label of their own after rotation: Secrets Manager
# treats a version without staging labels as deprecated and may delete it (DescribeSecret
# VersionIdsToStages; UpdateSecretVersionStage). Custom labels may be any 1-256 characters.
RETIRED_PREFIX = "DBPLATFORM-RETIRED-"
# A pending version older than this is no rotation in progress: each of the rotation function's
# four steps is one Lambda invocation of at most 15 minutes (the Lambda timeout limit).
STALE_PENDING_SECONDS = 3600
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
    secret_kind: str = "master"
    """signing | encryption | token (app secrets, vault.appSecrets[].kind); master"""


def resolve_target(ctx: Context, requested: str) -> Target:
    """Map --secret onto one of the stack's secrets; an unknown name is bad usage (exit 2)."""
    names, cfg = ctx.stack.names, ctx.stack.config
    if requested in (MASTER, names.master_secret):
        return Target(MASTER, names.master_secret, "master")
    for spec in cfg.vault.app_secrets:
        if requested in (spec.name, names.app_secret(spec.name)):
            return Target(spec.name, names.app_secret(spec.name), "app", spec.length, spec.kind)
    known = ", ".join([MASTER, *(s.name for s in cfg.vault.app_secrets)])
    raise BadUsage(
        f"--secret {requested!r} is not a secret of stack {ctx.stack.name} (known: {known}); "
        f"application secrets are declared in Pulumi.{ctx.stack.name}.yaml under "
        "dbplatform:vault.appSecrets"
    )


def check_secret_name(ctx: Context) -> None:
    target = resolve_target(ctx, ctx.args.secret)
    if ctx.args.revoke_previous and target.secret_kind not in ("signing", "token"):
        raise BadUsage(
            f"--revoke-previous: {target.label} is a secret of kind {target.secret_kind}; "
            "only a "
            "signing or token secret can drop its previous value (an encryption key's previous "
            "value still decrypts data; the master's belongs to the rotation function)"
        )


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
                f"changed. Deploy the stack first (pulumi up --stack {stack}), or check that "
                "the credentials in use (AWS_PROFILE, or the stack's aws:profile) are the "
                "stack's account's; the secret is looked up in the stack's own region, "
                "whatever AWS_REGION says"
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
    _refuse_during_major_bluegreen(ctx)
    resumed = pending is not None and pending != current
    if resumed:
        assert pending is not None
        _refuse_stale_pending(ctx, sm, target, desc, pending)
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
    kind = target.secret_kind
    # A label sits on one version at a time (moving it strips it from the other): the version
    # id makes it this version's own.
    retired = f"{RETIRED_PREFIX}{ctx.clock.now():%Y%m%dT%H%M%SZ}-{current[:8]}"
    if kind == "encryption" and not ctx.args.reencryption_planned:
        raise Refused(
            f"{target.label} is an encryption key: data encrypted under the current value "
            f"(version {current}) stays readable only with that value. A rotation keeps it under "
            f"label {RETIRED_PREFIX}<time> (never unlabeled); the application must decrypt with "
            "AWSCURRENT first, then the retired versions, and re-encrypt every row under the new "
            "key before a retired version may be dropped. Nothing was changed; when that plan "
            "exists, re-run with --reencryption-planned",
            data={"secret": target.secret_id, "secret_kind": kind},
        )
    if kind == "encryption":
        _refuse_unretired_previous(target, desc)
        # A re-run after an interruption finds the current key already retired: keep its label.
        retired = next(
            (lbl for lbl in stages(desc)[current] if lbl.startswith(RETIRED_PREFIX)), retired
        )
    revoke = bool(ctx.args.revoke_previous)
    effect = {
        "encryption": f"the current value is kept as AWSPREVIOUS and {retired}; re-encrypt "
        "data under the new key",
        "signing": "the current value becomes AWSPREVIOUS"
        + (" and is then REVOKED (no label: verifiers stop accepting it)" if revoke else ""),
        "token": "the current value becomes AWSPREVIOUS"
        + (" and is then REVOKED (no label)" if revoke else ""),
    }[kind]
    ctx.confirm(
        f"rotate {kind} secret {target.label} of stack {ctx.stack.name} now: {effect}; readers "
        "of AWSCURRENT get a new value"
    )
    value = generate(target.length)
    token = str(uuid.uuid4())
    if kind == "encryption" and retired not in stages(desc)[current]:
        # BEFORE the write: adding a label never removes one, so the key that encrypted the data
        # holds AWSCURRENT and its retired label at every moment an interruption can hit; the
        # write then adds AWSPREVIOUS and leaves the custom label alone (PutSecretValue moves
        # only AWSCURRENT and AWSPREVIOUS).
        with ctx.out.phase(f"label the current key {retired}"):
            ctx.mutate(
                sm,
                "update_secret_version_stage",
                {"SecretId": target.secret_id, "VersionStage": retired, "MoveToVersionId": current},
            )
    with ctx.out.phase("write the new value"):
        # PutSecretValue moves AWSCURRENT to the new version and AWSPREVIOUS to the old current
        # in one call.
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
    # AWS documents no label removal by PutSecretValue besides moving AWSCURRENT and
    # AWSPREVIOUS; an implementation that resets the old version's labels (moto does) gets the
    # retired label back here, while the old key still holds AWSPREVIOUS.
    if (
        kind == "encryption"
        and not ctx.dry_run
        and retired not in stages(sm.describe_secret(SecretId=target.secret_id)).get(current, [])
    ):
        with ctx.out.phase(f"label the previous key {retired} again"):
            ctx.mutate(
                sm,
                "update_secret_version_stage",
                {"SecretId": target.secret_id, "VersionStage": retired, "MoveToVersionId": current},
            )
    if revoke:
        with ctx.out.phase("revoke the previous value"):
            ctx.mutate(
                sm,
                "update_secret_version_stage",
                {
                    "SecretId": target.secret_id,
                    "VersionStage": PREVIOUS,
                    "RemoveFromVersionId": current,
                },
            )
    if ctx.dry_run:
        return _dry_run_result(target, current)
    with ctx.out.phase("verify the new version"):
        after = sm.describe_secret(SecretId=target.secret_id)
        _verify_labels(after, target, token, current, revoked=revoke)
        if kind == "encryption":
            bare = [v for v, labels in stages(after).items() if not labels]
            if bare:
                raise Failed(
                    f"{target.secret_id}: version(s) {', '.join(bare)} carry no label; Secrets "
                    "Manager may delete them. Label them now: aws secretsmanager "
                    f"update-secret-version-stage --secret-id {target.secret_id} "
                    f"--version-stage {RETIRED_PREFIX}<time> --move-to-version-id <id>"
                )
        got = read_value(sm, target.secret_id, token)
        if fingerprint(got) != fingerprint(value):
            raise Failed(f"{target.secret_id} AWSCURRENT does not hold the value just written")
        if len(got) != target.length:
            raise Failed(f"{target.secret_id}: new value has the wrong length")
    replicas = _wait_replicas(ctx, sm, target, ctx.args.timeout * 60.0)
    result = _done(target, current, token, replicas, resumed=False, revoked=revoke)
    if kind == "encryption":
        return Result(
            result.message + f". The old key stays readable as {retired}: re-encrypt data under "
            "the new key, then drop the label",
            data={**result.data, "retired_label": retired},
        )
    return result


def _refuse_unretired_previous(target: Target, desc: Mapping[str, Any]) -> None:
    """An encryption key's AWSPREVIOUS without a retired label is one rotation away from having
    no label at all (the next write moves AWSPREVIOUS off it; Secrets Manager may then delete
    it): refuse before that rotation, with the command that keeps it."""
    bare = [
        v
        for v, labels in stages(desc).items()
        if PREVIOUS in labels and not any(lbl.startswith(RETIRED_PREFIX) for lbl in labels)
    ]
    if not bare:
        return
    version = bare[0]
    raise Refused(
        f"{target.secret_id}: the previous key (version {version}, AWSPREVIOUS) has no "
        f"{RETIRED_PREFIX} label; a rotation would move AWSPREVIOUS off it and leave it "
        "unlabeled (Secrets Manager may delete it, and data encrypted under it with it). "
        "Nothing was changed. Label it, then re-run: aws secretsmanager "
        f"update-secret-version-stage --secret-id {target.secret_id} --version-stage "
        f"{RETIRED_PREFIX}{version[:8]} --move-to-version-id {version}",
        data={"secret": target.secret_id, "unretired_version": version},
    )


INTERRUPT = (
    "The secret may be in one of these states (aws secretsmanager describe-secret --secret-id "
    "<secret>): unchanged; for an encryption key, the current key labeled DBPLATFORM-RETIRED-* "
    "and still AWSCURRENT; or the new value written (AWSCURRENT) with the old one AWSPREVIOUS. "
    "Re-running waits for a master rotation in progress; for an application secret it writes "
    "ANOTHER new value (the one written before becomes AWSPREVIOUS; an encryption key's earlier "
    "versions keep their retired labels), so clients must re-read AWSCURRENT either way"
)
"""What the operator reads after Ctrl-C (Operation.on_interrupt)."""


def _refuse_during_major_bluegreen(ctx: Context) -> None:
    """A master password change on blue during a major-version (logical replication) blue/green
    does not reach green: roles and DDL are not replicated (PostgreSQL "Logical Replication
    Restrictions"); AWS lists DDL on blue among the changes that break the deployment. After
    the switchover nothing replicates any more (either kind): the password would change on the
    serving green only, and a rollback would bring back the old blue with the old password while
    the secret holds the new one. So from the switchover until finalize (or a finished
    rollback), master rotation is refused."""
    from dbplatform.bluegreen.model import (
        PROMOTED,
        ROLLING_BACK,
        STARTED,
        SWITCHED_OVER,
        SWITCHING,
        read_state,
    )

    state = read_state(ctx)
    if state is None:
        return
    if state.phase in (SWITCHED_OVER, PROMOTED, ROLLING_BACK):
        # every step named as a whole command line: one to paste, each flag one it has
        bg = f"dbplatform bluegreen {{}} --stack {ctx.stack.name}"
        finish = {
            SWITCHED_OVER: f"`{bg.format('promote')}`, then after the soak "
            f"`{bg.format('finalize')}`",
            PROMOTED: f"after the soak, `{bg.format('finalize')}`",
            ROLLING_BACK: f"`{bg.format('rollback')}` (it finishes the rollback), then after "
            f"the soak `{bg.format('finalize')}`",
        }[state.phase]
        raise Refused(
            f"blue/green deployment {state.deployment_name} of stack {ctx.stack.name} is "
            f"{state.phase}: a rollback is still possible, and the old blue would come back "
            "with the old master password while the secret holds the new one. Nothing was "
            f"changed. Finish the cycle first ({finish}), then re-run. If the password is "
            "compromised now, change it on both instances by hand (ALTER ROLE) before rotating",
            data={"bluegreen_phase": state.phase},
        )
    if state.phase not in (STARTED, SWITCHING):
        return
    if state.source_version.split(".")[0] == state.target_version.split(".")[0]:
        return  # physical replication carries the password change
    raise Refused(
        f"a major-version blue/green deployment of stack {ctx.stack.name} is open "
        f"({state.deployment_name}, {state.phase}, {state.source_version} -> "
        f"{state.target_version}): logical replication does not carry the password to green. "
        f"Rotate after `bluegreen finalize` (or after a rollback), or before the next `start`; "
        "nothing was changed",
        data={"bluegreen_phase": state.phase},
    )


def _refuse_stale_pending(
    ctx: Context, sm: BaseClient, target: Target, desc: Mapping[str, Any], pending: str
) -> None:
    """A pending version nobody is working on would be waited for until --timeout: say so now."""
    created = None
    params: dict[str, Any] = {"SecretId": target.secret_id, "IncludeDeprecated": True}
    while True:  # ListSecretVersionIds pages by NextToken (botocore has no paginator for it)
        page = sm.list_secret_version_ids(**params)
        for v in page.get("Versions", []):
            if v.get("VersionId") == pending:
                created = v.get("CreatedDate")
        if not page.get("NextToken"):
            break
        params["NextToken"] = page["NextToken"]
    age = (ctx.clock.now() - created).total_seconds() if created else None
    last = desc.get("LastRotatedDate")
    why = None
    if not desc.get("RotationEnabled"):
        why = "rotation is not enabled on the secret"
    elif created is not None and last is not None and created < last:
        why = f"a later rotation finished at {last:%Y-%m-%dT%H:%M:%SZ}"
    elif age is not None and age > STALE_PENDING_SECONDS:
        why = f"it was created {age / 3600:.1f} h ago; no rotation runs that long"
    if why is None:
        return
    raise Refused(
        f"{target.secret_id} has a stale AWSPENDING version {pending} ({why}); nothing was "
        "changed. Remove the label, then re-run: aws secretsmanager update-secret-version-stage "
        f"--secret-id {target.secret_id} --version-stage AWSPENDING --remove-from-version-id "
        f"{pending}",
        data={"pending_version": pending},
    )


def _stage_poll(sm: BaseClient, secret_id: str, version: str) -> Poll[bool]:
    desc = sm.describe_secret(SecretId=secret_id)
    labels = stages(desc).get(version, [])
    if CURRENT in labels:
        return Poll(True, "current", True)
    return Poll(False, ", ".join(labels) or "no label (rotation function working)")


def _verify_labels(
    desc: Mapping[str, Any],
    target: Target,
    new_version: str,
    old_version: str,
    *,
    revoked: bool = False,
) -> None:
    labels = stages(desc)
    if CURRENT not in labels.get(new_version, []):
        raise Failed(f"{target.secret_id}: version {new_version} is not AWSCURRENT after rotation")
    if revoked:
        if PREVIOUS in labels.get(old_version, []):
            raise Failed(f"{target.secret_id}: the revoked version {old_version} is still labeled")
        return
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
    target: Target,
    old: str,
    new: str,
    replicas: Mapping[str, str],
    *,
    resumed: bool,
    revoked: bool = False,
) -> Result:
    where = f"; replicas in sync: {', '.join(sorted(replicas))}" if replicas else ""
    how = "waited for the rotation in progress" if resumed else "rotated"
    kept = f"{old} revoked (no label)" if revoked else f"{old} kept as AWSPREVIOUS"
    return Result(
        f"{how} {target.secret_id}: version {new} is AWSCURRENT, {kept}"
        f"{where}. Restart or reload the clients that cache it",
        data={
            "secret": target.secret_id,
            "kind": target.kind,
            "new_version": new,
            "previous_version": old,
            "replicas": dict(replicas),
            "resumed": resumed,
            "secret_kind": target.secret_kind,
            "revoked_previous": revoked,
        },
    )
