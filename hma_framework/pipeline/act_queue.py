"""Matched content waits in a Redis set for the act stage; one job acts on many at once.

Acting on each matched content in a job of its own cost two RQ round trips and two database
transactions per action, which at a flood of matches was most of the work. Instead, whoever
records content as matched adds its id to ``PENDING_KEY`` and makes sure an act job is on
its way (``JOB_KEY`` holds the id of the one waiting in the queue, so a burst of matches
enqueues a single job). The job, once started, clears ``JOB_KEY`` (a match after that starts
another job) and takes ids off the set ``BATCH`` at a time, acting on each batch in one
transaction (:func:`~hma_framework.pipeline.acting.act_many`).

Nothing is lost with Redis: the database says the content is matched. Reconcile leaves
content waiting in the set to the act job (starting one if none is coming) and re-enqueues
any other matched content that stopped moving, as for every stage.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Collection

from rq import Retry

from hma_framework.pipeline.acting import act_many
from hma_framework.pipeline.context import current_runtime
from hma_framework.pipeline.liveness import job_in_flight
from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)

PENDING_KEY = "hma:act-pending"
JOB_KEY = "hma:act-job"
#: Contents acted on per transaction.
BATCH = 200
#: An act job that has run this long leaves the rest of the set to a new job at the back of
#: the queue, so deliveries queued meanwhile are not held up behind a long backlog.
BUDGET_SECONDS = 2.0

# Clear JOB_KEY only if it still names this job (another may be waiting already).
_CLEAR_IF_MINE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def _new_job_id() -> str:
    return f"act-{secrets.token_hex(4)}"  # like the stages' job ids


def _enqueue(runtime: Runtime, job_id: str) -> None:
    intervals = list(runtime.settings.pipeline.retry_intervals_seconds)
    runtime.queues["action"].enqueue(
        act_pending,
        job_id,
        job_id=job_id,
        retry=Retry(max=len(intervals), interval=intervals),
        result_ttl=300,
        failure_ttl=7 * 24 * 3600,
    )


def queue_for_action(runtime: Runtime, content_pks: Collection[int]) -> None:
    """Have an act job take these contents; call after the database records them matched."""
    job_id = _new_job_id()
    pipe = runtime.redis.pipeline(transaction=True)
    if content_pks:
        pipe.sadd(PENDING_KEY, *content_pks)
    pipe.set(JOB_KEY, job_id, nx=True)
    if pipe.execute()[-1]:  # no act job was waiting: this one is
        _enqueue(runtime, job_id)


def act_pending(job_id: str) -> dict[str, int]:
    """The act job: act on the contents waiting in the set, a batch at a time."""
    runtime = current_runtime()
    runtime.redis.eval(_CLEAR_IF_MINE, 1, JOB_KEY, job_id)
    started = time.monotonic()
    totals = {"actioned": 0, "skipped": 0, "deliveries": 0}
    while popped := runtime.redis.spop(PENDING_KEY, BATCH):
        content_pks = sorted(int(pk) for pk in popped)
        try:
            acted = act_many(runtime, content_pks)
        except Exception:
            runtime.redis.sadd(PENDING_KEY, *content_pks)  # for this job's retry, or another
            raise
        totals["actioned"] += acted.actioned
        totals["skipped"] += acted.skipped
        totals["deliveries"] += acted.deliveries
        if time.monotonic() - started > BUDGET_SECONDS:
            queue_for_action(runtime, ())  # the rest to a job at the back of the queue
            break
    return totals


def waiting(runtime: Runtime, content_pk: int) -> bool:
    """Whether the content waits in the set (an act job takes it; see ``kick``)."""
    return bool(runtime.redis.sismember(PENDING_KEY, str(content_pk)))


def kick(runtime: Runtime, now: dt.datetime) -> bool:
    """Reconcile: start an act job if contents wait in the set and none is coming."""
    if not runtime.redis.scard(PENDING_KEY):
        return False
    queued = runtime.redis.get(JOB_KEY)
    if queued is not None and job_in_flight(runtime, queued.decode(), now):  # type: ignore[union-attr]
        return False
    job_id = _new_job_id()
    runtime.redis.set(JOB_KEY, job_id)
    log.warning("contents wait for an act job and none is coming; enqueueing %s", job_id)
    _enqueue(runtime, job_id)
    return True
