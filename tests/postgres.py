"""A real PostgreSQL server for the data tests, started by the tests on 127.0.0.1.

One server per test process (pytest-xdist worker): `initdb` into a temporary folder, `postgres`
on a free port bound to 127.0.0.1 only, stopped by its pid when the process ends. The server
binaries come from the machine (Debian's `postgresql`, which `make setup` installs when they are
missing). PostgreSQL refuses to run as root, so under root the cluster belongs to the
`postgres` system user (or `nobody`) and the server runs as that user.

The server runs with `wal_level=logical` and room for replication slots, so tests can create
the cases the blue/green preflight must refuse (a logical slot, a subscription target) for real.
Tests take a fresh database each (`PgServer.create_database`) so they never see each other's
tables.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
ADMIN = "dbplatform_admin"
START_TIMEOUT_SECONDS = 30.0


class PostgresUnavailable(RuntimeError):
    """No server binaries on this machine: `make setup` installs them."""


def server_bin(name: str) -> str:
    """Path of a server binary (initdb, postgres, pg_ctl): PATH first, then Debian's layout."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailable(
        f"PostgreSQL's {name} is not installed: run `make setup` (it installs Debian's postgresql)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise PostgresUnavailable("running as root and no 'postgres' or 'nobody' user to run as")


@dataclass(frozen=True)
class PgServer:
    """A running server: where it listens, its superuser, and its pid."""

    host: str
    port: int
    user: str
    password: str
    pid: int
    datadir: Path

    def conninfo(self, dbname: str = "postgres", **extra: Any) -> dict[str, Any]:
        """Keyword arguments for `psycopg.connect`."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname,
            "connect_timeout": 5,
            **extra,
        }

    def connect(self, dbname: str = "postgres", **extra: Any) -> Any:
        import psycopg

        return psycopg.connect(**self.conninfo(dbname, **extra), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its name."""
        name = name or f"t_{secrets.token_hex(6)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def start(base: Path) -> PgServer:
    """initdb into `base`/data and start a server on a free 127.0.0.1 port."""
    initdb, postgres = server_bin("initdb"), server_bin("postgres")
    user = _run_as()
    datadir, log = base / "data", base / "server.log"
    base.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base.parent, base, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [
            initdb,
            "-D",
            str(datadir),
            "-U",
            ADMIN,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--no-sync",
            "--no-instructions",
        ],
        check=True,
        capture_output=True,
        user=user,
    )
    pwfile.unlink()
    port = _free_port()
    settings = {
        "listen_addresses": HOST,
        "port": str(port),
        "unix_socket_directories": str(base),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "32MB",
        "max_connections": "60",
        "wal_level": "logical",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "log_min_messages": "warning",
    }
    argv = [postgres, "-D", str(datadir)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    with open(log, "ab") as out:
        if user is not None:
            os.chown(log, pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid)
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, user=user, start_new_session=True
        )
    server = PgServer(HOST, port, ADMIN, password, proc.pid, datadir)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with server.connect() as conn:
                conn.execute("SELECT 1")
            return server
        except Exception:
            if time.monotonic() > deadline:
                stop(server)
                raise RuntimeError(f"postgres did not accept connections: {log}") from None
            time.sleep(0.1)


def stop(server: PgServer) -> None:
    """Fast shutdown by pid (SIGINT), then SIGKILL after a bound."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(server.pid, signal.SIGINT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(server.pid, os.WNOHANG)
            except ChildProcessError:
                done = server.pid  # not our child any more: check it is gone
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server.pid, 0)
                    done = 0
            if done:
                return
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)


SHM_NEEDED_BYTES = 1 << 30


def _scratch_parent() -> str | None:
    """Where a throwaway cluster goes: the machine's memory-backed /dev/shm when there is one.

    A worker's cluster grows by one database (~7.5 MB copied from template1) per data test and
    is removed when the worker ends. On a disk mounted with `discard`, as this project's CI
    machines are, removing it cost each worker about 5 s of wall time at the end of the run;
    in memory it is a few milliseconds, and each CREATE DATABASE about half as long.
    """
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        # room for a run's clusters (about 150 MB a worker; a container's /dev/shm is often
        # 64 MB, which would fail a run halfway)
        free = os.statvfs(shm)
        if free.f_bavail * free.f_frsize >= SHM_NEEDED_BYTES:
            return shm
    return None  # the system temporary directory


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    """A server for the block, its cluster in a folder of its own, removed after it: in memory
    where the machine has /dev/shm, else in the system temporary directory (not in pytest's
    folders, which under root are private, while the server's user must reach its data)."""
    owned = Path(tempfile.mkdtemp(prefix="dbplatform-pg-", dir=_scratch_parent()))
    server = start(owned / "cluster")
    try:
        yield server
    finally:
        stop(server)
        shutil.rmtree(owned, ignore_errors=True)
