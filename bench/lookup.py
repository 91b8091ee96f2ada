"""`GET /lookup` through the real HTTP stack, and the bank import rate.

    .venv/bin/python bench/lookup.py --sizes 100000,1000000 [--requests 30000]
        [--routes lookup,hma2]

For each size: seeds a bank with random PDQ hashes, writes the index snapshot, starts
`hma serve` with no workers (gunicorn, 2 processes, as on a 2-core API node), and sends
lookups from a load generator on the same machine: half near-duplicates (1-31 bits from a
banked hash), half misses. Prints requests/s, p50/p99, and resident memory per API process.
`--routes lookup,hma2` sends the same lookups to HMA 2.0's `GET /m/lookup` too, for the
compatibility layer's cost over `/lookup`. Then imports `--import-rows` PDQ hashes from an
NDJSON file with `hma banks import` and prints the rate. Prints figures; it is not a test.
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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_freshness import seed
from loadgen import flip, free_port, ready, render, run_load

from hma_framework.index.manager import IndexManager
from hma_framework.registry import make_registry
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.api_keys import ApiKeys
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store

ROUTES = {
    "lookup": "/lookup?signal_type=pdq&signal={}",
    "hma2": "/m/lookup?signal_type=pdq&signal={}",
}


@attrs.frozen
class Seeded:
    """A data folder holding a bank of random PDQ hashes, its index snapshot and a read key."""

    folder: Path
    planted: list[str]  # banked hashes, for near-duplicate queries
    token: str


def seeded_instance(size: int, sample: int = 5000, extra: Sequence[str] = ()) -> Seeded:
    """Seed bank "bench" with ``size`` random PDQ hashes (plus ``extra``) and snapshot it."""
    folder = Path(tempfile.mkdtemp(prefix="hma-lookup-"))
    settings = Settings(data_dir=str(folder))
    store = Store(settings.effective_database_url)
    migrate.upgrade(store)
    planted = seed(store, size, bank="bench", sample=sample)
    if extra:
        Banks(store).add_members("bench", [NewMember(signals=(("pdq", h),)) for h in extra])
    manager = IndexManager(settings, make_registry(settings, strict=True), store)
    manager.load()
    manager.save_snapshots()
    del manager
    token = ApiKeys(store).create("bench", ["read"]).token
    store.close()
    return Seeded(folder, planted, token)


@contextmanager
def serving(folder: Path, **env_extra: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`hma serve` on ``folder`` with no workers and 2 API processes; yields it and its port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(
        HMA_DATA_DIR=str(folder),
        HMA_WEB_PORT=str(port),
        HMA_LOG_LEVEL="WARNING",
        HMA_WORKERS_PROCESSES="0",
        HMA_WEB_THREADS="1",
        HMA_WEB_PROCESSES="2",
        **env_extra,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not ready(port):
            if time.monotonic() > deadline:
                raise TimeoutError("the API never became ready")
            time.sleep(0.2)
        yield server, port
    finally:
        server.terminate()
        server.wait(60)


def api_processes(server: subprocess.Popen[str]) -> list[psutil.Process]:
    """The gunicorn worker processes (not the arbiter) under `hma serve`."""
    return [
        p
        for p in psutil.Process(server.pid).children(recursive=True)
        if "gunicorn" in " ".join(p.cmdline())
        and p.parent() is not None
        and p.parent().pid != server.pid
    ]


def bench_size(size: int, requests: int, concurrency: int, routes: list[str]) -> None:
    instance = seeded_instance(size)
    with serving(instance.folder) as (server, port):
        host = f"127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {instance.token}"}
        results = []
        for route in routes:
            rng = random.Random(11)  # the same lookups on every route

            def request(i: int, path: str = ROUTES[route], rng: random.Random = rng) -> bytes:
                if i % 2 == 0:
                    signal = flip(rng.choice(instance.planted), rng.randint(1, 31), rng)
                else:
                    signal = f"{rng.getrandbits(256):064x}"
                return render("GET", path.format(signal), host, headers)

            warm = [request(i) for i in range(2000)]
            run_load("127.0.0.1", port, warm, concurrency=concurrency)
            load = [request(i) for i in range(requests)]
            results.append((route, run_load("127.0.0.1", port, load, concurrency=concurrency)))
        rss = [p.memory_info().rss / 2**20 for p in api_processes(server)]
        for route, result in results:
            print(f"{size:>9,} hashes: GET {ROUTES[route].split('?')[0]} {result.summary()}")
        print(f"{size:>9,} hashes: RSS per API process {', '.join(f'{r:.0f}' for r in rss)} MiB")


def bench_import(rows: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hma-import-"))
    source = folder / "hashes.ndjson"
    rng = random.Random(3)
    with source.open("w") as handle:
        for i in range(rows):
            handle.write(
                json.dumps(
                    {
                        "signal_type": "pdq",
                        "signal_value": f"{rng.getrandbits(256):064x}",
                        "content_id": f"c{i}",
                    }
                )
                + "\n"
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env["HMA_DATA_DIR"] = str(folder / "data")
    subprocess.run(
        [sys.executable, "-m", "hma_framework", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "hma_framework", "banks", "import", "bulk", str(source), "--create"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    elapsed = time.perf_counter() - started
    added = int(re.search(r"added (\d+)", out).group(1))  # type: ignore[union-attr]
    print(
        f"hma banks import: {added:,} PDQ hashes (NDJSON, SQLite) in {elapsed:.1f}s = "
        f"{added / elapsed:,.0f} rows/s (including process start and migrations check)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--requests", type=int, default=30_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--routes", default="lookup", help="lookup, hma2 or both, comma-separated")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load generator on the same machine")
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.requests, args.concurrency, args.routes.split(","))
    if args.import_rows:
        bench_import(args.import_rows)


if __name__ == "__main__":
    main()
