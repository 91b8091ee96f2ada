"""Indexes any signal type can use: a hash map for exact matching, a linear scan otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from threatexchange.signal_type.signal_base import SignalType

from hma_framework.types import IndexMatch


class ExactMatchIndex:
    """A hash map from signal to entry ids: MD5 and every exact-match signal type."""

    def __init__(self) -> None:
        self._ids_by_signal: dict[str, set[int]] = {}
        self._signal_by_id: dict[int, str] = {}

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        for entry_id, signal in entries:
            self.remove((entry_id,))
            self._signal_by_id[entry_id] = signal
            self._ids_by_signal.setdefault(signal, set()).add(entry_id)

    def remove(self, entry_ids: Sequence[int]) -> None:
        for entry_id in entry_ids:
            signal = self._signal_by_id.pop(entry_id, None)
            if signal is None:
                continue
            holders = self._ids_by_signal[signal]
            holders.discard(entry_id)
            if not holders:
                del self._ids_by_signal[signal]

    def query(self, signal: str, max_distance: int = 0) -> list[IndexMatch]:
        return [IndexMatch(entry_id, 0) for entry_id in sorted(self._ids_by_signal.get(signal, ()))]

    def query_batch(self, signals: Sequence[str], max_distance: int = 0) -> list[list[IndexMatch]]:
        return [self.query(signal, max_distance) for signal in signals]

    def __len__(self) -> int:
        return len(self._signal_by_id)

    def save(self, directory: Path) -> None:
        """Two plain arrays (ids, signals): ``np.load`` reads them back without pickle."""
        ids = np.fromiter(self._signal_by_id, dtype=np.int64, count=len(self._signal_by_id))
        signals = np.array(list(self._signal_by_id.values()), dtype=np.str_)
        np.save(directory / "ids.npy", ids, allow_pickle=False)
        np.save(directory / "signals.npy", signals, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> ExactMatchIndex:
        ids = np.load(directory / "ids.npy", allow_pickle=False)
        signals = np.load(directory / "signals.npy", allow_pickle=False)
        index = cls()
        index.add(list(zip(ids.tolist(), signals.tolist(), strict=True)))
        return index


def _distance_of(comparison: Any) -> int:
    info = comparison.distance
    distance = getattr(info, "distance", 0)
    return int(distance) if isinstance(distance, int | float) else 0


class LinearScanIndex:
    """Correct for any signal type with ``compare_hash``, but O(n) per query.

    The signal type's own ``compare_hash`` decides what matches (its own threshold);
    ``max_distance`` additionally bounds the distance where the comparison reports one.
    """

    def __init__(self, signal_type: type[SignalType]) -> None:
        compare = getattr(signal_type, "compare_hash", None)
        if compare is None:
            raise TypeError(f"{signal_type.get_name()} has no compare_hash to scan with")
        self._compare = compare
        self._signal_by_id: dict[int, str] = {}

    def add(self, entries: Sequence[tuple[int, str]]) -> None:
        self._signal_by_id.update(entries)

    def remove(self, entry_ids: Sequence[int]) -> None:
        for entry_id in entry_ids:
            self._signal_by_id.pop(entry_id, None)

    def query(self, signal: str, max_distance: int = 0) -> list[IndexMatch]:
        found = []
        for entry_id, stored in self._signal_by_id.items():
            comparison = self._compare(signal, stored)
            if comparison.match:
                found.append(IndexMatch(entry_id, _distance_of(comparison)))
        return sorted(found, key=lambda m: (m.distance, m.entry_id))

    def query_batch(self, signals: Sequence[str], max_distance: int = 0) -> list[list[IndexMatch]]:
        return [self.query(signal, max_distance) for signal in signals]

    def __len__(self) -> int:
        return len(self._signal_by_id)
