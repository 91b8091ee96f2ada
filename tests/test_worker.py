"""Queues, workers and the scheduler on a real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework.actions import delivering
from hma_framework.exchanges import fetching
from hma_framework.pipeline import maintenance, reconcile
from hma_framework.pipeline.queues import queue_name
from hma_framework.pipeline.scheduler import make_scheduler
from hma_framework.pipeline.worker import run_worker
from hma_framework.retroaction import automatic
from hma_framework.runtime import Runtime
from hma_framework.settings import QUEUE_NAMES, Settings


def test_queues_by_role_use_the_json_serializer(runtime: Runtime) -> None:
    assert [q.name for q in runtime.queues.all()] == [queue_name(r) for r in QUEUE_NAMES]
    job = runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
    raw = runtime.redis.hget(f"rq:job:{job.id}", "data")
    assert raw is not None
    # RQ zlib-compresses the payload; inside is plain JSON any worker or tool can read.
    assert json.loads(zlib.decompress(raw))[0] == "hma_framework.pipeline.maintenance.heartbeat"


def test_worker_builds_the_runtime_once_for_all_jobs(runtime: Runtime) -> None:
    jobs = [runtime.queues["maintenance"].enqueue(maintenance.heartbeat) for _ in range(3)]
    run_worker(runtime, ["maintenance"], burst=True)
    results = [
        Job.fetch(job.id, connection=runtime.redis, serializer=JSONSerializer).return_value()
        for job in jobs
    ]
    assert all(result is not None for result in results)
    assert {result["runtime"] for result in results} == {runtime.instance_id}
    assert maintenance.last_heartbeat_age(runtime) is not None


def test_hma_worker_command_runs_queued_jobs(runtime: Runtime, settings: Settings) -> None:
    first = runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
    second = runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
    env = {
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_DATA_DIR": settings.data_dir,
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "maintenance", "--burst"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    results = [
        Job.fetch(j.id, connection=runtime.redis, serializer=JSONSerializer).return_value()
        for j in (first, second)
    ]
    assert results[0] is not None and results[1] is not None
    # One runtime built in the worker process, reused for both jobs.
    assert results[0]["runtime"] == results[1]["runtime"] != runtime.instance_id
    assert results[0]["pid"] == results[1]["pid"]


def test_scheduler_enqueues_periodic_jobs_that_workers_can_read(runtime: Runtime) -> None:
    scheduler = make_scheduler(runtime.redis, runtime.settings)
    enqueued = scheduler.enqueue_jobs()
    named = {
        maintenance.heartbeat,
        maintenance.snapshot_indexes,
        reconcile.reconcile,
        delivering.reconcile_deliveries,
        fetching.enqueue_due_fetches,
        automatic.retroact,
    }
    assert {cron.func_name for cron in enqueued} == {f"{f.__module__}.{f.__name__}" for f in named}
    queue = runtime.queues["maintenance"]
    assert queue.count == 5
    assert runtime.queues["retroact"].count == 1
    assert maintenance.last_heartbeat_age(runtime) is None
    run_worker(runtime, ["maintenance"], burst=True)
    age = maintenance.last_heartbeat_age(runtime)
    assert age is not None and age < 5
    assert scheduler.enqueue_jobs() == []  # not due again until its interval passes


def test_worker_help_lists_queues(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "hma_framework", "worker", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for role in QUEUE_NAMES:
        assert role in out


def test_burst_workers_exit_promptly(runtime: Runtime) -> None:
    """RQ's command listener once held a stopping worker for up to a minute, now and then."""
    for _ in range(10):
        runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
        started = time.monotonic()
        run_worker(runtime, ["maintenance"], burst=True)
        assert time.monotonic() - started < 10
