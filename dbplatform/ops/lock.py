"""The per-stack operations lock: an SSM parameter created with no-overwrite.

`PutParameter(Overwrite=False)` succeeds for exactly one caller, so two operators (or a
scheduled drill and an operator) cannot run conflicting operations on one stack. The value
is JSON `{owner, operation, run_id, acquired, expires}`; a holder extends `expires` while it
waits on AWS. A lock past `expires` is stale (its holder died) and only `--break-lock`
removes it; an unexpired lock is never broken. The parameter lives in the stack's region, or in
the region an operation works in when it must not depend on the stack's (a DR rebuild).
"""

from __future__ import annotations

import getpass
import json
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from dbplatform.ops.aws import error_code
from dbplatform.ops.clock import Clock, iso, parse_iso
from dbplatform.ops.errors import Refused
from dbplatform.ops.progress import Progress

DEFAULT_TTL = timedelta(hours=1)


def local_user() -> str:
    """`alice@laptop`: who runs the command on this machine (lock owner, audit record)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return f"{name}@{socket.gethostname()}"


class LockHost(Protocol):
    """What the lock needs from the command context."""

    @property
    def dry_run(self) -> bool: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def out(self) -> Progress: ...

    def client(self, service: str, region: str | None = None) -> BaseClient: ...

    def mutate(
        self, client: BaseClient, method: str, params: dict[str, Any], *, track: bool = True
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class LockInfo:
    """Who holds a stack's lock, for what, until when."""

    owner: str
    operation: str
    run_id: str
    acquired: str
    expires: str

    def expired(self, now: datetime) -> bool:
        try:
            return parse_iso(self.expires) <= now
        except ValueError:
            return True  # an unreadable expiry cannot protect anything

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LockInfo:
        try:
            raw = json.loads(text)
            return cls(**{k: str(raw.get(k, "?")) for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, AttributeError):
            return cls(owner="?", operation="?", run_id="?", acquired="?", expires="?")

    def describe(self) -> str:
        return (
            f"{self.owner} running '{self.operation}' (run {self.run_id}) since {self.acquired}, "
            f"lock expires {self.expires}"
        )


class StackLock:
    """Context manager holding a stack's lock for one run.

    In `--dry-run` it only reads the lock: a held lock still refuses (the real run would), and
    the PutParameter it would make is printed.
    """

    def __init__(
        self,
        host: LockHost,
        *,
        parameter: str,
        stack: str,
        owner: str,
        operation: str,
        run_id: str,
        ttl: timedelta = DEFAULT_TTL,
        break_stale: bool = False,
        region: str | None = None,
    ) -> None:
        self.host = host
        self.parameter = parameter
        self.stack = stack
        self.owner = owner
        self.operation = operation
        self.run_id = run_id
        self.ttl = ttl
        self.break_stale = break_stale
        self.region = region  # None: the host's default region, the stack's
        self.held = False
        self._refreshed = 0.0

    @property
    def ssm(self) -> BaseClient:
        return self.host.client("ssm", self.region)

    def _info(self) -> LockInfo:
        now = self.host.clock.now()
        return LockInfo(
            owner=self.owner,
            operation=self.operation,
            run_id=self.run_id,
            acquired=iso(now),
            expires=iso(now + self.ttl),
        )

    def read(self) -> LockInfo | None:
        """The current holder, or None when the stack is not locked."""
        try:
            value = self.ssm.get_parameter(Name=self.parameter)["Parameter"]["Value"]
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        return LockInfo.from_json(value)

    def _put(self, overwrite: bool) -> None:
        self.host.mutate(
            self.ssm,
            "put_parameter",
            {
                "Name": self.parameter,
                "Value": self._info().to_json(),
                "Type": "String",
                "Overwrite": overwrite,
                "Description": f"dbplatform operations lock of stack {self.stack}",
            },
            track=False,
        )

    def acquire(self) -> None:
        """Take the lock or raise Refused naming its holder."""
        if self.host.dry_run:
            current = self.read()
            if current is not None and current.run_id != self.run_id:
                self._refuse_or_break(current)  # refuses as the real run would, or prints
            self._put(overwrite=False)  # printed, not sent
            return
        for _ in range(3):
            try:
                self._put(overwrite=False)  # the common case: one call
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
            else:
                self.held = True
                self._refreshed = self.host.clock.monotonic()
                return
            current = self.read()
            if current is None:
                continue  # released between our put and read: try again
            if current.run_id == self.run_id:
                self.held = True
                return
            self._refuse_or_break(current)  # refuses, or deletes a stale lock and retries
        holder = self.read()
        raise Refused(
            f"stack {self.stack} is locked by "
            f"{holder.describe() if holder else 'another run'}; wait for it to finish",
            data={"lock": holder.__dict__ if holder else None},
        )

    def _refuse_or_break(self, current: LockInfo) -> None:
        now = self.host.clock.now()
        if not current.expired(now):
            raise Refused(
                f"stack {self.stack} is locked by {current.describe()}; wait for that operation "
                "to finish (an unexpired lock is never broken)",
                data={"lock": current.__dict__},
            )
        if not self.break_stale:
            raise Refused(
                f"stack {self.stack} has a stale lock: {current.describe()}. Its holder stopped "
                "without releasing it; check that nobody is still working on the stack, then "
                "re-run with --break-lock",
                data={"lock": current.__dict__},
            )
        self.host.out.warn(f"breaking stale lock of {current.describe()}")
        self.host.mutate(self.ssm, "delete_parameter", {"Name": self.parameter}, track=False)

    def heartbeat(self) -> None:
        """Extend the expiry while a long wait runs (at most every third of the TTL)."""
        if not self.held or self.host.dry_run:
            return
        now = self.host.clock.monotonic()
        if now - self._refreshed < self.ttl.total_seconds() / 3:
            return
        current = self.read()
        if current is None or current.run_id != self.run_id:
            self.host.out.warn(f"lost the lock of stack {self.stack} to {current}")
            self.held = False
            return
        self._put(overwrite=True)
        self._refreshed = now

    def release(self) -> None:
        """Delete the lock if it is still ours."""
        if not self.held:
            return
        self.held = False
        current = self.read()
        if current is not None and current.run_id == self.run_id:
            self.host.mutate(self.ssm, "delete_parameter", {"Name": self.parameter}, track=False)

    def __enter__(self) -> StackLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.release()
        except (ClientError, BotoCoreError) as err:
            self.host.out.warn(
                f"could not release lock {self.parameter} ({err}); it expires on its own, "
                "or delete it with: aws ssm delete-parameter --name " + self.parameter
            )
