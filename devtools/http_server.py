"""A small threaded HTTP/1.1 server for a WSGI app that keeps connections open: the test moto
server's front end (devtools/moto_server.py), for tests and `make demo` only.

moto's own server is werkzeug's development server, which answers every request with
`Connection: close`. Every AWS call then opened a new TCP connection, and the server started a
new thread and parsed the request with `http.server`'s header parser: about a third of the
server's CPU per call. Real AWS endpoints keep connections open, and botocore's connection pool
reuses them (urllib3); this server does the same, so a client sends its calls down one
connection and one server thread reads them in turn.

What it does, and what it leaves out (nothing here needs more):
- HTTP/1.1 keep-alive unless the client sends `Connection: close`; HTTP/1.0 connections close
  after one answer. A connection idle for `idle_timeout` seconds is closed (a pooled client
  notices and opens another).
- Request bodies with `Content-Length` or `Transfer-Encoding: chunked` (a request with both is
  read as chunked and its connection closed after the answer, RFC 9112 section 6.1);
  `Expect: 100-continue` gets its interim answer. Header names with an underscore are dropped,
  as werkzeug drops them (WSGI cannot tell `X_Foo` from `X-Foo`); moto's own handler keeps them
  for S3's `x-amz-meta-*`, and this project calls no S3 API.
- The app's answer is sent whole in one write with its length (no `Transfer-Encoding`), so no
  small packet waits on the client's delayed ACK; Nagle's algorithm is off too.
- An app that raises gets a 500 and the connection closed, the traceback on stderr; a request
  this server cannot read gets a 400 and the connection closed. No TLS, no reloader.
"""

from __future__ import annotations

import io
import socket
import socketserver
import sys
import traceback
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

MAX_LINE = 65536
MAX_BODY = 64 * 1024 * 1024  # a larger request body is refused (nothing here sends one)
MAX_HEADERS = 200
# What frames the answer on the connection is this server's to say, whatever the app set: the
# hop-by-hop headers (RFC 9110 section 7.6.1) and the length of the body it sends.
OWN_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class BadRequest(Exception):
    """The request cannot be read: answered 400, then the connection is closed."""


class _Handler(socketserver.StreamRequestHandler):
    server: KeepAliveServer
    rbufsize = MAX_LINE

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection.settimeout(self.server.idle_timeout)

    def handle(self) -> None:
        try:
            while self._one_request():
                pass
        except (TimeoutError, ConnectionError):
            return  # idle too long, or the client went away

    def _one_request(self) -> bool:
        """Answer one request; whether the connection stays open for another."""
        line = self.rfile.readline(MAX_LINE + 1)
        if not line:
            return False  # the client closed the connection
        try:
            method, target, version, headers = self._head(line)
            body = self._body(version, headers)
        except BadRequest as exc:
            self._send("400 Bad Request", [("Content-Type", "text/plain")], str(exc).encode())
            return False
        keep = version == "HTTP/1.1" and "close" not in headers.get("connection", "").lower()
        if "transfer-encoding" in headers and "content-length" in headers:
            keep = False  # RFC 9112 section 6.1: a request with both may be smuggling another
        environ = self._environ(method, target, version, headers, body)
        try:
            status, response_headers, data = _call(self.server.app, environ)
        except Exception:  # the app's failure is the client's 500, not this server's
            traceback.print_exc(file=sys.stderr)
            self._send("500 Internal Server Error", [("Content-Type", "text/plain")], b"")
            return False
        if method == "HEAD":
            length = next((v for k, v in response_headers if k.lower() == "content-length"), None)
            self._send(status, response_headers, b"", keep, str(length or len(data)))
        else:
            self._send(status, response_headers, data, keep)
        return keep

    def _head(self, line: bytes) -> tuple[str, str, str, dict[str, str]]:
        if len(line) > MAX_LINE or not line.endswith(b"\n"):
            raise BadRequest("request line too long")
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
            raise BadRequest(f"bad request line {line[:100]!r}")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            raw = self.rfile.readline(MAX_LINE + 1)
            if raw in (b"\r\n", b"\n"):
                return parts[0], parts[1], parts[2], headers
            if not raw or len(raw) > MAX_LINE:
                raise BadRequest("truncated or oversized header")
            name, sep, value = raw.decode("latin-1").partition(":")
            name = name.strip().lower()
            if not sep or not name or " " in name:
                raise BadRequest(f"bad header line {raw[:100]!r}")
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        raise BadRequest("too many headers")

    def _body(self, version: str, headers: dict[str, str]) -> bytes:
        if headers.get("expect", "").lower() == "100-continue" and version == "HTTP/1.1":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return self._chunked()
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length") from None
        if not 0 <= length <= MAX_BODY:
            raise BadRequest("bad Content-Length")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            raise BadRequest("body shorter than its Content-Length")
        return body

    def _chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(MAX_LINE + 1)
            digits = size_line.split(b";", 1)[0].strip()
            if not digits or digits.strip(b"0123456789abcdefABCDEF"):  # RFC 9112: 1*HEXDIG
                raise BadRequest("bad chunk size")
            size = int(digits, 16)
            total += size
            if total > MAX_BODY:
                raise BadRequest("chunked body too large")
            if size == 0:
                while self.rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                    pass  # trailers, ignored
                return b"".join(chunks)
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(MAX_LINE + 1) not in (b"\r\n", b"\n"):
                raise BadRequest("truncated chunk")
            chunks.append(chunk)

    def _environ(
        self, method: str, target: str, version: str, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        path, _, query = target.partition("?")
        if not path.startswith("/") and "://" in path:  # absolute-form: keep only the path
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        host, port = self.server.server_address[:2]
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "REQUEST_URI": target,
            "RAW_URI": target,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": self.client_address[1],
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            if "_" in name or name in ("content-length", "transfer-encoding"):
                continue
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            else:
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        return environ

    def _send(
        self,
        status: str,
        headers: list[tuple[str, str]],
        data: bytes,
        keep: bool = False,
        length: str | None = None,
    ) -> None:
        lines = [f"HTTP/1.1 {status}"]
        lines += [f"{k}: {v}" for k, v in headers if k.lower() not in OWN_HEADERS]
        if "date" not in {k.lower() for k, _ in headers}:
            lines.append(f"Date: {formatdate(usegmt=True)}")
        code = status[:3]
        if code not in ("204", "304") and not code.startswith("1"):
            lines.append(f"Content-Length: {length if length is not None else len(data)}")
        else:
            data = b""
        lines.append("Connection: keep-alive" if keep else "Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)


def _call(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run the WSGI app to the end: its status, headers and whole body."""
    answer: list[Any] = []
    body: list[bytes] = []  # write() calls and yielded chunks, in order

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if answer:
            if not exc_info:
                raise RuntimeError("start_response called twice without exc_info")
            if body:  # PEP 3333: once body bytes exist the headers count as sent
                raise exc_info[1].with_traceback(exc_info[2])
        answer[:] = [status, list(headers)]
        return body.append

    result = app(environ, start_response)
    try:
        body.extend(chunk for chunk in result if chunk)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    if not answer:
        raise RuntimeError("the WSGI app returned without calling start_response")
    return answer[0], answer[1], b"".join(body)


class KeepAliveServer(socketserver.ThreadingTCPServer):
    """One thread per connection; a connection carries as many requests as the client sends."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # socketserver's default backlog is 5; with more clients connecting at once than that, the
    # kernel drops SYNs and each retry costs a client about a second (werkzeug uses 128).
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: WSGIApp, idle_timeout: float = 30.0) -> None:
        self.app = app
        self.idle_timeout = idle_timeout
        super().__init__(address, _Handler)


def run_simple(host: str, port: int, app: WSGIApp, **options: Any) -> None:
    """Serve `app` on host:port until the process ends: werkzeug's `run_simple` as moto's
    server calls it (`threaded=True`, `request_handler=...` are this server's way already)."""
    if options.get("ssl_context") or options.get("use_reloader"):
        raise SystemExit("devtools.http_server serves plain HTTP without a reloader")
    KeepAliveServer((host, port), app).serve_forever()
