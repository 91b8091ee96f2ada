"""HTTP header values both sides of the system read: fetching media and delivering webhooks."""

from __future__ import annotations

import datetime as dt
import email.utils


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds from ``Retry-After``: a number of seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())
