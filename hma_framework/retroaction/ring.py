"""The ring of recent content signals: one per signal type, on disk, in fixed-size segments.

Retroaction streams every recent content signal through the few signals a bank just gained,
so recent signals are kept where a scan reads them fastest: numpy record arrays (content id,
time, value as fixed-width bytes) in append-only segment files. A segment holds
``segment_entries`` records; it is deleted whole once its newest record leaves the window, so
expiry never rewrites anything. Files are plain arrays (never pickle); a torn tail after a
crash is ignored because readers count whole records only.

The ring is a cache: the database's ``content_signal`` rows are the truth, and
:func:`hma_framework.retroaction.ring_sync.sync_ring` fills a ring from them by id, so any
host can rebuild its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import numpy as np

CURSOR_FILE = "cursor"
LOCK_FILE = ".lock"
SEGMENT_SUFFIX = ".seg"


def value_width(examples: Sequence[str]) -> int:
    """Bytes kept per value: the examples' longest, rounded up to a power of two (min 16)."""
    longest = max((len(e.encode()) for e in examples), default=64)
    width = 16
    while width < longest:
        width *= 2
    return width


def record_dtype(width: int) -> np.dtype[np.void]:
    return np.dtype([("pk", "<i8"), ("ts", "<f8"), ("value", f"S{width}")])


@attrs.frozen
class RingPosition:
    """How far a ring has copied ``content_signal``, by id.

    Every id up to ``cursor`` is settled: copied, or never to appear. Ids above it up to
    ``high`` were read, except the ``gaps``: inclusive ``(first, last, unix time first
    missed)`` ranges of ids that were not visible when read but may still appear (PostgreSQL
    takes an id at INSERT and shows the row at COMMIT). ``cursor`` is just below the lowest
    gap, or ``high`` when there is none. Stored as the id alone when there are no gaps (the
    only form SQLite ever needs), else as JSON.
    """

    cursor: int
    high: int
    gaps: tuple[tuple[int, int, float], ...] = ()

    @classmethod
    def settled(cls, high: int, gaps: Sequence[tuple[int, int, float]] = ()) -> RingPosition:
        """The position after reading up to ``high`` with ``gaps`` (sorted) still open."""
        return cls(gaps[0][0] - 1 if gaps else high, high, tuple(gaps))

    @classmethod
    def parse(cls, text: str) -> RingPosition:
        text = text.strip()
        if not text.startswith("{"):
            return cls(int(text), int(text))
        data = json.loads(text)
        gaps = [(int(first), int(last), float(seen)) for first, last, seen in data["gaps"]]
        return cls.settled(int(data["high"]), gaps)

    def dump(self) -> str:
        if not self.gaps:
            return str(self.high)
        return json.dumps({"high": self.high, "gaps": [list(gap) for gap in self.gaps]})


class SignalRing:
    """The segments of one signal type under ``folder``. Safe across processes of one host."""

    def __init__(self, folder: Path, width: int, segment_entries: int) -> None:
        self.folder = folder
        self.width = width
        self.segment_entries = segment_entries
        self.dtype = record_dtype(width)
        folder.mkdir(parents=True, exist_ok=True)

    # --- writing ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the ring's lock (appends, expiry, cursor moves) until the block ends."""
        with open(self.folder / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def append(self, rows: Sequence[tuple[int, float, str]]) -> int:
        """Append ``(content_pk, unix time, value)`` rows; returns how many were kept.

        A value longer than the ring's width is not kept (rescans from the database still
        cover it). Call under :meth:`locked`.
        """
        encoded = [(pk, ts, value.encode()) for pk, ts, value in rows]
        kept = [row for row in encoded if len(row[2]) <= self.width]
        records = np.array(kept, dtype=self.dtype)
        segments = self.segments()
        start = 0
        if segments:
            last = segments[-1]
            room = self.segment_entries - self._count(last)
            if room > 0:
                self._write(last, records[:room])
                start = room
        number = int(segments[-1].stem.split("-")[0]) + 1 if segments else 0
        while start < len(records):
            chunk = records[start : start + self.segment_entries]
            first_ts = int(chunk["ts"][0])
            self._write(self.folder / f"{number:010d}-{first_ts}{SEGMENT_SUFFIX}", chunk)
            number += 1
            start += self.segment_entries
        return len(kept)

    def _write(self, path: Path, records: np.ndarray) -> None:
        if not len(records):
            return
        with open(path, "ab") as handle:
            torn = handle.tell() % self.dtype.itemsize
            if torn:  # a crash cut the last append short: drop its bytes to stay aligned
                handle.truncate(handle.tell() - torn)
                handle.seek(0, os.SEEK_END)
            handle.write(records.tobytes())

    def expire(self, cutoff: float) -> int:
        """Delete whole segments whose newest record is older than ``cutoff``; their count."""
        removed = 0
        for path in self.segments()[:-1]:  # the open segment is kept: appends go there
            records = self._read(path)
            if len(records) and float(records["ts"].max()) >= cutoff:
                break
            path.unlink()
            removed += 1
        return removed

    # --- the database position this ring has copied up to ---------------------------------

    @property
    def position(self) -> RingPosition | None:
        """How far this ring has copied the database; None for a ring never filled."""
        try:
            return RingPosition.parse((self.folder / CURSOR_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None

    @position.setter
    def position(self, value: RingPosition) -> None:
        temporary = self.folder / f"{CURSOR_FILE}.{os.getpid()}"
        temporary.write_text(value.dump())
        temporary.replace(self.folder / CURSOR_FILE)

    @property
    def cursor(self) -> int | None:
        """The last database id up to which every row was copied in (or never will be)."""
        position = self.position
        return position.cursor if position is not None else None

    @cursor.setter
    def cursor(self, value: int) -> None:
        self.position = RingPosition(value, value)

    # --- reading ---------------------------------------------------------------------------

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SEGMENT_SUFFIX}"))

    def _count(self, path: Path) -> int:
        return path.stat().st_size // self.dtype.itemsize

    def _read(self, path: Path) -> np.ndarray:
        count = self._count(path)
        return np.fromfile(path, dtype=self.dtype, count=count)

    def __len__(self) -> int:
        return sum(self._count(path) for path in self.segments())

    @property
    def nbytes(self) -> int:
        return sum(path.stat().st_size for path in self.segments())

    def scan(self, since: float, batch: int) -> Iterator[np.ndarray]:
        """Records no older than ``since``, oldest segment first, ``batch`` at most at a time."""
        for path in self.segments():
            try:
                records = self._read(path)
            except FileNotFoundError:  # expired while we read
                continue
            if not len(records) or float(records["ts"].max()) < since:
                continue
            records = records[records["ts"] >= since]
            for start in range(0, len(records), batch):
                yield records[start : start + batch]


def decode_values(records: np.ndarray) -> list[str]:
    """The values of ``records`` as strings (the bytes were UTF-8, NUL-padded)."""
    decoded: list[str] = np.char.decode(records["value"], "utf-8").tolist()
    return decoded
