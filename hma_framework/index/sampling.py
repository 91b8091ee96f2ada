"""HMA 2.0's bank sampling: a bank answers a lookup when a seeded coin flip falls under its
``matching_enabled_ratio``, so a bank can be tried on a share of traffic before it acts on all.

The flip is seeded by the caller's ``seed`` (HMA 2.0 clients pass the content id), so the same
content gets the same answer on every lookup; without a seed each lookup flips anew.
"""

from __future__ import annotations

import random
from collections.abc import Mapping


def coin_flip(seed: str | None) -> float:
    return random.Random(seed).random()


def sampled_banks(ratios: Mapping[str, float], flip: float) -> set[str]:
    """The banks whose ratio is at least ``flip``; a ratio of 0 never answers."""
    return {name for name, ratio in ratios.items() if ratio > 0 and ratio >= flip}
