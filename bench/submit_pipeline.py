"""Submissions end to end on this machine: `hma serve` (API + workers) and a load generator.

    .venv/bin/python bench/submit_pipeline.py [--hash-requests 20000] [--photos 400]

Starts a complete instance with `hma serve` in a temporary folder (SQLite, embedded Redis,
gunicorn, workers: everything shares this machine's cores with the load generator), then:

1. `/submit/hash/`: half near-duplicates of banked hashes, half misses. The match is recorded
   before the HTTP response, so accepted -> matched latency is the response latency.
2. `/submit/bytes/` with 1024x768 JPEGs: submissions/s from the first request until every
   content item reached a final state, and submitted -> matched latency from the records.
3. The hashing ceiling: the same JPEGs hashed by the PDQ hasher alone, one process per core,
   in the same run; the pipeline's throughput is shown as a ratio of it.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing as mp
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip, free_port, ready, render, run_load

from hma_framework.registry import make_registry
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentRow
from hma_framework.testing import make_photo

FINAL = ("no_match", "actioned", "failed")


def wait_until(predicate, timeout: float, interval: float = 0.1) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    raise TimeoutError(f"not done within {timeout}s")


def count_final(store: Store, prefix: str) -> int:
    with store.reading() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ContentRow)
                .where(ContentRow.content_id.like(f"{prefix}%"), ContentRow.status.in_(FINAL))
            )
            or 0
        )


def _hash_photos(paths: list[str]) -> int:
    settings = Settings()
    hasher = make_registry(settings, strict=True).signal_types["pdq"].make_hasher(settings)
    for path in paths:
        hasher.hash_file(Path(path))
    return len(paths)


def hashing_ceiling(photo_paths: list[Path], total: int, processes: int) -> float:
    work = [str(photo_paths[i % len(photo_paths)]) for i in range(total)]
    chunks = [work[i::processes] for i in range(processes)]
    with mp.get_context("spawn").Pool(processes) as pool:
        pool.map(_hash_photos, [chunks[0][:2]] * processes)  # warm up imports
        started = time.perf_counter()
        pool.map(_hash_photos, chunks)
        return total / (time.perf_counter() - started)


def cpu_seconds_by_role(server: subprocess.Popen[str]) -> dict[str, float]:
    """CPU seconds (user + system) so far of the instance's processes, by role, and this one's."""
    roles: dict[str, float] = {}
    for process in [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)]:
        try:
            command = " ".join(process.cmdline())
            times = process.cpu_times()
        except psutil.Error:
            continue
        role = next(
            (r for r in ("gunicorn", "redis", "worker", "scheduler") if r in command), "other"
        )
        roles[role] = roles.get(role, 0.0) + times.user + times.system
    own = psutil.Process().cpu_times()
    roles["load generator (this process)"] = own.user + own.system
    return roles


def describe_cpu(before: dict[str, float], after: dict[str, float], requests: int) -> str:
    parts = [
        f"{role} {(after[role] - before.get(role, 0.0)) * 1000 / requests:.2f}"
        for role in sorted(after)
    ]
    total = sum(after.values()) - sum(before.values())
    return f"CPU ms per request: {', '.join(parts)}; total {total * 1000 / requests:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hash-requests", type=int, default=20_000)
    parser.add_argument("--photos", type=int, default=400)
    parser.add_argument("--banked", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--match-fraction",
        type=float,
        default=0.05,
        help="share of hash submissions that match a bank (each costs an act job)",
    )
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="hma-bench-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(
        HMA_DATA_DIR=str(folder / "data"),
        HMA_WEB_PORT=str(port),
        HMA_LOG_LEVEL="WARNING",
        HMA_WORKERS_PROCESSES=str(args.workers),
    )
    print(
        f"{os.cpu_count()} cores; hma serve with {args.workers} workers, "
        f"SQLite and embedded Redis in {folder}"
    )

    rng = random.Random(5)
    photos_dir = folder / "photos"
    photos_dir.mkdir()
    photo_paths = []
    for i in range(20):
        path = photos_dir / f"{i}.jpg"
        path.write_bytes(make_photo(1024, 768, seed=i))
        photo_paths.append(path)
    ceiling = hashing_ceiling(photo_paths, 200, os.cpu_count() or 1)
    print(f"hashing ceiling (PDQ alone, {os.cpu_count()} processes): {ceiling:.1f} images/s")

    server = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        token = None
        for line in server.stdout:
            found = re.search(r"hma_[0-9a-f]{12}_\S+", line)
            if found:
                token = found.group(0)
                break
        assert token, "no admin key printed"
        import threading

        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        store = Store(f"sqlite:///{folder / 'data' / 'hma.sqlite3'}")
        banks = Banks(store)
        banks.create_bank("bench")
        banked = [f"{rng.getrandbits(256):064x}" for _ in range(args.banked)]
        for start in range(0, len(banked), 5000):
            banks.add_members(
                "bench", [NewMember(signals=(("pdq", h),)) for h in banked[start : start + 5000]]
            )
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        host = f"127.0.0.1:{port}"
        wait_until(lambda: ready(port), 30)

        # 1. /submit/hash/
        bodies = []
        for i in range(args.hash_requests):
            value = (
                flip(rng.choice(banked), rng.randint(1, 20), rng)
                if rng.random() < args.match_fraction
                else f"{rng.getrandbits(256):064x}"
            )
            body = json.dumps(
                {
                    "content_id": f"hash-{i}",
                    "content_type": "photo",
                    "signal_type": "pdq",
                    "signal_value": value,
                }
            ).encode()
            bodies.append(render("POST", "/submit/hash/", host, headers, body))
        warmup = [
            render(
                "POST",
                "/submit/hash/",
                host,
                headers,
                json.dumps(
                    {
                        "content_id": f"warm-{i}",
                        "content_type": "photo",
                        "signal_type": "pdq",
                        "signal_value": f"{rng.getrandbits(256):064x}",
                    }
                ).encode(),
            )
            for i in range(500)
        ]
        run_load("127.0.0.1", port, warmup, concurrency=args.concurrency)
        cpu_before = cpu_seconds_by_role(server)
        result = run_load("127.0.0.1", port, bodies, concurrency=args.concurrency)
        print(
            f"/submit/hash/ with {args.match_fraction:.0%} matching "
            f"(accepted = match recorded): {result.summary()}"
        )
        print(f"  {describe_cpu(cpu_before, cpu_seconds_by_role(server), len(bodies))}")
        drained = wait_until(lambda: count_final(store, "hash-") == args.hash_requests, 300)
        print(f"  action jobs for the matched items drained {drained:.1f}s after the last response")

        # 2. /submit/bytes/
        encoded = [base64.b64encode(p.read_bytes()).decode() for p in photo_paths]
        requests_ = [
            render(
                "POST",
                "/submit/bytes/",
                host,
                headers,
                json.dumps(
                    {
                        "content_id": f"bytes-{i}",
                        "content_type": "photo",
                        "content_bytes": encoded[i % len(encoded)],
                    }
                ).encode(),
            )
            for i in range(args.photos)
        ]
        started = time.perf_counter()
        sent = run_load("127.0.0.1", port, requests_, concurrency=8)
        wait_until(lambda: count_final(store, "bytes-") == args.photos, 600, 0.05)
        elapsed = time.perf_counter() - started
        rate = args.photos / elapsed
        with store.reading() as session:
            rows = session.execute(
                select(ContentRow.submitted_at, ContentRow.matched_at).where(
                    ContentRow.content_id.like("bytes-%")
                )
            ).all()
        latencies = sorted((m - s).total_seconds() for s, m in rows if m)
        print(
            f"/submit/bytes/ 1024x768 JPEG: {args.photos} in {elapsed:.1f}s = {rate:.1f}/s "
            f"({rate / ceiling:.0%} of the hashing ceiling); HTTP {sent.summary()}"
        )
        print(
            f"  submitted -> matched p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99) - 1] * 1000:.0f} ms"
        )
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
