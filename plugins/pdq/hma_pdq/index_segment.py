"""An immutable run of PDQ codes sorted by entry id, with tombstones and optional MIH tables.

Small segments are scanned flat with faiss's Hamming range search; larger ones get
multi-index hashing (``index_mih``) and fall back to the flat scan for radii where probing
would cost more. Removal only clears a bit in ``alive``; the entries leave at the next merge.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from hma_pdq.index_mih import CODE_BYTES, I64, U8, MihTables

# Hamming kernels that faiss's type stubs leave out.
match_hamming_thres: Any = faiss.match_hamming_thres  # type: ignore[attr-defined]
hamming_range_search: Any = faiss.hamming_range_search  # type: ignore[attr-defined]
hammings: Any = faiss.hammings  # type: ignore[attr-defined]

#: Segments smaller than this are scanned flat: below it the ~20 numpy calls of a probe cost
#: more than reading every code (faiss scans ~2 ns a code).
FLAT_MAX = 16_384

#: From this size on, 12 chunks with wider keys (fewer candidates, more probes) beat 16 chunks
#: of 16 bits: candidates then dominate, each one a cache miss on its code.
WIDE_KEYS_FROM = 4_000_000

#: Probing is used while its cache misses (two per probe, one per candidate) stay under this
#: share of the codes a flat scan would read (sequentially, so much cheaper each): expected
#: ones for uniform codes to choose, actual candidates to bail out on skewed data.
PROBE_COST_SHARE = 0.25

#: Queries of a batch are probed together up to about this many candidates.
CANDIDATES_PER_BLOCK = 1 << 18

#: Rows copied per numpy call when a merge gathers large arrays (see ``live_entries``).
GATHER_BLOCK = 1 << 18

#: What a search finds, flattened: (query number, entry id, distance) per match.
Found = tuple[I64, I64, I64]


def choose_layout(
    size: int, chunks: int | None = None, flat_max: int = FLAT_MAX
) -> tuple[int, int] | None:
    """``(chunks, key_bits)`` for a segment of ``size`` codes, or None for a flat scan.

    Keys are as wide as the chunk allows while the offsets table stays under ~16 bytes a
    code (at least 16 bits: a 4 MB table is nothing next to a segment worth probing).
    """
    if size < flat_max:
        return None
    if chunks is None:
        chunks = 12 if size >= WIDE_KEYS_FROM else 16
    widest = MihTables.max_key_bits(chunks)
    budget = int(math.log2(4 * size / chunks))
    return chunks, min(widest, max(budget, 16), 30)


class Segment:
    """``ids`` ascending and unique, ``codes[i]`` the code of ``ids[i]``."""

    def __init__(
        self,
        ids: I64,
        codes: U8,
        alive: U8 | None = None,
        mih: MihTables | None = None,
    ) -> None:
        self.ids = ids
        self.codes = codes
        self._rows = codes.view(np.dtype((np.void, CODE_BYTES))).reshape(len(codes))
        if alive is None:
            alive = np.packbits(np.ones(len(ids), dtype=bool), bitorder="little")
        self.alive = alive
        self.live = int(np.bitwise_count(alive).sum())
        self.mih = mih

    @classmethod
    def build(cls, ids: I64, codes: U8, layout: tuple[int, int] | None) -> Segment:
        """A segment over unique ``ids`` (any order) and their codes (flat if no layout)."""
        if len(ids) and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            ids, codes = ids[order], codes[order]
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        mih = MihTables.build(codes, *layout) if layout is not None else None
        return cls(np.ascontiguousarray(ids, dtype=np.int64), codes, mih=mih)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        tables = self.mih.offsets.nbytes + self.mih.postings.nbytes if self.mih else 0
        return self.ids.nbytes + self.codes.nbytes + self.alive.nbytes + tables

    @property
    def dead(self) -> int:
        return len(self.ids) - self.live

    def live_entries(self, alive: U8 | None = None) -> tuple[I64, U8]:
        """The live ids and codes, judged by ``alive`` (default: the segment's own bitmap).

        A background merge passes a copy of the bitmap taken when it started, so removals
        racing with it cannot tear what it reads. Large segments are gathered in blocks,
        which lets a querying thread take the GIL between them.
        """
        alive = self.alive if alive is None else alive
        if int(np.bitwise_count(alive).sum()) == len(self.ids):
            return self.ids, self.codes
        ids_parts, codes_parts = [], []
        for start in range(0, len(self.ids), GATHER_BLOCK):
            stop = min(start + GATHER_BLOCK, len(self.ids))
            positions = np.arange(start, stop)
            keep = ((alive[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1).astype(bool)
            ids_parts.append(self.ids[start:stop][keep])
            codes_parts.append(self.codes[start:stop][keep])
        if not ids_parts:
            return self.ids[:0], self.codes[:0]
        return np.concatenate(ids_parts), np.concatenate(codes_parts)

    def remove(self, ids: I64) -> int:
        """Tombstone the live entries among ``ids`` (unique); returns how many there were."""
        if not self.live or not len(ids):
            return 0
        if len(ids) == 1:  # the incremental path: stay in cheap scalar operations
            at = int(np.searchsorted(self.ids, ids[0]))
            if at == len(self.ids) or self.ids[at] != ids[0]:
                return 0
            byte, bit = divmod(at, 8)
            if not (int(self.alive[byte]) >> bit) & 1:
                return 0
            self.alive[byte] &= np.uint8(0xFF ^ (1 << bit))
            self.live -= 1
            return 1
        found = np.searchsorted(self.ids, ids)
        found[found == len(self.ids)] = 0
        found = np.unique(found[self.ids[found] == ids])
        found = found[self._alive_mask(found)]
        if len(found):
            masks = ~np.left_shift(1, found & 7).astype(np.uint8)
            np.bitwise_and.at(self.alive, found >> 3, masks)
            self.live -= len(found)
        return len(found)

    def _alive_mask(self, positions: I64 | npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
        return ((self.alive[positions >> 3] >> (positions & 7).astype(np.uint8)) & 1).astype(bool)

    # --- queries -------------------------------------------------------------------------

    def search(self, queries: U8, radius: int) -> Found:
        """Every live entry within ``radius`` of each of ``queries`` (``(nq, 32)`` uint8)."""
        if not self.live or radius < 0:
            return _nothing()
        plan = self.mih.plan(radius) if self.mih is not None else None
        if (
            self.mih is None
            or plan is None
            or 2 * len(plan.chunk) + plan.expected_candidates > PROBE_COST_SHARE * len(self.ids)
        ):
            return self._scan(queries, radius)
        block = max(1, int(CANDIDATES_PER_BLOCK / max(plan.expected_candidates, 1.0)))
        if len(queries) > block:  # bound the gathered codes of a batch at wide radii
            starts = range(0, len(queries), block)
            parts = [self.search(queries[at : at + block], radius) for at in starts]
            return (
                np.concatenate([part[0] + at for part, at in zip(parts, starts, strict=True)]),
                np.concatenate([part[1] for part in parts]),
                np.concatenate([part[2] for part in parts]),
            )
        limit = int(PROBE_COST_SHARE * len(self.ids) * len(queries))
        if len(queries) == 1:
            candidates = self.mih.candidates_one(queries[0], plan, limit)
            if candidates is None:
                return self._scan(queries, radius)
            per_query = [len(candidates)]
        else:
            found = self.mih.candidates(queries, plan, limit)
            if found is None:
                return self._scan(queries, radius)
            candidates, per_query = found[0], found[1].tolist()
        which, positions, distances = self._verify(queries, candidates, per_query, radius)
        if len(positions) > 1:  # an entry is found once per chunk within its reach
            if len(queries) == 1 and len(positions) < 256:
                first = dict(zip(positions.tolist(), distances.tolist(), strict=True))
                positions = np.fromiter(first, dtype=np.int64, count=len(first))
                distances = np.fromiter(first.values(), dtype=np.int64, count=len(first))
                which = which[: len(first)]
            else:
                unique = np.unique(which * len(self.ids) + positions, return_index=True)[1]
                which, positions, distances = which[unique], positions[unique], distances[unique]
        if self.live < len(self.ids):
            live = self._alive_mask(positions)
            which, positions, distances = which[live], positions[live], distances[live]
        return which, self.ids[positions], distances

    def _verify(
        self, queries: U8, candidates: npt.NDArray[np.uint32], per_query: list[int], radius: int
    ) -> Found:
        """The candidates truly within ``radius`` (faiss compares all 256 bits)."""
        codes = np.take(self._rows, candidates).view(np.uint8)
        pairs = np.empty(2 * len(candidates), dtype=np.int64)  # (query, candidate) per match
        distances = np.empty(len(candidates), dtype=np.int32)
        found, start = 0, 0
        for number, count in enumerate(per_query):
            if count:
                matched = match_hamming_thres(
                    faiss.swig_ptr(queries[number]),
                    faiss.swig_ptr(codes[start * CODE_BYTES :]),
                    1,
                    count,
                    radius,
                    CODE_BYTES,
                    faiss.swig_ptr(pairs[2 * found :]),
                    faiss.swig_ptr(distances[found:]),
                )
                if len(per_query) > 1:
                    pairs[2 * found : 2 * (found + matched) : 2] = number
                    pairs[2 * found + 1 : 2 * (found + matched) : 2] += start
                found += matched
            start += count
        positions = candidates[pairs[1 : 2 * found : 2]].astype(np.int64)
        return pairs[: 2 * found : 2], positions, distances[:found].astype(np.int64)

    def _scan(self, queries: U8, radius: int) -> Found:
        alive = None if self.live == len(self.ids) else self.alive
        which, positions, distances = flat_range_search(queries, self.codes, radius, alive)
        return which, self.ids[positions], distances

    # --- snapshots -----------------------------------------------------------------------

    def save(self, directory: Path, name: str) -> dict[str, Any]:
        arrays: dict[str, npt.NDArray[Any]] = {
            "ids": self.ids,
            "codes": self.codes,
            "alive": self.alive,
        }
        meta: dict[str, Any] = {"name": name, "entries": len(self.ids), "mih": None}
        if self.mih is not None:
            arrays["offsets"] = self.mih.offsets
            arrays["postings"] = self.mih.postings
            meta["mih"] = {"chunks": self.mih.chunks, "key_bits": self.mih.key_bits}
        for key, array in arrays.items():
            np.save(directory / f"{name}.{key}.npy", array, allow_pickle=False)
        return meta

    @classmethod
    def load(cls, directory: Path, meta: dict[str, Any]) -> Segment:
        """The saved segment, its immutable arrays memory-mapped read-only.

        Every process that loads the same snapshot file shares those pages with the others
        (and with the page cache): only the small ``alive`` bitmap, which removals change,
        is a private copy. The mapping outlives the file's removal, so a newer snapshot may
        replace the folder while processes still use the old one.
        """
        name = meta["name"]

        def read(key: str) -> Any:
            mapped = np.load(directory / f"{name}.{key}.npy", mmap_mode="r", allow_pickle=False)
            return mapped.view(np.ndarray)  # plain arrays over the mapping

        ids, codes = read("ids"), read("codes")
        alive = np.array(read("alive"))  # private: removals clear its bits
        entries = int(meta["entries"])
        expected: dict[str, tuple[Any, tuple[int, ...], type[Any]]] = {
            "ids": (ids, (entries,), np.int64),
            "codes": (codes, (entries, CODE_BYTES), np.uint8),
            "alive": (alive, ((entries + 7) // 8,), np.uint8),
        }
        mih = None
        if meta.get("mih"):
            chunks, key_bits = int(meta["mih"]["chunks"]), int(meta["mih"]["key_bits"])
            mih = MihTables(chunks, key_bits, read("offsets"), read("postings"))
            expected["postings"] = (mih.postings, (chunks * entries,), np.uint32)
            wide = chunks * entries >= 2**32
            offsets_dtype = np.int64 if wide else np.uint32
            expected["offsets"] = (mih.offsets, ((chunks << key_bits) + 1,), offsets_dtype)
        for key, (array, shape, dtype) in expected.items():
            if array.shape != shape or array.dtype != dtype:
                raise ValueError(f"segment {name}: {key} is not {dtype.__name__} {shape}")
        return cls(ids, codes, alive, mih)


def flat_range_search(queries: U8, codes: U8, radius: int, alive: U8 | None = None) -> Found:
    """Every code within ``radius`` of each query by faiss's exhaustive Hamming scan.

    ``alive`` (a little-endian bitmap) restricts the scan to the positions whose bit is set.
    Returns positions into ``codes`` as the "entry id".
    """
    if not len(codes) or not len(queries) or radius < 0:
        return _nothing()
    result = faiss.RangeSearchResult(len(queries))
    selector = None if alive is None else faiss.IDSelectorBitmap(len(alive), faiss.swig_ptr(alive))
    hamming_range_search(
        faiss.swig_ptr(queries),
        faiss.swig_ptr(codes),
        len(queries),
        len(codes),
        radius + 1,  # faiss keeps distances strictly under the radius
        CODE_BYTES,
        result,
        selector,
    )
    limits = faiss.rev_swig_ptr(result.lims, len(queries) + 1).astype(np.int64)
    total = int(limits[-1])
    if not total:
        return _nothing()
    positions = faiss.rev_swig_ptr(result.labels, total).astype(np.int64)
    distances = faiss.rev_swig_ptr(result.distances, total).astype(np.int64)
    which = np.repeat(np.arange(len(queries)), np.diff(limits))
    return which, positions, distances


def _nothing() -> Found:
    empty = np.empty(0, dtype=np.int64)
    return empty, empty, empty
