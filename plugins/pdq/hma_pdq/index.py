"""The exact PDQ index: immutable multi-index-hashing segments, a small delta, tombstones.

Layout (a log-structured merge, so no change ever rebuilds the whole index):

- **segments**, oldest and largest first: codes sorted by entry id, each with its own
  multi-index-hashing tables (``index_mih``) or, when small, scanned flat by faiss;
- the **delta**: up to ``delta_max`` recent single adds, scanned flat on every query;
- **pending** bulk batches (and removals that follow them), not searchable yet: resolved into
  a segment, in order, at the next query. Bulk loads therefore build each segment once.

A full delta becomes a segment, absorbing trailing segments up to ``growth`` times its size, so
sizes stay geometric: an entry is rebuilt a few times over its life, queries visit a few
segments. Removing or replacing an entry clears its bit in the segment's ``alive`` bitmap;
segments that are mostly tombstones are rebuilt. Every query is exact: candidates are verified
on all 256 bits, and radii where probing costs more than reading fall back to faiss's scan.

Not thread-safe: callers serialize access (the ``IndexManager`` holds a lock).
"""

from __future__ import annotations

import ctypes
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from hma_framework.settings import load_section
from hma_framework.types import IndexMatch
from hma_pdq.index_delta import Delta
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
#: Building a segment this large leaves enough freed temporaries to be worth a heap trim.
TRIM_AFTER = 1 << 16


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
    """

    def __init__(
        self,
        threads: int = 1,
        *,
        chunks: int | None = None,
        flat_max: int = FLAT_MAX,
        delta_max: int = DELTA_MAX,
        growth: int = GROWTH,
    ) -> None:
        self.threads = threads
        faiss.omp_set_num_threads(threads)
        self.chunks = chunks
        self.flat_max = flat_max
        self.delta_max = delta_max
        self.growth = growth
        self._segments: list[Segment] = []
        self._delta = Delta(delta_max)
        self._pending: list[tuple[I64, U8 | None]] = []  # (ids, codes or None: removed)
        self._compact_due = False

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
        self._tombstone(ids)
        if self._pending or len(ids) >= self.delta_max:
            self._pending.append((ids, codes))  # indexed in one go at the next query
            return
        if len(ids) > 1:  # the last of repeated ids wins
            last = len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]
            ids, codes = ids[last], codes[last]
        self._delta.append(ids, codes)
        if self._delta.size > self.delta_max:
            self._settle()

    def remove(self, entry_ids: Sequence[int]) -> None:
        if not len(entry_ids):
            return
        ids = np.asarray(entry_ids, dtype=np.int64)
        self._tombstone(ids)
        if self._pending:
            self._pending.append((ids, None))

    def _tombstone(self, ids: I64) -> None:
        self._delta.remove(ids)
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
        return [*self._segments, self._delta] if self._delta.live else [*self._segments]

    def __len__(self) -> int:
        self._settle_if_due()
        return sum(segment.live for segment in self._segments) + self._delta.live

    @property
    def nbytes(self) -> int:
        """Bytes held in the index's arrays (pending batches included)."""
        pending = sum(ids.nbytes + (0 if c is None else c.nbytes) for ids, c in self._pending)
        return sum(s.nbytes for s in self._segments) + self._delta.nbytes + pending

    # --- merging -------------------------------------------------------------------------

    def _settle_if_due(self) -> None:
        if self._pending or self._delta.size > self.delta_max or self._compact_due:
            self._settle()

    def _settle(self) -> None:
        """Turn the delta and pending batches into a segment, merging trailing small ones.

        Segments that are mostly tombstones are rebuilt into it too.
        """
        parts: list[tuple[I64, U8]] = [self._delta.entries(), *self._resolve_pending()]
        self._delta.clear()
        self._pending = []
        self._compact_due = False
        parts.extend(s.live_entries() for s in self._segments if 2 * s.dead > len(s))
        segments = [s for s in self._segments if 2 * s.dead <= len(s)]
        segments.sort(key=lambda s: s.live, reverse=True)
        size = sum(len(ids) for ids, _ in parts)
        while segments and segments[-1].live <= self.growth * size:
            merged = segments.pop()
            parts.append(merged.live_entries())
            size += merged.live
        parts = [(ids, codes) for ids, codes in parts if len(ids)]
        if parts:
            if len(parts) == 1:
                ids, codes = parts[0]
            else:
                ids = np.concatenate([ids for ids, _ in parts])
                codes = np.concatenate([codes for _, codes in parts])
            layout = choose_layout(len(ids), self.chunks, self.flat_max)
            segments.append(Segment.build(ids, codes, layout))
            del parts, ids, codes
            if len(segments[-1]) >= TRIM_AFTER:
                _give_back_freed_memory()
        self._segments = segments

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
        self._settle_if_due()
        directory.mkdir(parents=True, exist_ok=True)
        # No manifest until every array is written: a torn save is no snapshot at all.
        (directory / MANIFEST).unlink(missing_ok=True)
        for stale in [*directory.glob("segment*.npy"), *directory.glob("delta.*.npy")]:
            stale.unlink()
        segments = [s.save(directory, f"segment{i}") for i, s in enumerate(self._segments)]
        delta_ids, delta_codes = self._delta.entries()
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


def _give_back_freed_memory() -> None:
    """Return freed heap memory to the system (glibc only; elsewhere a no-op).

    glibc keeps the freed temporaries of a build (tens of MB) in its heap, where they would
    count as ~20 bytes a hash of resident memory for good.
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def _threads(settings: Settings) -> int:
    return load_section(settings, "pdq", PdqSettings).index_threads


def make_pdq_index(settings: Settings) -> PdqIndex:
    """``IndexRecord.factory``: an empty index."""
    return PdqIndex(threads=_threads(settings))


def load_pdq_index(settings: Settings, directory: Path) -> PdqIndex:
    """``IndexRecord.loader``: the index a ``PdqIndex.save`` wrote to ``directory``."""
    return PdqIndex.load(directory, _threads(settings))
