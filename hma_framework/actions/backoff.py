"""When to try a failed delivery again: the schedule, jitter, and the receiver's Retry-After."""

from __future__ import annotations

import random

from hma_framework.http_headers import parse_retry_after
from hma_framework.settings import ActionSettings

__all__ = ["parse_retry_after", "retry_wait"]


def retry_wait(
    settings: ActionSettings,
    failures: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float | None:
    """Seconds to wait after the ``failures``-th failure in a row, or None: give up.

    Jitter spreads deliveries that failed together (a receiver's outage) so they do not all
    come back in the same second. A receiver's ``Retry-After`` is a floor, capped by
    ``max_retry_after_seconds`` so a bad header cannot park a delivery for a year.
    """
    intervals = settings.retry_intervals_seconds
    if failures < 1 or failures > len(intervals):
        return None
    wait = float(intervals[failures - 1])
    spread = settings.retry_jitter_percent / 100
    if spread and wait:
        wait *= 1 + (rng or random).uniform(-spread, spread)
    if retry_after is not None:
        wait = max(wait, min(retry_after, float(settings.max_retry_after_seconds)))
    return max(0.0, wait)
