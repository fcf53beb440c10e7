"""`bluegreen rollback`: cancel before switchover; after it, an honest reverse path.

Before switchover the green environment holds no write of its own: deleting the deployment
with its green instances loses nothing, and blue is untouched. After switchover there is no
switch-back API: writes since the switchover exist only on the new primary. So the reverse
path snapshots the current primary first, names the window of writes the old blue lacks,
refuses unless `--accept-data-window` repeats that window's start, then swaps identifiers
back (green -> `<id>-new1`, old blue `<id>-old1` -> `<id>`) and keeps the former green for
the soak period.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from dbplatform.bluegreen import sql
from dbplatform.bluegreen.checks import user_parameters
from dbplatform.bluegreen.common import (
    SWITCHED,
    UNSWITCHED,
    config_advice,
    layout_without_deployment,
    locate,
    member_layout,
    require_primary,
    state_from_deployment,
    take_snapshot,
    wait_instance,
)
from dbplatform.bluegreen.model import (
    CANCELLED,
    DELETING,
    NEW_SUFFIX,
    OLD_SUFFIX,
    PROMOTED,
    ROLLED_BACK,
    ROLLING_BACK,
    SWITCHED_OVER,
    SWITCHING,
    SWITCHOVER_COMPLETED,
    SWITCHOVER_IN_PROGRESS,
    BgState,
    Deployment,
    describe_snapshot,
    get_deployment,
    read_raw_state,
    restore_raw_state,
    short_id,
    write_state,
)
from dbplatform.database import checks as database_checks
from dbplatform.ops import Context, Failed, Poll, Refused, Result, iso, parse_iso
from dbplatform.ops.rds import describe_instance, wait_instance_gone
from infra.naming import rds_identifier

DELETE_TIMEOUT = 3600.0
# AWS "Renaming a DB instance": the new name "becomes effective in about 10 minutes" and the
# instance "is not available until the new name becomes effective".
RENAME_MINUTES = 10


def run(ctx: Context) -> Result:
    with ctx.out.phase("look up the deployment"):
        require_primary(ctx)
        cycle = locate(ctx)
    state, dep = cycle.state, cycle.deployment
    if dep is not None and (state is None or state.deployment_id != dep.id):
        state = state_from_deployment(ctx, dep)
    if dep is not None and dep.status == SWITCHOVER_IN_PROGRESS:
        raise Refused(
            f"a switchover is in progress ({dep.describe()}); wait for it (re-run promote), "
            "then roll back if needed"
        )
    switched = (dep is not None and dep.status == SWITCHOVER_COMPLETED) or (
        state is not None and state.phase in (SWITCHED_OVER, PROMOTED, ROLLING_BACK)
    )
    if not switched and dep is None and state is not None and state.phase == SWITCHING:
        # a promote interrupted after asking for the switchover, the deployment deleted since:
        # the instances say whether it happened
        where = layout_without_deployment(ctx, state)
        if where == UNSWITCHED:
            return _close_unswitched(ctx, state)
        if where != SWITCHED:
            raise Refused(
                f"deployment {state.deployment_id} is gone and the instances stand neither "
                f"switched over nor as before: {where}. Nothing was changed; inspect them "
                f"(`dbplatform bluegreen status --stack {ctx.stack.name}`, the RDS console)",
                data={"phase": state.phase, "layout": where},
            )
        switched = True
    if switched:
        assert state is not None
        return _reverse(ctx, state, dep)
    if dep is not None and dep.status != DELETING:
        assert state is not None
        return _cancel(ctx, state, dep)
    if dep is not None:  # DELETING: a cancel was interrupted; wait for it to finish
        assert state is not None
        return _cancel_wait(ctx, state, dep)
    if state is not None and state.phase == ROLLED_BACK:
        return Result(
            f"nothing to do: {ctx.stack.names.primary} was rolled back to PostgreSQL "
            f"{state.source_version}; the former green is kept as {', '.join(state.retired)} "
            f"until {state.soak_until}",
            data={"phase": state.phase},
            nothing_to_do=True,
        )
    phase = state.phase if state else "none"
    return Result(
        f"nothing to do: no blue/green deployment of {ctx.stack.names.primary} to roll back "
        f"(last cycle: {phase})",
        data={"phase": phase},
        nothing_to_do=True,
    )


# --- before switchover ------------------------------------------------------------------------

# DB instance statuses that end in 'available' without anyone acting (Amazon RDS User Guide,
# "Viewing Amazon RDS DB instance status"); any other ('failed', 'incompatible-parameters',
# 'storage-full', ...) is waited on for nothing.
BECOMES_AVAILABLE = frozenset(
    {
        "backing-up",
        "configuring-enhanced-monitoring",
        "configuring-iam-database-auth",
        "configuring-log-exports",
        "creating",
        "maintenance",
        "modifying",
        "rebooting",
        "renaming",
        "resetting-master-credentials",
        "starting",
        "storage-config-upgrade",
        "storage-initialization",
        "storage-optimization",
        "upgrading",
    }
)


def _cancel(ctx: Context, state: BgState, dep: Deployment) -> Result:
    rds = ctx.client("rds")
    greens = [m.target for m in dep.members] or [dep.target]
    ctx.confirm(
        f"delete deployment {dep.id} and its green instances {', '.join(greens)} "
        f"(blue {ctx.stack.names.primary} is not touched)"
    )
    with ctx.out.phase("delete the green environment"):
        for green in greens:
            inst = describe_instance(rds, green)
            # Green copies blue's deletion protection; it holds no write of its own yet.
            if inst is not None and inst.get("DeletionProtection"):
                status = str(inst.get("DBInstanceStatus"))
                if status != "available" and status not in BECOMES_AVAILABLE:
                    raise Refused(
                        f"green {green} is '{status}', which does not end by itself, and RDS "
                        "modifies only an available instance, so its deletion protection "
                        "cannot be lifted; nothing was changed and blue is untouched. Fix the "
                        "instance (its events say why it is in that state) and re-run, or "
                        "delete the deployment alone and deal with the green by hand: aws rds "
                        f"delete-blue-green-deployment --blue-green-deployment-identifier "
                        f"{dep.id} --no-delete-target"
                    )
                if status != "available" and not ctx.dry_run:
                    # RDS modifies only an available instance (botocore rds 2014-10-31
                    # ModifyDBInstance: InvalidDBInstanceStateFault): a green still being
                    # created is waited for, then its protection lifted.
                    ctx.out.info(
                        f"green {green} is '{status}': waiting until it is available to lift "
                        "its deletion protection (RDS modifies only an available instance)"
                    )
                    wait_instance(ctx, green)
                ctx.mutate(
                    rds,
                    "modify_db_instance",
                    {
                        "DBInstanceIdentifier": green,
                        "DeletionProtection": False,
                        "ApplyImmediately": True,
                    },
                )
        ctx.mutate(
            rds,
            "delete_blue_green_deployment",
            {"BlueGreenDeploymentIdentifier": dep.id, "DeleteTarget": True},
        )
    if ctx.dry_run:
        return Result(
            f"dry run: would delete {dep.id} and {', '.join(greens)}; blue untouched",
            data={"deployment": dep.summary()},
        )
    return _cancel_wait(ctx, state, dep)


def _cancel_wait(ctx: Context, state: BgState, dep: Deployment) -> Result:
    rds = ctx.client("rds")
    greens = [m.target for m in dep.members] or [dep.target]
    with ctx.out.phase("wait for deletion"):

        def poll() -> Poll[bool]:
            now = get_deployment(rds, dep.id)
            return Poll(now is None, now.status if now else "deleted", True)

        ctx.wait_for(f"deletion of {dep.id}", poll, timeout=DELETE_TIMEOUT)
        for green in greens:
            wait_instance_gone(ctx, green, timeout=DELETE_TIMEOUT)
    write_state(ctx, state, CANCELLED)
    blue = describe_instance(rds, ctx.stack.names.primary) or {}
    return Result(
        f"rolled back before switchover: deployment {dep.id} and green {', '.join(greens)} "
        f"deleted; {ctx.stack.names.primary} untouched (PostgreSQL {blue.get('EngineVersion')})",
        data={"deployment": dep.summary(), "deleted": greens},
    )


def _close_unswitched(ctx: Context, state: BgState) -> Result:
    """A switchover was asked for, but the deployment is gone and blue was never switched over
    (deleted before RDS switched it): blue serves unchanged. The cycle is closed as cancelled so
    a new one can start; green instances the deleted deployment left (deleted without
    DeleteTarget) are named, never deleted: they stood outside any deployment since."""
    rds = ctx.client("rds")
    primary = ctx.stack.names.primary
    left = [green for _, green in state.members if describe_instance(rds, green) is not None]
    blue = describe_instance(rds, primary) or {}
    write_state(ctx, state, CANCELLED)
    remains = (
        "; green instances left by the deleted deployment, not deleted by this command: "
        + ", ".join(left)
        + " (delete each when no longer needed: aws rds delete-db-instance "
        "--db-instance-identifier NAME --skip-final-snapshot)"
        if left
        else ""
    )
    verb = "would close" if ctx.dry_run else "closed"
    return Result(
        f"{verb} the cycle: deployment {state.deployment_id} is gone and {primary} was never "
        f"switched over; it serves unchanged (PostgreSQL {blue.get('EngineVersion')}){remains}",
        data={"phase": CANCELLED, "left": left},
    )


# --- after switchover -------------------------------------------------------------------------


def _window_start(ctx: Context, state: BgState) -> str:
    if state.switchover_at:
        return state.switchover_at
    if state.switchover_requested_at:
        return state.switchover_requested_at
    given = ctx.args.accept_data_window
    if given:  # switched over outside this tool: the operator names the moment
        return iso(parse_iso(given))
    raise Refused(
        "the switchover time is not recorded (switched over outside this tool): find it in the "
        "RDS events of the deployment and pass it as --accept-data-window <ISO time>"
    )


def _reverse(ctx: Context, state: BgState, dep: Deployment | None) -> Result:
    rds = ctx.client("rds")
    primary = ctx.stack.names.primary
    members = [blue for blue, _ in state.members] or [primary]
    since = _window_start(ctx, state)
    accepted = ctx.args.accept_data_window
    try:
        matches = accepted is not None and parse_iso(accepted) == parse_iso(since)
    except ValueError:
        matches = False
    resuming = state.phase == ROLLING_BACK
    # A resumed rollback keeps the snapshot it took; a new attempt takes its own, named with its
    # run, never one an earlier attempt left, which may lack the writes made since.
    base = rds_identifier(primary, "pre-rollback", short_id(state.deployment_id or "manual"))
    kept = state.rollback_snapshot if resuming else None
    snapshot = kept or rds_identifier(base, ctx.run_id.rsplit("-", 1)[-1])
    named = kept or f"{base}-<run>, named by the run that takes it"  # what a real run takes
    if not resuming and not matches:
        wrong = (
            ""
            if accepted is None
            else f"--accept-data-window {accepted} is not the window's start ({since}); "
        )
        raise Refused(
            f"{wrong}rolling back after the switchover loses, from the serving database, "
            f"every write made to {primary} (PostgreSQL {state.target_version}) since "
            f"{since}: the old blue {primary}{OLD_SUFFIX} (PostgreSQL {state.source_version}) "
            "does not have them. "
            f"They will stay in a snapshot of {primary} taken first ({named}), and in "
            f"{primary}{NEW_SUFFIX}, "
            "kept for the soak period. Nothing was changed. To accept that window, re-run: "
            f"dbplatform bluegreen rollback --stack {ctx.stack.name} "
            f"--accept-data-window {since} --yes{sql.flags_given(ctx)}",
            data={"data_window_start": since},
        )
    renames = 2 * len(members)
    use_sql = not ctx.dry_run and not sql.skipped(
        ctx, "the write fence and the writability of the old blue"
    )
    fence = (
        f"STOP THE APPLICATION first: writes to {primary} are then fenced (every database set "
        "read-only, sessions ended; a client asking for BEGIN READ WRITE is not stopped)"
        if use_sql
        else f"there is no write fence without SQL: STOP ALL TRAFFIC to {primary} first"
    )
    ctx.confirm(
        f"roll {primary} back to PostgreSQL {state.source_version}, losing from it the writes "
        f"since {since}; {fence}. Outage: {renames} renames, each about {RENAME_MINUTES} minutes "
        f"without an endpoint (AWS 'Renaming a DB instance'), so {primary} is unreachable for "
        f"about {RENAME_MINUTES * 2} minutes per member"
    )
    # Recorded first, so an interruption from here on resumes the rollback on a re-run (and no
    # other command acts on a half-done one). A refusal or failure before the fence changed
    # anything puts the record back as it was: exit 3 means nothing changed, and the operator
    # may still decide against the rollback.
    previous = None if resuming else read_raw_state(ctx)
    state = write_state(
        ctx, replace(state, rollback_snapshot=snapshot, run_id=ctx.run_id), ROLLING_BACK
    )
    fenced_at: str | None = None
    snapshot_at: str | None = None
    fence_set: list[bool] = []  # holds True once the fence may have changed a database: no undo
    serving = describe_instance(rds, primary)
    try:
        if serving is not None and member_layout(rds, primary) == "switched":
            if use_sql:
                with ctx.out.phase(f"write fence on {primary}"):
                    connect = _fence_check(ctx, serving)
                    fenced_at = _fence_apply(ctx, serving, connect, fence_set)
            snapshot_at = iso(ctx.clock.now())
            with ctx.out.phase(f"snapshot the current primary ({snapshot})"):
                take_snapshot(ctx, primary, snapshot, "pre-rollback")
    except BaseException as exc:  # a refusal, an AWS error, Ctrl-C or SIGTERM alike
        if not fence_set:
            # nothing was fenced or renamed: the record goes back to what it was, verbatim
            if not resuming:
                try:  # the first error is the one to report; these are said as warnings
                    restore_raw_state(ctx, previous)
                    if describe_snapshot(rds, snapshot) is not None:
                        ctx.out.warn(
                            f"snapshot {snapshot} was started and is kept (storage is billed "
                            "until you delete it); a new rollback takes its own"
                        )
                except Exception as again:
                    ctx.out.warn(f"the blue/green record could not be put back ({again})")
            raise
        read_only = (
            f"The databases of {primary} are fenced read-only and the rollback is recorded: "
            "re-run it to go on, or lift the fence (ALTER DATABASE name RESET "
            "default_transaction_read_only in each database) and roll back no further"
        )
        if isinstance(exc, Refused):  # e.g. the tunnel dropped after the fence was set
            raise Failed(f"{exc.message}. {read_only}", data=exc.data) from None
        ctx.out.warn(read_only)  # an interruption or an AWS error keeps its own exit code
        raise
    with ctx.out.phase("swap identifiers back"):
        bad: dict[str, str] = {}
        for blue in members:  # member by member; each rename is ~10 minutes without endpoint
            layout = member_layout(rds, blue)
            if layout == "switched":  # the former green steps aside ...
                _rename(ctx, blue, blue + NEW_SUFFIX)
                layout = "green-aside" if ctx.dry_run else member_layout(rds, blue)
            if layout == "green-aside":  # ... and the old blue takes its name back
                _rename(ctx, blue + OLD_SUFFIX, blue)
                layout = "restored" if ctx.dry_run else member_layout(rds, blue)
            if layout != "restored":
                bad[blue] = layout
        if bad:
            raise Failed(
                f"unexpected instance layout during the swap: {bad}; inspect with status; "
                "nothing was deleted"
                + (
                    f". {primary}{NEW_SUFFIX} is fenced read-only (ALTER DATABASE ... RESET "
                    "default_transaction_read_only lifts it)"
                    if fenced_at
                    else ""
                ),
                data={"layout": bad},
            )
    if not ctx.dry_run:
        for blue in members:  # finalize deletes only what carries this cycle's retired tag
            aside = describe_instance(rds, blue + NEW_SUFFIX)
            if aside is not None:
                ctx.mutate(
                    rds,
                    "add_tags_to_resource",
                    {
                        "ResourceName": aside["DBInstanceArn"],
                        "Tags": [
                            {"Key": "dbplatform:role", "Value": "retired-green"},
                            {"Key": "dbplatform:deployment", "Value": state.deployment_id},
                            {"Key": "dbplatform:run-id", "Value": ctx.run_id},
                        ],
                    },
                )
    # Without a fence, green took writes until its name moved away: the window ends now.
    end = fenced_at or iso(ctx.clock.now())
    with ctx.out.phase("prove the old blue writable"):
        notes = _writable(ctx, primary, use_sql)
    if dep is not None and dep.status == SWITCHOVER_COMPLETED:
        ctx.mutate(rds, "delete_blue_green_deployment", {"BlueGreenDeploymentIdentifier": dep.id})
    if ctx.dry_run:
        return Result(
            f"dry run: would snapshot {primary} ({named}), rename {primary} -> "
            f"{primary}{NEW_SUFFIX} and {primary}{OLD_SUFFIX} -> {primary}",
            data={"data_window_start": since, "snapshot": snapshot},
        )
    soak = iso(ctx.clock.now() + timedelta(days=ctx.args.soak_days))
    window = state.data_window or (since, end)
    state = write_state(
        ctx,
        replace(
            state,
            retired=tuple(b + NEW_SUFFIX for b in members),
            soak_until=soak,
            data_window=window,
        ),
        ROLLED_BACK,
    )
    lines, _ = config_advice(ctx, state.source_version, None, ctx.args.update_config)
    if fenced_at:
        where = (
            f"they are in snapshot {snapshot} (taken after the write fence at {fenced_at}) "
            f"and in {primary}{NEW_SUFFIX}, which stays read-only. The fence stops default "
            "sessions (every database read-only, sessions ended, no role-level override); a "
            "client that asked for BEGIN READ WRITE after it may have written to "
            f"{primary}{NEW_SUFFIX} only. A database restored from {snapshot} starts read-only "
            "too: ALTER DATABASE name RESET default_transaction_read_only in each database"
        )
    else:
        where = (
            f"they are in {primary}{NEW_SUFFIX}; snapshot {snapshot} holds them only up to its "
            f"start ({snapshot_at or 'an earlier run'}): there was no write fence"
        )
    message = (
        f"rolled back: {primary} is the old blue again (PostgreSQL {state.source_version}). "
        f"Writes between {window[0]} and {window[1]} are not in it: {where} (kept until "
        f"{soak}). {' '.join(notes)}"
    )
    return Result(
        "\n".join([message, *lines]),
        data={
            "data_window": list(window),
            "snapshot": snapshot,
            "fenced_at": fenced_at,
            "retired": list(state.retired),
            "soak_until": soak,
            "writability": notes,
            "sql_checks": "done" if use_sql else "skipped",
        },
    )


def _rename(ctx: Context, old: str, new: str) -> None:
    ctx.mutate(
        ctx.client("rds"),
        "modify_db_instance",
        {"DBInstanceIdentifier": old, "NewDBInstanceIdentifier": new, "ApplyImmediately": True},
    )
    if not ctx.dry_run:
        wait_instance(ctx, new)


def _fence_check(ctx: Context, serving: dict[str, Any]) -> sql.Connect:
    """What must hold before the fence is set, changing nothing: the serving (former green)
    primary is reachable, and no role-level setting would bypass a database-level read-only
    default. Refused otherwise; returns the connector for `_fence_apply`."""
    connect = sql.connector(ctx, serving)
    name = serving["DBInstanceIdentifier"]
    with connect("postgres") as conn:
        bypasses = database_checks.fence_bypasses(conn)
    if bypasses:
        raise Refused(
            f"the write fence cannot hold on {name}: role-level settings override the "
            f"database-level read-only default ({'; '.join(bypasses)}). Nothing was renamed "
            "or fenced. Stop that application, then remove each setting (ALTER ROLE name "
            "[IN DATABASE db] RESET default_transaction_read_only) and re-run rollback",
            data={"fence_bypasses": bypasses},
        )
    return connect


def _fence_apply(
    ctx: Context, serving: dict[str, Any], connect: sql.Connect, fence: list[bool]
) -> str:
    """Stop writes to the serving primary before its snapshot: every database defaults to
    read-only and the other client sessions end, so no default session writes after the
    snapshot starts; proven by a refused test write in every database; returns the fence
    time. `fence` gets True once a database may have been changed."""
    name = serving["DBInstanceIdentifier"]
    with connect("postgres") as conn:
        fence.append(True)
        database_checks.fence_writes(conn)
    seen = database_checks.prove_writable_everywhere(connect)
    leaky = next((n for n, w in seen.items() if w.state != database_checks.READ_ONLY), None)
    if leaky is not None:
        raise Failed(
            f"the write fence on {name} did not hold in database {leaky} "
            f"({seen[leaky].state}: {seen[leaky].detail}); nothing was renamed. Stop the "
            "application's writes, then re-run rollback"
        )
    with connect("postgres") as conn:
        back = database_checks.other_sessions(conn)
    if back:
        ctx.out.warn(
            f"{len(back)} session(s) of other roles reconnected after the fence "
            f"({', '.join(back[:10])}): a client that opens BEGIN READ WRITE can still write; "
            "stop the application"
        )
    return iso(ctx.clock.now())


def _writable(ctx: Context, identifier: str, use_sql: bool) -> list[str]:
    """Prove the old blue takes writes, with a test write; never claim it without one.

    AWS ("Switching a blue/green deployment", after switchover): the old blue only allows reads
    until default_transaction_read_only is off AND the instance is rebooted."""
    if not use_sql:
        return [
            f"writability of {identifier} is UNKNOWN (no SQL checks): before sending traffic, "
            "run a test write; if it fails with 'read-only transaction', set "
            "default_transaction_read_only to 0 in its parameter group and reboot it"
        ]
    rds = ctx.client("rds")
    inst = wait_instance(ctx, identifier)
    seen = _prove(ctx, inst)
    if seen.state == database_checks.WRITABLE:
        return [f"{identifier} accepts writes: {seen.detail}."]
    if seen.state == database_checks.UNKNOWN:
        return [f"writability of {identifier} is UNKNOWN: {seen.detail}"]
    groups = [g["DBParameterGroupName"] for g in inst.get("DBParameterGroups", [])]
    if groups:
        value = user_parameters(rds, groups[0]).get("default_transaction_read_only", "")
        if value.lower() not in ("off", "0", "false"):
            ctx.mutate(
                rds,
                "modify_db_parameter_group",
                {
                    "DBParameterGroupName": groups[0],
                    "Parameters": [
                        {
                            "ParameterName": "default_transaction_read_only",
                            "ParameterValue": "0",
                            "ApplyMethod": "immediate",
                        }
                    ],
                },
            )
    with ctx.out.phase(f"reboot {identifier} (AWS requires it to leave read-only)"):
        ctx.mutate(rds, "reboot_db_instance", {"DBInstanceIdentifier": identifier})
        inst = wait_instance(ctx, identifier)
    again = _prove(ctx, inst)
    if again.state == database_checks.WRITABLE:
        return [f"{identifier} accepts writes after a reboot: {again.detail}."]
    return [
        f"{identifier} is still {again.state} after a reboot ({again.detail}): check its "
        "parameter group and ALTER DATABASE settings before sending traffic"
    ]


def _prove(ctx: Context, inst: dict[str, Any]) -> database_checks.Writability:
    """The weakest database's proof: the old blue takes writes only if every database does."""
    seen = database_checks.prove_writable_everywhere(sql.connector(ctx, inst))
    name, worst = database_checks.weakest(seen)
    if len(seen) > 1:
        return replace(worst, detail=f"database {name}: {worst.detail} ({len(seen)} databases)")
    return worst
