"""Delivery records: one per content and action, with every attempt.

A delivery is ``pending`` (an attempt is due or scheduled; ``job_id`` names the RQ job that
carries it, with the rest of its batch), ``delivering`` (a worker is attempting it),
``succeeded``, ``failed`` (it gave up: retries ran out, or the failure cannot be retried) or
``held`` (its handler is disabled; redeliver it once the handler is enabled again). The row
is written before its job is enqueued, and a job takes only the rows that still name it, so
a lost or duplicated job can neither drop an action nor perform it twice at once.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Sequence
from typing import Any

import attrs
from sqlalchemy import insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

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


#: The most deliveries one deliver job carries. A job sends its batch over its handler's
#: pooled connections and records the attempts in a transaction or two; a backlog for one
#: handler is still cut into several jobs, so every worker can take a share of it.
JOB_BATCH = 100
#: Rows per INSERT: well within SQLite's limit on bound parameters.
_INSERT_CHUNK = 200

Plan = tuple[ContentFacts, Sequence[PlannedAction]]


def create_deliveries(session: Session, plans: Sequence[Plan]) -> list[tuple[int, str]]:
    """Record the actions not recorded yet; returns ``(delivery id, job id)`` to enqueue.

    An action already recorded for its content (another rule, an earlier run of the same
    job, a retroactive match) is left as it is: each action is performed once per content.
    New deliveries of one handler share a job id, up to ``JOB_BATCH`` to a job.
    """
    planned = [(facts, action) for facts, actions in plans for action in actions]
    if not planned:
        return []
    now = utcnow()
    handlers = {
        row.id: row
        for row in session.scalars(
            select(HandlerConfigRow).where(
                HandlerConfigRow.id.in_({action.handler_pk for _, action in planned})
            )
        )
    }
    jobs: dict[int, tuple[str, int]] = {}  # handler -> (its current job id, rows in it)
    rows = []
    for facts, action in planned:
        handler = handlers[action.handler_pk]
        job_id = None
        if handler.enabled:
            job_id, used = jobs.get(handler.id, ("", JOB_BATCH))
            if used >= JOB_BATCH:
                job_id, used = new_job_id(), 0
            jobs[handler.id] = (job_id, used + 1)
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
                "job_id": job_id,
                "next_attempt_at": now if handler.enabled else None,
                "last_error": None if handler.enabled else _disabled(handler.disabled_reason),
                "created_at": now,
                "updated_at": now,
            }
        )
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    created: list[tuple[int, str]] = []
    for at in range(0, len(rows), _INSERT_CHUNK):
        statement = (
            insert(DeliveryRow)
            .values(rows[at : at + _INSERT_CHUNK])
            .on_conflict_do_nothing(index_elements=["content_pk", "action_key"])
            .returning(DeliveryRow.id, DeliveryRow.job_id)
        )
        created.extend((pk, job_id) for pk, job_id in session.execute(statement) if job_id)
    return created


@attrs.frozen
class Claimed:
    """A delivery a worker now holds for one attempt."""

    delivery: DeliveryRow
    handler: HandlerConfigRow


def claim(store: Store, job_id: str) -> list[Claimed]:
    """Take every pending delivery this job carries, oldest first.

    Deliveries the job no longer carries (a stale or duplicated job) are not taken; those of
    a disabled handler are held instead of attempted.
    """
    with store.transaction() as session:
        taken = list(
            session.scalars(
                update(DeliveryRow)
                .where(DeliveryRow.job_id == job_id, DeliveryRow.status == PENDING)
                .values(status=DELIVERING, updated_at=utcnow())
                .returning(DeliveryRow.id)
            )
        )
        if not taken:
            return []
        rows = list(
            session.scalars(
                select(DeliveryRow).where(DeliveryRow.id.in_(taken)).order_by(DeliveryRow.id)
            )
        )
        handlers = {
            row.id: row
            for row in session.scalars(
                select(HandlerConfigRow).where(
                    HandlerConfigRow.id.in_({row.handler_pk for row in rows})
                )
            )
        }
        claimed = []
        for row in rows:
            handler = handlers[row.handler_pk]
            if handler.enabled:
                claimed.append(Claimed(row, handler))
            else:
                row.status, row.job_id = HELD, None
                row.last_error = _disabled(handler.disabled_reason)
        return claimed


@attrs.frozen
class Attempt:
    """One attempt's outcome, as the worker saw it."""

    attempted_at: dt.datetime
    latency_ms: int
    ok: bool
    status_code: int | None
    error: str | None
    detail: str | None


@attrs.frozen
class Finished:
    """An attempt and the delivery's next state: ``status``, when to try again, and why."""

    claimed: Claimed
    attempt: Attempt
    status: str
    next_attempt_at: dt.datetime | None = None
    disable_reason: str | None = None
    #: What the delivery says went wrong (default: the attempt's error).
    last_error: str | None = None


def _clip(text: str | None) -> str | None:
    return text[:MAX_TEXT] if text else None


def _retry_job(jobs: dict[int, str], due: dt.datetime) -> str:
    """Retries due in the same second share a job."""
    return jobs.setdefault(math.ceil(due.timestamp()), new_job_id())


def finish_attempts(
    store: Store, finished: Sequence[Finished], unsent: Sequence[Claimed] = ()
) -> list[tuple[str, dt.datetime | None]]:
    """Record the attempts and each delivery's next state in one transaction.

    ``unsent`` were claimed but not attempted (the job's time ran out): they go back to
    pending under a new job. Returns the jobs to enqueue, each with when it is due.
    """
    now = utcnow()
    retry_jobs: dict[int, str] = {}
    jobs: dict[str, dt.datetime | None] = {}
    attempts, updates = [], []
    for done in finished:
        row, attempt = done.claimed.delivery, done.attempt
        attempts.append(
            {
                "delivery_pk": row.id,
                "attempted_at": attempt.attempted_at,
                "status_code": attempt.status_code,
                "latency_ms": attempt.latency_ms,
                "error": _clip(attempt.error),
                "detail": _clip(attempt.detail),
            }
        )
        job_id = None
        if done.status == PENDING:
            due = done.next_attempt_at or now
            job_id = _retry_job(retry_jobs, due)
            jobs[job_id] = due
        updates.append(
            {
                "id": row.id,
                "attempts": row.attempts + 1,
                "round_attempts": 0 if attempt.ok else row.round_attempts + 1,
                "status": done.status,
                "last_error": _clip(done.last_error or attempt.error),
                "next_attempt_at": done.next_attempt_at,
                "job_id": job_id,
                "updated_at": now,
            }
        )
    if unsent:
        job_id = new_job_id()
        jobs[job_id] = None
        updates.extend(
            {
                "id": claimed.delivery.id,
                "attempts": claimed.delivery.attempts,
                "round_attempts": claimed.delivery.round_attempts,
                "status": PENDING,
                "last_error": claimed.delivery.last_error,
                "next_attempt_at": now,
                "job_id": job_id,
                "updated_at": now,
            }
            for claimed in unsent
        )
    with store.transaction() as session:
        if attempts:
            session.execute(insert(DeliveryAttemptRow), attempts)
        if updates:
            session.execute(update(DeliveryRow), updates)
        for done in finished:
            if done.disable_reason is not None:
                _disable(session, done.claimed.handler.id, done.disable_reason)
    return list(jobs.items())


def _disable(session: Session, handler_pk: int, reason: str) -> None:
    """Disable the handler and hold its pending deliveries until an operator enables it."""
    handler = session.get_one(HandlerConfigRow, handler_pk)
    handler.enabled, handler.disabled_reason = False, reason[:MAX_TEXT]
    session.execute(
        update(DeliveryRow)
        .where(DeliveryRow.handler_pk == handler_pk, DeliveryRow.status == PENDING)
        .values(status=HELD, job_id=None, last_error=_disabled(reason))
    )


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


def restart_stalled(
    store: Store, delivery_pks: Sequence[int], old_job_id: str | None
) -> tuple[str, int]:
    """Give deliveries whose job was lost one new job; returns it and how many it carries.

    Deliveries that moved on meanwhile (attempted, redelivered) are left alone.
    """
    job_id = new_job_id()
    with store.transaction() as session:
        moved = session.execute(
            update(DeliveryRow)
            .where(
                DeliveryRow.id.in_(delivery_pks),
                DeliveryRow.status.in_((PENDING, DELIVERING)),
                DeliveryRow.job_id == old_job_id
                if old_job_id is not None
                else DeliveryRow.job_id.is_(None),
            )
            .values(status=PENDING, job_id=job_id, next_attempt_at=utcnow())
        )
        return job_id, int(moved.rowcount)  # type: ignore[attr-defined]
