"""The ``action`` queue's jobs: one attempt per job, retries scheduled as new jobs.

Each attempt is its own RQ job (``deliver(delivery id, job id)``). A failure worth retrying
schedules the next job with ``Queue.enqueue_in`` after the wait the retry schedule, jitter
and the receiver's ``Retry-After`` agree on; workers run RQ's scheduler, which enqueues it
when due. The database is written before each job is enqueued, and ``reconcile_deliveries``
re-enqueues any delivery whose job went missing, so Redis may lose work without losing an
action.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from typing import Any

import attrs
from sqlalchemy import or_, select

from hma_framework import metrics
from hma_framework.actions import deliveries as records
from hma_framework.actions.backoff import retry_wait
from hma_framework.actions.errors import InvalidActionInput
from hma_framework.actions.handlers import blank_secrets, handlers_of, ready_handler
from hma_framework.actions.outcome import DeliveryOutcome
from hma_framework.actions.writeback import (
    Opinion,
    Target,
    exchange_writers,
    opinion_requests,
    write_back,
)
from hma_framework.pipeline.context import current_runtime
from hma_framework.pipeline.liveness import job_in_flight
from hma_framework.runtime import Runtime
from hma_framework.store.tables import DeliveryRow, utcnow
from hma_framework.types import ActionOutcome

log = logging.getLogger(__name__)

RESULT_TTL = 0  # the records hold the outcome; a kept job result is only more Redis writes
FAILURE_TTL = 7 * 24 * 3600


def enqueue_attempt(
    runtime: Runtime, delivery_pk: int, job_id: str, due: dt.datetime | None = None
) -> None:
    """Put an attempt on the ``action`` queue now, or schedule it for ``due``."""
    queue = runtime.queues["action"]
    options: dict[str, Any] = {
        "job_id": job_id,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
    }
    if due is None or due <= utcnow():
        queue.enqueue(deliver, delivery_pk, job_id, **options)
        return
    # RQ's scheduler keeps whole seconds and drops the fraction, which would start the job
    # up to a second early (before a receiver's Retry-After, say): round up instead.
    at = dt.datetime.fromtimestamp(math.ceil(due.timestamp()), dt.UTC)
    queue.enqueue_at(at, deliver, delivery_pk, job_id, **options)


def _perform(runtime: Runtime, claimed: records.Claimed) -> ActionOutcome:
    try:
        handler = ready_handler(runtime, claimed.handler)
        return handler.perform(records.action_request(claimed.delivery))
    except InvalidActionInput as exc:  # the stored config no longer fits the handler type
        return ActionOutcome(ok=False, detail=f"handler cannot be built: {exc}")
    except Exception as exc:  # a handler bug must not leave the delivery in limbo
        log.exception("handler %s raised", claimed.handler.name)
        return ActionOutcome(ok=False, retry=True, detail=f"handler raised {exc!r}"[:500])


def _write_back(runtime: Runtime, delivery: DeliveryRow) -> str | None:
    opinion = delivery.request.get("write_back")
    if not opinion:
        return None
    targets = [
        Target(m["member_id"], m["signal_type"], m["signal_value"])
        for m in delivery.request["matches"]
    ]
    requests = opinion_requests(
        runtime.store, Opinion(opinion), delivery.request["content_id"], targets
    )
    lines = write_back(exchange_writers(runtime), requests)
    return f"write-back {opinion}: " + ("; ".join(lines) or "no exchange-fed matches")


def deliver(delivery_pk: int, job_id: str) -> str:
    """Attempt one delivery once; record the attempt and what happens next."""
    runtime = current_runtime()
    claimed = records.claim(runtime.store, delivery_pk, job_id)
    if isinstance(claimed, str):
        return claimed
    attempted_at = utcnow()
    started = time.perf_counter()
    outcome = _perform(runtime, claimed)
    latency_ms = round((time.perf_counter() - started) * 1000)
    # A receiver that echoes what it got (an Authorization header) must not put a secret
    # into records that read-scope keys can see.
    secret_values = handlers_of(runtime).secrets(claimed.handler)
    outcome = attrs.evolve(outcome, detail=blank_secrets(outcome.detail, secret_values))
    detail = outcome.detail or None
    if outcome.ok and (written := _write_back(runtime, claimed.delivery)):
        detail = f"{detail}; {written}" if detail else written
    status_code = outcome.status_code if isinstance(outcome, DeliveryOutcome) else None
    attempt = records.Attempt(
        attempted_at=attempted_at,
        latency_ms=latency_ms,
        ok=outcome.ok,
        status_code=status_code,
        error=None if outcome.ok else (outcome.detail or "failed"),
        detail=detail if outcome.ok else None,
    )
    status, wait, disable_reason = _next_step(runtime, claimed, outcome)
    next_at = utcnow() + dt.timedelta(seconds=wait) if wait is not None else None
    last_error = attempt.error
    if status == records.FAILED:  # say that it gave up, and why
        tries = claimed.delivery.round_attempts + 1
        why = f"after {tries} attempts" if outcome.retry else "as retrying cannot help"
        last_error = f"gave up {why}: {attempt.error}"
    next_job = records.finish_attempt(
        runtime.store, claimed, attempt, status, next_at, disable_reason, last_error
    )
    metrics.observe_delivery_attempt(
        claimed.handler.name, outcome.ok, retrying=status == records.PENDING
    )
    if next_job is not None:
        enqueue_attempt(runtime, delivery_pk, next_job, next_at)
    return status


def _next_step(
    runtime: Runtime, claimed: records.Claimed, outcome: ActionOutcome
) -> tuple[str, float | None, str | None]:
    """The delivery's next status, the wait before another attempt, why to disable."""
    if outcome.ok:
        return records.SUCCEEDED, None, None
    if isinstance(outcome, DeliveryOutcome) and outcome.disable_handler:
        reason = f"{outcome.detail or 'the endpoint is gone'} (at {utcnow().isoformat()})"
        return records.HELD, None, reason
    if not outcome.retry:
        return records.FAILED, None, None
    retry_after = outcome.retry_after_seconds if isinstance(outcome, DeliveryOutcome) else None
    failures = claimed.delivery.round_attempts + 1
    wait = retry_wait(runtime.settings.actions, failures, retry_after)
    if wait is None:
        return records.FAILED, None, None
    return records.PENDING, wait, None


# --- reconcile -----------------------------------------------------------------------------------


def reconcile_deliveries_runtime(runtime: Runtime, limit: int = 1000) -> dict[str, int]:
    """Re-enqueue deliveries due long ago whose job is neither waiting nor running."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=runtime.settings.actions.stuck_after_seconds)
    query = (
        select(DeliveryRow.id, DeliveryRow.job_id)
        .where(
            or_(
                (DeliveryRow.status == records.PENDING) & (DeliveryRow.next_attempt_at < cutoff),
                # An attempt whose worker died is noticed by its heartbeat (job_in_flight),
                # not after the whole job timeout.
                (DeliveryRow.status == records.DELIVERING) & (DeliveryRow.updated_at < cutoff),
            )
        )
        .order_by(DeliveryRow.id)
        .limit(limit)
    )
    with runtime.store.reading() as session:
        stalled = session.execute(query).all()
    requeued = 0
    for delivery_pk, job_id in stalled:
        if job_in_flight(runtime, job_id, now):
            continue
        new_job = records.restart_stalled(runtime.store, delivery_pk, job_id)
        if new_job is not None:
            log.warning("delivery %d lost its job %s; re-enqueueing", delivery_pk, job_id)
            enqueue_attempt(runtime, delivery_pk, new_job)
            requeued += 1
    return {"requeued_deliveries": requeued}


def reconcile_deliveries() -> dict[str, int]:
    """The periodic job (maintenance queue)."""
    return reconcile_deliveries_runtime(current_runtime())
