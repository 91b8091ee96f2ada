"""Merges of the PDQ index's parts into one segment, on a background thread.

Rebuilding a large segment takes seconds at millions of hashes; done in the caller it would
hold every query of the process behind it. A ``Merge`` instead reads only what cannot change
while it runs: the ids and codes of immutable segments, copies of their ``alive`` bitmaps
taken when it starts, and copies of the entries of frozen deltas. Removals that arrive in the
meantime are recorded (``note_removed``) and replayed on the new segment when the index swaps
it in, so the swapped-in segment equals what a synchronous merge at swap time would build.
The swap itself is cheap (a few list operations and a tombstone per recorded removal) and
happens in the index's caller, under whatever lock already serializes its changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import numpy as np

from hma_framework.process_tools import give_back_freed_memory
from hma_pdq.index_delta import Delta
from hma_pdq.index_mih import CODE_BYTES, I64, U8
from hma_pdq.index_segment import GATHER_BLOCK, Segment

log = logging.getLogger(__name__)

#: Building a segment this large leaves enough freed temporaries to be worth a heap trim.
TRIM_AFTER = 1 << 16

#: Chooses a segment layout for a size (``choose_layout`` with the index's options bound).
Layout = Callable[[int], "tuple[int, int] | None"]


def pick_inputs(
    segments: list[Segment], size: int, growth: int
) -> tuple[list[Segment], list[Segment]]:
    """Which segments join a merge of ``size`` new entries: ``(merged, kept)``.

    Mostly-tombstone segments are rebuilt; then trailing (smallest) segments are absorbed
    while they are at most ``growth`` times the merge so far, which keeps sizes geometric:
    an entry is rebuilt a few times over its life and queries visit a few segments.
    """
    merged = [s for s in segments if 2 * s.dead > len(s)]
    kept = sorted((s for s in segments if 2 * s.dead <= len(s)), key=lambda s: -s.live)
    size += sum(s.live for s in merged)
    while kept and kept[-1].live <= growth * size:
        absorbed = kept.pop()
        merged.append(absorbed)
        size += absorbed.live
    return merged, kept


class Merge:
    """Builds one segment from ``segments`` and ``deltas``, inline or on a daemon thread."""

    def __init__(
        self,
        segments: list[Segment],
        deltas: list[Delta],
        layout: Layout,
        batches: Sequence[tuple[I64, U8]] = (),
    ) -> None:
        """``batches``: more (ids, codes) to include as given (resolved bulk loads)."""
        self.segments = segments
        self.deltas = deltas
        self._layout = layout
        # Everything the build reads, fixed now: later removals only touch the originals.
        self._inputs = [(s, s.alive.copy()) for s in segments]
        self._delta_entries = [*(d.entries() for d in deltas), *batches]
        self._removed: list[I64] = []
        self._thread: threading.Thread | None = None
        self.result: Segment | None = None
        self.error: BaseException | None = None
        self.gate: threading.Event | None = None  # the build waits for it (tests: a slow merge)

    def run_inline(self) -> None:
        self._build()

    def start(self, gate: threading.Event | None = None) -> None:
        self.gate = gate
        self._thread = threading.Thread(target=self._build, name="pdq-index-merge", daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return self._thread is None or not self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def note_removed(self, ids: I64) -> None:
        """Record ids removed (or replaced) after the merge started."""
        self._removed.append(ids.copy())

    def finished_segment(self) -> Segment | None:
        """The new segment with the recorded removals applied (None if it came out empty).

        Raises what the build raised.
        """
        if self.error is not None:
            raise self.error
        segment = self.result
        if segment is not None and self._removed:
            segment.remove(np.unique(np.concatenate(self._removed)))
        return segment

    def _build(self) -> None:
        try:
            if self.gate is not None:
                self.gate.wait()
            parts = [s.live_entries(alive) for s, alive in self._inputs]
            parts.extend(self._delta_entries)
            parts = [(ids, codes) for ids, codes in parts if len(ids)]
            if parts:
                ids, codes = _concatenate(parts)
                segment = Segment.build(ids, codes, self._layout(len(ids)))
                del parts, ids, codes
                if len(segment) >= TRIM_AFTER:
                    give_back_freed_memory()  # here, not in the caller holding the lock
                self.result = segment
        except BaseException as exc:  # reported to the index's caller at swap time
            log.exception("PDQ index merge failed")
            self.error = exc


def _concatenate(parts: list[tuple[I64, U8]]) -> tuple[I64, U8]:
    """All parts' ids and codes in one pair of arrays, copied in GIL-friendly blocks."""
    if len(parts) == 1:
        return parts[0]
    total = sum(len(ids) for ids, _ in parts)
    ids = np.empty(total, dtype=np.int64)
    codes = np.empty((total, CODE_BYTES), dtype=np.uint8)
    at = 0
    for part_ids, part_codes in parts:
        for start in range(0, len(part_ids), GATHER_BLOCK):
            stop = min(start + GATHER_BLOCK, len(part_ids))
            ids[at + start : at + stop] = part_ids[start:stop]
            codes[at + start : at + stop] = part_codes[start:stop]
        at += len(part_ids)
    return ids, codes
