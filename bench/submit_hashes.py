"""``POST /submit/hashes/`` end to end on this machine: `hma serve` and a load generator.

    .venv/bin/python bench/submit_hashes.py [--items 200000] [--batch 1000] [--concurrency 4]

Starts a complete instance with `hma serve` in a temporary folder (SQLite and an embedded
Redis unless HMA_DATABASE_URL is given; everything shares this machine's cores with the load
generator), banks ``--banked`` PDQ hashes, then sends ``--items`` PDQ submissions in batches,
``--match-fraction`` of them near-duplicates of banked hashes. Matches are recorded before
each answer, so accepted = matched. Prints hash submissions/s, per-batch latency (p50,
p99), and how long the act jobs of the matched items took to drain. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip, free_port, ready, render, run_load

from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentRow


def wait_until(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise TimeoutError(f"not done within {timeout}s")


def batch_bodies(
    prefix: str, items: int, batch: int, banked: list[str], share: float, rng: random.Random
) -> list[bytes]:
    bodies = []
    for start in range(0, items, batch):
        chunk = []
        for n in range(start, min(items, start + batch)):
            value = (
                flip(rng.choice(banked), rng.randint(1, 20), rng)
                if rng.random() < share
                else f"{rng.getrandbits(256):064x}"
            )
            chunk.append(
                {
                    "content_id": f"{prefix}-{n}",
                    "content_type": "photo",
                    "signal_type": "pdq",
                    "signal_value": value,
                }
            )
        bodies.append(json.dumps({"items": chunk}).encode())
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--banked", type=int, default=10_000)
    parser.add_argument("--match-fraction", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
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
    database_url = os.environ.get("HMA_DATABASE_URL", "")
    if database_url:
        env["HMA_DATABASE_URL"] = database_url
    print(f"{os.cpu_count()} cores; hma serve with {args.workers} worker(s) in {folder}")
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
        output = server.stdout
        threading.Thread(target=lambda: [None for _ in output], daemon=True).start()
        store = Store(database_url or f"sqlite:///{folder / 'data' / 'hma.sqlite3'}")
        rng = random.Random(5)
        banked = [f"{rng.getrandbits(256):064x}" for _ in range(args.banked)]
        Banks(store).create_bank("bench")
        for start in range(0, len(banked), 5000):
            Banks(store).add_members(
                "bench", [NewMember(signals=(("pdq", h),)) for h in banked[start : start + 5000]]
            )
        wait_until(lambda: ready(port), 60)
        host = f"127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        def requests_for(prefix: str, items: int) -> list[bytes]:
            bodies = batch_bodies(prefix, items, args.batch, banked, args.match_fraction, rng)
            return [render("POST", "/submit/hashes/", host, headers, b) for b in bodies]

        run_load("127.0.0.1", port, requests_for("warm", 4 * args.batch), concurrency=2)
        load = requests_for("hash", args.items)
        result = run_load("127.0.0.1", port, load, concurrency=args.concurrency)
        rate = args.items / result.seconds
        print(
            f"/submit/hashes/ batches of {args.batch}, {args.match_fraction:.0%} matching, "
            f"{args.concurrency} at a time: {args.items:,} hashes in {result.seconds:.1f}s = "
            f"{rate:,.0f} hashes/s; per batch p50 "
            f"{result.percentile(0.5) * 1000:.0f} ms, p99 {result.percentile(0.99) * 1000:.0f} ms; "
            f"statuses {result.statuses}"
        )
        slow = [round(s * 1000) for s in result.latencies if s > 0.5]
        print(
            f"  per batch p90 {result.percentile(0.9) * 1000:.0f} ms, p95 "
            f"{result.percentile(0.95) * 1000:.0f} ms; over 500 ms: {len(slow)} of "
            f"{len(result.latencies)} ({sorted(slow)[-5:]} ms at most)"
        )

        def settled() -> bool:
            with store.reading() as session:
                waiting = session.scalar(
                    select(func.count())
                    .select_from(ContentRow)
                    .where(ContentRow.content_id.like("hash-%"), ContentRow.status == "matched")
                )
            return not waiting

        drained = wait_until(settled, 600)
        print(f"  act jobs of the matched items drained {drained:.1f}s after the last answer")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
