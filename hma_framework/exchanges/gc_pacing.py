"""Fewer garbage collections while a fetch turns pages of records into rows.

A fetch allocates several objects per record (parsed JSON, the library's records, members,
rows) that almost all die by reference counting within a page or a batch. With the default
thresholds the collector still runs a young collection every 700 allocations and, as batches
of 10,000 pending members survive into the old generation, full collections that walk the
whole worker heap (modules, SQLAlchemy, numpy, the registry): measured at 20% of a fetch
worker's CPU on 100k ThreatExchange records. Inside :func:`paced_collector` the heap that
existed before the fetch is frozen out of the collector's reach and young collections are
rarer; both are restored afterwards, so cycles made during the fetch are still collected.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations between young collections during a fetch (Python's default is 700). Memory
#: held by uncollected cycles stays bounded by this many objects' worth between collections.
FETCH_GEN0_THRESHOLD = 20_000


@contextmanager
def paced_collector(gen0_threshold: int = FETCH_GEN0_THRESHOLD) -> Iterator[None]:
    """Freeze the existing heap and collect the young generation less often, for a while.

    A process that froze its heap itself (a worker forked from ``hma worker --processes``,
    whose parent froze the imports so the children share those pages) keeps that freeze:
    unfreezing would hand the shared objects back to the collector, which writes to them.
    """
    before = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(gen0_threshold, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()
