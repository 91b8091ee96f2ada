"""Counts for the console's Overview, read from the records (not from metrics).

Every count is one indexed range query on a ``created_at``/``submitted_at`` column, so the page
costs the same at a million rows as at a hundred; lists are short and newest first.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select

from hma_framework.store.db import Store
from hma_framework.store.tables import BankRow, ContentRow, DeliveryRow, MatchRow, utcnow

WINDOWS = {"day": dt.timedelta(days=1), "30 days": dt.timedelta(days=30)}
FAILED = "failed"


class OverviewQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def counts(self, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
        """``{"submissions": {"day": n, "30 days": m}, "matches": ..., "actions": ...}``."""
        now = now or utcnow()
        columns = {
            "submissions": ContentRow.submitted_at,
            "matches": MatchRow.created_at,
            "actions": DeliveryRow.created_at,
        }
        counts: dict[str, dict[str, int]] = {}
        with self._store.reading() as session:
            for name, column in columns.items():
                counts[name] = {
                    window: int(
                        session.scalar(select(func.count()).where(column >= now - span)) or 0
                    )
                    for window, span in WINDOWS.items()
                }
        return counts

    def matches_per_bank(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Per bank, matches over each window, busiest first (from ``ix_match_bank_created``)."""
        now = now or utcnow()
        per_bank: dict[str, dict[str, int]] = {}
        with self._store.reading() as session:
            for window, span in WINDOWS.items():
                rows = session.execute(
                    select(BankRow.name, func.count(MatchRow.id))
                    .join(BankRow, BankRow.id == MatchRow.bank_pk)
                    .where(MatchRow.created_at >= now - span)
                    .group_by(BankRow.name)
                ).all()
                for name, count in rows:
                    per_bank.setdefault(name, dict.fromkeys(WINDOWS, 0))[window] = int(count)
        ordered = sorted(per_bank.items(), key=lambda item: (-item[1]["30 days"], item[0]))
        return [{"bank": name, **counts} for name, counts in ordered]

    def failed_contents(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.execute(
                select(ContentRow.content_id, ContentRow.error, ContentRow.updated_at)
                .where(ContentRow.status == FAILED)
                .order_by(ContentRow.id.desc())
                .limit(limit)
            ).all()
        return [{"content_id": c, "error": e, "updated_at": u} for c, e, u in rows]

    def failing_deliveries(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.execute(
                select(DeliveryRow.id, DeliveryRow.action_key, DeliveryRow.attempts)
                .where(DeliveryRow.status == FAILED)
                .order_by(DeliveryRow.id.desc())
                .limit(limit)
            ).all()
        return [{"id": i, "action": a, "attempts": n} for i, a, n in rows]
