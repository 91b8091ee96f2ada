"""Is the worker running a job still alive? A heartbeat key per worker process says so.

RQ marks a job "started" and trusts it until its timeout (600 s by default) has passed: a
``SimpleWorker`` sends no heartbeat while its job runs, so a worker killed with SIGKILL
left its content waiting the whole timeout. Each ``hma worker`` now refreshes a short-lived
key from a background thread; reconcile treats a started job whose worker's key has expired
as lost, and re-enqueues it within ``stuck_after_seconds`` plus one reconcile interval.
Stages are idempotent, so a worker wrongly thought dead costs a no-op, never a double result.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from hma_framework.runtime import Runtime
from hma_framework.settings import Settings

log = logging.getLogger(__name__)

ALIVE_PREFIX = "hma:worker-alive:"
WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}
#: A live worker ends a job (or its timeout does) and records that within moments.
STARTED_GRACE_SECONDS = 2
#: Missed beats before a worker counts as dead (a busy CPU may delay one).
MISSED_BEATS = 3
#: A live worker marks a job it has just taken off the queue "started" within milliseconds.
TAKEN_GRACE_SECONDS = 0.5
#: RQ's scheduler moves a due job to its queue within its one-second poll; one this late has
#: no scheduler running (see ``_scheduled_but_overdue``).
SCHEDULED_GRACE_SECONDS = 10


def heartbeat_interval(settings: Settings) -> float:
    """Beat often enough that a dead worker is noticed well within ``stuck_after_seconds``."""
    return min(10.0, max(0.5, settings.pipeline.stuck_after_seconds / (MISSED_BEATS + 1)))


def alive_key(worker_name: str) -> str:
    return ALIVE_PREFIX + worker_name


class WorkerHeartbeat:
    """A daemon thread that keeps ``alive_key(name)`` set while this process lives."""

    def __init__(self, redis: Redis, interval: float) -> None:
        self.redis = redis
        self.interval = interval
        self.name: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def track(self, worker_name: str) -> None:
        """Beat for ``worker_name`` (a restarted RQ worker gets a new name)."""
        self.name = worker_name
        self.beat()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hma-heartbeat", daemon=True)
            self._thread.start()

    def beat(self) -> None:
        if self.name is None:
            return
        try:
            ttl_ms = int(self.interval * MISSED_BEATS * 1000)
            self.redis.set(alive_key(self.name), os.getpid(), px=ttl_ms)
        except RedisError as exc:  # Redis is down: the worker's own loop deals with that
            log.debug("heartbeat not recorded: %s", exc)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)
        if self.name is not None:
            with contextlib.suppress(RedisError):
                self.redis.delete(alive_key(self.name))


def job_in_flight(runtime: Runtime, job_id: str | None, now: dt.datetime) -> bool:
    """Whether ``job_id`` is still waiting in a queue or running on a live worker."""
    if not job_id:
        return False
    try:
        job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED and _taken_but_never_started(runtime, job):
        log.warning(
            "job %s was taken off its queue by a worker that died before starting it", job_id
        )
        return False
    if status == JobStatus.SCHEDULED and _scheduled_but_overdue(runtime, job, now):
        log.warning("job %s is overdue: no RQ scheduler is moving it to its queue", job_id)
        return False
    if status in WAITING:
        return True
    if status != JobStatus.STARTED or job.started_at is None:
        return False
    if job.worker_name and not runtime.redis.exists(alive_key(job.worker_name)):
        log.warning("job %s was running on %s, which is gone", job_id, job.worker_name)
        return False
    # A live worker (or one from before heartbeats) ends its job by the timeout at the latest.
    timeout = job.timeout or runtime.settings.workers.job_timeout_seconds
    started = job.started_at.replace(tzinfo=dt.UTC)
    return now - started < dt.timedelta(seconds=timeout + STARTED_GRACE_SECONDS)


def _taken_but_never_started(runtime: Runtime, job: Job) -> bool:
    """A "queued" job that a worker moved to RQ's intermediate list and never started.

    RQ takes a job off its queue by moving it to ``<queue>:intermediate`` and marks it
    started a moment later. A worker killed in between leaves the job "queued" but in no
    queue; RQ's own sweep fails it only minutes later, on some worker's maintenance round.
    The intermediate list holds at most one job per busy worker, so looking there is cheap.
    """
    key = IntermediateQueue.get_intermediate_queue_key(
        Queue(job.origin, connection=runtime.redis).key
    )
    if runtime.redis.lpos(key, job.id) is None:
        return False
    time.sleep(TAKEN_GRACE_SECONDS)  # a live worker is starting it right now: give it the moment
    return job.get_status(refresh=True) == JobStatus.QUEUED


def _scheduled_but_overdue(runtime: Runtime, job: Job, now: dt.datetime) -> bool:
    """A scheduled job (a retry, a delivery's next attempt) long past its time.

    The worker whose RQ scheduler held the scheduling lock was killed: the lock outlives it by
    a minute, and the other workers try to take it over only on their ten-minute maintenance
    round, so due jobs would wait that long. Reconcile gives such content or delivery a new
    job instead; the old one, if a scheduler enqueues it later, finds its work done.
    """
    try:
        due = ScheduledJobRegistry(job.origin, connection=runtime.redis).get_scheduled_time(job)
    except NoSuchJobError:
        return False  # no longer scheduled: enqueued a moment ago
    return now - due.replace(tzinfo=dt.UTC) > dt.timedelta(seconds=SCHEDULED_GRACE_SECONDS)
