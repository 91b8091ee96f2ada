"""The exact PDQ index: immutable multi-index-hashing segments, a small delta, tombstones.

Layout (a log-structured merge, so no change ever rebuilds the whole index):

- **segments**, oldest and largest first: codes sorted by entry id, each with its own
  multi-index-hashing tables (``index_mih``) or, when small, scanned flat by faiss;
- the **delta**: up to ``delta_max`` recent single adds, scanned flat on every query; a full
  delta is frozen (still scanned flat) and a fresh one takes the adds;
- **pending** bulk batches (and removals that follow them), not searchable yet: resolved into
  a segment, in order, at the next query. Bulk loads therefore build each segment once.

Frozen deltas become a segment, absorbing trailing segments up to ``growth`` times their size,
so sizes stay geometric: an entry is rebuilt a few times over its life, queries visit a few
segments. That merge runs on a background thread (``index_merge``) and is swapped in by the
next call that finds it finished, so no query or add waits for it, however large the rebuilt
segment. Removing or replacing an entry clears its bit in the segment's ``alive`` bitmap;
segments that are mostly tombstones are rebuilt the same way. Every query is exact:
candidates are verified on all 256 bits, and radii where probing costs more than reading fall
back to faiss's scan. Loaded snapshots memory-map their segments read-only, shared by every
process on the host.

Not thread-safe: callers serialize access (the ``IndexManager`` holds a lock); the merge thread
only reads arrays nothing else changes.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from hma_framework.settings import load_section
from hma_framework.types import IndexMatch
from hma_pdq.index_delta import Delta
from hma_pdq.index_merge import Merge, pick_inputs
from hma_pdq.index_mih import CODE_BYTES, I64, U8
from hma_pdq.index_segment import FLAT_MAX, Found, Segment, choose_layout
from hma_pdq.pdq_settings import PdqSettings

if TYPE_CHECKING:
    from hma_framework.settings import Settings

MANIFEST = "pdq_index.json"
FORMAT = "hma_pdq_index/1"
HEX_CHARS = 2 * CODE_BYTES
DELTA_MAX = 4096
GROWTH = 8
#: Queries are searched this many at a time, to bound the candidate arrays of a batch.
QUERY_BLOCK = 256


def codes_from_hex(signals: Sequence[str]) -> U8:
    """PDQ hex strings as an ``(n, 32)`` uint8 array, without a Python loop per hash."""
    n = len(signals)
    codes = np.empty((n, CODE_BYTES), dtype=np.uint8)
    block = 1 << 16  # small temporaries: the heap gives them back
    for start in range(0, n, block):
        part = signals[start : start + block]
        lengths = np.fromiter(map(len, part), dtype=np.int64, count=len(part))
        wrong = np.flatnonzero(lengths != HEX_CHARS)
        if len(wrong):
            raise ValueError(f"not a PDQ hash (64 hex digits): {part[int(wrong[0])]!r}")
        data = bytes.fromhex("".join(part))  # ValueError on a non-hex digit
        if len(data) != CODE_BYTES * len(part):  # fromhex skips whitespace
            raise ValueError("PDQ hashes must not contain whitespace")
        codes[start : start + len(part)] = np.frombuffer(data, dtype=np.uint8).reshape(-1, 32)
    return codes


class PdqIndex:
    """Exact Hamming-distance index over PDQ hashes (see the module docstring).

    ``threads`` is faiss's OpenMP thread count (process-wide); one thread per query by
    default, since the matcher runs many queries side by side. ``chunks`` forces the number
    of MIH chunks (default: by segment size) and ``flat_max`` the size under which segments
    are scanned flat: ``flat_max`` above the index size trades speed for ~40 B a hash.
    ``background`` merges on a thread (the default); without it a full delta is merged in the
    call that filled it, as simple single-threaded tools may prefer.
    """

    #: Loaded segments are memory-mapped snapshot files: the index manager moves this index to
    #: each newer snapshot of the host, so its processes share one copy of the pages.
    MAPS_SNAPSHOT = True

    def __init__(
        self,
        threads: int = 1,
        *,
        chunks: int | None = None,
        flat_max: int = FLAT_MAX,
        delta_max: int = DELTA_MAX,
        growth: int = GROWTH,
        background: bool = True,
    ) -> None:
        self.threads = threads
        faiss.omp_set_num_threads(threads)
        self.chunks = chunks
        self.flat_max = flat_max
        self.delta_max = delta_max
        self.growth = growth
        self.background = background
        self._segments: list[Segment] = []
        self._frozen: list[Delta] = []  # full deltas, scanned flat until a merge absorbs them
        self._delta = Delta(delta_max)
        self._pending: list[tuple[I64, U8 | None]] = []  # (ids, codes or None: removed)
        self._compact_due = False
        self._merge: Merge | None = None
        #: Tests set this to hold background merges until it is set: a slow merge on demand.
        self.merge_gate: threading.Event | None = None

    @property
    def merging(self) -> bool:
        """Whether a background merge is running (or finished and not yet swapped in)."""
        return self._merge is not None

    # --- changes -------------------------------------------------------------------------

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        if not entries:
            return
        ids = np.array([entry_id for entry_id, _ in entries], dtype=np.int64)
        self.add_arrays(ids, codes_from_hex([signal for _, signal in entries]))

    def add_arrays(self, ids: I64, codes: U8) -> None:
        """Bulk form of ``add``: ``ids`` int64 ``(n,)``, ``codes`` uint8 ``(n, 32)``.

        ``codes_from_hex`` makes ``codes`` from hex strings. A later duplicate id in the batch
        replaces an earlier one. Large batches are kept as given, without a copy: do not
        modify the arrays afterwards.
        """
        ids = np.asarray(ids, dtype=np.int64)
        codes = np.asarray(codes, dtype=np.uint8)
        if ids.ndim != 1 or codes.shape != (len(ids), CODE_BYTES):
            raise ValueError(f"expected ids (n,) and codes (n, 32), got {ids.shape} {codes.shape}")
        if not len(ids):
            return
        self._swap_if_merged()
        self._tombstone(ids)
        if self._pending or len(ids) >= self.delta_max:
            self._pending.append((ids, codes))  # indexed in one go at the next query
            return
        if len(ids) > 1:  # the last of repeated ids wins
            last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
            ids, codes = ids[last], codes[last]
        self._delta.append(ids, codes)
        if self._delta.size >= self.delta_max:
            self._frozen.append(self._delta)
            self._delta = Delta(self.delta_max)
            self._start_merge()

    def remove(self, entry_ids: Sequence[int]) -> None:
        if not len(entry_ids):
            return
        ids = np.asarray(entry_ids, dtype=np.int64)
        self._swap_if_merged()
        self._tombstone(ids)
        if self._pending:
            self._pending.append((ids, None))
        elif self._compact_due:
            self._start_merge()

    def _tombstone(self, ids: I64) -> None:
        if self._merge is not None:
            self._merge.note_removed(ids)
        self._delta.remove(ids)
        for delta in self._frozen:
            delta.remove(ids)
        for segment in self._segments:
            if segment.remove(ids) and 2 * segment.dead > len(segment):
                self._compact_due = True

    # --- queries -------------------------------------------------------------------------

    def query(self, signal: str, max_distance: int) -> list[IndexMatch]:
        self._settle_if_due()
        if len(signal) != HEX_CHARS:
            raise ValueError(f"not a PDQ hash (64 hex digits): {signal!r}")
        query = np.frombuffer(bytes.fromhex(signal), dtype=np.uint8).reshape(1, CODE_BYTES)
        found = [part.search(query, max_distance) for part in self._parts()]
        return _per_query(found, 1)[0]

    def query_batch(self, signals: Sequence[str], max_distance: int) -> list[list[IndexMatch]]:
        self._settle_if_due()
        queries = codes_from_hex(signals)
        results: list[list[IndexMatch]] = []
        for start in range(0, len(queries), QUERY_BLOCK):
            block = queries[start : start + QUERY_BLOCK]
            found = [part.search(block, max_distance) for part in self._parts()]
            results.extend(_per_query(found, len(block)))
        return results

    def _parts(self) -> list[Segment | Delta]:
        deltas = [d for d in (*self._frozen, self._delta) if d.live]
        return [*self._segments, *deltas]

    def __len__(self) -> int:
        self._settle_if_due()
        deltas = sum(d.live for d in self._frozen) + self._delta.live
        return sum(segment.live for segment in self._segments) + deltas

    @property
    def nbytes(self) -> int:
        """Bytes held in the index's arrays (pending batches and mapped segments included)."""
        pending = sum(ids.nbytes + (0 if c is None else c.nbytes) for ids, c in self._pending)
        deltas = sum(d.nbytes for d in self._frozen) + self._delta.nbytes
        return sum(s.nbytes for s in self._segments) + deltas + pending

    # --- merging -------------------------------------------------------------------------

    def _settle_if_due(self) -> None:
        self._swap_if_merged()
        if self._pending:
            self._settle()
        elif (self._frozen or self._compact_due) and self._merge is None:
            self._start_merge()

    def _layout(self, size: int) -> tuple[int, int] | None:
        return choose_layout(size, self.chunks, self.flat_max)

    def _start_merge(self) -> None:
        """Merge the frozen deltas (and segments ``pick_inputs`` adds) unless one is running."""
        if self._merge is not None:
            return  # the swap starts the next one
        size = sum(d.live for d in self._frozen)
        merged, _ = pick_inputs(self._segments, size, self.growth)
        self._compact_due = False
        if not merged and not self._frozen:
            return
        self._merge = Merge(merged, list(self._frozen), self._layout)
        if self.background:
            self._merge.start(self.merge_gate)
        else:
            self._merge.run_inline()
            self._swap_if_merged()

    def _swap_if_merged(self) -> None:
        """Swap a finished merge's segment in for its inputs; start the next merge if due."""
        merge = self._merge
        if merge is None or not merge.done:
            return
        self._merge = None
        try:
            segment = merge.finished_segment()
        except Exception:
            return  # logged by the merge; its inputs stay searchable, the next merge retries
        absorbed = {id(s) for s in merge.segments}
        taken = {id(d) for d in merge.deltas}
        segments = [s for s in self._segments if id(s) not in absorbed]
        if segment is not None:
            segments.append(segment)
        self._segments = sorted(segments, key=lambda s: s.live, reverse=True)
        self._frozen = [d for d in self._frozen if id(d) not in taken]
        if self._frozen or self._compact_due:
            self._start_merge()

    def _finish_merge(self) -> None:
        """Wait for a running merge and swap it in (bulk loads and snapshots need a still index)."""
        while self._merge is not None:
            self._merge.wait()
            merge = self._merge
            self._swap_if_merged()
            if self._merge is merge:  # cannot happen: a finished merge is always swapped
                break

    def _settle(self) -> None:
        """Turn the deltas and pending batches into a segment in this call (bulk loads).

        A bulk batch is not searchable until it is a segment, so this is the one merge a
        caller waits for: it happens on the first query after a bulk load, not on single adds.
        """
        self._finish_merge()
        batches = self._resolve_pending()
        self._pending = []
        self._frozen.append(self._delta)
        self._delta = Delta(self.delta_max)
        size = sum(d.live for d in self._frozen) + sum(len(ids) for ids, _ in batches)
        merged, _ = pick_inputs(self._segments, size, self.growth)
        self._compact_due = False
        self._merge = Merge(merged, list(self._frozen), self._layout, batches)
        self._merge.run_inline()
        self._swap_if_merged()

    def _resolve_pending(self) -> list[tuple[I64, U8]]:
        """The pending batches applied in order: the last add or remove of an id wins."""
        if not self._pending:
            return []
        only_ids, only_codes = self._pending[0]
        in_order = len(self._pending) == 1 and bool(np.all(only_ids[1:] > only_ids[:-1]))
        if in_order and only_codes is not None:  # a bulk load in id order: nothing to do
            return [(only_ids, only_codes)]
        ids = np.concatenate([batch_ids for batch_ids, _ in self._pending])
        removed = np.concatenate(
            [np.full(len(batch_ids), codes is None) for batch_ids, codes in self._pending]
        )
        order = np.argsort(ids, kind="stable")  # keeps batch order among equal ids
        last = order[np.append(ids[order][1:] != ids[order][:-1], True)]
        last = last[~removed[last]]
        rows = np.cumsum(~removed) - 1  # where each added id's code is in ``codes``
        codes = np.concatenate([c for _, c in self._pending if c is not None])
        return [(ids[last], codes[rows[last]])]

    # --- snapshots -----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Plain ``.npy`` arrays (``np.load(allow_pickle=False)`` reads them), manifest last."""
        self._swap_if_merged()
        if self._pending:
            self._settle()
        directory.mkdir(parents=True, exist_ok=True)
        # No manifest until every array is written: a torn save is no snapshot at all.
        (directory / MANIFEST).unlink(missing_ok=True)
        for stale in [*directory.glob("segment*.npy"), *directory.glob("delta.*.npy")]:
            stale.unlink()
        segments = [s.save(directory, f"segment{i}") for i, s in enumerate(self._segments)]
        # Frozen deltas (a merge may be running: it is not waited for) join the saved delta.
        deltas = [d.entries() for d in (*self._frozen, self._delta)]
        delta_ids = np.concatenate([ids for ids, _ in deltas])
        delta_codes = np.concatenate([codes for _, codes in deltas])
        np.save(directory / "delta.ids.npy", delta_ids, allow_pickle=False)
        np.save(directory / "delta.codes.npy", delta_codes, allow_pickle=False)
        manifest = {"format": FORMAT, "segments": segments, "delta": len(delta_ids)}
        staging = directory / f".{MANIFEST}.tmp"
        staging.write_text(json.dumps(manifest))
        staging.replace(directory / MANIFEST)

    @classmethod
    def load(cls, directory: Path, threads: int = 1) -> PdqIndex:
        manifest: dict[str, Any] = json.loads((directory / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"not a PDQ index snapshot: format {manifest.get('format')!r}")
        index = cls(threads)
        index._segments = [Segment.load(directory, meta) for meta in manifest["segments"]]
        delta_ids = np.load(directory / "delta.ids.npy", allow_pickle=False)
        delta_codes = np.load(directory / "delta.codes.npy", allow_pickle=False)
        if delta_ids.shape != (manifest["delta"],):
            raise ValueError("the delta arrays do not match the manifest")
        index.add_arrays(delta_ids, delta_codes)
        return index


def _per_query(found: list[Found], count: int) -> list[list[IndexMatch]]:
    """Matches grouped by query, each list ordered by distance then entry id."""
    found = [part for part in found if len(part[0])]
    if not found:
        return [[] for _ in range(count)]
    if len(found) == 1:
        which, ids, distances = found[0]
    else:
        which, ids, distances = (np.concatenate(column) for column in zip(*found, strict=True))
    if count == 1:
        order = np.lexsort((ids, distances))
        pairs = zip(ids[order].tolist(), distances[order].tolist(), strict=True)
        return [[IndexMatch(i, d) for i, d in pairs]]
    order = np.lexsort((ids, distances, which))
    bounds = np.searchsorted(which[order], np.arange(count + 1)).tolist()
    ids, distances = ids[order].tolist(), distances[order].tolist()
    return [
        [IndexMatch(i, d) for i, d in zip(ids[a:b], distances[a:b], strict=True)]
        for a, b in itertools.pairwise(bounds)
    ]


def _threads(settings: Settings) -> int:
    return load_section(settings, "pdq", PdqSettings).index_threads


def make_pdq_index(settings: Settings) -> PdqIndex:
    """``IndexRecord.factory``: an empty index."""
    return PdqIndex(threads=_threads(settings))


def load_pdq_index(settings: Settings, directory: Path) -> PdqIndex:
    """``IndexRecord.loader``: the index a ``PdqIndex.save`` wrote to ``directory``."""
    return PdqIndex.load(directory, _threads(settings))
