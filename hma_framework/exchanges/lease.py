"""Keeping a fetch's fleet-wide lease alive while the fetch is alive, and only then.

The lease used to be renewed after each committed batch, so a fetch that spent longer than
the lease between two batches (NCMEC probing its time windows, empty pages, an exchange's
``Retry-After``) lost its lock to the next trigger and failed at its next commit. A thread in
the fetching process renews it every third of the lease instead: a live fetch keeps it however
slow its exchange is, while a killed worker takes the thread with it and its lease runs out as
before. A hung HTTP call cannot hold it forever either: every exchange request has a timeout.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from redis.exceptions import LockError
from redis.lock import Lock

log = logging.getLogger(__name__)


class LeaseLostError(RuntimeError):
    """Another worker holds the fetch's lock now; this fetch must stop without committing."""


class LeaseKeeper:
    """``with LeaseKeeper(lock, seconds):`` renews ``lock`` in a daemon thread until exit.

    The lock must not be thread-local (``Lock(..., thread_local=False)``): the thread renews
    the token the fetching thread acquired.
    """

    def __init__(self, lock: Lock, lease_seconds: float) -> None:
        self._lock = lock
        self._every = max(0.5, lease_seconds / 3)
        self._stop = threading.Event()
        self._lost = False
        self._thread = threading.Thread(target=self._renew, name="fetch-lease", daemon=True)

    def _renew(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._lock.reacquire()
            except LockError:
                self._lost = True
                log.warning("fetch lease %s was lost to another worker", self._lock.name)
                return

    def check(self) -> None:
        """Raise :class:`LeaseLostError` when the lease is no longer ours (before a commit)."""
        if self._lost:
            raise LeaseLostError("the fetch's lease was taken over by another worker")
        try:
            self._lock.reacquire()
        except LockError:
            self._lost = True
            raise LeaseLostError("the fetch's lease was taken over by another worker") from None

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
