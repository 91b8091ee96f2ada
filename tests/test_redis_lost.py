"""Redis lost: submissions answer 503 with Retry-After and lose nothing; workers wait it out."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from redis import Redis

from hma_framework.embedded_redis import redis_server_binary
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store.content_queries import ContentQueries
from hma_framework.testing import Tokens, free_port, make_photo, run_jobs
from hma_framework.web.app import create_app


def test_submission_while_redis_is_down_is_503_recorded_and_reconciled(
    runtime: Runtime, tokens: Tokens
) -> None:
    down = build_runtime(
        attrs.evolve(runtime.settings, redis_url="redis://127.0.0.1:1/0"),
        registry=runtime.registry,
    )
    try:
        client = create_app(down).test_client()
        response = client.post(
            "/submit/bytes/",
            json={
                "content_id": "while-down",
                "content_type": "photo",
                "content_bytes": base64.b64encode(make_photo(seed=3)).decode(),
            },
            headers=Tokens.header(tokens.submit),
        )
        assert response.status_code == 503, response.get_json()
        assert int(response.headers["Retry-After"]) > 0
        assert "recorded" in response.get_json()["message"]
        ready = client.get("/status/ready")
        assert ready.status_code == 503
        assert "127.0.0.1" not in ready.get_data(as_text=True)  # no addresses for callers
        assert "Errno" not in ready.get_data(as_text=True)
    finally:
        down.close()
    content_pk = ContentQueries(runtime.store).content_pk("while-down")
    assert content_pk is not None
    row = runtime.content.get_row(content_pk)
    assert row is not None and row.status == "submitted"
    impatient = attrs.evolve(
        runtime.settings, pipeline=attrs.evolve(runtime.settings.pipeline, stuck_after_seconds=1)
    )
    time.sleep(1.1)
    healed = build_runtime(impatient, registry=runtime.registry)
    try:
        assert reconcile_runtime(healed)["requeued"] == 1
    finally:
        healed.close()
    run_jobs(build_runtime(runtime.settings, registry=runtime.registry))
    row = runtime.content.get_row(row.id)
    assert row is not None and row.status == "no_match"


class PrivateRedis:
    """A redis-server of the test's own on a free port, to stop and start at will."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                Redis.from_url(self.url).ping()
                return
            except Exception:
                assert time.monotonic() < deadline, "private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.mark.slow
def test_a_worker_waits_for_a_lost_redis_instead_of_crash_looping(
    settings: Settings, private_redis: PrivateRedis
) -> None:
    env = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": private_redis.url,
        "HMA_DATA_DIR": settings.data_dir,
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "maintenance"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        runtime = build_runtime(attrs.evolve(settings, redis_url=private_redis.url))
        try:  # Redis goes away while the worker is busy: finishing the job then fails
            busy = runtime.queues["maintenance"].enqueue("time.sleep", 1.5)
            deadline = time.monotonic() + 30
            while busy.get_status(refresh=True) != "started":
                assert time.monotonic() < deadline, "the worker never started the job"
                time.sleep(0.05)
        finally:
            runtime.close()
        private_redis.stop()
        time.sleep(4)
        assert worker.poll() is None, "the worker exited when Redis went away"
        private_redis.start()  # empty, as a restarted Redis without its file would be
        runtime = build_runtime(attrs.evolve(settings, redis_url=private_redis.url))
        try:
            job = runtime.queues["maintenance"].enqueue(
                "hma_framework.pipeline.maintenance.heartbeat"
            )
            deadline = time.monotonic() + 30
            while job.get_status(refresh=True) != "finished":
                assert time.monotonic() < deadline, f"job not run: {job.get_status()}"
                time.sleep(0.1)
        finally:
            runtime.close()
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(20)
