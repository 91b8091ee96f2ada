"""The vectorised Hamming path agrees with PDQ's own distance."""

from __future__ import annotations

import random

import numpy as np

from hma_framework.retroaction import hamming
from hma_framework.retroaction.matching import raw_values


def _distance(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def test_words_and_near_match_a_plain_popcount() -> None:
    rng = random.Random(2)
    content = [f"{rng.getrandbits(256):064x}" for _ in range(500)]
    content[7] = content[7].upper()  # hex case does not matter
    probe = [content[3], f"{rng.getrandbits(256):064x}"]
    flipped = list(content[3])
    flipped[0] = "0" if flipped[0] != "0" else "1"
    content[9] = "".join(flipped)
    found = hamming.near(
        hamming.words(raw_values(content), 256), hamming.words(raw_values(probe), 256), 31
    )
    expected = [
        (row, column, _distance(value, target))
        for column, target in enumerate(probe)
        for row, value in enumerate(content)
        if _distance(value, target) <= 31
    ]
    assert found == expected and (3, 0, 0) in found and any(r == 9 for r, _, _ in found)
    assert hamming.words(np.array([b"f" * 64]), 256).dtype == np.uint64
