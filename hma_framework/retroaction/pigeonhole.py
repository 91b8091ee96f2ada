"""Many new signals against a stream of content signals: flip-expanded key tables.

Comparing every content signal with every new one costs ``N`` comparisons per content
signal, which is what makes a large import (10,000 new PDQ signals) slow against millions of
recent ones. Here the code's bits are cut into ``c`` disjoint 16-bit keys. If two codes are
within ``r`` bits, their per-key distances add up to at most ``r``, so for thresholds ``t_i``
with ``sum(t_i + 1) >= r + 1`` some key ``i`` is within ``t_i`` (the pigeonhole principle).
At build time each new signal's key ``i`` is expanded into every key within ``t_i`` of it
(flipped bits), and those go into a table per key position. A content signal then looks up
its own ``c`` keys (exact lookups, no flipping), and only the new signals found there are
compared on all bits: the result is exactly the set a full comparison finds.

The expansion happens on the few new signals, so the table is small (at threshold 31 for
256 bits: 16 keys with ``t = 1``, 17 table entries per key and signal: 5.2 MiB for 10,000
signals, plus 4 MiB of offsets) and the comparisons read cache-resident new codes while
content words stream by.
"""

from __future__ import annotations

import functools
import itertools
import math

import attrs
import numpy as np
import numpy.typing as npt

KEY_BITS = 16

#: Table memory (postings and offsets) above which the tables are not built.
MAX_BYTES = 64 * 2**20

#: Rough CPU cost, in ns per content signal, of what the scan does (measured on the 2-core
#: EPYC the project benchmarks on): comparing with one new signal directly, looking up one
#: key, and checking one candidate. Only their ratios matter.
DIRECT_NS = 31.0
LOOKUP_NS = 15.0
CANDIDATE_NS = 20.0

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


@functools.cache
def _flips(radius: int) -> tuple[int, ...]:
    """Every ``KEY_BITS``-bit mask of weight at most ``radius``, lightest first."""
    masks = [0]
    for weight in range(1, radius + 1):
        masks.extend(
            sum(1 << bit for bit in bits)
            for bits in itertools.combinations(range(KEY_BITS), weight)
        )
    return tuple(masks)


def thresholds(bits: int, radius: int) -> list[int]:
    """Per-key thresholds ``t_i`` (``-1``: key unused) whose ``t_i + 1`` sum to ``radius + 1``."""
    keys = bits // KEY_BITS
    units, extra = divmod(radius + 1, keys)
    return [units - 1 + (1 if i < extra else 0) for i in range(keys)]


def _ball(radius: int) -> int:
    return sum(math.comb(KEY_BITS, j) for j in range(min(radius, KEY_BITS) + 1))


def estimate(count: int, bits: int, radius: int) -> tuple[float, int] | None:
    """``(ns per content signal, table bytes)`` for ``count`` new signals; None if unusable."""
    if bits < KEY_BITS or bits % 64 or radius < 0:
        return None
    used = [t for t in thresholds(bits, radius) if t >= 0]
    if max(used) >= KEY_BITS:
        return None
    entries = count * sum(_ball(t) for t in used)
    nbytes = entries * (2 if count <= 1 << 16 else 4) + len(used) * ((1 << KEY_BITS) + 1) * 4
    candidates = entries / (1 << KEY_BITS)
    return len(used) * LOOKUP_NS + candidates * CANDIDATE_NS, nbytes


def worth_it(count: int, bits: int, radius: int) -> bool:
    """Whether the tables beat comparing each content signal with all ``count`` directly."""
    found = estimate(count, bits, radius)
    return found is not None and found[1] <= MAX_BYTES and found[0] < count * DIRECT_NS


def _key(words: U64, position: int) -> U64:
    """Key ``position`` (bits ``16 * position`` on) of each row of ``words``."""
    word, shift = divmod(position * KEY_BITS, 64)
    key: U64 = (words[:, word] >> np.uint64(shift)) & np.uint64((1 << KEY_BITS) - 1)
    return key


@attrs.frozen
class _Table:
    position: int  # which key of the code
    offsets: npt.NDArray[np.uint32]  # offsets[k]:offsets[k + 1] in postings hold key k
    postings: npt.NDArray[np.unsignedinteger]  # rows of the new signals


@attrs.define(eq=False)
class Tables:
    """The expanded key tables of some new signals (rows of ``codes``) for one radius."""

    codes: U64
    radius: int
    tables: list[_Table]

    @classmethod
    def build(cls, codes: U64, radius: int) -> Tables:
        """Tables for ``codes`` (``(n, words)`` uint64, as ``hamming.words`` makes them)."""
        count = len(codes)
        rows = np.arange(count, dtype=np.uint64)
        tables = []
        for position, threshold in enumerate(thresholds(64 * codes.shape[1], radius)):
            if threshold < 0:
                continue
            flips = np.array(_flips(threshold), dtype=np.uint64)
            expanded = (_key(codes, position)[:, None] ^ flips[None, :]).ravel()
            offsets = np.zeros((1 << KEY_BITS) + 1, dtype=np.uint32)
            counts = np.bincount(expanded.view(np.int64), minlength=1 << KEY_BITS)
            np.cumsum(counts, out=offsets[1:])
            # Sorting (key << 32 | row) groups the rows by key in one in-place sort.
            expanded <<= np.uint64(32)
            expanded |= np.repeat(rows, len(flips))
            expanded.sort()
            narrow = count <= 1 << 16
            postings: npt.NDArray[np.unsignedinteger] = expanded.astype(
                np.uint16 if narrow else np.uint32
            )
            tables.append(_Table(position, offsets, postings))
        return cls(np.ascontiguousarray(codes), radius, tables)

    @property
    def nbytes(self) -> int:
        return sum(t.offsets.nbytes + t.postings.nbytes for t in self.tables)

    def near(self, content: U64) -> list[tuple[int, int, int]]:
        """``(content row, new row, distance)`` for every pair within the radius, sorted."""
        words = content.shape[1]
        columns = [np.ascontiguousarray(content[:, w]) for w in range(words)]
        mine = [np.ascontiguousarray(self.codes[:, w]) for w in range(words)]
        found: set[tuple[int, int, int]] = set()
        for table in self.tables:
            keys = _key(content, table.position).view(np.int64)
            starts = table.offsets[keys].astype(np.int64)
            lengths = table.offsets[keys + 1] - starts
            ends = np.cumsum(lengths)
            if not len(ends) or not ends[-1]:
                continue
            # The postings of every looked-up key, concatenated without a Python loop.
            at = np.repeat(starts - ends + lengths, lengths)
            at += np.arange(len(at))
            candidates = table.postings[at]
            # Half the bits first: random pairs are ~64 bits apart there, so few survive.
            half = max(1, words // 2)
            distances = np.zeros(len(candidates), dtype=np.int32)
            for w in range(half):
                distances += np.bitwise_count(np.repeat(columns[w], lengths) ^ mine[w][candidates])
            kept = np.flatnonzero(distances <= self.radius)
            if not len(kept):
                continue
            rows = np.searchsorted(ends, kept, side="right")
            candidates, distances = candidates[kept].astype(np.int64), distances[kept]
            for w in range(half, words):
                distances += np.bitwise_count(columns[w][rows] ^ mine[w][candidates])
            close = distances <= self.radius
            found.update(
                zip(
                    rows[close].tolist(),
                    candidates[close].tolist(),
                    distances[close].tolist(),
                    strict=True,
                )
            )
        return sorted(found)
