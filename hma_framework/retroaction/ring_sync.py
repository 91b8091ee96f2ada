"""Keep each host's rings a faithful cache of recent ``content_signal`` rows.

Rows are copied in id order past the ring's position (a fresh ring starts at the window's
start), so the database stays the only truth and a new host rebuilds its rings by itself.
Segments that left the window are dropped on every sync.

SQLite has one writer at a time, so its rows become visible in id order and a plain cursor
is exact. PostgreSQL takes an id at INSERT but shows the row at COMMIT: with concurrent
writers a row with a lower id can appear after higher ones were copied. There the feed still
copies every visible row at once (no added latency) but remembers the ids it found missing
as ranges (gaps) and looks for them again on every sync, until they appear (copied then,
once) or ``gap_wait_seconds`` have passed (rolled back, deleted, or an id an upsert burned).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Float, Select, and_, bindparam, case, cast, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from hma_framework.registry import Registry
from hma_framework.retroaction.ring import RingPosition, SignalRing, value_width
from hma_framework.settings import Settings
from hma_framework.store.content import SIGNAL_OK
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentSignalRow

log = logging.getLogger(__name__)

SYNC_BATCH = 50_000
#: Gap ranges remembered at most; beyond, the oldest are given up (with a warning). Ranges,
#: not ids: a run of missing ids costs one entry however long it is.
MAX_GAPS = 100_000
#: Gap ranges looked up per query.
GAP_QUERY_BATCH = 5_000

Gap = tuple[int, int, float]


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


def sync_ring(
    store: Store,
    ring: SignalRing,
    signal_type: str,
    since: dt.datetime,
    gap_wait_seconds: float = 900.0,
    now: float | None = None,
) -> int:
    """Copy rows past the ring's position into it, drop expired segments; rows copied.

    ``now`` (unix time) dates the gaps found and gives up those older than
    ``gap_wait_seconds``; it is the clock of this host, which alone reads them.
    """
    with ring.locked():
        position = ring.position
        if position is None:
            position = RingPosition.settled(_start_id(store, since))
        if store.dialect == "sqlite":
            copied = _copy_in_order(store, ring, signal_type, position.high)
        else:
            copied = _copy_with_gaps(
                store, ring, signal_type, position, time.time() if now is None else now,
                gap_wait_seconds,
            )  # fmt: skip
        expired = ring.expire(since.timestamp())
    if copied or expired:
        log.info("%s ring: %d signals copied, %d segments expired", signal_type, copied, expired)
    return copied


def _start_id(store: Store, since: dt.datetime) -> int:
    """Where a fresh ring starts: below the window's first visible row and at the newest row
    before the window, so a row still in flight between them is found as a gap."""
    with store.reading() as session:
        first = session.scalar(
            select(func.min(ContentSignalRow.id)).where(ContentSignalRow.created_at >= since)
        )
        before = session.scalar(
            select(ContentSignalRow.id)
            .where(ContentSignalRow.created_at < since)
            .order_by(ContentSignalRow.created_at.desc(), ContentSignalRow.id.desc())
            .limit(1)
        )
    starts = [int(first) - 1] if first is not None else []
    starts += [int(before)] if before is not None else []
    return min(starts, default=0)


def _copy_in_order(store: Store, ring: SignalRing, signal_type: str, cursor: int) -> int:
    """SQLite: rows appear in id order, so everything up to the newest copied is settled."""
    copied = 0
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
        ring.position = RingPosition.settled(cursor)
        if len(rows) < SYNC_BATCH:
            return copied


def _columns(signal_type: str) -> tuple[Any, ...]:
    """Every row's id (to find gaps); content pk, unix time and value for this ring's rows.

    The time comes as a float from the database: no datetime is built per row.
    """
    mine = and_(ContentSignalRow.signal_type == signal_type, ContentSignalRow.status == SIGNAL_OK)
    return (
        ContentSignalRow.id,
        ContentSignalRow.content_pk,
        cast(func.extract("epoch", ContentSignalRow.created_at), Float).label("ts"),
        case((mine, ContentSignalRow.signal_value)).label("value"),
    )


def _append(ring: SignalRing, rows: Sequence[Any]) -> int:
    kept = [(row[1], row[2], row[3]) for row in rows if row[3] is not None]
    if kept:
        ring.append(kept)
    return len(kept)


def _copy_with_gaps(
    store: Store,
    ring: SignalRing,
    signal_type: str,
    position: RingPosition,
    now: float,
    gap_wait_seconds: float,
) -> int:
    """PostgreSQL: copy what appeared in the gaps, then what is new; remember new gaps."""
    copied = 0
    gaps: list[Gap] = []
    for start in range(0, len(position.gaps), GAP_QUERY_BATCH):
        chunk = position.gaps[start : start + GAP_QUERY_BATCH]
        appeared, found = _copy_gap_rows(store, ring, signal_type, chunk)
        copied += appeared
        open_gaps = _split(chunk, found)
        gaps.extend(gap for gap in open_gaps if gap[2] >= now - gap_wait_seconds)
    high = position.high
    while True:
        with store.reading() as session:
            rows = session.connection().execute(_batch_past(signal_type, high)).fetchall()
        copied += _append(ring, rows)
        gaps.extend((row[4], row[0] - 1, now) for row in rows if row[4] is not None)
        read = rows[-1][6] if rows else 0
        high = rows[-1][5] if rows else high
        if len(gaps) > MAX_GAPS:
            log.warning(
                "%s ring: %d id gaps open, giving up the oldest %d",
                signal_type, len(gaps), len(gaps) - MAX_GAPS,
            )  # fmt: skip
            del gaps[: len(gaps) - MAX_GAPS]
        ring.position = RingPosition.settled(high, gaps)
        if read < SYNC_BATCH:
            return copied


def _batch_past(signal_type: str, high: int) -> Select[Any]:
    """The next ``SYNC_BATCH`` ids past ``high``, in one statement (so one snapshot): the rows
    this ring keeps, and of the others only those that end a gap or the batch.

    Columns: ``id, content_pk, ts, value`` (value None when not this ring's), ``gap_from``
    (the first missing id before this one, or None), ``last`` (the batch's last id) and
    ``read`` (ids in the batch). Other types' rows are read by the database, not sent.
    """
    batch = (
        select(*_columns(signal_type))
        .where(ContentSignalRow.id > high)
        .order_by(ContentSignalRow.id)
        .limit(SYNC_BATCH)
        .subquery()
    )
    previous = func.coalesce(func.lag(batch.c.id).over(order_by=batch.c.id), high)
    numbered = select(
        batch,
        case((batch.c.id > previous + 1, previous + 1)).label("gap_from"),
        func.max(batch.c.id).over().label("last"),
        func.count().over().label("read"),
    ).subquery()
    return (
        select(numbered)
        .where(
            or_(
                numbered.c.value.is_not(None),
                numbered.c.gap_from.is_not(None),
                numbered.c.id == numbered.c.last,
            )
        )
        .order_by(numbered.c.id)
    )


def _copy_gap_rows(
    store: Store, ring: SignalRing, signal_type: str, gaps: Sequence[Gap]
) -> tuple[int, list[int]]:
    """Copy the rows now visible in ``gaps`` (one index range scan per gap); (copied, ids)."""
    ranges = (
        func.unnest(
            bindparam("firsts", [g[0] for g in gaps], type_=ARRAY(BigInteger)),
            bindparam("lasts", [g[1] for g in gaps], type_=ARRAY(BigInteger)),
        )
        .table_valued("low", "high")
        .render_derived()
    )
    statement = (
        select(*_columns(signal_type))
        .join(ranges, ContentSignalRow.id.between(ranges.c.low, ranges.c.high))
        .order_by(ContentSignalRow.id)
    )
    copied = 0
    found: list[int] = []
    with store.reading() as session:
        result = session.connection().execute(
            statement, execution_options={"yield_per": SYNC_BATCH}
        )
        for rows in result.partitions():
            copied += _append(ring, rows)
            found.extend(row[0] for row in rows)
    return copied, found


def _split(gaps: Sequence[Gap], found: Sequence[int]) -> list[Gap]:
    """``gaps`` (sorted) without the ids in ``found`` (sorted), each part keeping its time."""
    remaining: list[Gap] = []
    ids = iter(found)
    next_id = next(ids, None)
    for first, last, seen in gaps:
        while next_id is not None and next_id <= last:
            if next_id >= first:
                if next_id > first:
                    remaining.append((first, next_id - 1, seen))
                first = next_id + 1
            next_id = next(ids, None)
        if first <= last:
            remaining.append((first, last, seen))
    return remaining
