"""The test emulator as a client sees it: moto behind devtools/http_server.py on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.moto_server import (
    HOST,
    ZYGOTE_ENV,
    ForkedServer,
    _fork,
    _start_time,
    free_port,
    start,
    stop_zygote,
)
from tests.ops.support import AwsEnv


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether process `pid` has ended, waiting up to `within` seconds for it to."""
    deadline = time.monotonic() + within
    while _start_time(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _start_time(pid)


def test_a_clients_calls_share_one_connection_as_with_aws(aws: AwsEnv) -> None:
    """Five calls go down one TCP connection (werkzeug's server closed each one; urllib3 then
    reconnects the same pooled connection object, so its counters cannot tell: the socket's
    local port can)."""
    ssm = aws.session.client("ssm", region_name="us-east-1")
    ports = []

    def port() -> int:
        pools = ssm._endpoint.http_session._manager.pools
        conn = pools[next(iter(pools.keys()))].pool.queue[-1]  # the one just put back
        return int(conn.sock.getsockname()[1])

    ssm.put_parameter(Name="/t/a", Value="1", Type="String")
    ports.append(port())
    for _ in range(4):
        answer = ssm.get_parameter(Name="/t/a")
        assert answer["Parameter"]["Value"] == "1"
        assert answer["ResponseMetadata"]["HTTPHeaders"]["connection"] == "keep-alive"
        ports.append(port())
    assert len(ports) == 5 and len(set(ports)) == 1, ports


def test_the_suites_servers_are_forked_from_one_warmed_zygote(aws: AwsEnv) -> None:
    """tests/conftest.py starts the zygote; each test process's server is its fork."""
    process = aws.server.process
    assert isinstance(process, ForkedServer)
    with open(f"/proc/{process.pid}/stat", encoding="ascii") as stat:
        parent = int(stat.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{parent}/cmdline", "rb") as cmdline:
        assert b"--zygote" in cmdline.read().split(b"\0")
    rds = aws.session.client("rds", region_name="us-east-1")
    assert rds.describe_db_instances()["DBInstances"] == []  # it answers, from a clean state


def test_a_taken_port_ends_the_forked_server_and_start_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from devtools import moto_server

    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(RuntimeError, match=rf"^port {port} is taken"):
            start(port=port, timeout=10)  # refused before any server starts
        # taken between that check and the server's bind: the server exits and start says so
        monkeypatch.setattr(moto_server, "_taken", lambda _port: False)
        with pytest.raises(RuntimeError, match=rf"exited .*port {port} taken"):
            start(port=port, timeout=10)


def test_a_zygote_that_is_gone_means_a_fresh_server_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    dead = subprocess.Popen(["true"])  # a pid nobody has any more
    dead.wait()
    monkeypatch.setenv(ZYGOTE_ENV, f"{dead.pid}:{tmp_path / 'no.sock'}")
    started = time.monotonic()
    assert _fork(free_port()) is None
    assert time.monotonic() - started < 5  # not the minute a warming zygote is given


def _zygote_path() -> str:
    return os.environ[ZYGOTE_ENV].partition(":")[2]


def test_a_request_that_says_nothing_or_leaves_does_not_stop_the_zygote(aws: AwsEnv) -> None:
    """A test process interrupted while asking must not cost the others their servers."""
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(_zygote_path())  # connects, says nothing, leaves
    with socket.socket(socket.AF_UNIX) as gone:
        gone.connect(_zygote_path())
        gone.sendall(f"{free_port()}\n".encode())  # asks, leaves before the answer
    started = time.monotonic()
    server = start(timeout=10)
    try:
        assert isinstance(server.process, ForkedServer)
        assert time.monotonic() - started < 5
        assert server.answers()
    finally:
        server.stop()


def test_a_forked_server_ends_with_the_process_that_asked_for_it() -> None:
    """Even a test process killed outright (SIGKILL) leaves no server behind."""
    asker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            # (the server lives as long as its MotoServer is held: kept in `server`)
            "from devtools.moto_server import start; import time; "
            "server = start(); print(server.process.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert asker.stdout is not None
        pid = int(asker.stdout.readline())
        assert _start_time(pid), "the server did not start"
    finally:
        asker.kill()
        asker.wait()
    assert _gone(pid), "the server outlived the process that asked for it"


def test_a_zygote_that_ended_early_is_reported_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its log goes with the run's folder, and the tests pass on fresh servers: only this says
    the suite ran slower than it should have."""
    monkeypatch.setenv(ZYGOTE_ENV, "1:/nowhere")  # restored after the test
    (tmp_path / "moto-zygote.log").write_text("RuntimeError: threads left after the warm-up\n")
    ended = subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)", str(tmp_path / "moto-zygote.sock")]
    )
    ended.wait()
    stop_zygote(ended)
    err = capsys.readouterr().err
    assert "moto zygote ended early (exit 3)" in err
    assert "threads left after the warm-up" in err
    assert ZYGOTE_ENV not in os.environ


def test_each_db_instance_has_its_own_resource_id_and_keeps_it_when_renamed(aws: AwsEnv) -> None:
    """RDS: DbiResourceId is "Region-unique, immutable" (botocore rds/2014-10-31
    DBInstance.DbiResourceId); moto gives every instance the same one. The emulator answers as
    RDS does, a read replica included, and a renamed instance keeps its id."""
    rds = aws.client("rds")

    def rid(ident: str) -> str:
        return str(
            rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["DbiResourceId"]
        )

    for ident in ("emu-a", "emu-b"):
        rds.create_db_instance(
            DBInstanceIdentifier=ident, Engine="postgres", DBInstanceClass="db.t4g.micro",
            AllocatedStorage=20, MasterUsername="x", MasterUserPassword="emulator-password",
        )  # fmt: skip
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="emu-r", SourceDBInstanceIdentifier="emu-a"
    )
    ids = {i: rid(i) for i in ("emu-a", "emu-b", "emu-r")}
    assert len(set(ids.values())) == 3, ids
    rds.modify_db_instance(
        DBInstanceIdentifier="emu-b", NewDBInstanceIdentifier="emu-b-old1", ApplyImmediately=True
    )
    assert rid("emu-b-old1") == ids["emu-b"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_the_launcher_stopped_by_a_signal_stops_its_server(signum: int) -> None:
    """`python -m devtools.moto_server` for trying commands by hand: `kill` or a closed terminal
    ended the launcher and left its server holding the port."""
    # SIGTERM with a server process of its own, as an operator's launcher has; SIGHUP with one
    # forked from the suite's zygote (a second of CPU less): both end in the same handler and
    # MotoServer.stop, which ends either kind by its own pid
    env = dict(os.environ)
    if signum == signal.SIGTERM:
        env.pop(ZYGOTE_ENV, None)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "devtools.moto_server"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert launcher.stdout is not None
        first = launcher.stdout.readline()
        pid = int(first.split("(pid ", 1)[1].split(")", 1)[0])
        assert _start_time(pid), "the server did not start"
        launcher.send_signal(signum)
        assert launcher.wait(timeout=15) == 128 + signum
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert _gone(pid), "the server outlived its launcher"


def test_a_start_interrupted_before_the_server_answers_leaves_no_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Security review: a SIGTERM while start() waited for the server to answer (up to 30 s)
    left the server process serving its port with no parent."""
    from devtools import moto_server

    monkeypatch.delenv(ZYGOTE_ENV, raising=False)  # a server process of its own
    started: list[int] = []

    def interrupted(self: moto_server.MotoServer) -> bool:
        started.append(self.process.pid)
        raise SystemExit(143)  # what the launcher's SIGTERM handler raises

    monkeypatch.setattr(moto_server.MotoServer, "answers", interrupted)
    with pytest.raises(SystemExit):
        start()
    (pid,) = started
    assert _gone(pid), "the server outlived an interrupted start"


def test_the_launcher_on_a_taken_port_says_so_without_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "devtools.moto_server", "--port", str(port)],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != ZYGOTE_ENV},
            timeout=60,
        )
    timings = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    said = "\n".join(line for line in done.stderr.splitlines() if line not in timings)
    assert done.returncode == 1, said
    assert f"port {port} is taken" in said and "Traceback" not in said
    # said before moto is imported: no server process pays a second of CPU only to fail to bind
    imported = {line.rsplit("|", 1)[1].strip() for line in timings}
    assert "argparse" in imported and "moto" not in imported, sorted(imported)
