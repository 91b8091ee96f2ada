"""Index build, snapshot and freshness through the real store and index manager.

    .venv/bin/python bench/index_freshness.py --size 1000000 [--database-url URL]

Seeds a bank with SIZE random PDQ hashes (through the bulk import path, timed separately),
then prints: the time to build the index from the records (one process builds per host and
serves from the snapshot it writes) and resident memory per hash; the time to write a snapshot
and to publish it to the database; a fleet cold start (a process with an empty data folder
starting from the shared snapshot in the database plus the change log); and freshness — the
time from a bank add through the store (the real ``Banks.add_member`` path) until the hash
matches in another process that had loaded the snapshot. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import numpy as np
import psutil

from hma_framework.index.manager import IndexManager
from hma_framework.registry import make_registry
from hma_framework.settings import IndexSettings, Settings
from hma_framework.store import migrate
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store

SEED_BATCH = 50_000


def random_pdq_batches(size: int) -> Iterator[list[str]]:
    """``size`` random PDQ hashes (hex) in batches, the same ones on every call.

    Fixed seed, so a benchmark can load the very same hashes into another system.
    """
    rng = np.random.default_rng(7)
    for start in range(0, size, SEED_BATCH):
        count = min(SEED_BATCH, size - start)
        codes = rng.integers(0, 256, size=(count, 32), dtype=np.uint8)
        yield [row.tobytes().hex() for row in codes]


def seed(store: Store, size: int, bank: str = "seeded", sample: int = 0) -> list[str]:
    """Load ``size`` random PDQ hashes into one bank through the bulk import path.

    Returns up to ``sample`` of the stored hashes, for planting near-duplicate queries.
    """
    banks = Banks(store)
    banks.create_bank(bank)
    kept: list[str] = []
    for hexes in random_pdq_batches(size):
        kept.extend(hexes[: max(0, sample - len(kept))])
        banks.add_members(bank, [NewMember(signals=(("pdq", h),)) for h in hexes])
    return kept


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


def watcher(settings: Settings, queries: mp.Queue, answers: mp.Queue) -> None:
    """Loads the snapshot, then reports when each hash it is asked about first matches."""
    manager = IndexManager(
        settings, make_registry(settings, strict=True), Store(settings.effective_database_url)
    )
    started = time.perf_counter()
    manager.load()
    answers.put(("loaded", time.perf_counter() - started))
    while True:
        signal = queries.get()
        if signal is None:
            return
        answers.put(("watching", 0.0))
        deadline = time.time() + 10
        while time.time() < deadline and not manager.match("pdq", signal):
            time.sleep(0.001)
        answers.put(("seen", time.time()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    parser.add_argument("--adds", type=int, default=20, help="freshness samples")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="hma-bench-"))
    settings = Settings(
        data_dir=str(data_dir),
        database_url=args.database_url,
        index=IndexSettings(shared_snapshots=True),
    )
    store = Store(settings.effective_database_url)
    migrate.upgrade(store)
    print(f"database: {store.dialect}; {args.size:,} PDQ hashes; {os.cpu_count()} cores")
    started = time.perf_counter()
    seed(store, args.size)
    seeded = time.perf_counter() - started
    print(f"seeded through Banks.add_members in {seeded:.1f}s ({args.size / seeded:,.0f}/s)")

    registry = make_registry(settings, strict=True)
    before = rss()
    started = time.perf_counter()
    manager = IndexManager(settings, registry, store)
    manager.load()
    build = time.perf_counter() - started
    per_hash = (rss() - before) / args.size
    folder = settings.data_path / "index" / "pdq"
    mapped = sum(f.stat().st_size for f in folder.glob("*.npy")) / args.size
    print(
        f"build from records: {build:.1f}s (this process built, wrote the snapshot and serves "
        f"from it: {manager.loaded_from['pdq']}); private resident memory {per_hash:.1f} B/hash "
        f"(RSS delta); the memory-mapped snapshot it serves from: {mapped:.1f} B/hash, shared "
        "by every process on the host"
    )
    started = time.perf_counter()
    manager.save_snapshots()
    print(f"snapshot write + publish to the database: {time.perf_counter() - started:.2f}s")
    del manager

    banks = Banks(store)
    for _ in range(100):  # changes after the snapshot: a joining host replays them
        banks.add_member("seeded", NewMember(signals=(("pdq", secrets.token_hex(32)),)))
    joining = attrs.evolve(settings, data_dir=tempfile.mkdtemp(prefix="hma-bench-join-"))
    started = time.perf_counter()
    fleet_node = IndexManager(joining, registry, store)
    fleet_node.load()
    print(
        f"fleet cold start (empty data folder: fetch the shared snapshot, map it, replay 100 "
        f"changes): {time.perf_counter() - started:.2f}s, from {fleet_node.loaded_from['pdq']}, "
        f"{fleet_node.size('pdq'):,} entries"
    )
    del fleet_node

    ctx = mp.get_context("spawn")
    queries: mp.Queue = ctx.Queue()
    answers: mp.Queue = ctx.Queue()
    process = ctx.Process(target=watcher, args=(settings, queries, answers))
    process.start()
    _, load_seconds = answers.get(timeout=600)
    print(f"snapshot load + catch-up in another process: {load_seconds:.2f}s")

    delays, writes = [], []
    for _ in range(args.adds):
        signal = secrets.token_hex(32)
        queries.put(signal)
        answers.get(timeout=30)
        time.sleep(0.05)
        added_at = time.time()
        banks.add_member("seeded", NewMember(signals=(("pdq", signal),)))
        writes.append(time.time() - added_at)
        kind, seen_at = answers.get(timeout=30)
        assert kind == "seen"
        delays.append(seen_at - added_at)
    queries.put(None)
    process.join(30)
    delays.sort()
    p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    print(
        f"freshness (add -> matches in the other process), {len(delays)} adds: "
        f"p50 {statistics.median(delays) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {max(delays) * 1000:.0f} ms (the add's own transaction: p50 "
        f"{statistics.median(writes) * 1000:.0f} ms, max {max(writes) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
