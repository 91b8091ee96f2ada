"""Read-side queries over deliveries, shaped for ``/deliveries``.

Nothing here reads a handler's configuration: a delivery names its handler, never its URL
headers or secrets.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, or_, select

from hma_framework.actions.deliveries import FAILED, HELD, PENDING
from hma_framework.store.db import Store
from hma_framework.store.tables import (
    ContentRow,
    DeliveryAttemptRow,
    DeliveryRow,
    HandlerConfigRow,
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def delivery_view(row: DeliveryRow, handler: str, content_id: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "content_id": content_id,
        "handler": handler,
        "status": row.status,
        "gave_up": row.status == FAILED,
        "rules_fired": list(row.rules_fired),
        "params": dict(row.params),
        "write_back": row.request.get("write_back"),
        "matches": len(row.request.get("matches", ())),
        "attempts": row.attempts,
        "next_attempt_at": _iso(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def attempt_view(row: DeliveryAttemptRow) -> dict[str, Any]:
    return {
        "attempted_at": _iso(row.attempted_at),
        "status_code": row.status_code,
        "latency_ms": row.latency_ms,
        "error": row.error,
        "detail": row.detail,
    }


class DeliveryQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def _query(self) -> Any:
        return (
            select(DeliveryRow, HandlerConfigRow.name, ContentRow.content_id)
            .join(HandlerConfigRow, HandlerConfigRow.id == DeliveryRow.handler_pk)
            .join(ContentRow, ContentRow.id == DeliveryRow.content_pk)
        )

    def find(
        self,
        *,
        handler: str | None = None,
        status: str | None = None,
        content_id: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
        query = self._query().order_by(DeliveryRow.id.desc()).limit(limit)
        if handler is not None:
            query = query.where(HandlerConfigRow.name == handler)
        if status is not None:
            query = query.where(DeliveryRow.status == status)
        if content_id is not None:
            query = query.where(ContentRow.content_id == content_id)
        if before_id is not None:
            query = query.where(DeliveryRow.id < before_id)
        with self._store.reading() as session:
            return [delivery_view(*found) for found in session.execute(query)]

    def failing(self, limit: int = 100) -> list[dict[str, Any]]:
        """Deliveries that have not given up but are not getting through, newest first.

        Pending ones whose last attempt failed (a retry is scheduled) and held ones (their
        handler is disabled); both use the status index.
        """
        query = (
            self._query()
            .where(
                or_(
                    and_(DeliveryRow.status == PENDING, DeliveryRow.last_error.is_not(None)),
                    DeliveryRow.status == HELD,
                )
            )
            .order_by(DeliveryRow.id.desc())
            .limit(limit)
        )
        with self._store.reading() as session:
            return [delivery_view(*found) for found in session.execute(query)]

    def get(self, delivery_pk: int) -> dict[str, Any] | None:
        """One delivery with every attempt, oldest first."""
        with self._store.reading() as session:
            found = session.execute(
                self._query().where(DeliveryRow.id == delivery_pk)
            ).one_or_none()
            if found is None:
                return None
            attempts = session.scalars(
                select(DeliveryAttemptRow)
                .where(DeliveryAttemptRow.delivery_pk == delivery_pk)
                .order_by(DeliveryAttemptRow.id)
            )
            return {
                **delivery_view(*found),
                "request": dict(found[0].request),
                "attempt_log": [attempt_view(a) for a in attempts],
            }
