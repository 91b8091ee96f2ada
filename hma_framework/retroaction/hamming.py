"""Vectorised Hamming distances for hex signal types (``SignalTypeRecord.hamming_bits``).

A pass usually looks for a handful of new bank signals in a million recent ones. Going
through an index costs a hex parse and a Python result list per content signal; here the
ring's hex bytes become 64-bit words in a few numpy operations and each new signal is
compared with a whole batch by XOR and popcount. Many new signals (a large import) go
through ``pigeonhole``'s key tables instead, which compare each content signal with the few
new signals that share a key with it.
"""

from __future__ import annotations

import numpy as np

#: Up to this many new signals, comparing each with the batch beats the index (when the
#: key tables cannot serve the threshold).
MAX_DIRECT = 16

_NIBBLE = np.full(256, 255, dtype=np.uint8)
for _digit, _char in enumerate(b"0123456789abcdef"):
    _NIBBLE[_char] = _digit
for _digit, _char in enumerate(b"ABCDEF", start=10):
    _NIBBLE[_char] = _digit


def words(hex_values: np.ndarray, bits: int) -> np.ndarray:
    """``S`` hex strings of ``bits`` bits as rows of uint64 words (padding ignored)."""
    chars = bits // 4
    raw = np.ascontiguousarray(hex_values).view(np.uint8).reshape(len(hex_values), -1)[:, :chars]
    nibbles = _NIBBLE[raw]
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(packed).view(np.uint64)


def near(content: np.ndarray, probe: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    """``(content row, probe row, distance)`` for every pair within ``radius``."""
    found: list[tuple[int, int, int]] = []
    for column, code in enumerate(probe):
        distances = np.bitwise_count(content ^ code).sum(axis=1, dtype=np.int32)
        for row in np.flatnonzero(distances <= radius):
            found.append((int(row), column, int(distances[row])))
    return found
