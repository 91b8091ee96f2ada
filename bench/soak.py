"""Soak: mixed load on a whole `hma serve` instance; memory, Redis keys and errors over time.

    .venv/bin/python bench/soak.py --minutes 30

Starts `hma serve` in a temporary folder (SQLite, embedded Redis, API and workers), banks a
few thousand PDQ hashes, then in rounds until the time is up: /submit/hash/ (a share of
them matching), /submit/bytes/ with small JPEGs, and GET /lookup. Every round samples the
resident memory of each process of the instance and the Redis key count. At the end it
waits for every submission to be final and prints: requests and statuses, contents final,
memory per process at the end of the warm-up and at the end (flat means within 10%), and
Redis keys at the same two points. Prints figures; it is not a test.
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
from pathlib import Path

import psutil
from redis import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip, free_port, ready, render, run_load
from submit_pipeline import count_final, wait_until

from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.testing import make_photo

WARMUP_FRACTION = 0.2


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
    env.update(HMA_DATA_DIR=str(folder / "data"), HMA_WEB_PORT=str(port), HMA_LOG_LEVEL="WARNING")
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
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        store = Store(f"sqlite:///{folder / 'data' / 'hma.sqlite3'}")
        Banks(store).create_bank("soak")
        banked = [f"{rng.getrandbits(256):064x}" for _ in range(args.banked)]
        Banks(store).add_members("soak", [NewMember(signals=(("pdq", h),)) for h in banked])
        wait_until(lambda: ready(port), 60)
        redis = Redis(unix_socket_path=str(folder / "data" / "redis" / "redis.sock"))
        host, headers = f"127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        photos = [base64.b64encode(make_photo(320, 240, seed=i)).decode() for i in range(8)]
        statuses: Counter[int] = Counter()
        samples: list[tuple[float, dict[str, int], int]] = []
        started, number, submitted = time.monotonic(), 0, 0
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
            samples.append((time.monotonic() - started, _memory(server), int(redis.dbsize())))
        drained = wait_until(lambda: count_final(store, "s-") == submitted, 600)
        samples.append((time.monotonic() - started, _memory(server), int(redis.dbsize())))
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
        for name in sorted(end[1]):
            before, after = warm[1].get(name, 0), end[1][name]
            change = (after - before) / before * 100 if before else 0.0
            print(
                f"  {name:<12} RSS {before:>5} MiB at {warm[0]:.0f}s -> {after:>5} MiB "
                f"({change:+.1f}%)"
            )
        print(f"Redis keys {warm[2]} at {warm[0]:.0f}s -> {end[2]} at the end")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
