"""The feed that copies content signals into a ring: every row once, even when PostgreSQL
shows a lower id after a higher one (ids are taken at INSERT, rows appear at COMMIT)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from hma_framework.retroaction import ring_sync
from hma_framework.retroaction.ring import RingPosition, SignalRing
from hma_framework.retroaction.ring_sync import sync_ring, sync_rings
from hma_framework.store import migrate
from hma_framework.store.content import ComputedSignal, ContentRecords, Submission
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentSignalRow

WAIT = 900.0


class RolledBack(Exception):
    pass


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    migrate.upgrade(store)
    yield store
    store.close()


@pytest.fixture
def ring(tmp_path: Path) -> SignalRing:
    return SignalRing(tmp_path / "pdq-w64", 64, 16)


def since() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


def content(store: Store, name: str) -> int:
    _, pk = ContentRecords(store).submit(Submission(name, "photo", "url"), force=False)
    return pk


def hashed(store: Store, pk: int, value: str) -> None:
    ContentRecords(store).record_signals(pk, [ComputedSignal("pdq", value)])


def ring_pks(ring: SignalRing) -> list[int]:
    return sorted(pk for batch in ring.scan(0.0, 1000) for pk in batch["pk"].tolist())


def postgresql_only(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: its ids become visible in order")


def test_a_row_committed_late_is_copied_once_when_it_appears(
    store: Store, ring: SignalRing
) -> None:
    postgresql_only(store)
    early, slow, fast, later = (content(store, n) for n in ("early", "slow", "fast", "later"))
    hashed(store, early, "0" * 64)
    assert sync_ring(store, ring, "pdq", since(), WAIT, now=1000.0) == 1
    records = ContentRecords(store)
    with store.transaction() as held:
        records.record_signals(slow, [ComputedSignal("pdq", "1" * 64)], held)
        hashed(store, fast, "2" * 64)
        assert sync_ring(store, ring, "pdq", since(), WAIT, now=1001.0) == 1
        position = ring.position
        assert position is not None and len(position.gaps) == 1
        assert position.cursor < position.gaps[0][0] <= position.gaps[0][1] < position.high
        assert sync_ring(store, ring, "pdq", since(), WAIT, now=1002.0) == 0, "still in flight"
    hashed(store, later, "3" * 64)
    assert sync_ring(store, ring, "pdq", since(), WAIT, now=1003.0) == 2
    assert ring_pks(ring) == [early, slow, fast, later]
    assert sync_ring(store, ring, "pdq", since(), WAIT, now=1004.0) == 0
    assert ring_pks(ring) == [early, slow, fast, later], "no row twice"
    position = ring.position
    assert position is not None and position.gaps == () and position.cursor == position.high
    assert (ring.folder / "cursor").read_text().isdigit(), "no gaps: the id alone is stored"


def test_ids_that_never_appear_are_given_up_after_the_wait(store: Store, ring: SignalRing) -> None:
    postgresql_only(store)
    first, lost, last = (content(store, n) for n in ("first", "lost", "last"))
    hashed(store, first, "0" * 64)
    sync_ring(store, ring, "pdq", since(), WAIT, now=1000.0)
    with pytest.raises(RolledBack), store.transaction() as session:
        ContentRecords(store).record_signals(lost, [ComputedSignal("pdq", "1" * 64)], session)
        raise RolledBack  # its id was taken and is never used
    hashed(store, last, "2" * 64)
    sync_ring(store, ring, "pdq", since(), WAIT, now=1000.0)
    cursor = ring.cursor
    assert cursor is not None and len(ring_pks(ring)) == 2
    sync_ring(store, ring, "pdq", since(), WAIT, now=1000.0 + WAIT)
    assert ring.cursor == cursor, "within the wait the gap is still looked for"
    sync_ring(store, ring, "pdq", since(), WAIT, now=1001.0 + WAIT)
    position = ring.position
    assert position is not None and position.gaps == () and position.cursor > cursor


def test_rows_of_other_types_and_low_quality_leave_no_gaps(
    store: Store, ring: SignalRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgresql_only(store)
    monkeypatch.setattr(ring_sync, "SYNC_BATCH", 2)  # batches end on other types' rows
    pks = [content(store, f"c{n}") for n in range(5)]
    records = ContentRecords(store)
    records.record_signals(pks[0], [ComputedSignal("video_md5", "d" * 32)])
    records.record_signals(pks[1], [ComputedSignal("pdq", "1" * 64, quality=1, quality_ok=False)])
    with pytest.raises(RolledBack), store.transaction() as session:
        records.record_signals(pks[2], [ComputedSignal("pdq", "2" * 64)], session)
        raise RolledBack
    records.record_signals(pks[3], [ComputedSignal("video_md5", "e" * 32)])
    hashed(store, pks[4], "4" * 64)
    assert sync_ring(store, ring, "pdq", since(), WAIT) == 1
    assert ring_pks(ring) == [pks[4]]
    position = ring.position
    assert position is not None and len(position.gaps) == 1, "only the rolled-back id"
    first, last, _ = position.gaps[0]
    assert first == last == position.cursor + 1 and position.high == first + 2


def test_a_fresh_ring_finds_a_row_in_flight_below_the_first_visible_one(
    store: Store, ring: SignalRing
) -> None:
    postgresql_only(store)
    old, slow, fast = (content(store, n) for n in ("old", "slow", "fast"))
    hashed(store, old, "0" * 64)
    with store.transaction() as session:
        session.execute(
            update(ContentSignalRow).values(
                created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=9)
            )
        )
    records = ContentRecords(store)
    with store.transaction() as held:
        records.record_signals(slow, [ComputedSignal("pdq", "1" * 64)], held)
        hashed(store, fast, "2" * 64)
        assert sync_ring(store, ring, "pdq", since(), WAIT) == 1  # a fresh ring: fast only
    assert sync_ring(store, ring, "pdq", since(), WAIT) == 1
    assert ring_pks(ring) == [slow, fast]


def test_rings_at_different_positions_are_fed_by_one_read(store: Store, tmp_path: Path) -> None:
    """A ring added later (a new signal type) starts at the window; the others go on."""
    postgresql_only(store)
    pdq = SignalRing(tmp_path / "pdq-w64", 64, 16)
    video = SignalRing(tmp_path / "video_md5-w32", 32, 16)
    early, early_clip, slow, clip = (content(store, n) for n in ("early", "ec", "slow", "clip"))
    records = ContentRecords(store)
    hashed(store, early, "0" * 64)
    records.record_signals(early_clip, [ComputedSignal("video_md5", "a" * 32)])
    assert sync_rings(store, {"pdq": pdq}, since(), WAIT) == {"pdq": 1}
    with store.transaction() as held:
        records.record_signals(slow, [ComputedSignal("pdq", "1" * 64)], held)
        records.record_signals(clip, [ComputedSignal("video_md5", "b" * 32)])
        copied = sync_rings(store, {"pdq": pdq, "video_md5": video}, since(), WAIT)
        assert copied == {"pdq": 0, "video_md5": 2}
    assert sync_rings(store, {"pdq": pdq, "video_md5": video}, since(), WAIT) == {
        "pdq": 1,
        "video_md5": 0,
    }
    assert ring_pks(pdq) == [early, slow] and ring_pks(video) == [early_clip, clip]
    for ring in (pdq, video):
        position = ring.position
        assert position is not None and position.gaps == () and position.cursor == position.high


def test_open_gaps_are_bounded(
    store: Store,
    ring: SignalRing,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    postgresql_only(store)
    monkeypatch.setattr(ring_sync, "MAX_GAPS", 2)
    kept = content(store, "kept")
    hashed(store, kept, "0" * 64)
    sync_ring(store, ring, "pdq", since(), WAIT, now=1000.0)
    for n in range(4):  # four rolled-back ids, each between two rows
        with pytest.raises(RolledBack), store.transaction() as session:
            pk = content(store, f"gone{n}")
            ContentRecords(store).record_signals(pk, [ComputedSignal("pdq", "1" * 64)], session)
            raise RolledBack
        hashed(store, content(store, f"row{n}"), f"{n + 2:064x}")
    with caplog.at_level(logging.WARNING):
        assert sync_ring(store, ring, "pdq", since(), WAIT, now=1001.0) == 4
    position = ring.position
    assert position is not None and len(position.gaps) == 2
    assert "giving up the oldest 2" in caplog.text


def test_sqlite_keeps_a_plain_cursor(store: Store, ring: SignalRing, tmp_path: Path) -> None:
    if store.dialect != "sqlite":
        pytest.skip("the in-order feed is SQLite's")
    pks = [content(store, f"c{n}") for n in range(3)]
    for n, pk in enumerate(pks):
        hashed(store, pk, f"{n:064x}")
    assert sync_ring(store, ring, "pdq", since(), WAIT) == 3
    assert ring.position == RingPosition(pks[-1], pks[-1])
    assert (ring.folder / "cursor").read_text() == str(pks[-1])
    clips = SignalRing(tmp_path / "video_md5-w32", 32, 16)
    assert sync_ring(store, clips, "video_md5", since(), WAIT) == 0
    assert clips.cursor == pks[-1], "a type without content moves on: no rescan next pass"
