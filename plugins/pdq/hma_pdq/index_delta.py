"""The delta of the PDQ index: recent single adds, scanned flat until they join a segment."""

from __future__ import annotations

import faiss
import numpy as np

from hma_pdq.index_mih import CODE_BYTES, I64, U8
from hma_pdq.index_segment import Found, hammings


class Delta:
    """Recent single adds, scanned flat: cheap to append to and to tombstone."""

    def __init__(self, capacity: int) -> None:
        self.ids = np.zeros(capacity, dtype=np.int64)
        self.codes = np.zeros((capacity, CODE_BYTES), dtype=np.uint8)
        self.alive = np.zeros(capacity, dtype=bool)
        self.size = 0
        self.live = 0

    @property
    def nbytes(self) -> int:
        return self.ids.nbytes + self.codes.nbytes + self.alive.nbytes

    def append(self, ids: I64, codes: U8) -> None:
        end = self.size + len(ids)
        if end > len(self.ids):
            grown = max(end, 2 * len(self.ids))
            self.ids = np.resize(self.ids, grown)
            self.codes = np.resize(self.codes, (grown, CODE_BYTES))
            self.alive = np.resize(self.alive, grown)
        self.ids[self.size : end] = ids
        self.codes[self.size : end] = codes
        self.alive[self.size : end] = True
        self.size, self.live = end, self.live + len(ids)

    def remove(self, ids: I64) -> int:
        if not self.live:
            return 0
        present = self.ids[: self.size]
        hit = present == ids[0] if len(ids) == 1 else np.isin(present, ids)
        hit &= self.alive[: self.size]
        removed = int(np.count_nonzero(hit))
        self.alive[: self.size][hit] = False
        self.live -= removed
        return removed

    def entries(self) -> tuple[I64, U8]:
        keep = np.flatnonzero(self.alive[: self.size])
        return self.ids[keep], self.codes[keep]

    def clear(self) -> None:
        self.alive[: self.size] = False
        self.size = self.live = 0

    def search(self, queries: U8, radius: int) -> Found:
        if not self.live or radius < 0:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        distances = np.empty((len(queries), self.size), dtype=np.int32)
        hammings(
            faiss.swig_ptr(queries),
            faiss.swig_ptr(self.codes),
            len(queries),
            self.size,
            CODE_BYTES,
            faiss.swig_ptr(distances),
        )
        which, slots = np.nonzero((distances <= radius) & self.alive[: self.size])
        return which, self.ids[slots], distances[which, slots].astype(np.int64)
