"""A job whose worker was SIGKILLed is re-enqueued within stuck-after plus one reconcile run."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from typing import Any

import attrs
import pytest

from hma_framework.pipeline.liveness import alive_key, job_in_flight
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.content_queries import ContentQueries
from hma_framework.testing import Tokens, run_jobs
from tests.fault_support import impatient
from tests.test_actions_support import PDQ, bank_with
from tests.test_pipeline_recovery import _Handler, media_server, status_of, submit_url

__all__ = ["media_server"]  # the fixture, used by name

pytestmark = pytest.mark.slow

STUCK_AFTER = 4
RECONCILE_EVERY = 1.0


def _worker(settings: Settings) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
        "HMA_PIPELINE_STUCK_AFTER_SECONDS": str(STUCK_AFTER),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "hash,match,action"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_job_of_a_killed_worker_is_requeued_without_waiting_for_its_timeout(
    settings: Settings, media_server: str
) -> None:
    _Handler.delays["/slow.jpg"] = 30
    impatient = attrs.evolve(
        settings, pipeline=attrs.evolve(settings.pipeline, stuck_after_seconds=STUCK_AFTER)
    )
    assert impatient.workers.job_timeout_seconds >= 600  # the default: far beyond the test
    runtime = build_runtime(impatient)
    migrate.upgrade(runtime.store)
    worker = _worker(settings)
    try:
        content_pk = submit_url(runtime, "url-killed", media_server + "/slow.jpg")
        deadline = time.monotonic() + 30
        while not runtime.queues["hash"].started_job_registry.count:
            if time.monotonic() > deadline:
                pytest.fail("the worker never started the job")
            time.sleep(0.05)
        job_id = runtime.queues["hash"].started_job_registry.get_job_ids()[0]
        worker_name = runtime.queues["hash"].fetch_job(job_id).worker_name  # type: ignore[union-attr]
        assert worker_name and runtime.redis.exists(alive_key(worker_name))
        assert reconcile_runtime(runtime)["requeued"] == 0  # alive: its job is in flight
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        killed_at = time.monotonic()
        _Handler.delays.clear()
        requeued = 0
        while not requeued and time.monotonic() - killed_at < STUCK_AFTER + 10:
            time.sleep(RECONCILE_EVERY)
            requeued = reconcile_runtime(runtime)["requeued"]
        recovered_after = time.monotonic() - killed_at
        print(f"re-enqueued {recovered_after:.1f}s after SIGKILL (stuck-after {STUCK_AFTER}s)")
        assert requeued == 1
        assert recovered_after <= STUCK_AFTER + RECONCILE_EVERY + 1  # one run, plus slack
        run_jobs(build_runtime(settings, registry=runtime.registry))  # a restarted worker
        assert status_of(runtime, content_pk) == ("no_match", None)
    finally:
        worker.kill()
        worker.wait(10)
        _Handler.delays.clear()
        runtime.close()


def test_a_retry_left_scheduled_by_a_dead_scheduler_is_requeued(
    runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    """The worker running RQ's scheduler was killed: its lock outlives it, nobody moves due
    retries to their queues for minutes, and reconcile must not count them as in flight."""
    bank_with(runtime, "known")
    response = client.post(
        "/submit/hash/",
        json={
            "content_id": "retry-orphan",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": PDQ,
        },
        headers=Tokens.header(tokens.submit),
    )
    assert response.status_code == 200, response.get_json()
    queue = runtime.queues["action"]
    (job_id,) = queue.get_job_ids()
    job = queue.fetch_job(job_id)
    assert job is not None
    queue.remove(job)  # as a failed attempt whose retry RQ scheduled, due a minute ago
    queue.schedule_job(job, dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
    assert job.get_status(refresh=True) == "scheduled"
    hasty = build_runtime(impatient(runtime.settings, 1), registry=runtime.registry)
    try:
        time.sleep(1.1)
        # matched content waits in the act set: its lost job is restarted, not each content
        result = reconcile_runtime(hasty)
        assert (result["requeued"], result["restarted_batch_jobs"]) == (0, 1)
    finally:
        hasty.close()
    queue.schedule_job(job, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60))  # not due
    assert job_in_flight(runtime, job_id, dt.datetime.now(dt.UTC))
    run_jobs(build_runtime(runtime.settings, registry=runtime.registry))
    row = runtime.content.get_row(ContentQueries(runtime.store).content_pk("retry-orphan") or 0)
    assert row is not None and row.status == "actioned"
