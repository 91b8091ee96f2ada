"""The on-disk ring of recent signals: segments, expiry by whole segment, torn tails."""

from __future__ import annotations

from pathlib import Path

from hma_framework.retroaction.ring import RingPosition, SignalRing, decode_values, value_width


def test_segments_fill_in_order_and_expire_whole(tmp_path: Path) -> None:
    ring = SignalRing(tmp_path / "pdq", width=64, segment_entries=4)
    assert ring.cursor is None and len(ring) == 0
    assert ring.append([(n, 1000.0 + n, f"{n:064x}") for n in range(6)]) == 6
    assert ring.append([(6, 1006.0, "a" * 64), (7, 1007.0, "b" * 65)]) == 1  # too wide: kept out
    assert [len(ring._read(p)) for p in ring.segments()] == [4, 3]
    scanned = [r for batch in ring.scan(since=1002.0, batch=2) for r in batch["pk"].tolist()]
    assert scanned == [2, 3, 4, 5, 6]
    assert decode_values(next(ring.scan(since=1006.0, batch=10))) == ["a" * 64]

    assert ring.expire(cutoff=1003.0) == 0, "the first segment still holds 1003"
    assert ring.expire(cutoff=1003.5) == 1
    assert len(ring) == 3
    assert ring.expire(cutoff=9999.0) == 0, "the open segment is kept for appends"

    ring.cursor = 41
    assert SignalRing(tmp_path / "pdq", 64, 4).cursor == 41


def test_a_torn_tail_is_ignored(tmp_path: Path) -> None:
    ring = SignalRing(tmp_path / "md5", width=32, segment_entries=100)
    ring.append([(1, 1.0, "d41d8cd98f00b204e9800998ecf8427e")])
    with open(ring.segments()[0], "ab") as handle:
        handle.write(b"\x01\x02\x03")  # a crash mid-append
    assert len(ring) == 1
    assert [b["pk"].tolist() for b in ring.scan(0.0, 10)] == [[1]]
    ring.append([(2, 2.0, "0" * 32)])  # the torn bytes are dropped, records stay aligned
    assert [b["pk"].tolist() for b in ring.scan(0.0, 10)] == [[1, 2]]


def test_value_width_fits_the_examples() -> None:
    assert value_width(["f" * 64]) == 64
    assert value_width(["f" * 32]) == 32
    assert value_width(["x" * 65]) == 128
    assert value_width([]) == 64


def test_a_position_with_gaps_survives_a_reopen(tmp_path: Path) -> None:
    ring = SignalRing(tmp_path / "pdq", width=64, segment_entries=4)
    (ring.folder / "cursor").write_text("17\n")  # as rings before gaps were tracked wrote it
    assert ring.position == RingPosition(17, 17)
    ring.position = RingPosition.settled(30, [(19, 19, 5.0), (25, 27, 6.5)])
    reopened = SignalRing(tmp_path / "pdq", 64, 4)
    assert reopened.position == RingPosition(18, 30, ((19, 19, 5.0), (25, 27, 6.5)))
    assert reopened.cursor == 18
