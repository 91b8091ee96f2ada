"""A small HTTP/1.1 load generator for the benchmarks: asyncio, keep-alive, pipelining off.

It costs little CPU per request (requests are pre-rendered bytes, responses are parsed only
for status and length), so on a shared 2-core machine most CPU goes to the server measured.
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import time
import urllib.request
from collections.abc import Callable, Sequence

import attrs


@attrs.frozen
class LoadResult:
    requests: int
    seconds: float
    latencies: tuple[float, ...]
    statuses: dict[int, int]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0

    def summary(self) -> str:
        p50 = statistics.median(self.latencies) * 1000 if self.latencies else 0.0
        return (
            f"{self.requests} requests in {self.seconds:.1f}s = {self.rate:,.0f} req/s; "
            f"latency p50 {p50:.1f} ms, p99 {self.percentile(0.99) * 1000:.1f} ms; "
            f"statuses {dict(sorted(self.statuses.items()))}"
        )


def render(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """The status, and whether the server said it closes the connection after this response.

    A server that closes (gunicorn's sync workers do after every response) must get a new
    connection at once, as any HTTP client would open: a request written into the closing
    socket is lost, and the server's graceful close waits for the client, so both would add
    a delay to every request that is the client's doing, not the server's.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    closing = False
    for line in head.split(b"\r\n"):
        lowered = line.lower()
        if lowered.startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
        elif lowered.startswith(b"connection:"):
            closing = b"close" in lowered
    if length:
        await reader.readexactly(length)
    return status, closing


async def _connection(
    host: str,
    port: int,
    next_request: Callable[[], bytes | None],
    latencies: list[float],
    statuses: dict[int, int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    closing = False
    try:
        while (request := next_request()) is not None:
            started = time.perf_counter()
            if closing:  # the last response said so: a new connection, timed as the request's
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            for attempt in range(2):
                try:
                    writer.write(request)
                    status, closing = await _read_response(reader)
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    if attempt:
                        raise
                    writer.close()  # the server closed a kept-alive connection: reconnect
                    reader, writer = await asyncio.open_connection(host, port)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


def run_load(
    host: str, port: int, requests: Sequence[bytes], *, concurrency: int = 16
) -> LoadResult:
    """Send every request once over ``concurrency`` keep-alive connections."""
    iterator = iter(requests)

    def next_request() -> bytes | None:
        return next(iterator, None)

    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def main() -> None:
        await asyncio.gather(
            *(
                _connection(host, port, next_request, latencies, statuses)
                for _ in range(concurrency)
            )
        )

    started = time.perf_counter()
    asyncio.run(main())
    return LoadResult(len(latencies), time.perf_counter() - started, tuple(latencies), statuses)


# --- shared by the benchmarks that start `hma serve` ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flip(signal: str, bits: int, rng: random.Random) -> str:
    """``signal`` (256-bit hex) with ``bits`` distinct bits flipped."""
    value = int(signal, 16)
    for bit in rng.sample(range(256), bits):
        value ^= 1 << bit
    return f"{value:064x}"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status/ready", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
