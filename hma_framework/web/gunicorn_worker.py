"""The API's gunicorn worker: gthread, but a slow client cannot hold a request thread.

gunicorn's ``gthread`` worker hands a connection to a thread as soon as its first byte
arrives; the thread then blocks until the request's headers are complete. Ten clients that
send a header line a second took every thread, and ``/status`` stopped answering. Here the
worker's event loop reads headers itself, without blocking, and gives a connection to a
thread only once its headers are all there; a connection that has not sent them within
``web.header_timeout_seconds`` is closed. Body reads in the thread are bounded by
``web.body_timeout_seconds`` in total (a trickling body times out and the request gets 408).

gunicorn's own error pages (HTML 400/414/431) are JSON ``{"message": ...}`` here, like every
other answer of the API.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import time
from collections import deque
from concurrent.futures import Future
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import ThreadWorker

from hma_framework.settings import load_settings
from hma_framework.web.accept_balance import (
    RECHECK_SECONDS,
    AcceptPacer,
    create_shared_table,
    shared_table,
)
from hma_framework.web.errors import RequestBodyTimeout

#: Enough for the limits gunicorn enforces on a request line and headers (it answers 431).
MAX_HEADER_BUFFER = 128 * 1024
_END_OF_HEADERS = b"\r\n\r\n"
#: Headers of requests that go to a thread: a body to read, or a switch to HTTP/2 (served
#: for as long as the connection lasts).
_NOT_AT_ONCE_HEADERS = (b"\r\ncontent-length:", b"\r\ntransfer-encoding:", b"\r\nupgrade:")


class DeadlineSocket:
    """Reads from ``sock`` until ``deadline`` (monotonic) at the latest; writes untouched."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise RequestBodyTimeout("the request body was not received in time")
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(size)
        except TimeoutError as exc:
            raise RequestBodyTimeout("the request body was not received in time") from exc
        finally:
            self._sock.settimeout(None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class OneWriteResponse(wsgi.Response):
    """gunicorn's HTTP/1 response, but the headers go out in the same write as the body.

    gunicorn sends the status line and headers with one ``sendall`` and each body chunk with
    another. On loopback or a LAN each send wakes the client and costs a syscall: a profile of
    ``GET /lookup`` had ~20% of an API thread in the headers' ``sendall`` alone. Here the
    headers wait for the first body chunk (or for ``close``, for an empty body) and go out with
    it. Chunked and sendfile responses send the headers first, as before.
    """

    _head: bytes | None = None
    headers_sent: bool  # set by gunicorn's Response

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        self._head = ("".join(lines) + "\r\n").encode("latin-1")
        self.headers_sent = True

    def _flush_head(self) -> None:
        head, self._head = self._head, None
        if head:
            util.write(self.sock, head)

    def _emit_body(self, data: bytes) -> None:
        head = self._head
        if head is not None and not self.chunked:
            self._head = None
            util.write(self.sock, head + data)
            return
        self._flush_head()
        super()._emit_body(data)

    def sendfile(self, respiter: Any) -> bool:
        self.send_headers()
        self._flush_head()
        return bool(super().sendfile(respiter))

    def close(self) -> None:
        self.send_headers()
        self._flush_head()
        super().close()


class HeaderDeadlineWorker(ThreadWorker):
    """See the module docstring."""

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Runs once in the master before any worker is forked: share the imports."""
        super().check_config(cfg, log)
        from hma_framework.web.preload import import_shared_modules

        import_shared_modules()
        create_shared_table()

    def init_process(self) -> None:
        settings = load_settings()
        self.header_timeout = float(settings.web.header_timeout_seconds)
        self.body_timeout = float(settings.web.body_timeout_seconds)
        self.reading_headers: deque[Any] = deque()
        # gthread builds each HTTP/1 response through wsgi.create, which takes the module's
        # Response class at call time; this forked worker process answers in one write.
        wsgi.Response = OneWriteResponse
        shares = shared_table()
        self.accept_pacer = None if shares is None else AcceptPacer(shares, self.age, os.getpid())
        self.deferring_accepts = False
        self.requests_in_threads = 0
        super().init_process()

    # --- accepts level between processes (see accept_balance) -----------------------------

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and not self.deferring_accepts)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        pacer = self.accept_pacer
        if pacer is not None:
            now = time.monotonic()
            if self.alive and self.nr_conns < self.worker_connections:
                self.deferring_accepts = pacer.should_defer(self.nr_conns, now)
                self.set_accept_enabled(True)
                if self.deferring_accepts:
                    timeout = min(timeout, RECHECK_SECONDS)
            else:
                self.deferring_accepts = False
                pacer.not_accepting(now)
        super().wait_for_and_dispatch_events(timeout)

    # --- the event loop reads headers -----------------------------------------------------

    def _read_headers(self, conn: Any, *, readable: bool = False) -> None:
        """Wait in the poller (not a thread) until ``conn`` has sent its headers."""
        conn.sock.setblocking(False)
        conn.header_buffer = bytearray()
        conn.header_deadline = time.monotonic() + self.header_timeout
        # The poller said so already: read now. A kept-alive client's next request usually
        # arrives whole, and then it goes to a thread without a round through the poller.
        if readable and self._receive_headers(conn, waiting=False):
            return
        self.reading_headers.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_header_data, conn))

    def _on_header_data(self, conn: Any, _sock: Any) -> None:
        self._receive_headers(conn, waiting=True)

    def _receive_headers(self, conn: Any, *, waiting: bool) -> bool:
        """Read what ``conn`` has sent; True once it is handed on (to a thread, or closed).

        ``waiting``: the connection is registered in the poller and ``reading_headers``.
        """
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:  # the client went away before sending a request
            if waiting:
                self._forget(conn)
            self.nr_conns -= 1
            conn.close()
            return True
        conn.header_buffer += data
        buffered = conn.header_buffer
        if _END_OF_HEADERS in buffered or len(buffered) > MAX_HEADER_BUFFER:
            if waiting:
                self._forget(conn)
            conn.data_ready = True
            self.enqueue_req(conn)  # the parser answers 431 for oversized headers
            return True
        return False

    def _forget(self, conn: Any) -> None:
        self.reading_headers.remove(conn)
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        now = time.monotonic()
        for conn in [c for c in self.reading_headers if force or c.header_deadline <= now]:
            self._forget(conn)
            self.nr_conns -= 1
            if not force and conn.header_buffer:
                self._answer(conn.sock, 408, "Request Timeout", "headers not received in time")
            conn.close()

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        from gunicorn.workers.gthread import TConn

        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if self.cfg.is_ssl:
            self.enqueue_req(conn)  # TLS needs its handshake in a thread, as gthread does
        else:
            self._read_headers(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection's next request: read its headers in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_headers(conn, readable=True)

    def on_pending_socket_readable(self, conn: Any, client: Any) -> None:
        self.poller.unregister(client)
        self.pending_conns.remove(conn)
        self._read_headers(conn, readable=True)

    # --- quick requests are answered on the event loop ------------------------------------

    def enqueue_req(self, conn: Any) -> None:
        """Hand ``conn`` to a thread, or answer it here when that costs less (see below).

        Each request handed to the thread pool costs a future, a thread wake-up, a pipe write
        back to this loop and its wake-up. A request the app says it answers at once (a hash
        lookup, in memory) is answered here instead, while no thread is busy, so it neither
        waits behind a thread nor keeps one waiting: measured in paired runs, ~7% less API
        CPU per ``GET /lookup``.
        """
        if self.requests_in_threads == 0 and self._answers_at_once(conn):
            done: Future[Any] = Future()
            try:
                done.set_result(self.handle(conn))
            except BaseException as exc:  # finish_request closes the connection
                done.set_exception(exc)
            super().finish_request(conn, done)
            return
        self.requests_in_threads += 1
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        """A thread's request is done (called on this loop)."""
        self.requests_in_threads -= 1
        super().finish_request(conn, fs)

    def _answers_at_once(self, conn: Any) -> bool:
        buffered = getattr(conn, "header_buffer", None)
        return buffered is not None and answered_at_once(bytes(buffered), self.wsgi)

    # --- the thread gets complete headers -------------------------------------------------

    def handle(self, conn: Any) -> Any:
        buffered = getattr(conn, "header_buffer", None)
        if buffered is not None:
            conn.header_buffer = None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(bytes(buffered))
        if conn.parser is not None and not conn.is_http2:
            deadline = time.monotonic() + self.body_timeout
            unreader = conn.parser.unreader
            if isinstance(unreader.sock, DeadlineSocket):
                unreader.sock.deadline = deadline
            else:
                unreader.sock = DeadlineSocket(unreader.sock, deadline)
        return super().handle(conn)

    # --- JSON errors ------------------------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, reason, message = _client_error(exc)
        if status is None:
            self.log.exception("Error handling request")
            status, reason, message = 500, "Internal Server Error", "internal error"
        else:
            self.log.warning("Invalid request from %s: %s", (addr or ("",))[0], exc)
        self._answer(client, status, reason, message)

    def _answer(self, sock: Any, status: int, reason: str, message: str) -> None:
        body = json.dumps({"message": message}).encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        try:
            util.write_nonblock(sock, head + body)
        except Exception:
            self.log.debug("Failed to send error message.")


def answered_at_once(buffered: bytes, app: Any) -> bool:
    """Whether the request whose headers ``buffered`` holds is answered on the event loop:
    a plain GET without a body (nothing more to read) that ``app`` answers at once."""
    if not buffered.startswith(b"GET "):
        return False
    line_end = buffered.find(b"\r\n")
    request_line = buffered[:line_end].split(b" ")
    if len(request_line) != 3:
        return False
    head = buffered[line_end : buffered.find(_END_OF_HEADERS) + 2].lower()
    if any(name in head for name in _NOT_AT_ONCE_HEADERS):
        return False
    answers = getattr(app, "answers_at_once", None)
    return callable(answers) and bool(answers(request_line[1]))


def _client_error(exc: BaseException) -> tuple[int | None, str, str]:
    """Status, reason and a message for a request gunicorn could not parse (None: not a client
    error)."""
    errors = http.errors
    if isinstance(exc, RequestBodyTimeout):
        return 408, "Request Timeout", "the request body was not received in time"
    if isinstance(exc, errors.LimitRequestLine):
        return 414, "URI Too Long", "the request line is too long"
    if isinstance(exc, errors.LimitRequestHeaders):
        return 431, "Request Header Fields Too Large", "the request headers are too large"
    if isinstance(exc, errors.UnsupportedTransferCoding):
        return 501, "Not Implemented", "unsupported transfer coding"
    client_errors = tuple(
        getattr(errors, name)
        for name in (
            "InvalidRequestLine",
            "InvalidRequestMethod",
            "InvalidHTTPVersion",
            "InvalidHeader",
            "InvalidHeaderName",
            "InvalidProxyLine",
            "InvalidSchemeHeaders",
            "ObsoleteFolding",
            "InvalidChunkSize",
            "ChunkMissingTerminator",
            "InvalidChunkExtension",
        )
        if hasattr(errors, name)
    )
    if isinstance(exc, client_errors):
        return 400, "Bad Request", f"malformed request: {type(exc).__name__}"
    if isinstance(exc, getattr(errors, "ExpectationFailed", ())):
        return 417, "Expectation Failed", "unsupported Expect header"
    return None, "", ""
