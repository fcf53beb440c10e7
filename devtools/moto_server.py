"""A local moto server on 127.0.0.1 for tests and `make demo`: start, wait, reset, stop.

The server is a child process bound to 127.0.0.1 on a free port; `reset()` clears every
emulated resource (POST /moto-api/reset); `stop()` ends that child by its own pid. Run
`python -m devtools.moto_server` to keep one up and print the variables to use it.

The child is `python -m devtools.moto_server --serve`: moto's own server, started after a few
changes to what it spends CPU on, none of which changes an answer this project reads. A quarter of
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
  it, is read once.
- Each botocore data file is loaded once per server and kind of loader (moto parsed
  endpoints.json for every boto3 Session it made: about 0.4 s of a server's start-up).
- moto's WSGI app is served by devtools/http_server.py instead of werkzeug's development server,
  which closed the connection after every answer: a client's calls share one connection, as
  they do with AWS, and the server does not start a thread and parse headers with `http.server`
  for each one (per call, 2.7 to 1.9 ms of the server's CPU and 1.5 to 1.4 ms of the client's).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
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


def serve(argv: list[str]) -> None:
    """moto's server (`moto.server.main(argv)`) with the changes of the module docstring."""
    import functools

    from devtools import http_server

    load_botocore_data_once()

    import moto.backends
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
    # Connections kept open between calls, as AWS keeps them (devtools/http_server.py).
    moto.server.run_simple = http_server.run_simple  # type: ignore[assignment]
    # moto's main() reads sys.argv when given an empty list: always pass one.
    moto.server.main(argv or ["-H", HOST])


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class MotoServer:
    """One running moto server."""

    port: int
    process: subprocess.Popen[bytes]
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
        url = f"{self.url}/moto-api/reset"
        req = urllib.request.Request(url, method="POST", data=b"")  # noqa: S310 - local URL
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - fixed local URL
            resp.read()

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
    for _ in range(attempts if port is None else 1):
        port_now = port or free_port()
        proc = subprocess.Popen(
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
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                last = f"moto server exited with {proc.returncode} (port {port_now} taken?)"
                break
            if server.answers():
                return server
            time.sleep(0.05)
        else:
            last = f"moto server on port {port_now} did not answer within {timeout:.0f}s"
        server.stop()
    raise RuntimeError(last)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:  # the child process start() runs
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m devtools.moto_server",
        description="Start a moto server on 127.0.0.1 for trying the commands by hand; prints "
        "the environment to point them at it. Ctrl-C stops it.",
    )
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    server = start(port=args.port)
    print(f"moto server on {server.url} (pid {server.process.pid}); Ctrl-C stops it")
    for key, value in server.client_env().items():
        print(f"export {key}={value}")
    try:
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
