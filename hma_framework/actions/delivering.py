"""The ``action`` queue's deliver jobs: a batch of attempts per job, retries as new jobs.

A deliver job (``deliver_batch(job id)``) carries the deliveries recorded under its id, mostly
one handler's (see ``deliveries.JOB_BATCH``): it claims them in one transaction, sends them one
after another over the handler's pooled connections, and records the attempts in a
transaction every ``FLUSH_SECONDS``. A job that has run for ``BATCH_SECONDS`` hands what it
has not sent to a new job at the back of the queue: a slow receiver then holds a worker for
one request at a time, and the deliveries of other handlers queued behind it go first.

A failure worth retrying schedules the next attempt with ``Queue.enqueue_at`` after the wait
the retry schedule, jitter and the receiver's ``Retry-After`` agree on; workers run RQ's
scheduler, which enqueues it when due. The database is written before each job is enqueued,
and ``reconcile_deliveries`` re-enqueues any delivery whose job went missing, so Redis may
lose work without losing an action.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence
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


#: A deliver job gives what it has not sent to a new job after this long (see above).
BATCH_SECONDS = 1.0
#: How often a running batch records the attempts it has made so far.
FLUSH_SECONDS = 0.5


def enqueue_deliveries(runtime: Runtime, job_id: str, due: dt.datetime | None = None) -> None:
    """Put a deliver job on the ``action`` queue now, or schedule it for ``due``."""
    queue = runtime.queues["action"]
    options: dict[str, Any] = {
        "job_id": job_id,
        "result_ttl": RESULT_TTL,
        "failure_ttl": FAILURE_TTL,
    }
    if due is None or due <= utcnow():
        queue.enqueue(deliver_batch, job_id, **options)
        return
    # RQ's scheduler keeps whole seconds and drops the fraction, which would start the job
    # up to a second early (before a receiver's Retry-After, say): round up instead.
    at = dt.datetime.fromtimestamp(math.ceil(due.timestamp()), dt.UTC)
    queue.enqueue_at(at, deliver_batch, job_id, **options)


def enqueue_created(runtime: Runtime, created: list[tuple[int, str]]) -> None:
    """One deliver job per job id among newly recorded ``(delivery id, job id)`` pairs."""
    for job_id in dict.fromkeys(job_id for _, job_id in created):
        enqueue_deliveries(runtime, job_id)


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


def _attempt(runtime: Runtime, claimed: records.Claimed) -> records.Finished:
    """Attempt one delivery once; say what it did and what happens next."""
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
    metrics.observe_delivery_attempt(
        claimed.handler.name, outcome.ok, retrying=status == records.PENDING
    )
    return records.Finished(claimed, attempt, status, next_at, disable_reason, last_error)


def _record(
    runtime: Runtime, finished: list[records.Finished], unsent: Sequence[records.Claimed] = ()
) -> None:
    for job_id, due in records.finish_attempts(runtime.store, finished, unsent):
        enqueue_deliveries(runtime, job_id, due)


def deliver_batch(job_id: str) -> str:
    """Attempt each delivery this job carries once; record the attempts and what comes next."""
    runtime = current_runtime()
    claimed = records.claim(runtime.store, job_id)
    if not claimed:
        return "skipped: nothing pending under this job"
    started = flushed = time.monotonic()
    finished: list[records.Finished] = []
    disabled: set[int] = set()
    unsent: list[records.Claimed] = []
    for position, item in enumerate(claimed):
        if item.handler.id in disabled:  # held with the rest of its handler's deliveries
            unsent.append(item)
            continue
        if position and time.monotonic() - started > BATCH_SECONDS:
            unsent.extend(claimed[position:])
            break
        done = _attempt(runtime, item)
        finished.append(done)
        if done.disable_reason is not None:
            disabled.add(item.handler.id)
        elif time.monotonic() - flushed > FLUSH_SECONDS:
            _record(runtime, finished)
            finished, flushed = [], time.monotonic()
    _record(runtime, finished, unsent)
    sent = len(claimed) - len(unsent)
    return f"attempted {sent} of {len(claimed)}" + (" (the rest re-queued)" if unsent else "")


def deliver(delivery_pk: int, job_id: str) -> str:
    """A deliver job of the one-delivery-per-job kind, queued before batches: same work."""
    return deliver_batch(job_id)


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
    by_job: dict[str | None, list[int]] = {}
    for delivery_pk, job_id in stalled:
        by_job.setdefault(job_id, []).append(delivery_pk)
    requeued = 0
    for job_id, delivery_pks in by_job.items():
        if job_in_flight(runtime, job_id, now):
            continue
        new_job, moved = records.restart_stalled(runtime.store, delivery_pks, job_id)
        if moved:
            log.warning("%d deliveries lost their job %s; re-enqueueing", moved, job_id)
            enqueue_deliveries(runtime, new_job)
            requeued += moved
    return {"requeued_deliveries": requeued}


def reconcile_deliveries() -> dict[str, int]:
    """The periodic job (maintenance queue)."""
    return reconcile_deliveries_runtime(current_runtime())
