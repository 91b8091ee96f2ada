"""The actioner on this machine: signed webhooks to a loopback receiver.

    .venv/bin/python bench/actions.py [--latency 300] [--burst 2000] [--workers 2]

Everything runs here, each part in its own process (forked from this one): an embedded Redis,
SQLite, the API (the Flask app on werkzeug's threaded server; no gunicorn), ``--workers`` RQ
workers serving every queue with their scheduler, and a webhook receiver (http.server) that
verifies each signature with the ``standardwebhooks`` library before it counts an arrival.

1. Submit -> signed webhook received: ``/submit/hash/`` one request at a time (a matching
   hash, one rule, one webhook), timed from just before the request is sent to the moment the
   receiver has verified the webhook. p50/p99 on an otherwise idle instance.
2. Matches acted upon per second: ``--burst`` matching submissions recorded while no worker
   runs, then the workers start and are timed until every webhook has arrived (act job, rule
   evaluation, delivery record, delivery job, HTTP, attempt record: the whole action path).

Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import attrs
import requests
from standardwebhooks.webhooks import Webhook

from hma_framework.actions.handlers import handlers_of
from hma_framework.actions.rule_store import RuleStore
from hma_framework.actions.rules import parse_rule
from hma_framework.builtin.webhook import webhook_handler_record
from hma_framework.embedded_redis import EmbeddedRedis
from hma_framework.hookspecs import hookimpl
from hma_framework.registry import Registry, make_registry
from hma_framework.runtime import build_runtime
from hma_framework.settings import QUEUE_NAMES, Settings
from hma_framework.store import migrate
from hma_framework.store.banks import Banks, NewMember
from hma_framework.types import ActionHandlerRecord

CTX = mp.get_context("fork")


class _WebhookPlugin:
    @hookimpl
    def hma_action_handlers(self) -> Iterator[ActionHandlerRecord]:
        yield webhook_handler_record()


def registry(settings: Settings) -> Registry:
    """Installed plugins, plus the webhook handler if hma_framework.builtin does not yet."""
    found = make_registry(settings)
    if "webhook" in found.action_handlers:
        return found
    return make_registry(settings, extra_plugins=[_WebhookPlugin()])


def receive(arrivals: Any, secret: str, port_out: Any) -> None:
    """The receiver process: verify, then report (content id, arrival time)."""
    verifier = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each reply waits out a delayed ACK (40 ms)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            payload = verifier.verify(body, dict(self.headers.items()))  # raises if forged
            arrivals.put((payload["data"]["content_id"], time.time()))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port_out.send(server.server_port)
    server.serve_forever()


def serve_api(settings: Settings, port_out: Any) -> None:
    from werkzeug.serving import make_server

    from hma_framework.web.app import create_app

    runtime = build_runtime(settings, registry=registry(settings))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(runtime), threaded=True)
    port_out.send(server.server_port)
    server.serve_forever()


def work(settings: Settings) -> None:
    from hma_framework.pipeline.worker import run_worker

    run_worker(build_runtime(settings, registry=registry(settings)), list(QUEUE_NAMES))


def start(target: Callable[..., None], *args: Any) -> tuple[Any, int | None]:
    parent, child = CTX.Pipe()
    process = CTX.Process(target=target, args=(*args, child), daemon=True)
    process.start()
    port = parent.recv() if parent.poll(60) else None
    return process, port


def start_workers(settings: Settings, count: int) -> list[Any]:
    # Not daemonic: an RQ worker forks its scheduler. stop() ends them.
    workers = [CTX.Process(target=work, args=(settings,)) for _ in range(count)]
    for worker in workers:
        worker.start()
    return workers


def stop(processes: list[Any]) -> None:
    for process in processes:
        if process.is_alive() and process.pid:
            os.kill(process.pid, signal.SIGTERM)
    for process in processes:
        process.join(10)


def pdq(i: int) -> str:
    """A hash of its own: distinct ones are ~128 bits apart, so each matches only itself."""
    return hashlib.sha256(i.to_bytes(8, "big")).hexdigest()


def clustered_pdq(i: int) -> str:
    """The hashes this bench used first: i * K mod 2^256 leaves the top bits zero, so each of
    10,000 is within 31 bits of ~600 others and every webhook carries ~600 matches."""
    return f"{(i * 0x9E3779B97F4A7C15) % (1 << 256):064x}"


def submit(session: requests.Session, base: str, content_id: str, value: str) -> None:
    response = session.post(
        base + "/submit/hash/",
        json={
            "content_id": content_id,
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": value,
        },
        timeout=30,
    )
    response.raise_for_status()


def wait_for(arrivals: Any, wanted: set[str], timeout: float) -> dict[str, float]:
    got: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while wanted - set(got):
        try:
            content_id, at = arrivals.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{len(wanted - set(got))} webhooks missing") from None
        got[content_id] = at
    return got


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--latency", type=int, default=300, help="sequential submissions")
    parser.add_argument("--burst", type=int, default=2000, help="submissions acted on at once")
    parser.add_argument("--banked", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--clustered", action="store_true", help="the first hashes: ~600 matches per content"
    )
    args = parser.parse_args()
    # A SIGTERM (timeout, Ctrl-C from a supervisor) still stops the workers and Redis.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    folder = Path(tempfile.mkdtemp(prefix="hma-bench-actions-"))
    redis = EmbeddedRedis(folder / "redis", persist=False)
    redis.start()
    settings = Settings(data_dir=str(folder / "data"), redis_url=redis.url, log_level="WARNING")
    settings = attrs.evolve(
        settings, fetch=attrs.evolve(settings.fetch, allowed_networks=("127.0.0.1/32",))
    )
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    arrivals = CTX.Queue()
    processes: list[Any] = []
    try:
        receiver, receiver_port = start(receive, arrivals, secret)
        processes.append(receiver)
        setup = build_runtime(settings, registry=registry(settings))
        migrate.upgrade(setup.store)
        banks = Banks(setup.store)
        banks.create_bank("bench", tags=["bench"])
        banked = [(clustered_pdq if args.clustered else pdq)(i) for i in range(args.banked)]
        for at in range(0, len(banked), 5000):
            chunk = banked[at : at + 5000]
            banks.add_members("bench", [NewMember(signals=(("pdq", h),)) for h in chunk])
        handlers_of(setup).create(
            "receiver",
            "webhook",
            {
                "url": f"http://127.0.0.1:{receiver_port}/{{content_id}}",
                "signing_secrets": [secret],
            },
        )
        RuleStore(setup.store).create(
            parse_rule(
                {
                    "name": "bench",
                    "must_have": [{"label": "tag", "equals": "bench"}],
                    "action": {"handler": "receiver"},
                }
            )
        )
        token = setup.api_keys.create("bench", ["submit", "read"]).token
        api, api_port = start(serve_api, settings)
        processes.append(api)
        base = f"http://127.0.0.1:{api_port}"
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        print(
            f"{os.cpu_count()} cores (shared); API on werkzeug (threaded), {args.workers} RQ "
            f"workers, SQLite + embedded Redis in {folder}; {args.banked} banked PDQ hashes"
            + (" (clustered: ~600 matches per content)" if args.clustered else "")
        )

        # 2. throughput first, so its submissions are recorded before any worker runs
        ids = [f"burst-{i}" for i in range(args.burst)]
        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: submit(_session(token), base, ids[i], banked[i]), range(len(ids))
                )
            )
        recorded = time.perf_counter() - started
        workers = start_workers(settings, args.workers)
        processes.extend(workers)
        began = time.time()
        got = wait_for(arrivals, set(ids), timeout=600)
        elapsed = max(got.values()) - began
        steady = max(got.values()) - min(got.values())
        burst_line = (
            f"matches acted upon: {args.burst} matched submissions (recorded in {recorded:.1f}s "
            f"with no worker running) -> {args.burst} signed webhooks {elapsed:.1f}s after "
            f"{args.workers} workers were started = {args.burst / elapsed:.0f}/s; "
            f"{(args.burst - 1) / steady:.0f}/s from the first webhook to the last"
        )

        # 1. latency, one submission at a time on the now idle instance
        time.sleep(1)
        latencies, responses = [], []
        for i in range(args.latency):
            content_id = f"lat-{i}"
            sent = time.time()
            submit(session, base, content_id, banked[(args.burst + i) % len(banked)])
            responses.append(time.time() - sent)
            latencies.append(wait_for(arrivals, {content_id}, timeout=30)[content_id] - sent)
            time.sleep(0.02)
        for label, values in (
            ("submit -> signed webhook received", latencies),
            ("  of which the /submit/hash/ response", responses),
        ):
            ms = [x * 1000 for x in values]
            print(
                f"{label} (n={args.latency}, sequential): p50 {statistics.median(ms):.0f} ms, "
                f"p90 {percentile(ms, 0.9):.0f} ms, p99 {percentile(ms, 0.99):.0f} ms, "
                f"max {max(ms):.0f} ms"
            )
        print(burst_line)
    finally:
        stop(processes)
        redis.stop()


_local = threading.local()


def _session(token: str) -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
    return session


if __name__ == "__main__":
    sys.exit(main())
