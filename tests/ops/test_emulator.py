"""The test emulator as a client sees it: moto behind devtools/http_server.py on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from devtools.moto_server import HOST, ZYGOTE_ENV, ForkedServer, _fork, free_port, start
from tests.ops.support import AwsEnv


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


def test_a_taken_port_ends_the_forked_server_and_start_says_so() -> None:
    with socket.socket() as held:
        held.bind((HOST, 0))
        held.listen()
        port = held.getsockname()[1]
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
