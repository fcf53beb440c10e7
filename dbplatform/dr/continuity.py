"""Rebuild continuity: the DR stack's secrets carry the source's values, and its master secret
matches the restored instance.

A rebuilt stack's program generates new application secrets and a new master password. Rows
restored from the source were encrypted (field level) and signed with the source's application
secrets, and the restored instance keeps the master password it had at backup time, which no
secret of the new stack holds (a single-user rotation then cannot log in: it tries only the
secret's pending, current and previous versions). So, once `pulumi up` has created the new
stack's secrets in the DR region:

- each application secret of the new stack gets the value of the source's secret, read from its
  replica in the DR region (`dbplatform/<source>/app/<name>`; `vault.replicateToDr`), under the
  same labels: AWSCURRENT, AWSPREVIOUS and every DBPLATFORM-RETIRED-* version (an encryption
  key rotated twice is held only under its retired label, and rows not yet re-encrypted need
  it). Reading a replica works while the source region is down; it need not be promoted
  (`StopReplicationToReplica`) because nothing writes to it;
- the restored instance's master password is set (ModifyDBInstance `MasterUserPassword`) to the
  new master secret's AWSCURRENT password, so the secret, the instance and later rotations agree.

The application secrets' `SecretVersion` ignores `secretString` changes (infra/components/
vault.py), so a later `pulumi up` never writes the generated value back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dbplatform.dr.restore import set_master_password
from dbplatform.ops import BadUsage, Context, Failed, Refused, Result, error_code
from dbplatform.secrets.rotation import RETIRED_PREFIX
from infra.config import StackConfig
from infra.naming import Names


@dataclass
class Carried:
    """What the continuity step did."""

    app_secrets: list[str] = field(default_factory=list)
    """new stack's secrets that now hold the source's value"""
    unchanged: list[str] = field(default_factory=list)
    """already equal"""
    retired: dict[str, list[str]] = field(default_factory=dict)
    """new stack's secret -> the DBPLATFORM-RETIRED-* labels it holds, as the source's"""
    warnings: list[str] = field(default_factory=list)
    """what may be missing and what it leaves unreadable (printed, never a value)"""
    master_password_reset: bool = False


def _retired_labels(sm: Any, secret_id: str) -> list[str]:
    """The DBPLATFORM-RETIRED-* labels on `secret_id`'s versions (DescribeSecret
    VersionIdsToStages), oldest label first (the label carries its UTC time)."""
    try:
        stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {}
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    return sorted(
        label
        for labels in stages.values()
        for label in labels
        if isinstance(label, str) and label.startswith(RETIRED_PREFIX)
    )


def _unretired_previous(sm: Any, secret_id: str) -> bool:
    """True when the version labeled AWSPREVIOUS has no DBPLATFORM-RETIRED-* label: for an
    encryption key the rotation always adds one (dbplatform/secrets/rotation.py), so its
    absence means the key was changed by other means and older keys may not be labeled."""
    stages = sm.describe_secret(SecretId=secret_id).get("VersionIdsToStages") or {}
    return any(
        "AWSPREVIOUS" in labels and not any(lbl.startswith(RETIRED_PREFIX) for lbl in labels)
        for labels in stages.values()
    )


def _value(sm: Any, secret_id: str, stage: str = "AWSCURRENT") -> str | None:
    """The value under `stage`; None when the secret, or a version with that label, is absent."""
    try:
        return str(sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def plan_problems(
    ctx: Context, source: StackConfig, target: str, region: str, instance: str
) -> list[str]:
    """What is missing for the continuity step (each a sentence); empty when it can run."""
    sm = ctx.client("secretsmanager", region)
    src, new = Names(source.stack), Names(target)
    problems = []
    for spec in source.vault.app_secrets:
        if _value(sm, src.app_secret(spec.name)) is None:
            problems.append(
                f"the source's secret {src.app_secret(spec.name)} has no replica in {region} "
                "(vault.replicateToDr): copy its value by hand from a backup of it"
            )
        if _value(sm, new.app_secret(spec.name)) is None:
            problems.append(
                f"{new.app_secret(spec.name)} does not exist in {region} yet: run `pulumi up "
                f"--stack {target}` first"
            )
    if _value(sm, new.master_secret) is None:
        problems.append(
            f"{new.master_secret} does not exist in {region} yet: run `pulumi up --stack "
            f"{target}` first"
        )
    rds = ctx.client("rds", region)
    try:
        rds.describe_db_instances(DBInstanceIdentifier=instance)
    except ClientError as exc:
        if error_code(exc) != "DBInstanceNotFound":
            raise
        problems.append(f"the restored instance {instance} does not exist in {region}")
    return problems


def carry(
    ctx: Context, source: StackConfig, target: str, region: str, instance: str, *, timeout: float
) -> Carried:
    """Copy the source's application secret values and align the master password (see module).

    Refused (nothing changed) when a secret or the instance is missing. Values never reach the
    output, the audit record or the dry-run listing (`ctx.mutate` redacts them).
    """
    problems = plan_problems(ctx, source, target, region, instance)
    if problems:
        raise Refused(
            "cannot carry the secrets over yet: " + "; ".join(problems) + ". Nothing was changed",
            data={"problems": problems},
        )
    sm = ctx.client("secretsmanager", region)
    src, new = Names(source.stack), Names(target)
    done = Carried()
    for spec in source.vault.app_secrets:
        if spec.kind == "encryption":  # the only kind a rotation retires (secrets/rotation.py)
            _carry_retired(ctx, sm, src.app_secret(spec.name), new.app_secret(spec.name), done)
        # AWSPREVIOUS too: rows encrypted, or tokens signed, before the source's last rotation
        # need it (an encryption key rotated after the backup time is the common case).
        # PutSecretValue makes the new value AWSCURRENT and the former one AWSPREVIOUS
        # (Secrets Manager "Staging labels"), so writing previous then current leaves both as
        # the source has them.
        target_id = new.app_secret(spec.name)
        value = _value(sm, src.app_secret(spec.name))
        previous = _value(sm, src.app_secret(spec.name), "AWSPREVIOUS")
        theirs = _value(sm, target_id)
        theirs_previous = _value(sm, target_id, "AWSPREVIOUS")
        if value == theirs and (previous is None or previous == theirs_previous):
            if target_id not in done.app_secrets:
                done.unchanged.append(target_id)
            continue
        if previous is not None and previous != value:
            ctx.mutate(sm, "put_secret_value", {"SecretId": target_id, "SecretString": previous})
        ctx.mutate(sm, "put_secret_value", {"SecretId": target_id, "SecretString": value})
        if target_id not in done.app_secrets:
            done.app_secrets.append(target_id)
    if not ctx.dry_run:
        missing = {
            new.app_secret(spec.name): gone
            for spec in source.vault.app_secrets
            if spec.kind == "encryption"
            and (gone := _check_retired(sm, src.app_secret(spec.name), new.app_secret(spec.name)))
        }
        if missing:
            raise Failed(
                "retired keys not held after the copy: "
                + "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items())
                + f"; rows encrypted under them stay unreadable in {target}. Re-run: "
                + command(source.stack, target, region),
                data={"missing_retired": missing},
            )
    master = json.loads(_value(sm, new.master_secret) or "{}")
    password = master.get("password")
    if not isinstance(password, str) or not password:
        raise Refused(
            f"{new.master_secret} holds no password (RDS secret JSON expected). Nothing was "
            "changed on the instance"
        )
    set_master_password(ctx, region, instance, password, timeout=timeout)
    done.master_password_reset = True
    return done


def _carry_retired(ctx: Context, sm: Any, source_id: str, target_id: str, done: Carried) -> None:
    """Give `target_id` every DBPLATFORM-RETIRED-* version of `source_id` (read from its replica
    in the region), under the same label.

    A key rotated twice is no longer AWSPREVIOUS, only retired (dbplatform/secrets/rotation.py),
    and rows not yet re-encrypted under the current key decrypt only with it. Each is written
    with PutSecretValue `VersionStages=[label]`: a new version with that label alone, which
    leaves AWSCURRENT and AWSPREVIOUS where they are (botocore secretsmanager PutSecretValue:
    AWSCURRENT moves to the new version only when VersionStages is left out or lists it; a
    listed label already on another version moves to the new one). `carry` checks every label
    again once AWSCURRENT and AWSPREVIOUS are written."""
    labels = _retired_labels(sm, source_id)
    if _unretired_previous(sm, source_id):
        done.warnings.append(
            f"{source_id}: its AWSPREVIOUS version carries no {RETIRED_PREFIX}* label, so keys "
            "older than it may be kept under no label this command can find; rows encrypted "
            f"under such a key stay unreadable in {target_id}. Check the source's versions "
            f"(aws secretsmanager list-secret-version-ids --secret-id {source_id} "
            "--include-deprecated) and label the ones data still needs"
        )
    if not labels:
        return
    carried = []
    for label in labels:
        value = _value(sm, source_id, label)
        if value is None:  # moved between the listing and the read: listed again next run
            done.warnings.append(f"{source_id}: {label} vanished while it was read; re-run")
            continue
        if _value(sm, target_id, label) != value:
            ctx.mutate(
                sm,
                "put_secret_value",
                {"SecretId": target_id, "SecretString": value, "VersionStages": [label]},
            )
            if target_id not in done.app_secrets:
                done.app_secrets.append(target_id)
        carried.append(label)
    done.retired[target_id] = carried


def _check_retired(sm: Any, source_id: str, target_id: str) -> list[str]:
    """The source's retired labels `target_id` does not hold with the source's value."""
    return [
        label
        for label in _retired_labels(sm, source_id)
        if _value(sm, target_id, label) != _value(sm, source_id, label)
    ]


def command(source: str, target: str, region: str) -> str:
    """The command that runs this step, for a to-do list."""
    return f"dbplatform dr secrets --stack {source} --as {target} --region {region} --yes"


def secrets_op(ctx: Context) -> Result:
    """The `dr secrets` operation: carry() for the DR stack NEW of the stack, in the DR region."""
    from dbplatform.dr.operations import dr_region
    from dbplatform.dr.stackfile import default_target_stack

    cfg = ctx.stack.config
    region = dr_region(ctx)
    if region is None:
        raise BadUsage(f"stack {cfg.stack} has no DR region (dr.region): pass --region")
    target = ctx.args.as_stack or default_target_stack(cfg.stack, region)
    if target == cfg.stack:
        raise BadUsage(f"--as {target} is the source stack itself; name the DR stack")
    instance = Names(target).primary
    ctx.confirm(
        f"set {len(cfg.vault.app_secrets)} application secret(s) of {target} to {cfg.stack}'s "
        f"values (AWSCURRENT, AWSPREVIOUS and any {RETIRED_PREFIX}* versions, each a new "
        "version; the generated values lose their labels) and reset the master password of "
        f"{instance} (connections using the old password fail from then on)"
    )
    with ctx.lock(region):
        done = carry(ctx, cfg, target, region, instance, timeout=float(ctx.args.timeout) * 60)
    lines = [
        f"{target} ({region}): {len(done.app_secrets)} application secret(s) set from "
        f"{cfg.stack}'s replicas, {len(done.unchanged)} already equal; master password of "
        f"{instance} set from {Names(target).master_secret}",
        *retired_lines(done),
    ]
    for warning in done.warnings:
        ctx.out.warn(warning)
    return Result(
        "\n".join(lines),
        data={
            "target": target,
            "region": region,
            "app_secrets_set": done.app_secrets,
            "app_secrets_unchanged": done.unchanged,
            "retired_versions": done.retired,
            "warnings": done.warnings,
            "master_password_reset": done.master_password_reset,
        },
    )


def retired_lines(done: Carried) -> list[str]:
    """One line per secret holding retired keys: which, and what still needs them."""
    return [
        f"{secret_id} holds the retired key(s) {', '.join(labels)} as the source does: rows not "
        "yet re-encrypted under the current key need them; drop a label only after that "
        "re-encryption"
        for secret_id, labels in done.retired.items()
        if labels
    ]
