"""Soak: mixed load on a whole `hma serve` instance; memory, Redis keys and errors over time.

    .venv/bin/python bench/soak.py --minutes 30

Starts `hma serve` in a temporary folder (SQLite, embedded Redis, API and workers), banks a
few thousand PDQ hashes, then in rounds until the time is up: /submit/hash/ (a share of
them matching), /submit/bytes/ with small JPEGs, and GET /lookup. Every round samples the
resident memory of each process of the instance and the Redis key count. At the end it
waits for every submission to be final and prints: requests and statuses, contents final,
memory per process at the end of the warm-up and at the end (flat means within 10%), and
Redis keys at the same two points. Matching submissions fire a webhook rule whose receiver,
on loopback here, counts deliveries by ``webhook-id``.

It ends with three checks, each PASS or FAIL (the exit status is 1 if any fails):
- memory: every process's RSS at the end within 10% of its RSS at the end of the warm-up;
- Redis keys: no growth of keys without an expiry (queued work and leaks; job results and
  heartbeats expire by themselves) from the end of the warm-up to the end;
- errors: every answer 2xx, no content failed, every delivery succeeded and arrived exactly
  once per webhook-id, and no ERROR or traceback in the instance's output.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip, free_port, ready, render, run_load
from sqlalchemy import func, select
from submit_pipeline import count_final, wait_until

from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentRow, DeliveryRow
from hma_framework.testing import make_photo

WARMUP_FRACTION = 0.2
MEMORY_TOLERANCE = 0.10
#: A line of the instance's output that reports an error.
ERROR_LINE = re.compile(r"\bERROR\b|Traceback|CRITICAL")


class WebhookReceiver:
    """A loopback endpoint that answers 200 and counts what arrives by ``webhook-id``."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        lock = threading.Lock()
        ids = self.ids

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    ids[self.headers.get("webhook-id") or "(none)"] += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _persistent_keys(redis: Redis) -> int:
    """Keys with no expiry: what would pile up if something leaked."""
    count = 0
    batch: list[bytes] = []
    for key in redis.scan_iter(count=1000):
        batch.append(key)
        if len(batch) == 1000:
            count += _without_ttl(redis, batch)
            batch = []
    return count + _without_ttl(redis, batch)


def _without_ttl(redis: Redis, keys: list[bytes]) -> int:
    pipe = redis.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    return sum(1 for ttl in pipe.execute() if ttl == -1)


def _arm_webhook(port: int, token: str, url: str) -> None:
    """A webhook handler and a rule that fires on every match, through the API."""
    import requests

    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    handler: dict[str, Any] = {
        "name": "soak",
        "type": "webhook",
        "config": {"url": url, "signing_secrets": [secret]},
    }
    rule: dict[str, Any] = {"name": "all", "must_have": [], "action": {"handler": "soak"}}
    for path, body in (("/handlers", handler), ("/rules", rule)):
        response = requests.post(base + path, json=body, headers=headers, timeout=30)
        response.raise_for_status()


def _by_status(store: Store, column: Any) -> Counter[str]:
    with store.reading() as session:
        return Counter(dict(session.execute(select(column, func.count()).group_by(column)).all()))


def _memory(server: subprocess.Popen[str]) -> dict[str, int]:
    """RSS in MiB per process of the instance, named by role (api-1, worker-2, redis...)."""
    found: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for process in psutil.Process(server.pid).children(recursive=True):
        try:
            cmdline = " ".join(process.cmdline())
            rss = process.memory_info().rss >> 20
        except psutil.Error:
            continue
        role = (
            "redis"
            if "redis-server" in cmdline
            else "api"
            if "gunicorn" in cmdline
            else "worker"
            if " worker" in cmdline
            else "scheduler"
            if " scheduler" in cmdline
            else "other"
        )
        counts[role] += 1
        found[f"{role}-{counts[role]}"] = rss
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--round-requests", type=int, default=400)
    parser.add_argument("--banked", type=int, default=5000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="hma-soak-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(
        HMA_DATA_DIR=str(folder / "data"),
        HMA_WEB_PORT=str(port),
        HMA_LOG_LEVEL="WARNING",
        HMA_FETCH_ALLOWED_NETWORKS="127.0.0.1/32",  # the webhook receiver is on loopback
    )
    receiver = WebhookReceiver()
    errors: list[str] = []
    server = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rng = random.Random(7)
    try:
        assert server.stdout is not None
        token = next(
            m.group(0) for line in server.stdout if (m := re.search(r"hma_[0-9a-f]{12}_\S+", line))
        )
        output = server.stdout
        threading.Thread(
            target=lambda: errors.extend(line for line in output if ERROR_LINE.search(line)),
            daemon=True,
        ).start()
        store = Store(f"sqlite:///{folder / 'data' / 'hma.sqlite3'}")
        Banks(store).create_bank("soak")
        banked = [f"{rng.getrandbits(256):064x}" for _ in range(args.banked)]
        Banks(store).add_members("soak", [NewMember(signals=(("pdq", h),)) for h in banked])
        wait_until(lambda: ready(port), 60)
        _arm_webhook(port, token, receiver.url)
        redis = Redis(unix_socket_path=str(folder / "data" / "redis" / "redis.sock"))
        host, headers = f"127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        photos = [base64.b64encode(make_photo(320, 240, seed=i)).decode() for i in range(8)]
        statuses: Counter[int] = Counter()
        samples: list[tuple[float, dict[str, int], int, int]] = []
        started, number, submitted = time.monotonic(), 0, 0
        warm_metrics: dict[str, float] | None = None
        while time.monotonic() - started < args.minutes * 60:
            requests = []
            for _ in range(args.round_requests):
                number += 1
                kind = rng.random()
                if kind < 0.4:
                    value = (
                        flip(rng.choice(banked), 3, rng)
                        if rng.random() < 0.1
                        else (f"{rng.getrandbits(256):064x}")
                    )
                    body = {
                        "content_id": f"s-{number}",
                        "content_type": "photo",
                        "signal_type": "pdq",
                        "signal_value": value,
                    }
                    requests.append(
                        render(
                            "POST",
                            "/submit/hash/",
                            host,
                            {**headers, "Content-Type": "application/json"},
                            json.dumps(body).encode(),
                        )
                    )
                    submitted += 1
                elif kind < 0.45:
                    body = {
                        "content_id": f"s-{number}",
                        "content_type": "photo",
                        "content_bytes": rng.choice(photos),
                    }
                    requests.append(
                        render(
                            "POST",
                            "/submit/bytes/",
                            host,
                            {**headers, "Content-Type": "application/json"},
                            json.dumps(body).encode(),
                        )
                    )
                    submitted += 1
                else:
                    value = flip(rng.choice(banked), 5, rng)
                    requests.append(
                        render("GET", f"/lookup?signal_type=pdq&signal={value}", host, headers)
                    )
            result = run_load("127.0.0.1", port, requests, concurrency=8)
            statuses.update(result.statuses)
            samples.append(_sample(started, server, redis))
            if warm_metrics is None and samples[-1][0] >= WARMUP_FRACTION * args.minutes * 60:
                warm_metrics = _metric_totals(port, token)
        drained = wait_until(lambda: count_final(store, "s-") == submitted, 600)
        wait_until(lambda: set(_by_status(store, DeliveryRow.status)) <= DELIVERED, 300)
        time.sleep(2)  # the last webhook's answer reaches the receiver's counter
        samples.append(_sample(started, server, redis))
        warm = next(s for s in samples if s[0] >= WARMUP_FRACTION * args.minutes * 60)
        end = samples[-1]
        print(
            f"{os.cpu_count()} cores, one machine (load generator included); "
            f"{args.minutes:g} min, {len(samples) - 1} rounds"
        )
        print(f"requests {sum(statuses.values())}: statuses {dict(sorted(statuses.items()))}")
        print(
            f"submissions {submitted}, final {count_final(store, 's-')} "
            f"({drained:.1f}s after the last request)"
        )
        memory_ok = True
        for name in sorted(end[1]):
            before, after = warm[1].get(name, 0), end[1][name]
            change = (after - before) / before if before else float("inf")
            memory_ok &= abs(change) <= MEMORY_TOLERANCE
            print(
                f"  {name:<12} RSS {before:>5} MiB at {warm[0]:.0f}s -> {after:>5} MiB "
                f"({change * 100:+.1f}%)"
            )
        print(
            f"Redis keys {warm[2]} at {warm[0]:.0f}s -> {end[2]} at the end; without an expiry "
            f"{warm[3]} -> {end[3]}"
        )
        content = _by_status(store, ContentRow.status)
        deliveries = _by_status(store, DeliveryRow.status)
        ids = receiver.ids
        doubled = sum(n - 1 for n in ids.values() if n > 1)
        print(
            f"contents {dict(content)}; deliveries {dict(deliveries)}; webhook-ids received "
            f"{len(ids)}, doubled {doubled}; error lines in the output {len(errors)}"
        )
        for line in errors[:10]:
            print(f"  {line.rstrip()}")
        end_metrics = _metric_totals(port, token)
        print("GET /metrics, summed over labels (end of warm-up -> end):")
        for name in WATCHED:
            before = (warm_metrics or {}).get(name)
            after = end_metrics.get(name)
            print(f"  {name:<34} {before if before is not None else '-':>12} -> {after}")
        bad_answers = {code: n for code, n in statuses.items() if not 200 <= code < 300}
        checks = {
            f"memory of every process flat within {MEMORY_TOLERANCE:.0%}": memory_ok,
            "no growth of Redis keys without an expiry": end[3] <= warm[3],
            "no errors": not bad_answers
            and not content.get("failed")
            and set(deliveries) <= {"succeeded"}
            and len(ids) == deliveries.get("succeeded", 0)
            and doubled == 0
            and "(none)" not in ids
            and not errors,
        }
        for name, passed in checks.items():
            print(f"{'PASS' if passed else 'FAIL'}: {name}")
        if bad_answers:
            print(f"  answers that were not 2xx: {bad_answers}")
        if not all(checks.values()):
            raise SystemExit(1)
    finally:
        server.terminate()
        server.wait(60)
        receiver.close()


DELIVERED = {"succeeded", "failed", "held"}
#: Series whose totals the soak prints from ``GET /metrics`` at the end of the warm-up and at
#: the end: counters and histogram counts that must move under load, gauges as they stand.
WATCHED = (
    "hma_http_requests_total",
    "hma_http_request_duration_seconds_count",
    "hma_submissions_total",
    "hma_stage_latency_seconds_count",
    "hma_delivery_attempts_total",
    "hma_deliveries",
    "hma_queue_depth",
    "hma_index_entries",
    "hma_contents",
)


def _metric_totals(port: int, token: str) -> dict[str, float]:
    """Each watched series summed over its labels, as ``GET /metrics`` answers now."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(
        f"http://127.0.0.1:{port}/metrics",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in WATCHED:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def _sample(
    started: float, server: subprocess.Popen[str], redis: Redis
) -> tuple[float, dict[str, int], int, int]:
    """Seconds since the start, RSS per process, Redis keys, keys without an expiry."""
    return (
        time.monotonic() - started,
        _memory(server),
        int(redis.dbsize()),
        _persistent_keys(redis),
    )


if __name__ == "__main__":
    main()
