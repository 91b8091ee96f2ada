"""``hma worker``: RQ workers that build the runtime once and run every job in-process.

The worker is an ``rq.SimpleWorker``: it does not fork per job, so per-process state (the
database pool, the index a match worker keeps warm) is built once and reused. Jobs reach it
through :func:`hma_framework.pipeline.context.current_runtime`.

A heartbeat thread tells reconcile this process is alive (see ``liveness``). When Redis goes
away, RQ's loop gives up; rather than exit and be restarted in a tight loop by ``hma serve``,
the worker waits for Redis with backoff and starts serving again.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework import log_context
from hma_framework.logging_setup import library_level
from hma_framework.pipeline.context import set_current_runtime
from hma_framework.pipeline.liveness import WorkerHeartbeat, heartbeat_interval
from hma_framework.process_tools import forks_die_with_parent
from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)

#: Waits between attempts to reach a lost Redis: doubling from the first to the last.
REDIS_BACKOFF_FIRST_SECONDS = 0.5
REDIS_BACKOFF_MAX_SECONDS = 10.0


class HmaWorker(SimpleWorker):
    """RQ's in-process worker: ids bound per job, a quick command listener, stoppable offline.

    Each job runs with the request and content ids it carries bound for its log lines. RQ's
    commands are polled every second instead of every 60 s: a worker that stops before its
    listener thread has seen the subscription otherwise waits out the whole poll (a burst
    worker sometimes took a minute to exit). And RQ's stop handler asks Redis whether the
    worker is busy; with Redis gone that raised inside the handler, the stop was lost, and the
    worker retried Redis forever: a killed ``hma serve`` left such workers behind.
    """

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        with log_context.bound_from(job.meta or {}):
            return bool(super().perform_job(job, queue, execution))

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def request_stop(self, signum: Any, frame: Any) -> None:
        _stop_signalled.set()  # first: whatever RQ does next may fail with Redis gone
        try:
            super().request_stop(signum, frame)
        except (RedisConnectionError, RedisTimeoutError):
            self._stop_requested = True
            raise StopRequested() from None

    def request_force_stop(self, signum: int, frame: Any) -> None:
        _stop_signalled.set()
        super().request_force_stop(signum, frame)


#: Set by any stop signal this process receives, whichever worker object's handler took it.
_stop_signalled = threading.Event()


def make_worker(runtime: Runtime, roles: Sequence[str], name: str | None = None) -> SimpleWorker:
    return HmaWorker(
        runtime.queues.select(roles),
        connection=runtime.redis,
        serializer=JSONSerializer,
        name=name,
    )


def _wait_for_redis(runtime: Runtime, stop: threading.Event) -> bool:
    """Back off until Redis answers; False if a stop signal came first."""
    wait = REDIS_BACKOFF_FIRST_SECONDS
    if stop.is_set():
        return False
    previous = {
        signum: signal.signal(signum, lambda *_args: stop.set())
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not stop.wait(wait):
            try:
                runtime.redis.ping()
                return True
            except (RedisConnectionError, RedisTimeoutError):
                wait = min(wait * 2, REDIS_BACKOFF_MAX_SECONDS)
        return False
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_worker(
    runtime: Runtime, roles: Sequence[str], *, burst: bool = False, name: str | None = None
) -> bool:
    """Serve ``roles`` until stopped (or, with ``burst``, until the queues are empty)."""
    runtime.roles = tuple(roles)
    set_current_runtime(runtime)
    forks_die_with_parent()  # RQ's scheduler process must not outlive a killed worker
    heartbeat = WorkerHeartbeat(runtime.redis, heartbeat_interval(runtime.settings))
    stop = _stop_signalled
    stop.clear()
    worked = False
    try:
        while not stop.is_set():
            worker = make_worker(runtime, roles, name=name)
            heartbeat.track(worker.name)
            log.info("worker %s serving queues %s", worker.name, ", ".join(roles))
            try:
                worked = (
                    worker.work(
                        burst=burst,
                        with_scheduler=runtime.settings.workers.move_due_retries,
                        logging_level=library_level(runtime.settings.log_level),
                    )
                    or worked
                )
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("worker %s lost Redis: %s", worker.name, exc)
                if _stop_was_requested(worker):
                    return worked
            except StopRequested:
                return worked
            else:
                if burst or _stop_was_requested(worker) or _redis_answers(runtime):
                    return worked
                log.warning("worker %s stopped serving: Redis is unreachable", worker.name)
            if burst or not _wait_for_redis(runtime, stop):
                return worked
            log.info("Redis answers again; restarting the worker")
        return worked
    finally:
        heartbeat.stop()
        set_current_runtime(None)


def _stop_was_requested(worker: SimpleWorker) -> bool:
    """Whether SIGTERM/SIGINT reached the worker: RQ notes the time before it asks Redis
    anything, so this holds even when Redis vanished with the signal (a killed serve)."""
    return bool(
        _stop_signalled.is_set()
        or worker._stop_requested
        or worker._shutdown_requested_date is not None
    )


def _redis_answers(runtime: Runtime) -> bool:
    try:
        runtime.redis.ping()
    except (RedisConnectionError, RedisTimeoutError):
        return False
    return True
