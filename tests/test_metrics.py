"""``GET /metrics``: Prometheus text, guarded by a key or a network, moving with the load."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hma_framework.pipeline import maintenance
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.content import Submission
from hma_framework.testing import Tokens, free_port

PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(client: Any, tokens: Tokens) -> str:
    response = client.get("/metrics", headers=tokens.header(tokens.read))
    assert response.status_code == 200, response.json
    assert response.content_type.startswith("text/plain")
    return str(response.get_data(as_text=True))


def test_metrics_need_a_read_key(client: Any, tokens: Tokens) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=tokens.header("hma_nope_nope")).status_code == 401
    refused = client.get("/metrics", headers=tokens.header(tokens.submit))
    assert refused.status_code == 403 and "read" in refused.json["message"]
    assert client.get("/metrics", headers=tokens.header(tokens.admin)).status_code == 200


def test_an_allowed_network_scrapes_without_a_key(runtime: Runtime, settings: Settings) -> None:
    from hma_framework.runtime import build_runtime
    from hma_framework.web.app import create_app

    web = attrs.evolve(settings.web, metrics_networks=("127.0.0.0/8",))
    open_runtime = build_runtime(attrs.evolve(settings, web=web), registry=runtime.registry)
    try:
        client = create_app(open_runtime).test_client()
        assert client.get("/metrics").status_code == 200
        elsewhere = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert elsewhere.status_code == 401
    finally:
        open_runtime.close()


def test_requests_and_submissions_are_counted(client: Any, tokens: Tokens) -> None:
    before = scrape(client, tokens)
    body = {"content_type": "photo", "signal_type": "pdq", "signal_value": PDQ}
    for number in range(3):
        accepted = client.post(
            "/submit/hash/",
            json={**body, "content_id": f"m-{number}"},
            headers=tokens.header(tokens.submit),
        )
        assert accepted.status_code == 200
    conflict = client.post(
        "/submit/hash/",
        json={**body, "content_id": "m-0", "signal_value": "0" * 64},
        headers=tokens.header(tokens.submit),
    )
    assert conflict.status_code == 409
    after = scrape(client, tokens)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("hma_submissions_total", path="submit_hash", outcome="accepted") == 3
    assert grew("hma_submissions_total", path="submit_hash", outcome="conflict") == 1
    route = {"route": "/submit/hash/", "method": "POST"}
    assert grew("hma_http_requests_total", status="200", **route) == 3
    assert grew("hma_http_request_duration_seconds_count", **route) == 4
    assert grew("hma_http_requests_total", route="/metrics", method="GET", status="200") >= 1


def test_levels_come_from_redis_and_the_records(
    client: Any, tokens: Tokens, runtime: Runtime
) -> None:
    runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
    runtime.queues["maintenance"].enqueue(maintenance.heartbeat)
    for number, reason in enumerate(["hashing failed: not an image", "hashing failed: bomb"]):
        _, pk = runtime.content.submit(Submission(f"f-{number}", "photo", "bytes"), force=False)
        runtime.content.mark_failed(pk, reason)
    text = scrape(client, tokens)
    assert value(text, "hma_queue_depth", queue="maintenance") == 2
    assert value(text, "hma_queue_depth", queue="hash") == 0
    assert value(text, "hma_queue_oldest_job_age_seconds", queue="maintenance") >= 0
    assert value(text, "hma_failed_contents", reason="hashing failed") == 2
    assert value(text, "hma_contents", status="failed") == 2
    assert "hma_index_entries" in text


@pytest.mark.slow
def test_hma_serve_sums_every_process_series(tmp_path: Path) -> None:
    """Under ``hma serve`` (two API processes) a scrape counts what every process saw."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HMA_WORKERS_PROCESSES": "1",
        "HMA_WEB_METRICS_NETWORKS": "127.0.0.1/32",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if requests.get(base + "/metrics", timeout=10).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            assert time.monotonic() < deadline, "hma serve did not answer /metrics"
            time.sleep(0.2)
        for _ in range(20):  # a fresh connection each: both API processes get some
            refused = requests.post(base + "/submit/hash/", json={}, timeout=30)
            assert refused.status_code == 401
        text = requests.get(base + "/metrics", timeout=30).text
    finally:
        process.terminate()
        process.wait(timeout=60)
    assert value(text, "hma_submissions_total", path="submit_hash", outcome="unauthorized") == 20
    served_by = set(re.findall(r'hma_index_entries\{[^}]*pid="(\d+)"', text))
    assert served_by, "no process reported its index"
