"""Retroaction's scan: recent content signals in the on-disk ring through new bank signals.

    .venv/bin/python bench/retroaction.py [--ring 1000000] [--new 1 10000] [--threshold 31]
    .venv/bin/python bench/retroaction.py --end-to-end --content 20000

Part 1 (the issue's goals): fills a ring with ``--ring`` random PDQ content signals, then for
each ``--new`` count builds the probe a pass builds for that many new bank signals (direct
XOR-popcount for a few, flip-expanded key tables for many, the PDQ index otherwise: see
``matching.with_hamming``) and streams the whole ring through it; 5 of the new signals are
planted near ring entries so the scan has hits to report. Prints scan wall and CPU time,
rate, the path taken (with the tables' size), ring size on disk and the process's peak memory.

Part 2 (``--end-to-end``): a real store (SQLite in a temp folder, or ``--database-url``: a
fresh schema of that PostgreSQL database, dropped after) with ``--content`` hash
submissions; a bank member is added and one automatic pass (ring sync + scan + record +
rules) is timed, first with a cold ring (built from the database) then warm.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip

from hma_framework.index.holders import Holder
from hma_framework.retroaction.matching import Probe, scan, with_hamming
from hma_framework.retroaction.ring import SignalRing
from hma_framework.settings import Settings


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill_ring(ring: SignalRing, count: int, rng: random.Random) -> list[str]:
    now = time.time()
    sample: list[str] = []
    block = 100_000
    for start in range(0, count, block):
        size = min(block, count - start)
        raw = np.frombuffer(rng.randbytes(32 * size), dtype=np.uint8).reshape(size, 32)
        values = [row.tobytes().hex() for row in raw]
        ring.append([(start + i, now, v) for i, v in enumerate(values)])
        sample.extend(values[:: max(1, size // 5)][:5])
    return sample


def scan_figures(ring_size: int, new_counts: list[int], threshold: int, batch: int) -> None:

    rng = random.Random(11)
    folder = Path(tempfile.mkdtemp(prefix="hma-retro-bench-"))
    ring = SignalRing(folder / "pdq-w64", 64, 65536)
    started = time.perf_counter()
    sample = fill_ring(ring, ring_size, rng)
    print(
        f"ring: {len(ring):,} PDQ signals, {ring.nbytes / 2**20:.0f} MiB on disk, "
        f"filled in {time.perf_counter() - started:.1f}s"
    )
    settings = Settings(data_dir=str(folder))
    for new in new_counts:
        planted = [flip(value, 8, rng) for value in sample[:5]]
        signals = planted + [f"{rng.getrandbits(256):064x}" for _ in range(max(0, new - 5))]
        signals = signals[:new]
        built, cpu_built = time.perf_counter(), time.process_time()
        probe = bench_probe(settings, signals, threshold)
        scan_started, cpu_started = time.perf_counter(), time.process_time()
        hits = scanned = 0
        batches = ((r["pk"], r["value"]) for r in ring.scan(0.0, batch))
        for count, found in scan(probe, batches):
            scanned += count
            hits += len({content_pk for content_pk, _ in found})
        elapsed = time.perf_counter() - scan_started
        cpu = time.process_time() - cpu_started
        if probe.tables is not None:
            path = f"key tables, {probe.tables.nbytes / 2**20:.1f} MiB"
        else:
            path = "XOR-popcount" if probe.codes is not None else "PDQ index query_batch"
        print(
            f"{new:>6,} new bank signals x {scanned:,} ring signals at threshold {threshold} "
            f"({path}): scan {elapsed:.2f}s wall, {cpu:.2f}s CPU "
            f"({scanned / elapsed:,.0f} signals/s), probe built in {scan_started - built:.2f}s "
            f"wall, {cpu_started - cpu_built:.2f}s CPU, {hits} content hit; "
            f"peak RSS {peak_mib():.0f} MiB"
        )


def bench_probe(settings: Settings, signals: list[str], threshold: int) -> Probe:
    """The probe a pass builds, without a database: every signal held by one bank member."""
    from hma_pdq.index import make_pdq_index

    index = make_pdq_index(settings)
    index.add(list(enumerate(signals)))
    holders = {
        pk: [Holder(value, 1, "bench", (), {}, pk, None, (), "", None, {})]
        for pk, value in enumerate(signals)
    }
    probe = Probe("pdq", index, holders, threshold)
    return with_hamming(probe, list(enumerate(signals)), 256)


def end_to_end(content: int, database_url: str | None, redis_url: str) -> None:
    if database_url and not database_url.startswith("sqlite"):
        from hma_framework.testing import postgres_schema

        with postgres_schema(database_url) as url:  # a fresh schema, dropped after
            end_to_end_on(content, url, redis_url)
        return
    end_to_end_on(content, database_url, redis_url)


def end_to_end_on(content: int, database_url: str | None, redis_url: str) -> None:
    from redis import Redis

    from hma_framework.pipeline.queues import Queues
    from hma_framework.registry import make_registry
    from hma_framework.retroaction.automatic import run_pass
    from hma_framework.runtime import Runtime
    from hma_framework.store import migrate
    from hma_framework.store.banks import Banks, NewMember
    from hma_framework.store.content import ComputedSignal, Submission
    from hma_framework.store.db import Store
    from hma_framework.store.hash_submissions import HashItem, HashSubmissions

    folder = Path(tempfile.mkdtemp(prefix="hma-retro-e2e-"))
    settings = Settings(data_dir=str(folder), database_url=database_url or "")
    store = Store(settings.effective_database_url)
    print(f"end to end on {store.dialect}")
    migrate.upgrade(store)
    rng = random.Random(3)
    values = [f"{rng.getrandbits(256):064x}" for _ in range(content + 1000)]
    started = time.perf_counter()
    writer = HashSubmissions(store)

    def submit(first: int, stop: int) -> None:
        for start in range(first, stop, 1000):
            items = [
                HashItem(
                    Submission(f"c{n}", "photo", "hash", parameters={"v": values[n]}),
                    ComputedSignal("pdq", values[n]),
                    (),
                )
                for n in range(start, min(stop, start + 1000))
            ]
            writer.record_many(items, act_job_id="bench")

    submit(0, content)
    print(
        f"end to end: {content:,} hash submissions stored in {time.perf_counter() - started:.1f}s"
    )
    registry = make_registry(settings, strict=True)
    runtime = Runtime(
        settings=settings,
        registry=registry,
        store=store,
        redis=Redis.from_url(redis_url),  # not used by run_pass
        queues=Queues(Redis.from_url(redis_url), default_timeout=60),
    )
    banks = Banks(store)
    banks.create_bank("late")
    for label in (
        "cold ring (built from the database)",
        "warm ring",
        "warm ring, 1,000 submissions since",
    ):
        if label.endswith("since"):
            submit(content, content + 1000)
        target = values[rng.randrange(content)]
        banks.add_member("late", NewMember(signals=(("pdq", flip(target, 6, rng)),)))
        began = time.perf_counter()
        report = run_pass(runtime)
        print(
            f"  member added -> pass done, {label}: {time.perf_counter() - began:.2f}s; "
            f"scanned {report['scanned']:,}, content newly matched {report['matched_content']}"
        )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ring", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, nargs="+", default=[1, 10_000])
    parser.add_argument("--threshold", type=int, default=31)
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--end-to-end", action="store_true")
    parser.add_argument("--content", type=int, default=20_000)
    parser.add_argument(
        "--database-url", help="end to end on this database (PostgreSQL: a fresh schema)"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    scan_figures(args.ring, args.new, args.threshold, args.batch)
    if args.end_to_end:
        end_to_end(args.content, args.database_url, args.redis_url)


if __name__ == "__main__":
    main()
