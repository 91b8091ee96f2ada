"""Structured logs: JSON lines on request, one request id from the API through its jobs."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from rq.job import Job
from rq.serializers import JSONSerializer

from hma_framework import log_context
from hma_framework.pipeline import maintenance
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, run_jobs


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_DATA_DIR": settings.data_dir,
        "PATH": "/usr/bin:/bin",
        **extra,
    }


def test_json_format_writes_one_object_per_line_and_rq_keeps_quiet(
    runtime: Runtime, settings: Settings
) -> None:
    jobs = [runtime.queues["maintenance"].enqueue(maintenance.heartbeat) for _ in range(3)]
    result = subprocess.run(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "maintenance", "--burst"],
        env=_env(settings, HMA_LOG_FORMAT="json"),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("serving queues maintenance" in entry["message"] for entry in entries)
    assert all({"time", "level", "logger", "pid", "message"} <= entry.keys() for entry in entries)
    # RQ narrates every job at INFO; that chatter stays off unless DEBUG asks for it.
    everything = result.stdout + result.stderr
    assert not any(job.id in everything for job in jobs), everything


def test_text_format_is_the_default(runtime: Runtime, settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "maintenance", "--burst"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "INFO" in result.stderr and "serving queues maintenance" in result.stderr
    assert not result.stderr.lstrip().startswith("{")


def test_a_bad_log_format_is_refused_with_the_key_named(settings: Settings) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hma_framework", "settings"],
        env=_env(settings, HMA_LOG_FORMAT="xml"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "HMA_LOG_FORMAT (log_format)" in result.stderr


def test_request_id_is_echoed_and_carried_into_the_jobs_a_request_enqueues(
    client: Any, tokens: Tokens, runtime: Runtime
) -> None:
    response = client.post(
        "/submit/url/",
        json={
            "content_id": "post-1",
            "content_type": "photo",
            "content_url": "http://127.0.0.1:9/none.jpg",
        },
        headers={**tokens.header(tokens.submit), "X-Request-ID": "req-42.a:b"},
    )
    assert response.status_code == 200, response.json
    assert response.headers["X-Request-ID"] == "req-42.a:b"
    (job,) = runtime.queues["hash"].get_jobs()
    assert job.meta["request_id"] == "req-42.a:b"
    assert job.meta["content_id"] == "post-1"


def test_unsafe_or_missing_request_ids_are_replaced(client: Any, tokens: Tokens) -> None:
    for sent in (None, "x" * 129, "bad;line<x>", "spaces are not ok"):
        headers = tokens.header(tokens.read)
        if sent is not None:
            headers["X-Request-ID"] = sent
        response = client.get("/plugins", headers=headers)
        echoed = response.headers["X-Request-ID"]
        assert echoed != sent and len(echoed) == 24
        int(echoed, 16)
    # Refused requests carry one too, so a client can quote it when asking why.
    assert client.get("/plugins").headers["X-Request-ID"]


def test_a_worker_runs_each_job_with_the_ids_it_carries(runtime: Runtime) -> None:
    log_context.bind(request_id="req-7", content_id="post-7")
    try:
        job = runtime.queues["maintenance"].enqueue(log_context.current)
    finally:
        log_context.clear()
    bare = runtime.queues["maintenance"].enqueue(log_context.current)
    run_jobs(runtime, ["maintenance"])
    seen = Job.fetch(job.id, connection=runtime.redis, serializer=JSONSerializer)
    assert seen.return_value() == {"request_id": "req-7", "content_id": "post-7"}
    # Ids do not leak from one job into the next.
    assert (
        Job.fetch(bare.id, connection=runtime.redis, serializer=JSONSerializer).return_value() == {}
    )
