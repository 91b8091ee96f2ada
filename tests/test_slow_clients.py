"""Slow clients cannot exhaust the API, and gunicorn's own errors are JSON too."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.testing import gunicorn_api

pytestmark = pytest.mark.slow

SLOW_CONNECTIONS = 50
BODY_LIMIT = 64 * 1024


@pytest.fixture
def api(runtime: Runtime) -> Iterator[str]:
    """The real API under gunicorn: one process, two threads, a 3 s header deadline."""
    limits = {
        "HMA_WEB_HEADER_TIMEOUT_SECONDS": "3",
        "HMA_WEB_BODY_TIMEOUT_SECONDS": "3",
        "HMA_WEB_MAX_BODY_BYTES": str(BODY_LIMIT),
    }
    with gunicorn_api(runtime.settings, env=limits) as (base, _):
        yield base


def _slow_client(port: int, stop: threading.Event, closed: list[float]) -> None:
    """Send a request's headers one line a second, for as long as the server lets us."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.2)
        started = time.monotonic()
        try:
            sock.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            number = 0
            while not stop.is_set():
                try:
                    if sock.recv(4096) == b"":
                        break  # the server closed us
                except TimeoutError:
                    pass
                if time.monotonic() - started > number + 1:
                    number += 1
                    sock.sendall(f"X-Slow-{number}: {number}\r\n".encode())
        except OSError:
            pass
        closed.append(time.monotonic() - started)


def test_fifty_slow_header_clients_do_not_stop_normal_requests(api: str) -> None:
    port = int(api.rsplit(":", 1)[1])
    stop = threading.Event()
    closed: list[float] = []
    clients = [
        threading.Thread(target=_slow_client, args=(port, stop, closed), daemon=True)
        for _ in range(SLOW_CONNECTIONS)
    ]
    for client in clients:
        client.start()
    try:
        time.sleep(1.5)  # every slow client is connected and dribbling headers
        latencies = []
        for _ in range(20):
            started = time.monotonic()
            response = requests.get(api + "/status", timeout=2)
            latencies.append(time.monotonic() - started)
            assert response.status_code == 200
        print(f"normal /status under {SLOW_CONNECTIONS} slow clients: worst {max(latencies):.3f}s")
        deadline = time.monotonic() + 10
        while len(closed) < SLOW_CONNECTIONS and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(closed) == SLOW_CONNECTIONS, "slow clients are cut off at the header deadline"
        assert max(closed) < 3 + 3, closed  # the 3 s deadline, checked about once a second
    finally:
        stop.set()
        for client in clients:
            client.join(5)


def _raw(port: int, request: bytes) -> tuple[int, bytes, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), head, body


def test_gunicorns_own_errors_are_json(api: str) -> None:
    port = int(api.rsplit(":", 1)[1])
    cases = {
        414: b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        431: b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(200)) + b"\r\n",
        400: b"NOT A REQUEST\r\n\r\n",
    }
    for expected, request in cases.items():
        status, head, body = _raw(port, request)
        assert status == expected, (head, body)
        assert b"application/json" in head
        assert requests.models.complexjson.loads(body)["message"]


def test_a_trickling_body_times_out_with_408(api: str, runtime: Runtime) -> None:
    port = int(api.rsplit(":", 1)[1])
    token = runtime.api_keys.create("trickler", ["submit"]).token
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /submit/hash/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: 50000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = b""
        try:
            while time.monotonic() - started < 8:
                sock.sendall(b" ")
                time.sleep(0.5)
        except OSError:
            pass
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
    elapsed = time.monotonic() - started
    assert answer.split()[1] == b"408", answer[:300]
    assert b'"message"' in answer
    assert elapsed < 8, "the body deadline cut the upload off"


def _chunked(body: bytes, piece: int = 4096) -> bytes:
    """``body`` in HTTP/1.1 chunked transfer coding."""
    chunks = [body[i : i + piece] for i in range(0, len(body), piece)]
    return b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def _post_chunked(
    port: int, path: str, token: str, body: bytes, content_type: str
) -> tuple[int, bytes, bytes]:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + _chunked(body))
        answer = b""
        # Read the answer by its Content-Length, not to EOF: werkzeug's development server
        # keeps the socket open while it drains an unread body.
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
            re.search(rb"(?i)content-length: *(\d+)", answer).group(1)  # type: ignore[union-attr]
        ):
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
    head_bytes, _, content = answer.partition(b"\r\n\r\n")
    return int(head_bytes.split()[1]), head_bytes, content


def check_chunked_bodies_over_the_limit(port: int, token: str, limit: int) -> None:
    """Over the limit: 413 JSON on JSON, form and streamed routes; at the limit: read whole."""
    photo = base64.b64encode(b"\xff" * limit).decode()
    over = json.dumps({"content_id": "c", "content_type": "photo", "content_bytes": photo})
    cases = [
        ("/submit/bytes/", over.encode(), "application/json"),
        ("/submit/hash/", b'{"content_id": "' + b"x" * limit + b'"}', "application/json"),
        ("/ui/login", b"api_key=" + b"k" * limit, "application/x-www-form-urlencoded"),
    ]
    for path, body, content_type in cases:
        status, head, answer = _post_chunked(port, path, token, body, content_type)
        assert status == 413, (path, head, answer[:300])
        assert json.loads(answer)["message"], answer[:300]
    fits = json.dumps({"content_id": "fits", "content_type": "photo"}).encode()
    fits += b" " * (limit - len(fits))  # exactly the limit: the whole body, valid JSON
    status, head, answer = _post_chunked(port, "/submit/hash/", token, fits, "application/json")
    assert status == 400 and b"signal_type" in answer, (head, answer[:300])


def test_a_chunked_body_over_the_limit_is_413_under_gunicorn(api: str, runtime: Runtime) -> None:
    token = runtime.api_keys.create("chunky", ["submit"]).token
    check_chunked_bodies_over_the_limit(int(api.rsplit(":", 1)[1]), token, BODY_LIMIT)


def test_a_chunked_body_over_the_limit_is_413_under_werkzeug(
    app: Any, live_server: str, runtime: Runtime
) -> None:
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    token = runtime.api_keys.create("chunky", ["submit"]).token
    check_chunked_bodies_over_the_limit(int(live_server.rsplit(":", 1)[1]), token, BODY_LIMIT)
