"""The API worker's responses: status line, headers and body leave in one socket write.

A request is parsed by gunicorn from a real socket pair and answered by the worker's
response class; the server end records each ``sendall`` it is given and forwards it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from gunicorn.config import Config
from gunicorn.http.parser import RequestParser

from hma_framework.web.gunicorn_worker import OneWriteResponse


class RecordingSocket:
    """A real socket that remembers what each ``sendall`` carried."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.writes: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._sock.sendall(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    with server, client:
        yield server, client


def _respond(
    pair: tuple[socket.socket, socket.socket],
    method: str,
    headers: list[tuple[str, str]],
    chunks: list[bytes],
) -> tuple[RecordingSocket, bytes]:
    server, client = pair
    client.sendall(f"{method} /lookup HTTP/1.1\r\nHost: api\r\n\r\n".encode())
    cfg = Config()
    request = next(RequestParser(cfg, server, ("127.0.0.1", 1)))
    recording = RecordingSocket(server)
    response = OneWriteResponse(request, recording, cfg)
    response.start_response("200 OK", headers)
    for chunk in chunks:
        response.write(chunk)
    response.close()
    server.shutdown(socket.SHUT_WR)
    received = b""
    while data := client.recv(65536):
        received += data
    return recording, received


def test_headers_and_body_go_in_one_write(pair: tuple[socket.socket, socket.socket]) -> None:
    body = b'{"matches": []}'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    recording, received = _respond(pair, "GET", headers, [body])
    assert len(recording.writes) == 1
    assert received == recording.writes[0]
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nContent-Length: 15\r\n" in received
    assert received.endswith(b"\r\n\r\n" + body)


def test_a_response_without_a_body_still_sends_its_headers(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    recording, received = _respond(pair, "HEAD", [("Content-Length", "15")], [b""])
    assert len(recording.writes) == 1
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\n")


def test_chunked_responses_send_headers_first(pair: tuple[socket.socket, socket.socket]) -> None:
    recording, received = _respond(pair, "GET", [("Content-Type", "text/plain")], [b"ab", b"c"])
    head, _, rest = received.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert rest == b"2\r\nab\r\n1\r\nc\r\n0\r\n\r\n"
    assert recording.writes[0] == head + b"\r\n\r\n"
