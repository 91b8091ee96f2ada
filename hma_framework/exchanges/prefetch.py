"""Reading an exchange's next pages while the last ones are being written.

A fetch alternates between waiting for the exchange (network, the server's own work,
python-threatexchange's parsing) and writing a batch to the database. Pulling the API's
``fetch_iter`` in a thread, a few deltas ahead, lets the server prepare the next page and the
socket fill while this process converts and commits: the two overlap instead of adding up.
The depth is small so memory stays bounded by a few pages.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetched(source: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Yield what ``source`` yields, read ``depth`` items ahead in a daemon thread.

    An exception in ``source`` is raised here, in order. Closing this generator early (a
    failed batch) stops the reader at its next item.
    """
    ahead: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in source:
                if not put(item):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(_Failed(exc))
            return
        put(_DONE)

    reader = threading.Thread(target=read, name="exchange-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = ahead.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        reader.join(timeout=5)
