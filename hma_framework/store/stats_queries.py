"""Match statistics per interval and bank, answered from the records by indexed ranges.

Each figure is one ``GROUP BY`` over a time-indexed column (``content.submitted_at``,
``content_submission.submitted_at``, ``match.created_at``, ``delivery.created_at``), so a
day of a 10M-row table reads that day's index range only. Buckets are truncated in the
database, in UTC, by hour or day.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankRow,
    ContentRow,
    ContentSubmissionRow,
    DeliveryRow,
    MatchRow,
)

INTERVALS = ("hour", "day")
_SQLITE_FORMATS = {"hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d 00:00:00"}


def _bucket(dialect: str, column: Any, interval: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.date_trunc(interval, func.timezone("UTC", column))
    return func.strftime(_SQLITE_FORMATS[interval], column)


def _key(value: Any) -> str:
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.replace(tzinfo=dt.UTC).isoformat()


def _empty() -> dict[str, Any]:
    return {
        "submissions": 0,
        "content": 0,
        "hashed": 0,
        "failed": 0,
        "matched_live": 0,
        "matched_retroactive": 0,
        "actions_delivered": 0,
        "banks": {},
    }


def match_stats(
    store: Store, since: dt.datetime, until: dt.datetime, interval: str
) -> list[dict[str, Any]]:
    """One entry per interval with any activity, oldest first."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}")
    dialect = store.dialect
    buckets: dict[str, dict[str, Any]] = defaultdict(_empty)
    with store.reading() as session:
        bucket = _bucket(dialect, ContentSubmissionRow.submitted_at, interval)
        for when, count in session.execute(
            select(bucket, func.count())
            .where(
                ContentSubmissionRow.submitted_at >= since,
                ContentSubmissionRow.submitted_at < until,
            )
            .group_by(bucket)
        ):
            buckets[_key(when)]["submissions"] = count
        bucket = _bucket(dialect, ContentRow.submitted_at, interval)
        for when, count, hashed, failed in session.execute(
            select(
                bucket,
                func.count(),
                func.count(ContentRow.hashed_at),
                func.sum(case((ContentRow.status == "failed", 1), else_=0)),
            )
            .where(ContentRow.submitted_at >= since, ContentRow.submitted_at < until)
            .group_by(bucket)
        ):
            entry = buckets[_key(when)]
            entry["content"], entry["hashed"], entry["failed"] = count, hashed, int(failed or 0)
        bucket = _bucket(dialect, MatchRow.created_at, interval)
        for when, bank, retroactive, count in session.execute(
            select(bucket, BankRow.name, MatchRow.retroactive, func.count())
            .outerjoin(BankRow, BankRow.id == MatchRow.bank_pk)
            .where(MatchRow.created_at >= since, MatchRow.created_at < until)
            .group_by(bucket, BankRow.name, MatchRow.retroactive)
        ):
            entry = buckets[_key(when)]
            kind = "matched_retroactive" if retroactive else "matched_live"
            entry[kind] += count
            if bank is None:
                continue  # its bank was deleted: counted in the totals, under no bank
            per_bank = entry["banks"].setdefault(
                bank, {"matched_live": 0, "matched_retroactive": 0}
            )
            per_bank[kind] += count
        bucket = _bucket(dialect, DeliveryRow.created_at, interval)
        for when, count in session.execute(
            select(bucket, func.count())
            .where(
                DeliveryRow.created_at >= since,
                DeliveryRow.created_at < until,
                DeliveryRow.status == "succeeded",
            )
            .group_by(bucket)
        ):
            buckets[_key(when)]["actions_delivered"] = count
    return [{"start": key, **buckets[key]} for key in sorted(buckets)]
