"""Keep the API processes' connection counts level, so both cores serve kept-alive clients.

Every gunicorn process polls the one listening socket, and whichever wakes first accepts.
Clients (a load balancer's upstream pool, a platform's HTTP client) open a handful of
connections and keep them alive for thousands of requests, so an early lead is permanent:
measured on ``GET /lookup``, one process often held all 16 of the load generator's
connections while the other process, and its core, sat idle.

Here each process publishes how many connections it holds in a small table that the gunicorn
master maps before it forks (shared, anonymous memory), and a process holding more than the
least-loaded live one stops polling the listener for a moment, leaving the next connection to
that one. It is a nudge, not a lock: a process that stops publishing (hung, or gone) is left
out after ``STALE_SECONDS``, and no process defers for longer than ``MAX_DEFER_SECONDS`` at a
time, so a connection is never left waiting on a peer that does not accept it.
"""

from __future__ import annotations

import mmap
import struct

#: One slot per process: its pid, its connections (-1: not accepting), when it last wrote.
_SLOT = struct.Struct("<qqd")
SLOTS = 64
STALE_SECONDS = 3.0
MAX_DEFER_SECONDS = 0.05
#: While deferring, the event loop looks again this often (it otherwise sleeps up to 1 s).
RECHECK_SECONDS = 0.01
#: A busy event loop turns thousands of times a second; peers are read at most this often
#: while this process's own count stays the same.
REREAD_SECONDS = 0.005


class ConnectionShares:
    """The table of connections per process, in memory shared by a master and its forks."""

    def __init__(self, slots: int = SLOTS) -> None:
        self.slots = slots
        self._memory = mmap.mmap(-1, _SLOT.size * slots)  # MAP_SHARED: forks see each write

    def publish(self, slot: int, pid: int, connections: int, now: float) -> None:
        """Record ``connections`` for the process in ``slot`` (-1: it is not accepting)."""
        _SLOT.pack_into(self._memory, (slot % self.slots) * _SLOT.size, pid, connections, now)

    def fewest_elsewhere(self, slot: int, now: float) -> int | None:
        """The fewest connections a fresh, accepting process other than ``slot`` holds."""
        own = slot % self.slots
        fewest: int | None = None
        for index, (pid, connections, written) in enumerate(_SLOT.iter_unpack(self._memory)):
            if index == own or pid == 0 or connections < 0 or now - written > STALE_SECONDS:
                continue
            if fewest is None or connections < fewest:
                fewest = connections
        return fewest


class AcceptPacer:
    """Decides, each time round one process's event loop, whether it should accept now."""

    def __init__(self, shares: ConnectionShares, slot: int, pid: int) -> None:
        self.shares = shares
        self.slot = slot
        self.pid = pid
        self.deferring_since: float | None = None
        self._published: tuple[int, float] = (-2, 0.0)  # connections, when
        self._fewest: int | None = None

    def should_defer(self, connections: int, now: float) -> bool:
        """Publish ``connections`` and say whether to leave the next accept to a peer."""
        last_connections, last_time = self._published
        if connections != last_connections or now - last_time >= REREAD_SECONDS:
            self.shares.publish(self.slot, self.pid, connections, now)
            self._published = (connections, now)
            self._fewest = self.shares.fewest_elsewhere(self.slot, now)
        fewest = self._fewest
        if fewest is None or connections <= fewest:
            self.deferring_since = None
            return False
        if self.deferring_since is None:
            self.deferring_since = now
        if now - self.deferring_since >= MAX_DEFER_SECONDS:
            self.deferring_since = None  # accept for one round: the peer may not be taking it
            return False
        return True

    def not_accepting(self, now: float) -> None:
        """Shutting down or full: peers must not leave connections to this process."""
        self.deferring_since = None
        self._published = (-1, now)
        self.shares.publish(self.slot, self.pid, -1, now)


_shares: ConnectionShares | None = None


def create_shared_table() -> None:
    """In the gunicorn master, before it forks its workers."""
    global _shares
    if _shares is None:
        _shares = ConnectionShares()


def shared_table() -> ConnectionShares | None:
    """The table this process inherited from its master (None outside gunicorn)."""
    return _shares
