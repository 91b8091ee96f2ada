"""Keep each host's rings a faithful cache of recent ``content_signal`` rows.

Rows are copied in id order past the ring's cursor (a fresh ring starts at the window's
start), so the database stays the only truth and a new host rebuilds its rings by itself.
Segments that left the window are dropped on every sync.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from sqlalchemy import func, select

from hma_framework.registry import Registry
from hma_framework.retroaction.ring import SignalRing, value_width
from hma_framework.settings import Settings
from hma_framework.store.content import SIGNAL_OK
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentSignalRow

log = logging.getLogger(__name__)

SYNC_BATCH = 50_000


def ring_root(settings: Settings) -> Path:
    return settings.data_path / "retroaction"


def open_ring(settings: Settings, registry: Registry, signal_type: str) -> SignalRing:
    """The ring of ``signal_type`` on this host (created empty if missing)."""
    examples = registry.signal_types[signal_type].signal_type.get_examples()
    width = value_width(examples)
    folder = ring_root(settings) / f"{signal_type}-w{width}"
    return SignalRing(folder, width, settings.retroaction.segment_entries)


def window_start(settings: Settings, now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    return now - dt.timedelta(hours=settings.retroaction.window_hours)


def sync_ring(store: Store, ring: SignalRing, signal_type: str, since: dt.datetime) -> int:
    """Copy rows newer than the ring's cursor into it, drop expired segments; rows copied."""
    copied = 0
    with ring.locked():
        cursor = ring.cursor
        if cursor is None:
            with store.reading() as session:
                first = session.scalar(
                    select(func.min(ContentSignalRow.id)).where(
                        ContentSignalRow.created_at >= since
                    )
                )
            cursor = int(first) - 1 if first is not None else _newest_id(store)
        while True:
            with store.reading() as session:
                rows = session.execute(
                    select(
                        ContentSignalRow.id,
                        ContentSignalRow.content_pk,
                        ContentSignalRow.created_at,
                        ContentSignalRow.signal_value,
                    )
                    .where(
                        ContentSignalRow.id > cursor,
                        ContentSignalRow.signal_type == signal_type,
                        ContentSignalRow.status == SIGNAL_OK,
                    )
                    .order_by(ContentSignalRow.id)
                    .limit(SYNC_BATCH)
                ).all()
            if rows:
                ring.append([(pk, at.timestamp(), value) for _, pk, at, value in rows])
                copied += len(rows)
                cursor = int(rows[-1][0])
            ring.cursor = cursor
            if len(rows) < SYNC_BATCH:
                break
        expired = ring.expire(since.timestamp())
    if copied or expired:
        log.info("%s ring: %d signals copied, %d segments expired", signal_type, copied, expired)
    return copied


def _newest_id(store: Store) -> int:
    with store.reading() as session:
        return int(session.scalar(select(func.max(ContentSignalRow.id))) or 0)
