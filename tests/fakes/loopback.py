"""What every fake exchange server shares: a threaded loopback server, answers, paging.

Each fake is a state object (its records, what it received) plus a request handler that reads
and changes it; :func:`serve` runs the handler on a free loopback port for a ``with`` block
and sets the fake's ``base_url``. :func:`page` is the offset paging the fakes' APIs use
behind their own wire formats (an opaque token, a ``start`` parameter, an ``after`` cursor).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")
F = TypeVar("F")


def page(items: Sequence[T], offset: int, size: int) -> tuple[Sequence[T], int | None]:
    """``items[offset:offset + size]`` and the offset of the next page (None on the last)."""
    following = offset + size
    return items[offset:following], following if following < len(items) else None


class FakeHandler(BaseHTTPRequestHandler):
    """Quiet keep-alive handler; ``self.fake`` is the state the server was started with."""

    server: LoopbackServer
    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> Any:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a client's idle keep-alive connection must not delay shutdown

    def __init__(self, fake: Any, handler: type[FakeHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.fake = fake


@contextmanager
def serve(fake: F, handler: type[FakeHandler], path: str = "") -> Iterator[F]:
    """Serve ``fake`` on a free loopback port; ``fake.base_url`` is set while it runs."""
    server = LoopbackServer(fake, handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}{path}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
