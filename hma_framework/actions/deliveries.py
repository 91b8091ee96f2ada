"""Delivery records: one per content and action, with every attempt.

A delivery is ``pending`` (an attempt is due or scheduled; ``job_id`` names the RQ job that
carries it), ``delivering`` (a worker is attempting it), ``succeeded``, ``failed`` (it gave
up: retries ran out, or the failure cannot be retried) or ``held`` (its handler is disabled;
redeliver it once the handler is enabled again). The row is written before its job is
enqueued, and a job whose id is not the row's does nothing, so a lost or duplicated job can
neither drop an action nor perform it twice at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

import attrs
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from hma_framework.actions.errors import ActionConflict, ActionNotFound
from hma_framework.actions.labels import ContentFacts
from hma_framework.actions.rules import PlannedAction
from hma_framework.store.db import Store
from hma_framework.store.tables import (
    DeliveryAttemptRow,
    DeliveryRow,
    HandlerConfigRow,
    utcnow,
)
from hma_framework.types import ActionRequest, MatchedSignal

PENDING = "pending"
DELIVERING = "delivering"
SUCCEEDED = "succeeded"
FAILED = "failed"
HELD = "held"
STATUSES = (PENDING, DELIVERING, SUCCEEDED, FAILED, HELD)
MAX_TEXT = 2000


def new_job_id() -> str:
    return f"deliver-{secrets.token_hex(8)}"


def _disabled(reason: str | None) -> str:
    return f"handler disabled: {reason or 'by an operator'}"


def request_snapshot(facts: ContentFacts, action: PlannedAction) -> dict[str, Any]:
    """What the handler will be told, frozen now (see ``DeliveryRow.request``)."""
    return {
        "content_id": facts.content_id,
        "content_type": facts.content_type,
        "additional_fields": list(facts.additional_fields),
        "matches": [attrs.asdict(m.signal) for m in action.matches],
        "write_back": action.write_back.value if action.write_back else None,
    }


def action_request(row: DeliveryRow) -> ActionRequest:
    snapshot = row.request
    return ActionRequest(
        content_id=snapshot["content_id"],
        content_type=snapshot["content_type"],
        additional_fields=tuple(snapshot["additional_fields"]),
        matches=tuple(
            MatchedSignal(**{**m, "tags": tuple(m["tags"])}) for m in snapshot["matches"]
        ),
        rules_fired=tuple(row.rules_fired),
        params=dict(row.params),
    )


def create_deliveries(
    store: Store, facts: ContentFacts, planned: Sequence[PlannedAction]
) -> list[tuple[int, str]]:
    """Record the actions not recorded yet; returns ``(delivery id, job id)`` to enqueue.

    An action already recorded for this content (another rule, an earlier run of the same
    job, a retroactive match) is left as it is: each action is performed once per content.
    """
    if not planned:
        return []
    now = utcnow()
    with store.transaction() as session:
        handlers = {
            row.id: row
            for row in session.scalars(
                select(HandlerConfigRow).where(
                    HandlerConfigRow.id.in_({p.handler_pk for p in planned})
                )
            )
        }
        rows = []
        for action in planned:
            handler = handlers[action.handler_pk]
            rows.append(
                {
                    "content_pk": facts.content_pk,
                    "handler_pk": action.handler_pk,
                    "action_key": action.key,
                    "rules_fired": list(action.rules_fired),
                    "params": dict(action.params),
                    "request": request_snapshot(facts, action),
                    "status": PENDING if handler.enabled else HELD,
                    "attempts": 0,
                    "round_attempts": 0,
                    "job_id": new_job_id() if handler.enabled else None,
                    "next_attempt_at": now if handler.enabled else None,
                    "last_error": None if handler.enabled else _disabled(handler.disabled_reason),
                    "created_at": now,
                    "updated_at": now,
                }
            )
        insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(DeliveryRow)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["content_pk", "action_key"])
            .returning(DeliveryRow.id, DeliveryRow.job_id)
        )
        return [(pk, job_id) for pk, job_id in session.execute(statement) if job_id]


@attrs.frozen
class Claimed:
    """A delivery a worker now holds for one attempt."""

    delivery: DeliveryRow
    handler: HandlerConfigRow


def claim(store: Store, delivery_pk: int, job_id: str) -> Claimed | str:
    """Take the delivery for this job's attempt, or say why not (a stale job, a held handler)."""
    with store.transaction() as session:
        taken = session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id == delivery_pk,
                DeliveryRow.job_id == job_id,
                DeliveryRow.status == PENDING,
            )
            .values(status=DELIVERING, updated_at=utcnow())
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return "skipped: not this job's delivery, or not pending"
        row = session.get_one(DeliveryRow, delivery_pk)
        handler = session.get_one(HandlerConfigRow, row.handler_pk)
        if not handler.enabled:
            row.status, row.job_id = HELD, None
            row.last_error = _disabled(handler.disabled_reason)
            return HELD
        return Claimed(row, handler)


@attrs.frozen
class Attempt:
    """One attempt's outcome, as the worker saw it."""

    attempted_at: dt.datetime
    latency_ms: int
    ok: bool
    status_code: int | None
    error: str | None
    detail: str | None


def finish_attempt(
    store: Store,
    claimed: Claimed,
    attempt: Attempt,
    status: str,
    next_attempt_at: dt.datetime | None = None,
    disable_reason: str | None = None,
    last_error: str | None = None,
) -> str | None:
    """Record the attempt and the delivery's next state; returns the next job id, if any.

    ``last_error`` is what the delivery says went wrong (default: the attempt's error).
    """
    delivery_pk = claimed.delivery.id
    with store.transaction() as session:
        session.add(
            DeliveryAttemptRow(
                delivery_pk=delivery_pk,
                attempted_at=attempt.attempted_at,
                status_code=attempt.status_code,
                latency_ms=attempt.latency_ms,
                error=attempt.error[:MAX_TEXT] if attempt.error else None,
                detail=attempt.detail[:MAX_TEXT] if attempt.detail else None,
            )
        )
        row = session.get_one(DeliveryRow, delivery_pk)
        row.attempts += 1
        row.round_attempts = 0 if attempt.ok else row.round_attempts + 1
        row.status = status
        last_error = last_error or attempt.error
        row.last_error = last_error[:MAX_TEXT] if last_error else None
        row.next_attempt_at = next_attempt_at
        row.job_id = new_job_id() if status == PENDING else None
        if disable_reason is not None:
            handler = session.get_one(HandlerConfigRow, claimed.handler.id)
            handler.enabled, handler.disabled_reason = False, disable_reason[:MAX_TEXT]
            session.execute(
                update(DeliveryRow)
                .where(DeliveryRow.handler_pk == handler.id, DeliveryRow.status == PENDING)
                .values(status=HELD, job_id=None, last_error=_disabled(disable_reason))
            )
        return row.job_id


def redeliver(store: Store, delivery_pk: int) -> str:
    """Start a fresh round of attempts (a full retry schedule); returns the job id to enqueue."""
    with store.transaction() as session:
        row = session.get(DeliveryRow, delivery_pk)
        if row is None:
            raise ActionNotFound(f"no delivery {delivery_pk}")
        if row.status in (PENDING, DELIVERING):
            raise ActionConflict(f"delivery {delivery_pk} is already {row.status}")
        handler = session.get_one(HandlerConfigRow, row.handler_pk)
        if not handler.enabled:
            raise ActionConflict(
                f"{_disabled(handler.disabled_reason)}; enable handler {handler.name!r} "
                f"with PUT /handlers/{handler.name} first"
            )
        row.status, row.round_attempts, row.last_error = PENDING, 0, None
        row.next_attempt_at = utcnow()
        row.job_id = new_job_id()
        return row.job_id


def restart_stalled(store: Store, delivery_pk: int, old_job_id: str | None) -> str | None:
    """Give a delivery whose job was lost a new job; None if it moved on meanwhile."""
    job_id = new_job_id()
    with store.transaction() as session:
        moved = session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id == delivery_pk,
                DeliveryRow.status.in_((PENDING, DELIVERING)),
                DeliveryRow.job_id == old_job_id
                if old_job_id is not None
                else DeliveryRow.job_id.is_(None),
            )
            .values(status=PENDING, job_id=job_id, next_attempt_at=utcnow())
        )
        return job_id if moved.rowcount else None  # type: ignore[attr-defined]
