"""Nothing is lost: a worker killed mid-job, a lost Redis, transient and permanent failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import attrs
import pytest
from redis import Redis
from rq import Queue

from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.pipeline.stages import advance
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store.content import Submission
from hma_framework.testing import make_photo, run_jobs

PHOTO = make_photo(seed=11)


class _Handler(BaseHTTPRequestHandler):
    delays: dict[str, float] = {}
    statuses: dict[str, list[int]] = {}

    def do_GET(self) -> None:
        time.sleep(self.delays.get(self.path, 0))
        queued = self.statuses.get(self.path)
        status = queued.pop(0) if queued else 200
        self.send_response(status)
        self.send_header("Content-Type", "image/jpeg")
        body = PHOTO if status == 200 else b"nope"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def media_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    _Handler.delays.clear()
    _Handler.statuses.clear()


def submit_url(runtime: Runtime, content_id: str, url: str) -> int:
    _, content_pk = runtime.content.submit(
        Submission(content_id, "photo", "url", content_url=url), force=False
    )
    advance(runtime, "hash", content_pk)
    return content_pk


def status_of(runtime: Runtime, content_pk: int) -> tuple[str, str | None]:
    row = runtime.content.get_row(content_pk)
    assert row is not None
    return row.status, row.error


def test_photo_by_url_completes(
    runtime: Runtime, worker_runtime: Runtime, media_server: str
) -> None:
    content_pk = submit_url(runtime, "url-1", media_server + "/photo.jpg")
    run_jobs(worker_runtime)
    assert status_of(runtime, content_pk) == ("no_match", None)


def test_permanent_failures_mark_content_failed(
    runtime: Runtime, worker_runtime: Runtime, media_server: str
) -> None:
    _Handler.statuses["/gone.jpg"] = [404]
    missing = submit_url(runtime, "url-404", media_server + "/gone.jpg")
    private = submit_url(runtime, "url-private", "http://10.1.2.3/photo.jpg")
    run_jobs(worker_runtime)
    status, error = status_of(runtime, missing)
    assert status == "failed" and error is not None and "404" in error
    status, error = status_of(runtime, private)
    assert status == "failed" and error is not None and "10.1.2.3" in error


def _final(runtime: Runtime, content_pk: int) -> bool:
    return status_of(runtime, content_pk)[0] != "submitted"


def drain(worker: Runtime, done: Callable[[], bool], timeout: float = 30) -> None:
    """Run burst workers (whose scheduler enqueues due retries) until ``done()``."""
    deadline = time.monotonic() + timeout
    while True:
        run_jobs(worker)
        if done():
            return
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.2)


def test_transient_failures_retry_then_succeed_or_fail(
    runtime: Runtime, worker_runtime: Runtime, media_server: str
) -> None:
    _Handler.statuses["/flaky.jpg"] = [503]
    _Handler.statuses["/down.jpg"] = [503, 503, 503]
    flaky = submit_url(runtime, "url-flaky", media_server + "/flaky.jpg")
    down = submit_url(runtime, "url-down", media_server + "/down.jpg")
    run_jobs(worker_runtime)
    assert status_of(runtime, flaky)[0] == "submitted"  # waiting for its retry
    # The test settings retry once, after 1 s; a loaded machine may take longer to get there.
    drain(worker_runtime, lambda: _final(runtime, flaky) and _final(runtime, down))
    assert status_of(runtime, flaky) == ("no_match", None)
    status, error = status_of(runtime, down)
    assert status == "failed" and error is not None and "after retries" in error


def test_unreachable_url_fails_after_retries(runtime: Runtime, worker_runtime: Runtime) -> None:
    content_pk = submit_url(runtime, "url-closed", "http://127.0.0.1:9/photo.jpg")
    drain(worker_runtime, lambda: _final(runtime, content_pk))
    status, error = status_of(runtime, content_pk)
    assert status == "failed" and error is not None and "after retries" in error


def test_not_an_image_is_a_permanent_failure(runtime: Runtime, worker_runtime: Runtime) -> None:
    _, content_pk = runtime.content.submit(Submission("junk", "photo", "bytes"), force=False)
    key = runtime.media.new_key()
    runtime.media.write_bytes(key, b"this is a text file, not a photo")
    runtime.content.set_media(content_pk, key)
    advance(runtime, "hash", content_pk)
    run_jobs(worker_runtime)
    status, error = status_of(runtime, content_pk)
    assert status == "failed" and error is not None and error.startswith("hashing failed")


def test_lost_redis_loses_nothing(
    runtime: Runtime, worker_runtime: Runtime, media_server: str
) -> None:
    content_pk = submit_url(runtime, "url-lost", media_server + "/photo.jpg")
    Redis.from_url(runtime.settings.redis_url).flushdb()  # the queued job is gone
    stuck = attrs.evolve(runtime.settings.pipeline, stuck_after_seconds=1)
    impatient = build_runtime(
        attrs.evolve(runtime.settings, pipeline=stuck), registry=runtime.registry
    )
    try:
        assert reconcile_runtime(impatient)["requeued"] == 0  # not stalled yet
        time.sleep(1.2)
        assert reconcile_runtime(impatient)["requeued"] == 1
        assert reconcile_runtime(impatient)["requeued"] == 0  # its new job is queued
    finally:
        impatient.close()
    run_jobs(worker_runtime)
    assert status_of(runtime, content_pk) == ("no_match", None)


def test_job_taken_by_a_worker_that_died_before_starting_it_is_requeued(
    runtime: Runtime, worker_runtime: Runtime, media_server: str
) -> None:
    """RQ moves a job to ``<queue>:intermediate`` before marking it started.

    A worker SIGKILLed between the two leaves the job "queued" in no queue; the fault-injection
    campaign caught content stuck there (RQ's own sweep fails it only minutes later).
    """
    content_pk = submit_url(runtime, "url-taken", media_server + "/photo.jpg")
    impatient = build_runtime(
        attrs.evolve(
            runtime.settings,
            pipeline=attrs.evolve(runtime.settings.pipeline, stuck_after_seconds=1),
        ),
        registry=runtime.registry,
    )
    try:
        time.sleep(1.2)
        assert reconcile_runtime(impatient)["requeued"] == 0  # waiting in its queue: in flight
        hash_queue = runtime.queues["hash"]
        taken = Queue.dequeue_any([hash_queue], None, connection=runtime.redis)  # then "died"
        assert taken is not None and taken[0].get_status() == "queued"
        assert hash_queue.count == 0
        assert reconcile_runtime(impatient)["requeued"] == 1
        assert reconcile_runtime(impatient)["requeued"] == 0  # its new job is queued
    finally:
        impatient.close()
    run_jobs(worker_runtime)
    assert status_of(runtime, content_pk) == ("no_match", None)


def test_worker_killed_mid_job_is_recovered(settings: Settings, media_server: str) -> None:
    _Handler.delays["/slow.jpg"] = 30
    # Jobs may run 2 s: a job still "started" after that (plus a grace) has lost its worker.
    quick = attrs.evolve(
        settings,
        workers=attrs.evolve(settings.workers, job_timeout_seconds=2),
        pipeline=attrs.evolve(settings.pipeline, stuck_after_seconds=1),
    )
    runtime = build_runtime(quick)
    from hma_framework.store import migrate

    migrate.upgrade(runtime.store)
    content_pk = submit_url(runtime, "url-slow", media_server + "/slow.jpg")
    env = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "hash,match,action"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if runtime.queues["hash"].started_job_registry.count:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never started the job")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
    try:
        assert status_of(runtime, content_pk)[0] == "submitted"
        assert reconcile_runtime(runtime)["requeued"] == 0  # its job may still be running
        _Handler.delays.clear()
        time.sleep(4.5)  # past the job's timeout and the grace
        assert reconcile_runtime(runtime)["requeued"] == 1
        run_jobs(build_runtime(settings, registry=runtime.registry))  # a restarted worker
        assert status_of(runtime, content_pk) == ("no_match", None)
    finally:
        runtime.close()
