"""``hma scheduler``: periodic jobs on RQ's own cron scheduler.

RQ's cron enqueues with its default serializer; our workers read JSON, so the cron jobs here
enqueue through the same JSON queues as everything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework.actions import delivering
from hma_framework.pipeline import maintenance, reconcile
from hma_framework.pipeline.queues import queue_name
from hma_framework.retroaction import automatic
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings


@attrs.frozen
class PeriodicJob:
    func: Callable[..., Any]
    role: str
    interval_seconds: int


def periodic_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """What runs on a schedule. Later stages (reconcile, exchange fetches) add theirs here."""
    return (
        PeriodicJob(maintenance.heartbeat, "maintenance", interval_seconds=30),
        PeriodicJob(
            reconcile.reconcile,
            "maintenance",
            interval_seconds=settings.pipeline.reconcile_interval_seconds,
        ),
        PeriodicJob(
            delivering.reconcile_deliveries,
            "maintenance",
            interval_seconds=settings.pipeline.reconcile_interval_seconds,
        ),
        PeriodicJob(
            automatic.retroact,
            "retroact",
            interval_seconds=settings.retroaction.sweep_interval_seconds,
        ),
        PeriodicJob(
            maintenance.snapshot_indexes,
            "maintenance",
            interval_seconds=settings.index.snapshot_interval_seconds,
        ),
    )


class JsonCronJob(CronJob):
    """A cron job that enqueues with RQ's JSON serializer."""

    def enqueue(self, connection: Redis) -> Job:
        if self.func is None:
            raise ValueError("a periodic job needs a function")
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        return queue.enqueue(self.func, args=self.args, kwargs=self.kwargs, **self.job_options)


def make_scheduler(runtime: Runtime, jobs: tuple[PeriodicJob, ...] | None = None) -> CronScheduler:
    scheduler = CronScheduler(connection=runtime.redis, logging_level=runtime.settings.log_level)
    for periodic in jobs if jobs is not None else periodic_jobs(runtime.settings):
        scheduler.get_jobs().append(
            JsonCronJob(
                queue_name=queue_name(periodic.role),
                func=periodic.func,
                interval=periodic.interval_seconds,
                job_timeout=runtime.settings.workers.job_timeout_seconds,
            )
        )
    return scheduler
