"""Multi-index hashing over PDQ codes: exact candidates by the pigeonhole principle.

The 256 bits are split into ``chunks`` disjoint chunks, and each chunk's low ``key_bits``
bits (its key) get an inverted list: entries grouped by key, found through an offsets table.
If a stored code is within ``r`` bits of the query, the per-chunk distances add up to at most
``r``, so for any thresholds ``t_i`` with ``sum(t_i + 1) >= r + 1`` some chunk ``i`` is within
``t_i`` (the general pigeonhole principle; ``t_i = -1`` skips a chunk). A key is a projection
of its chunk, so the key distance is at most the chunk distance and the rule still holds.
Probing every key within ``t_i`` of the query's key in every chunk therefore finds every
entry within ``r``; candidates are then verified against the full 256 bits, so the result is
exact. Thresholds are balanced across chunks: the ball volume grows convexly with ``t``.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

CODE_BYTES = 32
CODE_BITS = 256

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
U32 = npt.NDArray[np.uint32]

#: A probe plan is abandoned for a flat scan above this many probes per query.
MAX_PROBES = 1 << 17


@functools.cache
def _flip_masks(key_bits: int, radius: int) -> tuple[int, ...]:
    """Every ``key_bits``-bit mask of weight at most ``radius``, lightest first."""
    masks = [0]
    for weight in range(1, radius + 1):
        for bits in itertools.combinations(range(key_bits), weight):
            masks.append(sum(1 << b for b in bits))
    return tuple(masks)


def _ball(key_bits: int, radius: int) -> int:
    return sum(math.comb(key_bits, j) for j in range(min(radius, key_bits) + 1))


@attrs.frozen
class ProbePlan:
    """The keys to look up for one radius: ``global_key = query_key[chunk] ^ flip``."""

    chunk: I64  # which chunk's query key each probe starts from
    flip: I64  # the flip mask, with the chunk number already in the high bits
    expected_candidates: float  # for uniformly random codes


@attrs.define(eq=False)
class MihTables:
    """The inverted lists of one immutable segment of ``n`` codes."""

    chunks: int
    key_bits: int
    #: ``offsets[(i << key_bits) | key]`` is where chunk ``i``'s list for ``key`` starts in
    #: ``postings``; chunk ``i``'s lists fill ``postings[i * n:(i + 1) * n]``.
    offsets: npt.NDArray[Any]  # uint32, or int64 past 2**32 postings
    postings: U32  # positions of codes in the segment
    _plans: dict[int, ProbePlan | None] = attrs.field(factory=dict, init=False)
    _starts: list[int] = attrs.field(init=False)

    @_starts.default
    def _chunk_starts(self) -> list[int]:
        return chunk_starts(self.chunks)

    @staticmethod
    def max_key_bits(chunks: int) -> int:
        return CODE_BITS // chunks

    @property
    def size(self) -> int:
        return len(self.postings) // self.chunks

    @classmethod
    def build(cls, codes: U8, chunks: int, key_bits: int) -> MihTables:
        if not 1 <= key_bits <= min(cls.max_key_bits(chunks), 30):
            raise ValueError(f"key_bits {key_bits} does not fit {chunks} chunks")
        n = len(codes)
        if n >= 2**32:
            raise ValueError("a segment holds fewer than 2**32 codes (uint32 positions)")
        words = codes.view("<u8").reshape(n, 4)
        total = chunks * n
        offsets: npt.NDArray[Any] = np.empty(
            (chunks << key_bits) + 1, dtype=np.uint32 if total < 2**32 else np.int64
        )
        offsets[0] = 0
        postings = np.empty(total, dtype=np.uint32)
        # One reusable buffer of (key << 32 | position): sorting it in place groups positions
        # by key (ascending within a key) ~4x faster than argsort, and leaves no garbage.
        packed = np.empty(n, dtype=np.uint64)
        positions = np.arange(n, dtype=np.uint64)
        for i, start in enumerate(chunk_starts(chunks)):
            _chunk_keys(words, start, key_bits, out=packed)
            section = offsets[(i << key_bits) + 1 : ((i + 1) << key_bits) + 1]
            np.cumsum(np.bincount(packed.view(np.int64), minlength=1 << key_bits), out=section)
            section += i * n
            packed <<= np.uint64(32)
            packed |= positions
            packed.sort()
            np.copyto(postings[i * n : (i + 1) * n], packed, casting="unsafe")  # low 32 bits
        return cls(chunks, key_bits, offsets, postings)

    def plan(self, radius: int) -> ProbePlan | None:
        """The probes that find every code within ``radius``; None if a scan is cheaper."""
        if radius in self._plans:
            return self._plans[radius]
        units, extra = divmod(radius + 1, self.chunks)
        thresholds = [units - 1 + (1 if i < extra else 0) for i in range(self.chunks)]
        probes = sum(_ball(self.key_bits, t) for t in thresholds if t >= 0)
        plan = None
        if max(thresholds) < self.key_bits and probes <= MAX_PROBES:
            chunk, flip = [], []
            for i, t in enumerate(thresholds):
                if t >= 0:
                    masks = np.array(_flip_masks(self.key_bits, t), dtype=np.int64)
                    flip.append(masks | (i << self.key_bits))
                    chunk.append(np.full(len(masks), i, dtype=np.int64))
            expected = probes * self.size / (1 << self.key_bits)
            plan = ProbePlan(np.concatenate(chunk), np.concatenate(flip), expected)
        self._plans[radius] = plan
        return plan

    def candidates_one(self, query: U8, plan: ProbePlan, limit: int) -> U32 | None:
        """Positions of possible matches for one query (a position may repeat).

        None if there are more than ``limit``: skewed data (many near-duplicates of the query)
        can make probing costlier than a scan.
        """
        if self.chunks == 16 and self.key_bits == 16:  # keys are the code's 16-bit words
            keys = query.view("<u2").astype(np.int64)
        else:  # Python's big ints cut one code into keys ~10x faster than numpy
            code = int.from_bytes(query.tobytes(), "little")
            mask = (1 << self.key_bits) - 1
            keys = np.array([(code >> s) & mask for s in self._starts], dtype=np.int64)
        found = self._expand(keys[plan.chunk] ^ plan.flip, limit)
        return None if found is None else found[0]

    def candidates(self, queries: U8, plan: ProbePlan, limit: int) -> tuple[U32, I64] | None:
        """Like ``candidates_one`` for ``(nq, 32)`` queries; also how many are each query's."""
        words = queries.view("<u8").reshape(len(queries), 4)
        keys = np.empty((len(self._starts), len(queries)), dtype=np.uint64)
        for i, start in enumerate(self._starts):
            _chunk_keys(words, start, self.key_bits, out=keys[i])
        probes = (keys.T.astype(np.int64)[:, plan.chunk] ^ plan.flip).ravel()
        found = self._expand(probes, limit)
        if found is None:
            return None
        ends = found[1][len(plan.chunk) - 1 :: len(plan.chunk)]
        return found[0], np.diff(ends, prepend=0)

    def _expand(self, probes: I64, limit: int) -> tuple[U32, I64] | None:
        """Every posting of the probed keys, and the running count after each probe."""
        starts = self.offsets[probes].astype(np.int64)
        lengths = self.offsets[probes + 1] - starts
        ends = np.cumsum(lengths)
        if ends[-1] > limit:
            return None
        # Concatenate the ranges [start, start + length) without a Python loop.
        index = np.repeat(starts - ends + lengths, lengths)
        index += np.arange(len(index))
        return self.postings[index], ends


def chunk_starts(chunks: int) -> list[int]:
    """The first bit of each chunk: ``chunks`` near-equal runs covering all 256 bits."""
    width, wider = divmod(CODE_BITS, chunks)
    return [i * width + min(i, wider) for i in range(chunks)]


def _chunk_keys(
    words: npt.NDArray[np.uint64], start: int, key_bits: int, out: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint64]:
    """The ``key_bits`` bits starting at bit ``start`` of each code, into ``out``."""
    word, shift = divmod(start, 64)
    np.right_shift(words[:, word], np.uint64(shift), out=out)
    if shift + key_bits > 64:
        out |= words[:, word + 1] << np.uint64(64 - shift)
    out &= np.uint64((1 << key_bits) - 1)
    return out
