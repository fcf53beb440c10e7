"""The context a command's handler receives: stack, AWS clients, dry-run aware mutations,
confirmation, bounded waits, and what the run touched (for the audit record).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TextIO, TypeVar

import boto3
from botocore.client import BaseClient
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from dbplatform.ops.audit import local_user
from dbplatform.ops.aws import error_code, is_read_only, make_client, redact
from dbplatform.ops.clock import Clock
from dbplatform.ops.errors import BadUsage, Failed, Refused
from dbplatform.ops.progress import Progress
from dbplatform.ops.stack import StackRef

if TYPE_CHECKING:  # imported by `lock()`: a read-only operation takes none
    from dbplatform.ops.lock import StackLock

T = TypeVar("T")
POLL_ENV = "DBPLATFORM_POLL_SECONDS"
DEFAULT_POLL_SECONDS = 15.0
# A poll that cannot reach AWS (endpoint down, connection reset, 5xx after botocore's own
# retries) is tried again for this long before the wait fails: a network blip must not end a
# wait of hours and strand the lock (ops review #23).
POLL_GRACE_SECONDS = 300.0
_TRANSIENT = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)
# Which lock a command takes: an emergency secret rotation must not wait for a blue/green build.
LOCK_SCOPES = {"rotate_secret": "secrets", "restore_check": "restore-check"}
# Parameter keys whose values name an AWS resource, recorded as touched by a mutation...
_ID_SUFFIXES = ("Identifier", "Arn", "Id", "ResourceName", "AlarmName", "SecretId")
_ID_KEYS = {"Name", "TopicArn"}
# ...unless they name what the call only reads: its source, key, role or certificate. The audit
# record lists what a run changed; a restore must not look as if it changed its snapshot.
_READ_PREFIX = "Source"
_READ_KEYS = {"KmsKeyId", "CACertificateIdentifier", "IamRoleArn", "RecoveryPointArn"}
_READ_BY_OPERATION = {
    "CreateDBSnapshot": {"DBInstanceIdentifier"},
    "RestoreDBInstanceFromDBSnapshot": {"DBSnapshotIdentifier"},
}
_VERB = re.compile(r"^[A-Z][a-z]+")


@dataclass(frozen=True)
class Result:
    """What a handler returns when it ends normally (exit 0)."""

    message: str
    """One line for the operator: what was done, or why nothing needed doing, and what next."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """Machine-readable details, merged into the `--json` result."""
    nothing_to_do: bool = False
    """True when the state in AWS already was the goal (idempotent re-run)."""


@dataclass(frozen=True)
class Poll(Generic[T]):
    """One observation of a wait: done yet, a status text, and the value to return when done."""

    done: bool
    status: str
    value: T | None = None


@dataclass(frozen=True, eq=False)
class Context:
    """Everything a handler needs; built by `dbplatform.ops.cli.run_command`."""

    command: str
    """Command and operation, e.g. `bluegreen promote`."""
    operation: str
    """The operation alone, e.g. `promote`."""
    args: argparse.Namespace
    stack: StackRef
    session: boto3.Session
    out: Progress
    clock: Clock
    run_id: str
    dry_run: bool
    yes: bool
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    touched: list[str] = field(default_factory=list)
    """AWS ids changed by this run, in order (audit record)."""
    planned: list[dict[str, Any]] = field(default_factory=list)
    """Under `--dry-run`: every mutating call the run would have made."""
    _clients: dict[tuple[str, str], BaseClient] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)

    # --- AWS ---------------------------------------------------------------------------
    def client(self, service: str, region: str | None = None) -> BaseClient:
        """A retrying client of `service` in `region` (default: the stack's region), cached."""
        key = (service, region or self.stack.region)
        if key not in self._clients:
            self._clients[key] = make_client(self.session, service, key[1])
        return self._clients[key]

    def mutate(
        self,
        client: BaseClient,
        method: str,
        params: dict[str, Any],
        *,
        track: bool = True,
        lock_check: bool = True,
    ) -> dict[str, Any]:
        """Make a mutating AWS call, or under `--dry-run` print it and return `{}`.

        Every change a command makes goes through here, so a dry run prints exactly the calls
        a real run would make and the audit record lists what was touched. It is also the safe
        point where a run that lost its lock stops (`lock_check`; the lock's own calls skip it).
        """
        if lock_check:
            self.check_lock(reread=True)
        service = client.meta.service_model.service_name
        operation = client.meta.method_to_api_mapping.get(method, method)
        safe = redact(params)
        shown = f"{service}:{operation} {json.dumps(safe, default=str, sort_keys=True)}"
        if self.dry_run:
            self.planned.append({"service": service, "operation": operation, **safe})
            self.out.info(f"DRY-RUN would call {shown}")
            return {}
        self.out.debug(f"call {shown}")
        response: dict[str, Any] = getattr(client, method)(**params)
        if track:
            self.touch(*touched_ids(service, operation, params, response))
        return response

    def touch(self, *ids: str) -> None:
        """Record AWS ids this run changed (for the audit record)."""
        for i in ids:
            if i not in self.touched:
                self.touched.append(i)

    def check_lock(self, *, reread: bool = False) -> None:
        """A safe point: raise LockLost when a lock this run took is no longer its own
        (`reread`: read it again from SSM, before a change)."""
        for lock in self._cache.get("locks", []):
            lock.check(reread=reread)

    def whoami(self, region: str | None = None) -> dict[str, str]:
        """Account, principal ARN and region this run acts as (sts:GetCallerIdentity), asked
        once. Credential errors propagate (the runner answers exit 2); an unreachable STS gives
        "unknown" values so a command working around a regional outage still runs."""
        if "whoami" not in self._cache:
            where = region or self.stack.region
            try:
                got = self.client("sts", where).get_caller_identity()
                who = {"account": str(got["Account"]), "arn": str(got["Arn"]), "region": where}
            except ClientError as exc:
                if is_credential_error(exc):
                    raise
                who = {"account": "unknown", "arn": "unknown", "region": where}
            except _TRANSIENT:
                who = {"account": "unknown", "arn": "unknown", "region": where}
            self._cache["whoami"] = who
            self._cache.setdefault("identity", None if who["arn"] == "unknown" else who["arn"])
        return dict(self._cache["whoami"])

    def known_identity(self) -> str | None:
        """The principal ARN if already asked (no AWS call: for the audit of any outcome)."""
        value = self._cache.get("identity")
        return str(value) if value else None

    def known_whoami(self) -> dict[str, str]:
        return dict(self._cache.get("whoami") or {})

    def identity(self, region: str | None = None) -> str | None:
        """The caller's AWS principal ARN, None when it cannot be read.

        Asked once, of STS in `region` (default: the stack's region); later calls, the lock
        owner and the audit record reuse that answer, so a command working in another region
        (DR, the stack's region down) asks there first.
        """
        if "identity" not in self._cache:
            try:
                arn = self.client("sts", region).get_caller_identity()["Arn"]
            except (ClientError, BotoCoreError):
                arn = None
            self._cache["identity"] = arn
        value = self._cache["identity"]
        return str(value) if value else None

    def lock(self, region: str | None = None) -> StackLock:
        """The stack's operations lock for this run, in `region` (default: the stack's region).

        The runner takes it around operations with `locks=True`; an operation that must not
        depend on the stack's region declares `locks=False` and takes `with ctx.lock(region):`
        itself. Waits (`wait_for`) extend every lock this run took.
        """
        from dbplatform.ops.lock import StackLock

        where = region or self.stack.region
        scope = self.lock_scope
        lock = StackLock(
            self,
            parameter=self.stack.names.lock(scope),
            stack=self.stack.name if where == self.stack.region else f"{self.stack.name} ({where})",
            owner=f"{local_user()} ({self.identity(where) or 'unknown principal'})",
            operation=self.command,
            run_id=self.run_id,
            break_stale=bool(getattr(self.args, "break_lock", False)),
            force_unlock=getattr(self.args, "force_unlock", None),
            region=where,
        )
        self._cache["lock"] = lock
        self._cache.setdefault("locks", []).append(lock)
        return lock

    @property
    def lock_scope(self) -> str:
        """The lock this command takes (`bluegreen`, `secrets`, `dr`, ...)."""
        name = self.command.split(" ", 1)[0]
        return LOCK_SCOPES.get(name, name)

    # --- operator ----------------------------------------------------------------------
    def confirm(self, action: str) -> None:
        """Ask before a destructive step: `--yes` answers; without a terminal, refuse (exit 3).

        The cost is said whatever answers: a dry run shows what the real run would ask, and a
        run confirmed by `--yes` (CI) prints what was accepted, so its log records it."""
        if self.dry_run:
            self.out.notice(f"DRY-RUN: the real run asks to confirm: {action}")
            return
        if self.yes:
            self.out.notice(f"confirmed by --yes: {action}")
            return
        isatty = getattr(self.stdin, "isatty", None)
        if not (isatty and isatty()):
            raise Refused(
                f"{action}: this step needs confirmation and stdin is not a terminal; "
                "nothing was changed. Add --yes to confirm."
            )
        self.out.close()
        sys.stderr.write(f"{action}.\nProceed? [y/N] ")
        sys.stderr.flush()
        answer = self.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise Refused("not confirmed; nothing was changed")

    # --- waits -------------------------------------------------------------------------
    def poll_seconds(self) -> float:
        return poll_seconds()

    def wait_for(
        self,
        what: str,
        poll: Callable[[], Poll[T]],
        *,
        timeout: float,
        on_timeout: str = "nothing was undone: re-run the same command to keep waiting",
    ) -> T | None:
        """Poll until done or `timeout` seconds pass (then raise Failed, exit 1).

        Progress shows the latest status; the lock's expiry is extended while waiting.
        """
        deadline = self.clock.monotonic() + timeout
        interval = self.poll_seconds()
        failing_since: float | None = None
        while True:
            try:
                seen = poll()
                failing_since = None
            except (ClientError, *_TRANSIENT) as exc:
                if isinstance(exc, ClientError) and not _server_side(exc):
                    raise
                now = self.clock.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= POLL_GRACE_SECONDS:
                    raise
                self.out.warn(
                    f"{what}: AWS did not answer ({exc}); trying again for up to "
                    f"{POLL_GRACE_SECONDS - (now - failing_since):.0f}s"
                )
                seen = Poll(False, "AWS unreachable, retrying")
            if seen.done:
                return seen.value
            self.out.update(f"{what}: {seen.status}")
            for lock in self._cache.get("locks", []):  # check() fails a lock a TTL unrenewed
                lock.heartbeat()
            self.check_lock()
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                raise Failed(
                    f"gave up waiting for {what} after {timeout:.0f}s "
                    f"(last status: {seen.status}); {on_timeout}",
                    data={"waiting_for": what, "last_status": seen.status},
                )
            self.clock.sleep(min(interval, remaining))

    def guard_read_only(self, operation: str) -> None:
        """Under `--dry-run` a mutating call outside `mutate` is a bug: stop before it is sent."""
        if self.dry_run and not is_read_only(operation):
            raise Failed(f"internal error: dry run attempted mutating call {operation}")


CREDENTIAL_ERROR_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "RequestExpired",
        "AuthFailure",
    }
)


def is_credential_error(exc: ClientError) -> bool:
    """True when AWS rejected who we are (not what we asked): refresh the credentials.
    AccessDenied* is a permission of a valid principal: that stays a failure (exit 1)."""
    return error_code(exc) in CREDENTIAL_ERROR_CODES


def _server_side(exc: ClientError) -> bool:
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    return status >= 500 or error_code(exc) in ("InternalFailure", "ServiceUnavailable")


def touched_ids(
    service: str, operation: str, params: Mapping[str, Any], response: Mapping[str, Any]
) -> list[str]:
    """The AWS ids a mutating call changed, as `service:id` (or the ARN), for the audit record.

    From the parameters: the keys that name a resource (`..Identifier`, `..Arn`, `Name`, ...),
    and the key named after the operation's object (`DBParameterGroupName` of
    `ModifyDBParameterGroup`), but not what the call only reads (`Source..`, `KmsKeyId`, the
    snapshot a restore reads). From the response: the id of the object it returns
    (`DBInstance.DBInstanceIdentifier`), not the ids that object refers to.
    """
    obj = _VERB.sub("", operation)
    reads = _READ_KEYS | _READ_BY_OPERATION.get(operation, set())
    found = [
        v
        for k, v in params.items()
        if isinstance(v, str)
        and k not in reads
        and not k.startswith(_READ_PREFIX)
        and (k in _ID_KEYS or k.endswith(_ID_SUFFIXES) or k in (f"{obj}Name", f"{obj}Identifier"))
    ]
    for key, value in response.items():  # the object a create/modify/delete call returns
        if isinstance(value, Mapping):
            own = value.get(f"{key}Identifier") or value.get(f"{key}Name")
            if isinstance(own, str):
                found.append(own)
    return list(dict.fromkeys(v if v.startswith("arn:") else f"{service}:{v}" for v in found))


def poll_seconds() -> float:
    """The seconds between polls: `DBPLATFORM_POLL_SECONDS` (0..3600) or the default. The runner
    reads it once at start-up, so a wrong value is refused before any AWS call (and under
    --dry-run, which never waits)."""
    raw = os.environ.get(POLL_ENV)
    if not raw:
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 3600:  # also false for NaN: a wrong value is refused, not ignored
        raise BadUsage(f"{POLL_ENV}={raw!r} must be a number of seconds 0..3600")
    return value
