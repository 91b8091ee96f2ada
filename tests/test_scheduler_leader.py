"""Exactly one scheduler enqueues periodic jobs, however many are started (real Redis)."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import time

from hma_framework.pipeline.leases import Lease
from hma_framework.pipeline.scheduler import (
    LEADER_KEY,
    PeriodicJob,
    make_scheduler,
    periodic_jobs,
)
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import heavy_modules_imported_by

HEARTBEAT_ONLY = (
    PeriodicJob(
        "hma_framework.pipeline.maintenance.heartbeat", "maintenance", interval_seconds=3600
    ),
)


def test_lease_is_held_by_one_owner_until_released_or_expired(runtime: Runtime) -> None:
    first = Lease(runtime.redis, "hma:test:lease", ttl_seconds=0.5)
    second = Lease(runtime.redis, "hma:test:lease", ttl_seconds=0.5)
    assert first.acquire_or_renew()
    assert not second.acquire_or_renew()
    assert first.acquire_or_renew()  # renewing our own lease works
    second.release()  # releasing someone else's lease does nothing
    assert first.holder() == first.token
    first.release()
    assert second.acquire_or_renew()
    time.sleep(0.7)  # the owner stopped renewing: the lease expires
    assert first.acquire_or_renew()


def test_a_standby_scheduler_enqueues_nothing_until_the_leader_is_gone(runtime: Runtime) -> None:
    leader = make_scheduler(runtime.redis, runtime.settings, HEARTBEAT_ONLY, lease_seconds=1)
    standby = make_scheduler(runtime.redis, runtime.settings, HEARTBEAT_ONLY, lease_seconds=1)
    assert [job.func_name for job in leader.enqueue_jobs()] == [HEARTBEAT_ONLY[0].func_name]
    assert standby.enqueue_jobs() == []
    assert runtime.queues["maintenance"].count == 1
    assert standby.calculate_sleep_interval() <= 1 / 3 + 1e-9  # checks often enough to notice
    time.sleep(1.2)  # the leader died without a word: its lease runs out
    assert [job.func_name for job in standby.enqueue_jobs()] == [HEARTBEAT_ONLY[0].func_name]
    assert leader.enqueue_jobs() == []  # the old leader came back: it stands by now
    assert runtime.queues["maintenance"].count == 2


def test_a_stopping_leader_hands_over_at_once(runtime: Runtime) -> None:
    leader = make_scheduler(runtime.redis, runtime.settings, HEARTBEAT_ONLY, lease_seconds=60)
    standby = make_scheduler(runtime.redis, runtime.settings, HEARTBEAT_ONLY, lease_seconds=60)
    leader.register_birth()
    assert leader.enqueue_jobs()
    assert standby.enqueue_jobs() == []
    leader.register_death()
    assert standby.enqueue_jobs()


def test_two_scheduler_processes_enqueue_each_periodic_job_once(
    runtime: Runtime, settings: Settings
) -> None:
    env = {
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_DATA_DIR": settings.data_dir,
        "PATH": "/usr/bin:/bin",
    }
    argv = [sys.executable, "-m", "hma_framework", "scheduler"]
    processes = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        deadline = time.monotonic() + 30
        while runtime.redis.get(LEADER_KEY) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(3)  # both schedulers have looped at least once by now
        queued = [job for queue in runtime.queues.all() for job in queue.get_jobs()]
        names = sorted(job.func_name for job in queued)
        # Every periodic job is due at start; one leader enqueued each exactly once.
        expected = {job.func_name for job in periodic_jobs(settings)}
        assert sorted(names) == sorted(expected), names
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)
    assert runtime.redis.get(LEADER_KEY) is None  # the leader released its lease on exit


def test_the_scheduler_loads_neither_plugins_nor_records() -> None:
    """It only enqueues by name: a whole runtime would cost it ~60 MiB more, on every host."""
    assert heavy_modules_imported_by("hma_framework.cli", "hma_framework.pipeline.scheduler") == []


DUE_IN_SECONDS = 5


def test_the_scheduler_moves_due_retries_so_workers_need_not_fork_a_mover(
    runtime: Runtime,
) -> None:
    """A failed job's retry waits in RQ's scheduled registry; the scheduler puts it back."""
    queue = runtime.queues["maintenance"]
    # Due in 5 s: the steps before "not due yet" took over 1 s once in a loaded full run.
    due = time.monotonic() + DUE_IN_SECONDS
    job = queue.enqueue_in(dt.timedelta(seconds=DUE_IN_SECONDS), HEARTBEAT_ONLY[0].func_name)
    assert queue.count == 0 and job.id in queue.scheduled_job_registry
    idle = make_scheduler(runtime.redis, runtime.settings, (), move_due_retries=False)
    scheduler = make_scheduler(runtime.redis, runtime.settings, ())
    scheduler.register_birth()
    other = make_scheduler(runtime.redis, runtime.settings, ())
    scheduler.enqueue_jobs()
    other.enqueue_jobs()
    assert scheduler.retries is not None and scheduler.retries.acquired_locks
    assert other.retries is not None and not other.retries.acquired_locks  # RQ's lock: one mover
    assert scheduler.calculate_sleep_interval() <= 1.0
    assert queue.count == 0  # not due yet
    time.sleep(max(0.0, due - time.monotonic()) + 0.2)
    idle.enqueue_jobs()
    assert queue.count == 0
    scheduler.enqueue_jobs()
    assert queue.get_job_ids() == [job.id]
    scheduler.register_death()  # stopping hands the duty over at once
    other.enqueue_jobs()
    assert other.retries.acquired_locks
