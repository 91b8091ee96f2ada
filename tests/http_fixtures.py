"""A real HTTP server on 127.0.0.1, in a thread, for tests that fetch URLs.

Register what each path answers, then fetch it::

    with loopback_server() as server:
        url = server.add("/photo.jpg", serve_bytes(jpeg, content_type="image/jpeg"))
        ...
        assert server.requests[0].headers["User-Agent"].startswith("hma-framework/")

A route is any callable taking the ``BaseHTTPRequestHandler`` of the request; the helpers
below cover plain bodies, chunked and close-delimited bodies, redirects, and servers that
misbehave (slow drips, dropped connections). Unregistered paths answer 404.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import pytest

Route = Callable[[BaseHTTPRequestHandler], None]


@attrs.frozen
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]


class LoopbackServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 and an ephemeral port, answering from routes."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[RecordedRequest] = []
        self.scheme = "https" if tls else "http"
        self._routes: dict[str, Route] = {}
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def add(self, path: str, route: Route) -> str:
        """Answer requests for ``path`` (query strings ignored) with ``route``; its URL."""
        self._routes[path] = route
        return self.url(path)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        self.requests.append(
            RecordedRequest(handler.command, handler.path, dict(handler.headers.items()))
        )
        route = self._routes.get(handler.path.split("?", 1)[0])
        if route is None:
            serve_bytes(b"not found", status=404, content_type="text/plain")(handler)
        else:
            route(handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up early (size caps, deadlines) are what several tests are about.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.owner._dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def loopback_server(tls: ssl.SSLContext | None = None) -> Iterator[LoopbackServer]:
    """A running server; with ``tls`` (see :func:`self_signed_tls`) it speaks HTTPS."""
    server = LoopbackServer(tls)
    server.start()
    try:
        yield server
    finally:
        server.close()


# --- routes ---------------------------------------------------------------------------------


def _send_head(
    handler: BaseHTTPRequestHandler, status: int, headers: Mapping[str, str] | None
) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()


def serve_bytes(
    body: bytes,
    *,
    status: int = 200,
    content_type: str = "application/octet-stream",
    headers: Mapping[str, str] | None = None,
    content_length: bool = True,
) -> Route:
    """Answer with ``body``; without ``content_length`` the body ends when the server closes."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        head = {"Content-Type": content_type, **(headers or {})}
        if content_length:
            head["Content-Length"] = str(len(body))
        else:
            head["Connection"] = "close"
            handler.close_connection = True
        _send_head(handler, status, head)
        handler.wfile.write(body)

    return route


def serve_chunked(
    chunks: Iterable[bytes], *, content_type: str = "application/octet-stream"
) -> Route:
    """Answer with ``Transfer-Encoding: chunked`` and no Content-Length."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        _send_head(handler, 200, {"Content-Type": content_type, "Transfer-Encoding": "chunked"})
        for chunk in chunks:
            if chunk:
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.write(b"0\r\n\r\n")

    return route


def redirect_to(location: str, *, status: int = 302) -> Route:
    return serve_bytes(b"", status=status, headers={"Location": location})


def slow_body(total: int, *, interval: float, content_type: str = "image/jpeg") -> Route:
    """Promise ``total`` bytes, then send one every ``interval`` seconds (a slow drip)."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        _send_head(handler, 200, {"Content-Type": content_type, "Content-Length": str(total)})
        with contextlib.suppress(OSError):
            for _ in range(total):
                handler.wfile.write(b"x")
                handler.wfile.flush()
                time.sleep(interval)

    return route


def slow_headers(*, interval: float, count: int = 1000) -> Route:
    """Send the status line, then one header line every ``interval`` seconds."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        with contextlib.suppress(OSError):
            handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for number in range(count):
                handler.wfile.write(b"X-Drip-%d: x\r\n" % number)
                handler.wfile.flush()
                time.sleep(interval)

    return route


def drop_after(sent: bytes, *, promised: int) -> Route:
    """Promise ``promised`` bytes, send ``sent``, then close the connection."""

    def route(handler: BaseHTTPRequestHandler) -> None:
        _send_head(handler, 200, {"Content-Length": str(promised)})
        handler.wfile.write(sent)
        handler.wfile.flush()
        handler.close_connection = True

    return route


# --- the network around the tests ----------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (one just released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def only_loopback_connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail the test if any socket connects anywhere but loopback; returns addresses used.

    Fetch code must refuse private and public addresses alike before sending a packet, and
    test machines may forbid outside traffic: this turns an attempt into a clear failure.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> None:
        host = str(address[0]).split("%", 1)[0] if isinstance(address, tuple) else None
        if host is not None:
            attempts.append(host)
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = False  # a name: connecting by name would resolve it unchecked
            if not loopback:
                raise AssertionError(f"a test tried to connect to {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def self_signed_tls(directory: Path, host_name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for ``host_name`` made with the openssl tool: (server, client) contexts.

    The client context trusts only that certificate. Skips the test without openssl.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={host_name}",
         "-addext", f"subjectAltName=DNS:{host_name}", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client
