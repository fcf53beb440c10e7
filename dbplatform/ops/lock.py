"""The operations locks of a stack: SSM parameters created with no-overwrite, one per scope.

A scope is the kind of work (`bluegreen`, `secrets`, `dr`, ...): an emergency secret rotation is
not blocked by a blue/green build that holds the `bluegreen` lock for hours. The parameter is
`<Names.lock_parameter>-<scope>` in the stack's region (or the region a DR operation works in).

SSM semantics relied on (botocore's ssm model, PutParameter): `Overwrite=False` (the default)
fails with `ParameterAlreadyExists` ("You can't create duplicate parameters") when the name
exists, so creating a name is a compare-and-set against "absent"; PutParameter returns the new
`Version`. SSM has no conditional overwrite or delete, so:
- taking a free lock: PutParameter(Overwrite=False); exactly one caller wins;
- extending or releasing: only the run whose id is in the lock does it (read, compare run id,
  write), and it does so long before expiry, when no one else may touch it;
- breaking a stale lock (`--break-lock`) or a named one (`--force-unlock RUN_ID`): the breaker
  first CREATES a claim parameter `<lock>-break-<stale run id>` with Overwrite=False: of two
  operators breaking the same lock only one gets the claim. The winner re-reads the lock, checks
  that it still holds the same value (run id, expiry) at the same Version -- a Version alone is
  not enough: a lock deleted and created again starts at Version 1 again -- and that it is still
  expired (unless named by --force-unlock), overwrites it with its own value (never deletes it,
  so no third run can slip in), reads it back, then deletes the claim. The loser refuses (3)
  naming the winner. A claim holds its creation time: one older than CLAIM_STALE (its breaker
  died between creating and deleting it) is removed -- after re-reading that it is still the
  same value -- and the claim tried once more, so a crashed breaker cannot block every later
  --break-lock and --force-unlock.
No labels are put on lock versions: SSM keeps 100 versions and refuses a new one
(ParameterMaxVersionLimitExceeded) only when the oldest carries a label.

The value is JSON `{owner, operation, run_id, acquired, expires}` with a short TTL (10 min); a
heartbeat thread renews it every TTL/3 for the whole run (pulumi up included). A run that loses
its lock (overwritten, or not renewable for a TTL) stops at the next safe point: `check()`,
called before every mutation and every poll, raises Failed. `check()` does not trust the
heartbeat thread alone: a process suspended past the TTL (laptop lid, Ctrl-Z) wakes with a
thread that has not run yet, so `check()` fails by itself when the wall clock says the last
renewal is a TTL old, and before each mutation (`check(reread=True)`) the lock is read again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from dbplatform.ops.aws import error_code
from dbplatform.ops.clock import Clock, iso, parse_iso
from dbplatform.ops.errors import Failed, Refused
from dbplatform.ops.progress import Progress

DEFAULT_TTL = timedelta(minutes=10)
# A break claim lives for a few SSM calls; one older than this belongs to a breaker that died.
CLAIM_STALE = timedelta(minutes=2)


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
        self,
        client: BaseClient,
        method: str,
        params: dict[str, Any],
        *,
        track: bool = True,
        lock_check: bool = True,
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


class LockLost(Failed):
    """This run no longer holds its lock: it stops at the next safe point (exit 1)."""


@dataclass(frozen=True)
class _Seen:
    info: LockInfo
    version: int


class StackLock:
    """Context manager holding one scope of a stack's lock for one run.

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
        force_unlock: str | None = None,
        region: str | None = None,
        heartbeat_thread: bool = True,
    ) -> None:
        self.host = host
        self.parameter = parameter
        self.stack = stack
        self.owner = owner
        self.operation = operation
        self.run_id = run_id
        self.ttl = ttl
        self.break_stale = break_stale
        self.force_unlock = force_unlock
        self.region = region  # None: the host's default region, the stack's
        self.held = False
        self.lost: str | None = None
        self._acquired: str | None = None
        self._refreshed = 0.0
        self._renewed_at = time.monotonic()
        self._renewed_wall: datetime | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._use_thread = heartbeat_thread

    @property
    def ssm(self) -> BaseClient:
        return self.host.client("ssm", self.region)

    def _info(self) -> LockInfo:
        now = self.host.clock.now()
        return LockInfo(
            owner=self.owner,
            operation=self.operation,
            run_id=self.run_id,
            acquired=self._acquired or iso(now),
            expires=iso(now + self.ttl),
        )

    def _read(self) -> _Seen | None:
        try:
            p = self.ssm.get_parameter(Name=self.parameter)["Parameter"]
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        return _Seen(LockInfo.from_json(p["Value"]), int(p.get("Version", 0)))

    def read(self) -> LockInfo | None:
        """The current holder, or None when the scope is not locked."""
        seen = self._read()
        return seen.info if seen else None

    def _put(self, name: str, value: str, overwrite: bool) -> None:
        self.host.mutate(
            self.ssm,
            "put_parameter",
            {
                "Name": name,
                "Value": value,
                "Type": "String",
                "Overwrite": overwrite,
                "Description": f"dbplatform operations lock of stack {self.stack}",
            },
            track=False,
            lock_check=False,
        )

    def _delete(self, name: str) -> None:
        self.host.mutate(
            self.ssm, "delete_parameter", {"Name": name}, track=False, lock_check=False
        )

    def acquire(self) -> None:
        """Take the lock or raise Refused naming its holder and the way out."""
        if self.host.dry_run:
            seen = self._read()
            if seen is not None and seen.info.run_id != self.run_id:
                self._refuse_or_break(seen)  # refuses as the real run would, or prints
            self._put(self.parameter, self._info().to_json(), overwrite=False)  # printed only
            return
        for _ in range(3):
            try:
                self._put(self.parameter, self._info().to_json(), overwrite=False)
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
            else:
                self._held()
                return
            seen = self._read()
            if seen is None:
                continue  # released between our put and read: try again
            if seen.info.run_id == self.run_id:
                self._held()
                return
            if self._refuse_or_break(seen):
                self._held()
                return
        holder = self.read()
        raise Refused(
            f"stack {self.stack} is locked by "
            f"{holder.describe() if holder else 'another run'}; wait for it to finish",
            data={"lock": asdict(holder) if holder else None},
        )

    def _held(self) -> None:
        self.held = True
        self._acquired = self._acquired or iso(self.host.clock.now())
        self._refreshed = self.host.clock.monotonic()
        self._renewed_at = time.monotonic()
        self._renewed_wall = self.host.clock.now()
        if self._use_thread and self._thread is None:
            self._thread = threading.Thread(
                target=self._beat, name=f"lock-heartbeat-{self.run_id}", daemon=True
            )
            self._thread.start()

    def _way_out(self, current: LockInfo) -> str:
        return (
            f"if that run is dead (killed, crashed), re-run with --force-unlock {current.run_id}, "
            f"or delete it: aws ssm delete-parameter --name {self.parameter}"
            + (f" --region {self.region}" if self.region else "")
        )

    def _refuse_or_break(self, seen: _Seen) -> bool:
        """Refuse, or break `seen` by the claim protocol; True when this run now holds it."""
        current = seen.info
        now = self.host.clock.now()
        named = self.force_unlock is not None and self.force_unlock == current.run_id
        if not named and not current.expired(now):
            raise Refused(
                f"stack {self.stack} is locked by {current.describe()}; wait for that operation "
                "to finish (--break-lock never breaks an unexpired lock); "
                + self._way_out(current),
                data={"lock": asdict(current)},
            )
        if not named and not self.break_stale:
            raise Refused(
                f"stack {self.stack} has a stale lock: {current.describe()}. Its holder stopped "
                "without releasing it; check that nobody is still working on the stack, then "
                "re-run with --break-lock",
                data={"lock": asdict(current)},
            )
        why = "force-unlocking" if named else "breaking stale lock of"
        self.host.out.warn(f"{why} {current.describe()}")
        claim = f"{self.parameter}-break-{_safe(current.run_id)}"
        mark = json.dumps({"run_id": self.run_id, "at": iso(now)}, sort_keys=True)
        if self.host.dry_run:
            self._put(claim, mark, overwrite=False)
            return False
        self._claim(claim, mark, current)
        try:
            again = self._read()
            if again is not None and (again.version != seen.version or again.info != current):
                raise Refused(
                    f"the lock of stack {self.stack} changed while breaking it: now "
                    f"{again.info.describe()}; nothing was changed",
                    data={"lock": asdict(again.info)},
                )
            if again is None:
                return False  # released meanwhile: the caller takes it as a free lock
            if not named and not again.info.expired(self.host.clock.now()):
                raise Refused(
                    f"the lock of stack {self.stack} is no longer expired: "
                    f"{again.info.describe()}; nothing was changed (only --force-unlock with "
                    "its run id breaks a live lock)",
                    data={"lock": asdict(again.info)},
                )
            self._put(self.parameter, self._info().to_json(), overwrite=True)
            mine = self._read()
            if mine is None or mine.info.run_id != self.run_id:
                raise Refused(
                    f"lost the race for the lock of stack {self.stack} to "
                    f"{mine.info.describe() if mine else 'nobody'}",
                )
        finally:
            self._delete(claim)
        return True

    def remove_expired(self, seen: LockInfo, *, older_than: timedelta) -> None:
        """Delete the lock of a run that died (the janitor): only while it still holds `seen`
        and expired at least `older_than` ago. The same claim as --break-lock is taken first,
        so of the janitor and an operator breaking that lock only one acts on it; an operator
        who broke it before (the lock now holds their run) keeps it. Refused otherwise, with
        nothing changed."""
        claim = f"{self.parameter}-break-{_safe(seen.run_id)}"
        mark = json.dumps({"run_id": self.run_id, "at": iso(self.host.clock.now())}, sort_keys=True)
        self._claim(claim, mark, seen)
        try:
            again = self._read()
            if again is None:
                return  # deleted meanwhile: nothing left to remove
            expires = parse_iso(again.info.expires) if again.info == seen else None
            if expires is None or self.host.clock.now() - expires < older_than:
                raise Refused(
                    f"the lock {self.parameter} changed since it was listed, or expired "
                    f"less than {older_than} ago: now {again.info.describe()}; left alone",
                    data={"lock": asdict(again.info)},
                )
            self._delete(self.parameter)
        finally:
            self._delete(claim)

    def _claim(self, claim: str, mark: str, current: LockInfo) -> None:
        """Create the break claim (Overwrite=False); clear it first when its breaker died."""
        for attempt in range(2):
            try:
                self._put(claim, mark, overwrite=False)
                return
            except ClientError as exc:
                if error_code(exc) != "ParameterAlreadyExists":
                    raise
            found = self._claim_seen(claim)
            if found is None:
                continue  # deleted meanwhile: try once more
            value, made = found
            age = self.host.clock.now() - made
            if attempt == 0 and age >= CLAIM_STALE:
                self.host.out.warn(
                    f"removing the stale break claim {claim} ({age.total_seconds():.0f}s old): "
                    "its breaker stopped before finishing"
                )
                again = self._claim_seen(claim)
                if again is not None and again[0] == value:  # still that dead breaker's claim
                    self._delete(claim)
                continue
            raise Refused(
                f"another operator is breaking the same lock of stack {self.stack} "
                f"({current.describe()}); its claim {claim} is {age.total_seconds():.0f}s old. "
                "Nothing was changed: check who holds the lock now. A claim older than "
                f"{CLAIM_STALE.total_seconds() / 60:.0f} minutes is removed by the next attempt; "
                f"or remove it: aws ssm delete-parameter --name {claim}"
                + (f" --region {self.region}" if self.region else ""),
                data={"lock": asdict(current), "claim": claim},
            )

    def _claim_seen(self, claim: str) -> tuple[str, datetime] | None:
        """A claim's value and creation time (its `at`, else SSM's LastModifiedDate)."""
        try:
            p = self.ssm.get_parameter(Name=claim)["Parameter"]
        except ClientError as exc:
            if error_code(exc) == "ParameterNotFound":
                return None
            raise
        value = str(p.get("Value", ""))
        made: datetime | None = None
        try:
            made = parse_iso(str(json.loads(value)["at"]))
        except (ValueError, TypeError, KeyError):
            modified = p.get("LastModifiedDate")
            made = modified if isinstance(modified, datetime) else None
        return value, made or self.host.clock.now() - CLAIM_STALE

    def verify(self) -> None:
        """Read the lock again (before a destructive change): mark it lost if not ours."""
        if not self.held or self.host.dry_run or self.lost:
            return
        seen = self._read()
        if seen is None or seen.info.run_id != self.run_id:
            holder = seen.info.describe() if seen else "nobody (it was deleted)"
            self.lost = f"lost the lock of stack {self.stack}: it is now held by {holder}"

    # --- while held ---------------------------------------------------------------------
    def _extend(self) -> None:
        """Renew the expiry if the lock is still ours; mark it lost otherwise."""
        with self._mutex:
            if not self.held or self.lost:
                return
            seen = self._read()
            if seen is None or seen.info.run_id != self.run_id:
                holder = seen.info.describe() if seen else "nobody (it was deleted)"
                self.lost = f"lost the lock of stack {self.stack}: it is now held by {holder}"
                return
            self._put(self.parameter, self._info().to_json(), overwrite=True)
            self._refreshed = self.host.clock.monotonic()
            self._renewed_at = time.monotonic()
            self._renewed_wall = self.host.clock.now()

    def _beat(self) -> None:
        interval = max(1.0, self.ttl.total_seconds() / 3)
        while not self._stop.wait(interval):
            try:
                self._extend()
            except (ClientError, BotoCoreError) as exc:
                if time.monotonic() - self._renewed_at >= self.ttl.total_seconds():
                    self.lost = (
                        f"could not renew the lock of stack {self.stack} for "
                        f"{self.ttl.total_seconds():.0f}s ({exc}); another run may take it"
                    )
            if self.lost:
                return

    def heartbeat(self) -> None:
        """Extend the expiry from a wait loop (at most every third of the TTL, by the host's
        clock: under a test clock hours pass at once); raise LockLost when the lock is gone."""
        if not self.held or self.host.dry_run:
            return
        if self.host.clock.monotonic() - self._refreshed >= self.ttl.total_seconds() / 3:
            self._extend()
        self.check()

    def check(self, *, reread: bool = False) -> None:
        """A safe point: raise LockLost if this run no longer holds the lock. Fails by itself
        when the last renewal is a TTL old by the wall clock (a suspended process); `reread`
        reads the lock again (before a mutation)."""
        if self.held and not self.lost and self._renewed_wall is not None:
            since = self.host.clock.now() - self._renewed_wall
            if since >= self.ttl:
                self.lost = (
                    f"the lock of stack {self.stack} was last renewed {since.total_seconds():.0f}s "
                    f"ago (TTL {self.ttl.total_seconds():.0f}s; was this process suspended?): "
                    "another run may have taken it"
                )
        if reread:
            self.verify()
        if self.lost:
            raise LockLost(
                f"{self.lost}. Stopped before the next change; see `status`, then re-run the "
                "same command once the other run has finished",
                data={"lock_lost": self.lost},
            )

    def release(self) -> None:
        """Stop the heartbeat; delete the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.held:
            return
        self.held = False
        seen = self._read()
        if seen is not None and seen.info.run_id == self.run_id:
            self._delete(self.parameter)

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
                f"could not release lock {self.parameter} ({err}); it expires within "
                f"{self.ttl.total_seconds() / 60:.0f} minutes on its own, or: "
                f"--force-unlock {self.run_id}"
            )


def _safe(run_id: str) -> str:
    """A run id as part of an SSM parameter name (a-zA-Z0-9_.-)."""
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in run_id)[:64] or "unknown"
