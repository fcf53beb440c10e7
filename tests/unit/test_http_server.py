"""The test moto server's HTTP front end (devtools/http_server.py), spoken to on 127.0.0.1 by raw
sockets and http.client: keep-alive, bodies, the answers it owes a client, and its refusals."""

from __future__ import annotations

import http.client
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devtools.http_server import KeepAliveServer

Environ = dict[str, Any]


def _echo(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
    """Answers with what it was sent: method, path, query, body and the headers it saw."""
    body = environ["wsgi.input"].read()
    seen = sorted(f"{k}={v}" for k, v in environ.items() if k.startswith("HTTP_"))
    text = "\n".join(
        [environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"], *seen]
    )
    out = text.encode() + b"\n\n" + body
    if environ["PATH_INFO"] == "/fail":
        raise RuntimeError("the app failed")
    if environ["PATH_INFO"] == "/empty":
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close")])
    return [out[:5], out[5:]]


@pytest.fixture
def serve() -> Iterator[Callable[..., KeepAliveServer]]:
    servers: list[KeepAliveServer] = []

    def _start(app: Any = _echo, idle_timeout: float = 30.0) -> KeepAliveServer:
        server = KeepAliveServer(("127.0.0.1", 0), app, idle_timeout=idle_timeout)
        accepted = []
        handle = server.process_request

        def counted(request: Any, address: Any) -> None:
            accepted.append(address)
            handle(request, address)

        server.process_request = counted  # type: ignore[method-assign]
        server.accepted = accepted  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.shutdown()
        server.server_close()


def _conn(server: KeepAliveServer) -> http.client.HTTPConnection:
    host, port = server.server_address[:2]
    return http.client.HTTPConnection(str(host), int(port), timeout=5)


def _raw(server: KeepAliveServer, data: bytes) -> bytes:
    """Send raw bytes; everything the server sends back until it closes the connection."""
    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_one_connection_carries_many_requests(serve: Callable[..., KeepAliveServer]) -> None:
    server = serve()
    conn = _conn(server)
    for i in range(5):
        conn.request("POST", f"/p{i}?a=b", body=f"body {i}", headers={"X-Call": str(i)})
        resp = conn.getresponse()
        text = resp.read().decode()
        assert resp.status == 200
        assert resp.getheader("Connection") == "keep-alive"  # the app's "close" is not its own
        host, port = server.server_address[:2]
        assert text == (
            f"POST\n/p{i}\na=b\nHTTP_ACCEPT_ENCODING=identity\nHTTP_HOST={host}:{port}\n"
            f"HTTP_X_CALL={i}\n\nbody {i}"
        )
        assert resp.getheader("Content-Length") == str(len(text.encode()))
    conn.close()
    assert len(server.accepted) == 1  # type: ignore[attr-defined]


def test_close_and_http_1_0_end_the_connection(serve: Callable[..., KeepAliveServer]) -> None:
    server = serve()
    answer = _raw(server, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close\r\n" in answer
    answer = _raw(server, b"GET /b HTTP/1.0\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(
        b"GET\n/b\n\nHTTP_HOST=x\n\n"
    )
    # _raw returned: the server closed both connections itself
    assert len(server.accepted) == 2  # type: ignore[attr-defined]


def test_chunked_bodies_and_100_continue(serve: Callable[..., KeepAliveServer]) -> None:
    server = serve()
    chunked = (
        b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        # a size may carry an extension and leading zeros (RFC 9112 section 7.1)
        b"5;ext=1\r\nhello\r\n" + b"0" * 20 + b"6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    )
    assert _raw(server, chunked).endswith(b"\n\nhello world")
    expect = (
        b"PUT /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
        b"Connection: close\r\n\r\nabc"
    )
    answer = _raw(server, expect)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert answer.endswith(b"\n\nabc")


def test_a_head_answer_carries_no_body_onto_the_connection(
    serve: Callable[..., KeepAliveServer],
) -> None:
    """Read raw: http.client drops what is left in its buffer between answers, so a HEAD that
    leaked its body would go unseen there; here the next answer would start with it."""
    answer = _raw(
        serve(),
        b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /g HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: " in head
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(
        b"\r\n\r\nGET\n/g\n\nHTTP_CONNECTION=close\nHTTP_HOST=x\n\n"
    )


def test_answers_carry_a_date_and_the_path_as_sent(serve: Callable[..., KeepAliveServer]) -> None:
    """moto in server mode leaves the Date header to the server (moto/core/responses.py)."""
    conn = _conn(serve())
    conn.request("GET", "/bucket/a://b/c%20d")
    resp = conn.getresponse()
    assert resp.read().startswith(b"GET\n/bucket/a://b/c d\n")
    date = resp.getheader("Date") or ""
    assert date.endswith(" GMT") and len(date) == 29


def test_a_request_with_both_lengths_is_read_chunked_and_closed(
    serve: Callable[..., KeepAliveServer],
) -> None:
    answer = _raw(
        serve(),
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n",
    )  # _raw returns only once the server closed the connection
    assert b"Connection: close\r\n" in answer and answer.endswith(b"\n\nok")


def test_an_app_may_replace_its_answer_with_an_error(serve: Callable[..., KeepAliveServer]) -> None:
    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("503 Service Unavailable", [("X-Second", "2")], sys.exc_info())
        return [b"sorry"]

    conn = _conn(serve(app))
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert (resp.status, resp.read(), resp.getheader("X-First"), resp.getheader("X-Second")) == (
        503,
        b"sorry",
        None,
        "2",
    )


def test_head_has_the_length_and_no_body_and_204_has_neither(
    serve: Callable[..., KeepAliveServer],
) -> None:
    server = serve()
    conn = _conn(server)
    conn.request("HEAD", "/h")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    assert int(resp.getheader("Content-Length") or 0) > 0
    conn.request("GET", "/empty")  # the same connection still reads cleanly
    resp = conn.getresponse()
    assert resp.status == 204 and resp.read() == b"" and resp.getheader("Content-Length") is None
    conn.request("GET", "/after")
    assert conn.getresponse().read().startswith(b"GET\n/after\n")
    assert len(server.accepted) == 1  # type: ignore[attr-defined]


def test_headers_with_underscores_are_dropped_and_repeats_joined(
    serve: Callable[..., KeepAliveServer],
) -> None:
    server = serve()
    answer = _raw(
        server,
        b"GET /u HTTP/1.1\r\nHost: x\r\nX_Spoof: 1\r\nX-Dup: a\r\nX-Dup: b\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert b"HTTP_X_SPOOF" not in answer
    assert b"HTTP_X_DUP=a, b\n" in answer


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nx\r\n",
        b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    ],
    ids=[
        "line",
        "version",
        "header",
        "negative",
        "length",
        "chunk",
        "chunk-sign",
        "chunk-huge",
        "long",
    ],
)
def test_an_unreadable_request_gets_400_and_the_connection_closed(
    serve: Callable[..., KeepAliveServer], request_bytes: bytes
) -> None:
    answer = _raw(serve(), request_bytes)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer


def test_a_failing_app_is_a_500_and_the_server_goes_on(
    serve: Callable[..., KeepAliveServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = serve()
    answer = _raw(server, b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"Connection: close\r\n" in answer
    assert "RuntimeError: the app failed" in capsys.readouterr().err
    conn = _conn(server)
    conn.request("GET", "/next")
    assert conn.getresponse().status == 200


def test_an_idle_connection_is_closed_and_a_slow_one_does_not_block_others(
    serve: Callable[..., KeepAliveServer],
) -> None:
    release = threading.Event()

    def app(environ: Environ, start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            release.wait(5)
        start_response("200 OK", [])
        return [environ["PATH_INFO"].encode()]

    server = serve(app, idle_timeout=0.3)
    slow = _conn(server)
    slow.request("GET", "/slow")  # its thread now waits in the app
    fast = _conn(server)
    fast.request("GET", "/fast")
    assert fast.getresponse().read() == b"/fast"  # answered while /slow is still waiting
    release.set()
    assert slow.getresponse().read() == b"/slow"

    with socket.create_connection(server.server_address[:2], timeout=5) as s:
        started = time.monotonic()
        assert s.recv(1) == b""  # the server closed it after idle_timeout
        assert 0.2 < time.monotonic() - started < 3


def test_an_answer_whose_body_began_cannot_be_replaced_nor_started_twice(
    serve: Callable[..., KeepAliveServer], capsys: pytest.CaptureFixture[str]
) -> None:
    def app(environ: Environ, start_response: Callable[..., Any]) -> Any:
        write = start_response("200 OK", [])
        if environ["PATH_INFO"] == "/twice":
            start_response("201 Created", [])  # no exc_info: a programming error
        write(b"partial ")
        try:
            raise ValueError("late")
        except ValueError:
            start_response("503 Service Unavailable", [], sys.exc_info())  # re-raises
        return [b"never"]

    server = serve(app)
    for path in ("/twice", "/late"):
        answer = _raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), path
        assert b"partial" not in answer
    err = capsys.readouterr().err
    assert "start_response called twice" in err and "ValueError: late" in err
