"""Every stored signal of one type, read straight from the driver for index builds.

An index built from the records reads every signal row once: at 10M rows, SQLAlchemy's
per-row result processing cost minutes. Here the driver's own cursor hands over plain tuples
in large batches (a server-side cursor on PostgreSQL, so memory stays bounded), in one
statement and therefore one consistent snapshot of the table. Rows come in no particular order:
indexes sort what they need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hma_framework.store.db import Store

SCAN_BATCH = 100_000

_SELECT = "SELECT id, signal_value FROM signal WHERE signal_type = {mark}"


def iter_signal_rows(
    store: Store, signal_type: str, batch: int = SCAN_BATCH
) -> Iterator[list[tuple[int, str]]]:
    """Lists of up to ``batch`` ``(signal pk, signal value)`` rows of ``signal_type``."""
    raw = store.engine.raw_connection()
    try:
        if store.dialect == "postgresql":
            yield from _postgresql_rows(raw.driver_connection, signal_type, batch)
        else:
            cursor: Any = raw.cursor()
            try:
                cursor.execute(_SELECT.format(mark="?"), (signal_type,))
                while rows := cursor.fetchmany(batch):
                    yield rows
            finally:
                cursor.close()
    finally:
        raw.rollback()  # ends the read transaction a driver may have opened
        raw.close()


def _postgresql_rows(connection: Any, signal_type: str, batch: int) -> Iterator[Any]:
    """A named (server-side) cursor: the server streams the rows ``batch`` at a time."""
    with connection.cursor(name="hma_signal_scan") as cursor:
        cursor.itersize = batch
        cursor.execute(_SELECT.format(mark="%s"), (signal_type,))
        while rows := cursor.fetchmany(batch):
            yield rows
