"""A local moto server on 127.0.0.1 for tests and `make demo`: start, wait, reset, stop.

The server is a child process bound to 127.0.0.1 on a free port; `reset()` clears every
emulated resource (POST /moto-api/reset); `stop()` ends that child by its own pid. Run
`python -m devtools.moto_server` to keep one up and print the variables to use it.

The child is `python -m devtools.moto_server --serve`: moto's own server, started after a few
changes to what it spends CPU on, none of which changes an answer this project reads, and one
answer made as AWS gives it: each DB instance has its own DbiResourceId (moto gives every
instance the same; `_own_resource_ids`). A quarter of
the suite's CPU time was the emulator, and most of that was work no test asked for:
- EC2's default AMI catalogue is not loaded (moto's own `MOTO_EC2_LOAD_DEFAULT_AMIS=false`):
  re-parsed for each region after every reset, it was half of the server's time. Nothing here
  reads an image.
- A symmetric KMS key gets one RSA key pair made once per server, not a fresh 2048-bit pair per
  key: moto makes one for every key, whatever its spec, and only asymmetric keys use it.
  Asymmetric keys (RSA_*, ECC_*, SM2) still get their own. (So GetPublicKey, which real KMS
  refuses for a symmetric key, answers every symmetric key with the same key; nothing here calls
  it.)
- The list of moto's service packages, which moto reads from disk for every request to route
  it, is read once, and so is each response class's list of its methods, which moto builds
  with `inspect.getmembers` for every request to find the action's handler.
- Each botocore data file is loaded once per server and kind of loader (moto parsed
  endpoints.json for every boto3 Session it made: about 0.4 s of a server's start-up).
- moto's WSGI app is served by devtools/http_server.py instead of werkzeug's development server,
  which closed the connection after every answer: a client's calls share one connection, as
  they do with AWS, and the server does not start a thread and parse headers with `http.server`
  for each one (per call, 2.7 to 1.9 ms of the server's CPU and 1.5 to 1.4 ms of the client's).
- In the test suite, servers are forked from one warmed process, the zygote (`start_zygote`,
  started by tests/conftest.py): a fresh server spent about a second of CPU importing moto's
  backends and parsing models before it had answered each service once, a forked one 0.05 s.
  Without a zygote (`make demo`, `make bench`, `python -m devtools.moto_server`) `start()` runs
  a fresh server process, as before.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_botocore_data_once() -> None:
    """Load each botocore data file once per process and kind of loader.

    moto builds a fresh boto3 Session (and so a fresh loader) in several places, three of them
    while importing its EC2 models, and each parsed endpoints.json again (~0.4 s of a server's
    start-up); the test processes build a session per command run. Loaders share what they
    loaded only with loaders of the same kind, search path and add-ons: load_service_model
    merges its loader's add-ons (botocore's sdk-extras, moto's moto-extras) into the model.
    What is shared is read, never changed, by botocore (a loader already hands the same object
    to every client of its session).
    """
    import functools

    import botocore.loaders

    Loader = botocore.loaders.Loader
    if getattr(Loader, "_dbplatform_once", False):
        return
    loaded: dict[tuple[object, ...], object] = {}

    def once_per_kind(name: str) -> None:
        method = getattr(Loader, name)

        @functools.wraps(method)
        def load(self: Any, *args: Any, **kwargs: Any) -> Any:
            kind = (
                type(self),
                type(self.file_loader),
                tuple(self.search_paths),
                tuple(self.extras_types),
            )
            key = (name, kind, args, tuple(sorted(kwargs.items())))
            if key not in loaded:
                loaded[key] = method(self, *args, **kwargs)
            return loaded[key]

        setattr(Loader, name, load)

    # load_data goes through load_data_with_path, and botocore's endpoint resolver calls the
    # latter directly for endpoints.json; load_service_model merges the add-ons after it.
    once_per_kind("load_data_with_path")
    once_per_kind("load_service_model")
    Loader._dbplatform_once = True


def _prepare() -> None:
    """Load moto with the changes of the module docstring (the serving process, or the zygote
    before it forks servers)."""
    import functools

    from devtools import http_server

    load_botocore_data_once()

    import moto.backends
    import moto.core.responses
    import moto.kms.models
    import moto.server

    listed = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: listed

    generate = moto.kms.models.generate_private_key
    asymmetric = ("RSA_", "ECC_", "SM2")
    shared = functools.cache(lambda: generate("SYMMETRIC_DEFAULT"))

    def private_key(key_spec: str) -> object:
        return generate(key_spec) if key_spec.startswith(asymmetric) else shared()

    moto.kms.models.generate_private_key = private_key  # type: ignore[assignment]
    # moto lists a response class's methods (inspect.getmembers) on every request to find the
    # action's handler: 11-25 % of the server's CPU per call. A class's functions do not change
    # while it serves (moto only asks whether the action is among them), so each class is
    # listed once.
    listing = moto.core.responses.method_names_from_class
    moto.core.responses.method_names_from_class = functools.cache(listing)
    # Connections kept open between calls, as AWS keeps them (devtools/http_server.py).
    moto.server.run_simple = http_server.run_simple  # type: ignore[assignment]
    _own_resource_ids()


def _own_resource_ids() -> None:
    """Each DB instance its own DbiResourceId, as RDS gives it: "Region-unique, immutable"
    (botocore rds/2014-10-31 DBInstance.DbiResourceId). moto gives every instance the same one;
    the blue/green commands tell a renamed instance by it (bluegreen/common.py)."""
    import uuid

    import moto.rds.models

    def new_id() -> str:
        return "db-" + uuid.uuid4().hex[:26].upper()  # moto's own form

    made = moto.rds.models.DBInstance.__init__

    def own_id(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.dbi_resource_id = new_id()

    moto.rds.models.DBInstance.__init__ = own_id  # type: ignore[method-assign]
    # a read replica is a copy of its primary object (copy.copy), not made by __init__
    replicate = moto.rds.models.RDSBackend.create_db_instance_read_replica

    def replica_own_id(self: Any, *args: Any, **kwargs: Any) -> Any:
        replica = replicate(self, *args, **kwargs)
        replica.dbi_resource_id = new_id()
        return replica

    moto.rds.models.RDSBackend.create_db_instance_read_replica = replica_own_id  # type: ignore[method-assign]


def serve(argv: list[str]) -> None:
    """moto's server (`moto.server.main(argv)`) with the changes of the module docstring."""
    _prepare()
    import moto.server

    # moto's main() reads sys.argv when given an empty list: always pass one.
    moto.server.main(argv or ["-H", HOST])


# --- the zygote: servers forked from one warmed process (tests only) --------------------------
ZYGOTE_ENV = "DBPLATFORM_MOTO_ZYGOTE"
"""`<pid>:<Unix socket path>` of the zygote to ask: set by the test suite's controlling process."""
# One cheap call per service this project's commands, seeds and tests use: the zygote imports
# each backend, builds its app and loads its models once, for every server it forks.
_WARM_CALLS = (
    ("rds", "describe_db_instances"),
    ("ec2", "describe_vpcs"),
    ("kms", "list_keys"),
    ("secretsmanager", "list_secrets"),
    ("ssm", "describe_parameters"),
    ("sts", "get_caller_identity"),
    ("sns", "list_topics"),
    ("cloudwatch", "describe_alarms"),
    ("backup", "list_backup_vaults"),
)


def _warm() -> None:
    """Serve moto on a throwaway port, make each warm-up call through boto3, stop serving, and
    forget what the calls made: the fork that follows must start from no threads and no state."""
    import threading

    import boto3
    import moto.server

    from devtools import http_server

    app = moto.server.DomainDispatcherApplication(moto.server.create_backend_app)
    httpd = http_server.KeepAliveServer((HOST, 0), app, idle_timeout=1.0)
    serving = threading.Thread(target=httpd.serve_forever, daemon=True)
    serving.start()
    url = f"http://{HOST}:{httpd.server_address[1]}"
    try:
        session = boto3.Session(
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the emulator's dummy credentials
            region_name="us-east-1",
        )
        for service, call in _WARM_CALLS:
            client = session.client(service, endpoint_url=url)
            getattr(client, call)()
            client.close()  # the server's thread for this connection ends
        _reset(url)
    finally:
        httpd.shutdown()
        httpd.server_close()
        serving.join()
    deadline = time.monotonic() + 10
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    if threading.active_count() > 1:
        raise RuntimeError(f"threads left after the warm-up: {threading.enumerate()}")


def zygote(path: str) -> None:
    """Warm moto once, then fork a server for each request on the Unix socket at `path`.

    A request is one line, the port; the answer is one line, the server's pid and start time
    (/proc/<pid>/stat field 22, so a reused pid is not mistaken for it). The requester keeps the
    connection open for the server's life: the server ends when it closes (the test process
    ended, even by SIGKILL), and when the zygote ends (PR_SET_PDEATHSIG). Forked servers share
    the zygote's imports, apps and parsed models: a server costs the tests next to nothing to
    start, where a fresh `--serve` process spends about a second of CPU before it has answered
    every service once. A request the zygote cannot read or answer is dropped (and a server
    forked for it ended); the zygote ends when its parent process does.
    """
    import gc

    os.environ.setdefault("MOTO_CALL_RESET_API", "true")
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    _prepare()
    _warm()
    gc.collect()
    gc.freeze()  # the forked servers' collections leave the shared pages alone
    parent = os.getppid()
    children: dict[int, str] = {}  # pid -> start time
    # Forked servers are reaped by the kernel: stop() in a test process sees one end by its pid.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    def end(*_: object) -> None:
        for pid, started in children.items():
            if _start_time(pid) == started:  # still that server, not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        os._exit(0)

    signal.signal(signal.SIGTERM, end)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    while True:
        if os.getppid() != parent:
            end()
        for pid in [p for p, started in children.items() if _start_time(p) != started]:
            del children[pid]
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        pid = 0
        try:
            conn.settimeout(2)  # a requester that says nothing does not hold up the others
            port = int(conn.recv(32).split(b"\n", 1)[0])
            zygote_pid = os.getpid()
            pid = os.fork()
            if pid == 0:
                _forked_server(listener, conn, port, zygote_pid)
            children[pid] = _start_time(pid)
            conn.sendall(f"{pid} {children[pid]}\n".encode())
        except (OSError, ValueError):  # unreadable, or the requester left: nobody owns it
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            conn.close()


def _forked_server(listener: socket.socket, owner: socket.socket, port: int, zygote: int) -> None:
    """The forked child: a moto server on `port` until its owner's connection closes or the
    zygote ends. Never returns; a failure is written to the zygote's log."""
    try:
        import ctypes
        import threading

        from moto.moto_api._internal import mock_random

        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with contextlib.suppress(OSError, AttributeError):  # the owner's connection still ends it
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != zygote:  # the zygote ended before prctl
            os._exit(1)
        mock_random.seed()  # each server its own ids, as fresh processes have

        def watch() -> None:
            owner.settimeout(None)
            with contextlib.suppress(OSError):
                while owner.recv(64):
                    pass
            os._exit(0)  # the requester closed its end, or ended

        threading.Thread(target=watch, daemon=True).start()
        import moto.server

        moto.server.main(["-H", HOST, "-p", str(port)])
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
    finally:
        os._exit(1)


def _start_time(pid: int) -> str:
    """A process's start time (/proc/<pid>/stat field 22), "" once it is gone. A process whose
    threads are still ending reads as a zombie for a moment and is not gone yet: the zygote's
    kernel-side reaping (SIGCHLD ignored) removes it when the last thread ends."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (the zygote, a child of the controlling process,
    stays a zombie until that process reaps it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class ForkedServer:
    """A server the zygote forked: not this process's child, so it is watched by pid and start
    time, with Popen's methods as `start()` and `MotoServer.stop()` use them. `owner` is this
    process's end of the connection the server lives by: hold the MotoServer for as long as the
    server is wanted (dropping it closes the connection, and the server ends)."""

    pid: int
    started: str
    owner: socket.socket | None = field(default=None, repr=False, compare=False)
    returncode: int | None = None
    zombie_since: float | None = field(default=None, repr=False, compare=False)

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        if not self.started or _start_time(self.pid) != self.started:
            ended = True
        elif _running(self.pid):
            ended = False
        else:  # a zombie: reaped within moments, unless its new parent never reaps (a pid 1
            # that is not an init); after a second it counts as ended
            self.zombie_since = self.zombie_since or time.monotonic()
            ended = time.monotonic() - self.zombie_since > 1.0
        if ended:
            self.returncode = 1  # ended; its status went to the zygote
            if self.owner is not None:
                self.owner.close()
        return self.returncode

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"moto server {self.pid}", timeout or 0)
            time.sleep(0.01)
        return code


def _fork(port: int) -> ForkedServer | None:
    """A server forked by the suite's zygote, or None when there is none to ask."""
    pid_text, _, path = os.environ.get(ZYGOTE_ENV, "").partition(":")
    if not path or not pid_text.isdigit() or not sys.platform.startswith("linux"):
        return None
    deadline = time.monotonic() + 60  # the zygote may still be warming up
    while True:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.settimeout(30)
            conn.connect(path)
            conn.sendall(f"{port}\n".encode())
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = conn.recv(64)
                if not chunk:
                    raise ConnectionResetError("the zygote closed without an answer")
                answer += chunk
            pid, _, started = answer.decode().partition(" ")
            return ForkedServer(int(pid), started.strip(), owner=conn)
        except (FileNotFoundError, ConnectionRefusedError):
            conn.close()
            if time.monotonic() > deadline or not _running(int(pid_text)):
                return None  # it failed, or ended: a fresh server process instead
            time.sleep(0.05)
        except (OSError, ValueError):
            conn.close()
            return None


def start_zygote(folder: str) -> subprocess.Popen[bytes]:
    """Start a zygote listening in `folder` and point this process's later `start()` calls (and
    its child processes') at it; `stop_zygote` ends it and its servers."""
    path = os.path.join(folder, "moto-zygote.sock")
    with open(os.path.join(folder, "moto-zygote.log"), "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.moto_server", "--zygote", path],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(
                    p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p
                ),
            },
        )
    os.environ[ZYGOTE_ENV] = f"{proc.pid}:{path}"
    return proc


def stop_zygote(proc: subprocess.Popen[bytes]) -> None:
    """End the zygote and its servers. A zygote that ended early (its warm-up failed, or it was
    killed) left the tests on fresh, slower servers: said on stderr with its log's last lines, as
    the log goes with the run's folder."""
    os.environ.pop(ZYGOTE_ENV, None)
    if proc.poll() is not None:
        tail = "(no log)"
        log = os.path.join(os.path.dirname(str(proc.args[-1])), "moto-zygote.log")  # type: ignore[index]
        with contextlib.suppress(OSError), open(log, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-2000:] or tail
        said = f"moto zygote ended early (exit {proc.returncode}); servers were started fresh"
        print(f"{said}:\n{tail}", file=sys.stderr)
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _reset(url: str) -> None:
    """Forget every resource the emulator at `url` holds (moto's POST /moto-api/reset)."""
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - a local URL
        resp.read()


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _taken(port: int) -> bool:
    """Whether binding 127.0.0.1:`port` fails as the server's own bind would (SO_REUSEADDR, as
    http.server sets it, so a port in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


@dataclass
class MotoServer:
    """One running moto server."""

    port: int
    process: subprocess.Popen[bytes] | ForkedServer
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_env(self, region: str = "us-east-1") -> dict[str, str]:
        """Environment variables that point boto3 (and the commands) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }

    def reset(self) -> None:
        """Forget every emulated resource."""
        _reset(self.url)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(  # noqa: S310 - fixed local URL
                f"{self.url}/moto-api/data.json", timeout=1
            ) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop this server's process (only it).

        Killed outright: the emulated state is thrown away anyway, and moto's exit on SIGTERM
        (an interpreter shutdown over all that state) took up to 5 s per test worker.
        """
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def start(timeout: float = 30.0, attempts: int = 3, port: int | None = None) -> MotoServer:
    """Start a moto server on 127.0.0.1 (a free port unless `port`) and return once it answers."""
    last = "not started"
    if port is not None and _taken(port):
        # said before a server process imports moto (about a second of CPU) only to fail to bind
        raise RuntimeError(f"port {port} is taken (another process listens on {HOST}:{port})")
    for _ in range(attempts if port is None else 1):
        port_now = port or free_port()
        proc: subprocess.Popen[bytes] | ForkedServer | None = _fork(port_now)
        proc = proc or subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devtools.moto_server",
                "--serve",
                "-H",
                HOST,
                "-p",
                str(port_now),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={
                **os.environ,
                "MOTO_CALL_RESET_API": "true",
                "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p
                ),
            },
        )
        server = MotoServer(port=port_now, process=proc)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    last = f"moto server exited with {proc.returncode} (port {port_now} taken?)"
                    break
                if server.answers():
                    return server
                time.sleep(0.05)
            else:
                last = f"moto server on port {port_now} did not answer within {timeout:.0f}s"
        except BaseException:  # a signal or Ctrl-C while it starts: no server left behind
            server.stop()
            raise
        server.stop()
    raise RuntimeError(last)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:  # the child process start() runs
        serve(argv[1:])
        return 0
    if argv[:1] == ["--zygote"]:  # the test suite's (start_zygote)
        zygote(argv[1])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m devtools.moto_server",
        description="Start a moto server on 127.0.0.1 for trying the commands by hand; prints "
        "the environment to point them at it. Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)

    def _stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    # `kill` or a closed terminal stops the server too, as Ctrl-C does (the server process
    # outlived a launcher ended by SIGTERM and kept its port): set before the server starts, so
    # a signal while it starts or while the environment is printed stops it as well
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    server: MotoServer | None = None
    try:
        server = start(port=args.port)
        print(f"moto server on {server.url} (pid {server.process.pid}); Ctrl-C stops it")
        for key, value in server.client_env().items():
            print(f"export {key}={value}")
        sys.stdout.flush()
        server.process.wait()
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:  # start() gave up: the port taken, or no answer in time
        print(f"moto server: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
