"""A fleet on one machine, without containers: two nodes with their own data folders.

Node A runs an API process only; node B runs an API process, a worker and a scheduler; a
second scheduler runs beside A. Both share one Redis and one PostgreSQL, as hosts of a fleet
do. The test shows what a fleet promises: a bank change made through one node matches on the
other within a second, a submission through A is processed by B's worker, and of two
schedulers exactly one leads.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from redis import Redis

from hma_framework.pipeline.scheduler import LEADER_KEY
from hma_framework.runtime import build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.testing import TEST_DATABASE_ENV, free_port, make_photo, postgres_schema

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get(TEST_DATABASE_ENV),
        reason=f"a fleet shares PostgreSQL: set {TEST_DATABASE_ENV} (CI does)",
    ),
]


class Node:
    """One host of the fleet: its own data folder and processes, the shared services."""

    def __init__(self, folder: Path, database_url: str, redis_url: str) -> None:
        folder.mkdir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HMA_DATA_DIR": str(folder),
            "HMA_DATABASE_URL": database_url,
            "HMA_REDIS_URL": redis_url,
            "HMA_WEB_PORT": str(self.port),
            "HMA_WEB_PROCESSES": "1",
            "HMA_WORKERS_PROCESSES": "1",
            "HMA_PIPELINE_RECONCILE_INTERVAL_SECONDS": "2",
            "HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
        }
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs = folder / "logs"
        self.logs.mkdir()

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{'-'.join(args)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "hma_framework", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def log_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.logs.iterdir())

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/status/ready", timeout=5).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        raise AssertionError(f"node on {self.port} never became ready:\n{self.log_text()}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def media_server() -> Iterator[Callable[[bytes], str]]:
    """Serves one photo on loopback, as a platform's CDN would; returns a function to set it."""
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served["photo"]
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(photo: bytes) -> str:
        served["photo"] = photo
        return f"http://127.0.0.1:{server.server_port}"

    yield serve
    server.shutdown()
    thread.join(5)


@pytest.fixture
def fleet_database() -> Iterator[str]:
    with postgres_schema(os.environ[TEST_DATABASE_ENV]) as url:
        yield url


def test_two_nodes_share_banks_work_and_one_scheduler(
    tmp_path: Path,
    fleet_database: str,
    redis_url: str,
    media_server: Callable[[bytes], str],
) -> None:
    settings = Settings(
        data_dir=str(tmp_path / "admin"), database_url=fleet_database, redis_url=redis_url
    )
    runtime = build_runtime(settings)
    try:
        migrate.upgrade(runtime.store)  # the one-shot migration a fleet runs first
        key = runtime.api_keys.create("fleet test", ["admin"]).token
    finally:
        runtime.close()
    headers = {"Authorization": f"Bearer {key}"}
    node_a = Node(tmp_path / "a", fleet_database, redis_url)
    node_b = Node(tmp_path / "b", fleet_database, redis_url)
    try:
        node_a.start("serve", "--role", "api")
        node_a.start("scheduler")
        node_b.start("serve", "--role", "api")
        node_b.start("serve", "--role", "worker")
        node_b.start("scheduler")
        node_a.wait_until_up()
        node_b.wait_until_up()

        # A bank change through A matches through B within a second.
        photo = make_photo(seed=11)
        created = requests.post(
            node_a.base + "/banks", json={"name": "fleet-bank"}, headers=headers, timeout=30
        )
        assert created.status_code == 201, created.text
        added = requests.post(
            node_a.base + "/banks/fleet-bank/members",
            json={"content_bytes": base64.b64encode(photo).decode(), "content_type": "photo"},
            headers=headers,
            timeout=30,
        )
        assert added.status_code == 201, added.text
        signal_value = next(s["signal_value"] for s in added.json()["signals"])
        added_at = time.monotonic()
        while True:
            found = requests.get(
                node_b.base + "/lookup",
                params={"signal_type": "pdq", "signal": signal_value},
                headers=headers,
                timeout=10,
            )
            assert found.status_code == 200, found.text
            if found.json()["matches"]:
                break
            assert time.monotonic() - added_at < 1.0, "node B did not see the member in 1 s"
            time.sleep(0.02)

        # A submission through A (which runs no worker) is hashed and matched by B's worker.
        # By URL: uploaded bytes live in the receiving node's media store, which a fleet puts
        # in S3 (HMA_S3_MEDIA_BUCKET) so that every worker can read them.
        submitted = requests.post(
            node_a.base + "/submit/url/",
            json={
                "content_id": "fleet-1",
                "content_type": "photo",
                "content_url": f"{media_server(photo)}/photo.jpg",
            },
            headers=headers,
            timeout=30,
        )
        assert submitted.status_code == 200, submitted.text
        deadline = time.monotonic() + 60
        while True:
            content = requests.get(node_a.base + "/content/fleet-1", headers=headers, timeout=10)
            status = content.json().get("status")
            if status in ("matched", "actioned", "failed", "no_match"):
                break
            assert time.monotonic() < deadline, content.text
            time.sleep(0.2)
        assert status in ("matched", "actioned"), content.text

        # Of the two schedulers, exactly one leads.
        assert Redis.from_url(redis_url).get(LEADER_KEY) is not None
        leads = [
            text.count("leads: it enqueues") for text in (node_a.log_text(), node_b.log_text())
        ]
        assert sorted(leads) == [0, 1], leads
    finally:
        node_a.stop()
        node_b.stop()
