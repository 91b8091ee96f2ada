"""Points in time as users give them: ISO 8601, or a span back from now (``30d``, ``12h``)."""

from __future__ import annotations

import datetime as dt
import re

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """``2026-01-31T12:00:00Z`` (naive means UTC) or ``30d`` meaning thirty days ago.

    Raises ValueError with a message fit for a user.
    """
    now = now or dt.datetime.now(dt.UTC)
    span = _SPAN.match(text)
    if span:
        return now - dt.timedelta(seconds=int(span[1]) * _UNIT_SECONDS[span[2]])
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time nor a span like 30d, 12h or 90m"
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    try:
        # In UTC here, so a time at the calendar's edge whose offset pushes it past year 1
        # or 9999 is refused now instead of overflowing in a later comparison.
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(f"{text!r} falls outside the calendar once converted to UTC") from None
