"""``hma scheduler``: periodic jobs on RQ's own cron scheduler.

RQ's cron enqueues with its default serializer; our workers read JSON, so the cron jobs here
enqueue through the same JSON queues as everything else.

Exactly one scheduler enqueues at a time, fleet-wide: each holds a Redis lease while it leads
and others stand by, taking over within one lease lifetime when the leader dies. Two
``hma serve`` hosts (or a scheduler started twice by mistake) never double the periodic work.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from hma_framework.logging_setup import library_level
from hma_framework.pipeline.leases import Lease
from hma_framework.pipeline.queues import queue_name
from hma_framework.settings import QUEUE_NAMES, Settings

log = logging.getLogger(__name__)

LEADER_KEY = "hma:scheduler:leader"
LEASE_SECONDS = 30.0
#: How often due retries move back onto their queues (RQ's own scheduler uses 1 s).
RETRY_MOVE_INTERVAL_SECONDS = 1.0


@attrs.frozen
class PeriodicJob:
    """A job the scheduler enqueues every ``interval_seconds`` on the queue of ``role``.

    Named by its dotted path, not imported: the scheduler process needs only Redis, so it
    stays a small process instead of loading every plugin, the records and the indexes.
    """

    func_name: str
    role: str
    interval_seconds: int


def periodic_jobs(settings: Settings) -> tuple[PeriodicJob, ...]:
    """What runs on a schedule. Later stages (reconcile, exchange fetches) add theirs here."""
    return (
        PeriodicJob(
            "hma_framework.pipeline.maintenance.heartbeat", "maintenance", interval_seconds=30
        ),
        PeriodicJob(
            "hma_framework.pipeline.reconcile.reconcile",
            "maintenance",
            interval_seconds=settings.pipeline.reconcile_interval_seconds,
        ),
        PeriodicJob(
            "hma_framework.actions.delivering.reconcile_deliveries",
            "maintenance",
            interval_seconds=settings.pipeline.reconcile_interval_seconds,
        ),
        PeriodicJob(
            "hma_framework.exchanges.fetching.enqueue_due_fetches",
            "maintenance",
            interval_seconds=settings.exchanges.schedule_tick_seconds,
        ),
        PeriodicJob(
            "hma_framework.retroaction.automatic.retroact",
            "retroact",
            interval_seconds=settings.retroaction.sweep_interval_seconds,
        ),
        PeriodicJob(
            "hma_framework.pipeline.maintenance.snapshot_indexes",
            "maintenance",
            interval_seconds=settings.index.snapshot_interval_seconds,
        ),
    )


class JsonCronJob(CronJob):
    """A cron job that enqueues with RQ's JSON serializer."""

    def enqueue(self, connection: Redis) -> Job:
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        return queue.enqueue(self.func_name, args=self.args, kwargs=self.kwargs, **self.job_options)


class LeaderCronScheduler(CronScheduler):
    """RQ's cron scheduler that enqueues only while it holds the fleet-wide leader lease.

    The lease is renewed every loop, and the loop never sleeps longer than a third of the
    lease, so a live leader keeps it and a standby notices a dead one's lease expire.
    """

    def __init__(
        self, connection: Redis, lease: Lease, *, move_due_retries: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(connection=connection, **kwargs)
        self.lease = lease
        self.leading = False
        # Retries wait in RQ's scheduled-job registries until due. RQ's own mover runs in a
        # process each worker forks; here it runs in this loop instead, under RQ's per-queue
        # locks, so a worker whose host runs a scheduler need not fork one.
        self.retries: RQScheduler | None = (
            RQScheduler(
                [queue_name(role) for role in QUEUE_NAMES],
                connection=connection,
                serializer=JSONSerializer,
            )
            if move_due_retries
            else None
        )

    def enqueue_jobs(self) -> list[CronJob]:
        self._move_due_retries()
        leading = self.lease.acquire_or_renew()
        if leading != self.leading:
            self.leading = leading
            if leading:
                log.info("scheduler %s leads: it enqueues the periodic jobs", self.name)
            else:
                log.info("scheduler %s stands by: another one leads", self.name)
        if not leading:
            return []
        jobs: list[CronJob] = super().enqueue_jobs()
        return jobs

    def _move_due_retries(self) -> None:
        retries = self.retries
        if retries is None:
            return
        # RQ retries a lock it lacks only every 10 minutes; a standby here asks each loop,
        # so it takes over within a loop once the holder stops (or its lock runs out).
        if not retries.acquired_locks or retries.should_reacquire_locks:
            retries.acquire_locks()
        if retries.acquired_locks:
            retries.heartbeat()
            retries.enqueue_scheduled_jobs()

    def calculate_sleep_interval(self) -> float:
        renew_every = self.lease.ttl_ms / 1000 / 3
        if self.retries is not None and self.retries.acquired_locks:
            renew_every = min(renew_every, RETRY_MOVE_INTERVAL_SECONDS)
        return float(min(super().calculate_sleep_interval(), renew_every))

    def register_death(self, pipeline: Pipeline | None = None) -> None:
        if self.retries is not None:
            self.retries.release_locks()  # a worker's own mover may take over
        if self.leading:
            self.lease.release()  # a standby takes over at once, not after the lease expires
            self.leading = False
        super().register_death(pipeline)


def make_scheduler(
    redis: Redis,
    settings: Settings,
    jobs: tuple[PeriodicJob, ...] | None = None,
    *,
    lease_seconds: float = LEASE_SECONDS,
    move_due_retries: bool = True,
) -> LeaderCronScheduler:
    scheduler = LeaderCronScheduler(
        redis,
        Lease(redis, LEADER_KEY, lease_seconds),
        move_due_retries=move_due_retries,
        logging_level=library_level(settings.log_level),
    )
    for periodic in jobs if jobs is not None else periodic_jobs(settings):
        scheduler.get_jobs().append(
            JsonCronJob(
                queue_name=queue_name(periodic.role),
                func_name=periodic.func_name,
                interval=periodic.interval_seconds,
                job_timeout=settings.workers.job_timeout_seconds,
            )
        )
    return scheduler
