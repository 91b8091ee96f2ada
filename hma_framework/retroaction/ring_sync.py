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
Finding gaps takes every id, of every type, so there all rings are fed by one read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
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
    """Sync one ring (see :func:`sync_rings`); rows copied."""
    return sync_rings(store, {signal_type: ring}, since, gap_wait_seconds, now)[signal_type]


def sync_rings(
    store: Store,
    rings: Mapping[str, SignalRing],
    since: dt.datetime,
    gap_wait_seconds: float = 900.0,
    now: float | None = None,
) -> dict[str, int]:
    """Copy rows past each ring's position into it, drop expired segments; rows copied.

    ``now`` (unix time) dates the gaps found and gives up those older than
    ``gap_wait_seconds``; it is the clock of this host, which alone reads them.
    """
    with contextlib.ExitStack() as stack:
        for signal_type in sorted(rings):  # one order everywhere: no lock cycles
            stack.enter_context(rings[signal_type].locked())
        positions: dict[str, RingPosition] = {}
        start: int | None = None
        for signal_type, ring in rings.items():
            position = ring.position
            if position is None:  # a fresh ring
                start = _start_id(store, since) if start is None else start
                position = RingPosition.settled(start)
            positions[signal_type] = position
        if store.dialect == "sqlite":
            copied = {
                signal_type: _copy_in_order(store, ring, signal_type, positions[signal_type])
                for signal_type, ring in rings.items()
            }
        else:
            feed = _GapFeed(store, rings, time.time() if now is None else now)
            copied = feed.run(positions, gap_wait_seconds)
        for signal_type, ring in rings.items():
            expired = ring.expire(since.timestamp())
            if copied[signal_type] or expired:
                log.info(
                    "%s ring: %d signals copied, %d segments expired",
                    signal_type, copied[signal_type], expired,
                )  # fmt: skip
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


def _copy_in_order(store: Store, ring: SignalRing, signal_type: str, position: RingPosition) -> int:
    """SQLite: rows appear in id order, so every id up to the newest visible is settled.

    The ring moves to the newest id even when none of the rows are its type's: a type
    without recent content would otherwise scan the whole window on every pass.
    """
    copied, cursor = 0, position.high
    while True:
        with store.reading() as session:  # one read transaction: one snapshot
            newest = int(session.scalar(select(func.max(ContentSignalRow.id))) or 0)
            rows = session.execute(
                select(
                    ContentSignalRow.id,
                    ContentSignalRow.content_pk,
                    ContentSignalRow.created_at,
                    ContentSignalRow.signal_value,
                )
                .where(
                    ContentSignalRow.id > cursor,
                    ContentSignalRow.id <= newest,
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
        if len(rows) < SYNC_BATCH:
            ring.position = RingPosition.settled(max(cursor, newest))
            return copied
        ring.position = RingPosition.settled(cursor)


def _columns(signal_types: Collection[str]) -> tuple[Any, ...]:
    """Every row's id (to find gaps); signal type, content pk, unix time and value for the
    rows a ring keeps (None for the others). Times come as floats: no datetime per row."""
    kept = and_(
        ContentSignalRow.signal_type.in_(sorted(signal_types)),
        ContentSignalRow.status == SIGNAL_OK,
    )
    return (
        ContentSignalRow.id,
        case((kept, ContentSignalRow.signal_type)).label("kept_type"),
        ContentSignalRow.content_pk,
        cast(func.extract("epoch", ContentSignalRow.created_at), Float).label("ts"),
        case((kept, ContentSignalRow.signal_value)).label("value"),
    )


class _GapFeed:
    """PostgreSQL: look again in each ring's gaps, then read new ids once for all rings."""

    def __init__(self, store: Store, rings: Mapping[str, SignalRing], now: float) -> None:
        self.store, self.rings, self.now = store, rings, now
        self.copied = dict.fromkeys(rings, 0)

    def run(self, positions: Mapping[str, RingPosition], gap_wait_seconds: float) -> dict[str, int]:
        gaps = {
            signal_type: self._look_again(signal_type, position.gaps, gap_wait_seconds)
            for signal_type, position in positions.items()
        }
        highs = {signal_type: position.high for signal_type, position in positions.items()}
        high = min(highs.values())
        while True:
            with self.store.reading() as session:
                rows = session.connection().execute(_batch_past(self.rings, high)).fetchall()
            self._append(rows, highs)
            for row in [row for row in rows if row[5] is not None]:  # gap_from
                for signal_type, ring_high in highs.items():  # each ring's unseen part
                    first = max(row.gap_from, ring_high + 1)
                    if first < row.id:
                        gaps[signal_type].append((first, row.id - 1, self.now))
            if rows:
                high = rows[-1].last
                highs = {signal_type: max(h, high) for signal_type, h in highs.items()}
            for signal_type, ring in self.rings.items():
                open_gaps = self._capped(signal_type, gaps[signal_type])
                ring.position = RingPosition.settled(highs[signal_type], open_gaps)
            if not rows or rows[-1].read < SYNC_BATCH:
                return self.copied

    def _append(self, rows: Sequence[Any], highs: Mapping[str, int] | None = None) -> None:
        """Append the kept rows, each to its ring unless within what it has read (``highs``)."""
        kept: dict[str, list[tuple[int, float, str]]] = defaultdict(list)
        read = highs or {}
        for row in rows:  # by position, faster: (id, kept_type, content_pk, ts, value, ...)
            signal_type = row[1]
            if signal_type is not None and row[0] > read.get(signal_type, -1):
                kept[signal_type].append((row[2], row[3], row[4]))
        for signal_type, records in kept.items():
            self.copied[signal_type] += self.rings[signal_type].append(records)

    def _look_again(
        self, signal_type: str, gaps: Sequence[Gap], gap_wait_seconds: float
    ) -> list[Gap]:
        """Copy what appeared in ``gaps``; the gaps still open and not given up."""
        still: list[Gap] = []
        for start in range(0, len(gaps), GAP_QUERY_BATCH):
            chunk = gaps[start : start + GAP_QUERY_BATCH]
            found: list[int] = []
            with self.store.reading() as session:
                result = session.connection().execute(
                    _rows_in(signal_type, chunk), execution_options={"yield_per": SYNC_BATCH}
                )
                for rows in result.partitions():
                    self._append(rows)
                    found.extend(row.id for row in rows)
            cutoff = self.now - gap_wait_seconds
            still.extend(gap for gap in _split(chunk, found) if gap[2] >= cutoff)
        return still

    def _capped(self, signal_type: str, gaps: list[Gap]) -> list[Gap]:
        if len(gaps) > MAX_GAPS:
            log.warning(
                "%s ring: %d id gaps open, giving up the oldest %d",
                signal_type, len(gaps), len(gaps) - MAX_GAPS,
            )  # fmt: skip
            del gaps[: len(gaps) - MAX_GAPS]
        return gaps


def _batch_past(signal_types: Collection[str], high: int) -> Select[Any]:
    """The next ``SYNC_BATCH`` ids past ``high``, in one statement (so one snapshot): the rows
    a ring keeps, and of the others only those that end a gap or the batch.

    Columns: those of :func:`_columns`, ``gap_from`` (the first missing id before this one,
    or None), ``last`` (the batch's last id) and ``read`` (ids in the batch). The database
    reads the other rows; they are not sent.
    """
    batch = (
        select(*_columns(signal_types))
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


def _rows_in(signal_type: str, gaps: Sequence[Gap]) -> Select[Any]:
    """The rows now visible in ``gaps``, by id (one index range scan per gap)."""
    ranges = (
        func.unnest(
            bindparam("firsts", [g[0] for g in gaps], type_=ARRAY(BigInteger)),
            bindparam("lasts", [g[1] for g in gaps], type_=ARRAY(BigInteger)),
        )
        .table_valued("low", "high")
        .render_derived()
    )
    return (
        select(*_columns([signal_type]))
        .join(ranges, ContentSignalRow.id.between(ranges.c.low, ranges.c.high))
        .order_by(ContentSignalRow.id)
    )


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
