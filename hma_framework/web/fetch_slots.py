"""A per-process bound on URL fetches done inside API requests (lookups, bank members).

A synchronous fetch holds an API thread for as long as the remote server takes (up to
``fetch.timeout_seconds``); without a bound, a few slow URLs occupy every thread and the API
stops answering. Past ``web.max_concurrent_fetches`` a request is answered 503 with a
``Retry-After`` at once, so the other threads keep serving everything else.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from flask import current_app

from hma_framework.runtime import Runtime
from hma_framework.web.errors import ApiError

_EXTENSION = "hma_fetch_slots"
_CREATE_LOCK = threading.Lock()
RETRY_AFTER_SECONDS = 5


class FetchesBusyError(ApiError):
    """All fetch slots are taken; the client should retry shortly."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            503,
            f"this server is already fetching {limit} URL(s) for other requests; "
            f"retry in {RETRY_AFTER_SECONDS} seconds",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


def _semaphore(runtime: Runtime) -> threading.BoundedSemaphore:
    """One semaphore per app (so per process), created on first use."""
    extensions = current_app.extensions
    if _EXTENSION not in extensions:
        with _CREATE_LOCK:
            if _EXTENSION not in extensions:
                limit = runtime.settings.web.max_concurrent_fetches
                extensions[_EXTENSION] = threading.BoundedSemaphore(limit)
    semaphore: threading.BoundedSemaphore = extensions[_EXTENSION]
    return semaphore


@contextlib.contextmanager
def fetch_slot(runtime: Runtime) -> Iterator[None]:
    """Hold one fetch slot for the block, or raise :class:`FetchesBusyError` (503) now."""
    semaphore = _semaphore(runtime)
    if not semaphore.acquire(blocking=False):
        raise FetchesBusyError(runtime.settings.web.max_concurrent_fetches)
    try:
        yield
    finally:
        semaphore.release()
