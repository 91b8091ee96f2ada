"""The API's gunicorn processes share kept-alive connections instead of one taking them all.

The pacer's rules are checked directly; then the real API runs under gunicorn with two
processes, and connections opened one after another (each kept alive after its first answer,
as a client's pool keeps them) must end up split evenly between the two processes.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator

import psutil
import pytest

from hma_framework.runtime import Runtime
from hma_framework.testing import gunicorn_api
from hma_framework.web.accept_balance import (
    MAX_DEFER_SECONDS,
    REREAD_SECONDS,
    STALE_SECONDS,
    AcceptPacer,
    ConnectionShares,
)

CONNECTIONS = 12


def test_a_process_ahead_of_its_least_loaded_peer_defers() -> None:
    shares = ConnectionShares(slots=4)
    ahead, behind = AcceptPacer(shares, 0, 100), AcceptPacer(shares, 1, 101)
    assert not ahead.should_defer(3, now=10.0)  # no peer has published yet
    assert not behind.should_defer(1, now=10.0)
    assert not ahead.should_defer(3, now=10.0 + REREAD_SECONDS / 2)  # peers not read again yet
    assert ahead.should_defer(3, now=10.0 + REREAD_SECONDS)
    assert not behind.should_defer(1, now=10.02)
    assert not ahead.should_defer(1, now=10.02)  # level again (a new count reads at once)


def test_deferring_is_bounded_and_ignores_silent_or_closed_peers() -> None:
    shares = ConnectionShares(slots=4)
    ahead, behind = AcceptPacer(shares, 0, 100), AcceptPacer(shares, 1, 101)
    behind.should_defer(0, now=20.0)
    assert ahead.should_defer(5, now=20.0)
    assert ahead.should_defer(5, now=20.0 + MAX_DEFER_SECONDS / 2)
    assert not ahead.should_defer(5, now=20.0 + MAX_DEFER_SECONDS)  # one round to accept
    assert ahead.should_defer(5, now=20.0 + MAX_DEFER_SECONDS + 0.001)
    assert not ahead.should_defer(5, now=20.0 + STALE_SECONDS + 0.01)  # the peer went silent
    behind.not_accepting(now=30.0)  # shutting down: it takes no connections
    assert not ahead.should_defer(5, now=30.0)


def test_slots_wrap_around_the_table() -> None:
    shares = ConnectionShares(slots=2)
    AcceptPacer(shares, 3, 100).should_defer(0, now=1.0)  # slot 3 is slot 1
    assert shares.fewest_elsewhere(1, now=1.0) is None
    assert shares.fewest_elsewhere(0, now=1.0) == 0


@pytest.fixture
def two_process_api(runtime: Runtime) -> Iterator[tuple[int, psutil.Process]]:
    with gunicorn_api(runtime.settings, processes=2, threads=4) as (base, master):
        yield int(base.rsplit(":", 1)[1]), psutil.Process(master.pid)


def _held_per_process(master: psutil.Process, port: int) -> list[int]:
    return sorted(
        sum(
            1
            for c in child.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        )
        for child in master.children()
    )


def test_kept_alive_connections_are_split_between_processes(
    two_process_api: tuple[int, psutil.Process],
) -> None:
    port, master = two_process_api
    time.sleep(1.5)  # the probe connections above are closed; both processes have published
    clients = []
    try:
        for _ in range(CONNECTIONS):
            client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            client.request("GET", "/status")
            response = client.getresponse()
            response.read()
            assert response.status == 200
            clients.append(client)
        deadline = time.monotonic() + 5
        while sum(held := _held_per_process(master, port)) < CONNECTIONS:
            assert time.monotonic() < deadline, held
            time.sleep(0.05)
        assert held == [CONNECTIONS // 2, CONNECTIONS // 2], held
    finally:
        for client in clients:
            client.close()
