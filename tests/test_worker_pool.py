"""`hma worker --processes N`: workers forked from one process, re-forked when they die."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import psutil
import pytest
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework.pipeline import maintenance
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings

pytestmark = pytest.mark.slow


def _env(settings: Settings) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("HMA_")},
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_LOG_LEVEL": "WARNING",
    }


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _worker_pids(runtime: Runtime) -> set[int]:
    return {w.pid for w in Worker.all(connection=runtime.redis) if w.pid}


def test_a_pool_forks_its_workers_reforks_the_dead_and_stops_them_all(
    runtime: Runtime, settings: Settings
) -> None:
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hma_framework",
            "worker",
            "--queues",
            "maintenance",
            "--processes",
            "2",
        ],
        env=_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: len(_worker_pids(runtime)) == 2, "two workers")
        first = _worker_pids(runtime)
        children = {child.pid for child in psutil.Process(pool.pid).children()}
        assert first <= children  # forked by the pool, not started on their own
        jobs = [runtime.queues["maintenance"].enqueue(maintenance.heartbeat) for _ in range(6)]

        def done() -> bool:
            return all(
                Job.fetch(j.id, connection=runtime.redis, serializer=JSONSerializer).is_finished
                for j in jobs
            )

        _wait_for(done, "the jobs to finish")
        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        # RQ keeps a killed worker's registration until it expires: look at the pool's children.
        _wait_for(
            lambda: (
                len(psutil.Process(pool.pid).children()) == 2
                and victim not in {c.pid for c in psutil.Process(pool.pid).children()}
            ),
            "the pool to fork a replacement",
        )
        assert pool.poll() is None
        replacement = {c.pid for c in psutil.Process(pool.pid).children()} - first
        _wait_for(lambda: replacement <= _worker_pids(runtime), "the replacement to register")
        pool.send_signal(signal.SIGTERM)
        assert pool.wait(60) == 0
        assert not any(psutil.pid_exists(pid) for pid in replacement | first - {victim})
    finally:
        pool.kill()
        pool.wait(10)


def test_processes_above_one_refuse_burst(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hma_framework", "worker", "--processes", "2", "--burst"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "no --burst/--name" in done.stderr
