"""PDQ for photos: the hma_pdq plugin (hasher, settings and exact index)."""

from __future__ import annotations

from collections.abc import Iterator

from hma_framework.hookspecs import hookimpl
from hma_framework.types import IndexRecord, SignalTypeRecord
from hma_pdq.hashing import PDQ_SETTINGS, HmaPdqSignal, make_pdq_hasher
from hma_pdq.index import load_pdq_index, make_pdq_index

#: The distance at which PDQ hashes are considered the same picture, unless a bank says else.
PDQ_DEFAULT_THRESHOLD = 31


@hookimpl
def hma_signal_types() -> Iterator[SignalTypeRecord]:
    yield SignalTypeRecord(
        HmaPdqSignal,
        content_types=("photo",),
        default_threshold=PDQ_DEFAULT_THRESHOLD,
        max_threshold=63,  # a quarter of the bits; the index stays exact up to here
        hamming_bits=256,
        hasher_factory=make_pdq_hasher,
        settings=PDQ_SETTINGS,
    )


@hookimpl
def hma_indexes() -> Iterator[IndexRecord]:
    yield IndexRecord(
        signal_type=HmaPdqSignal.get_name(),
        factory=make_pdq_index,
        loader=load_pdq_index,
        settings=PDQ_SETTINGS,
    )
