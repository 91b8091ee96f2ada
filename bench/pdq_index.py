"""The exact PDQ index (``hma_pdq.index.PdqIndex``): speed, memory, recall, against pytx.

    .venv/bin/python bench/pdq_index.py --sizes 1000000,10000000

For each size: random PDQ hashes plus planted near-duplicates (1-31 bits from a stored hash),
built from hex records. Queries are half near-duplicates of stored hashes (1-31 bits away) and
half random misses. Prints the build time, single-query latency (p50/p99) and per-query latency
in batches at thresholds 31 and 52, recall and exactness against a faiss brute-force scan on a
sample, resident memory per stored hash (RSS delta around the build), snapshot save and load
times, and the cost of adding one entry at that size and the time until it matches. The loaded
snapshot is memory-mapped: its file-backed (shared between processes) and private bytes per hash
are printed after every page was read. Then the latency of queries while a thread adds one
member per millisecond (``--stream-seconds``), both with background merges and with the old
inline merges, forcing every full delta to merge into the main segment (the worst case: at
the default growth factor that happens once per n/8 adds). Then the same workload on
python-threatexchange's default ``PDQIndex`` (sizes up to --baseline-max, since it keeps
~640 B a hash and builds slowly). ``--chunks 8`` or ``--flat`` show the memory and speed
trade-off of other layouts. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import itertools
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np
from hma_pdq.index import PdqIndex, codes_from_hex, load_pdq_index
from hma_pdq.index_segment import FLAT_MAX

from hma_framework.settings import Settings

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    """Resident bytes, after handing freed heap memory back so the deltas mean something."""
    gc.collect()
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE


def flipped(code: np.ndarray, rng: np.random.Generator, low: int = 1, high: int = 31) -> np.ndarray:
    """``code`` with between ``low`` and ``high`` distinct bits flipped."""
    out = code.copy()
    bits = rng.choice(256, size=int(rng.integers(low, high + 1)), replace=False)
    np.bitwise_xor.at(out, bits // 8, (1 << (bits % 8)).astype(np.uint8))
    return out


def dataset(size: int, queries: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
    """Hex records (ids are 1..size), their codes, and the query hashes."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(size, 32), dtype=np.uint8)
    planted = min(size // 100, 100_000)  # near-duplicates of random stored hashes
    for row in range(size - planted, size):
        codes[row] = flipped(codes[int(rng.integers(size - planted))], rng)
    text = codes.tobytes().hex()
    records = [text[i : i + 64] for i in range(0, len(text), 64)]
    del text
    sample = []
    for i in range(queries):
        if i % 2:
            sample.append(rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex())
        else:
            sample.append(flipped(codes[int(rng.integers(size))], rng).tobytes().hex())
    return records, codes, sample


def smaps_rollup() -> dict[str, int]:
    """This process's ``/proc/self/smaps_rollup`` fields, in bytes (Linux only, else empty)."""
    path = Path("/proc/self/smaps_rollup")
    if not path.exists():
        return {}
    fields = {}
    for line in path.read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * 1024
    return fields


def mapped_memory(index: PdqIndex, size: int, before: dict[str, int]) -> str:
    """File-backed (shareable) and private (anonymous) growth since ``before``, per hash."""
    after = smaps_rollup()
    if not after:
        return "(no smaps_rollup on this system)"
    anonymous = after["Anonymous"] - before["Anonymous"]
    file_backed = (after["Rss"] - after["Anonymous"]) - (before["Rss"] - before["Anonymous"])
    return (
        f"file-backed (shared by every process that maps the snapshot) {file_backed / size:.1f} "
        f"B/hash, private {anonymous / size:.1f} B/hash"
    )


def stream_adds(index: PdqIndex, size: int, queries: list[str], seconds: float) -> str:
    """Query latency while another thread adds one member per millisecond (worst case merges).

    Both threads take one lock around each call, as the ``IndexManager`` does.
    """
    lock = threading.Lock()
    stop = threading.Event()
    rng = np.random.default_rng(5)
    fresh = rng.integers(0, 256, size=(int(seconds * 1500) + 10, 32), dtype=np.uint8)
    added = [0]

    def adder() -> None:
        next_at = time.perf_counter()
        while not stop.is_set():
            next_at += 0.001
            with lock:
                row = fresh[added[0]]
                index.add([(10 * size + added[0], row.tobytes().hex())])
            added[0] += 1
            time.sleep(max(0.0, next_at - time.perf_counter()))

    growth, index.growth = index.growth, 10**9  # every frozen delta merges the main segment
    thread = threading.Thread(target=adder, daemon=True)
    latencies, merges_seen = [], 0
    started = time.perf_counter()
    thread.start()
    while time.perf_counter() - started < seconds:
        query = queries[len(latencies) % len(queries)]
        before = time.perf_counter()
        with lock:
            index.query(query, 31)
            merges_seen += index.merging
        latencies.append(time.perf_counter() - before)
        time.sleep(0.0005)
    stop.set()
    thread.join()
    index.growth = growth
    rate = added[0] / (time.perf_counter() - started)
    return (
        f"{len(latencies)} queries, {percentiles(latencies)}, max {max(latencies) * 1e3:.1f} ms; "
        f"{rate:.0f} adds/s; queries that ran during a merge: {merges_seen}"
    )


def percentiles(seconds: Sequence[float]) -> str:
    ordered = sorted(seconds)
    p50 = ordered[len(ordered) // 2] * 1e3
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
    return f"p50 {p50:.3f} ms  p99 {p99:.3f} ms"


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def brute_force(codes: np.ndarray, queries: list[str], radius: int) -> list[set[tuple[int, int]]]:
    """(entry id, distance) within ``radius`` by faiss's exhaustive scan (ids are rows + 1)."""
    query_codes = codes_from_hex(queries)
    result = faiss.RangeSearchResult(len(queries))
    faiss.hamming_range_search(
        faiss.swig_ptr(query_codes),
        faiss.swig_ptr(codes),
        len(queries),
        len(codes),
        radius + 1,
        32,
        result,
    )
    limits = faiss.rev_swig_ptr(result.lims, len(queries) + 1).astype(np.int64)
    labels = faiss.rev_swig_ptr(result.labels, int(limits[-1])).astype(np.int64) + 1
    distances = faiss.rev_swig_ptr(result.distances, int(limits[-1])).astype(np.int64)
    return [
        set(zip(labels[a:b].tolist(), distances[a:b].tolist(), strict=True))
        for a, b in itertools.pairwise(limits.tolist())
    ]


def bench_ours(
    args: argparse.Namespace, size: int, records: list[str], codes: np.ndarray, queries: list[str]
) -> float:
    """Runs and prints everything for our index; returns its p50 at threshold 31."""
    print(f"--- hma_pdq PdqIndex, {size:,} hashes ---")
    before = rss()
    start = time.perf_counter()
    ids = np.arange(1, size + 1, dtype=np.int64)
    converted = codes_from_hex(records)
    parsed = time.perf_counter()
    index = PdqIndex(chunks=args.chunks, flat_max=2**62 if args.flat else FLAT_MAX)
    index.add_arrays(ids, converted)
    del converted, ids
    assert len(index) == size  # builds the segment
    built = time.perf_counter()
    used = rss() - before
    layouts = [s.mih and (s.mih.chunks, s.mih.key_bits) for s in index._segments]
    print(
        f"build from hex records: {built - start:.2f} s (hex -> codes {parsed - start:.2f} s, "
        f"index {built - parsed:.2f} s); layout (chunks, key bits): {layouts}"
    )
    print(
        f"resident memory: {used / size:.1f} B/hash ({used / 2**20:.0f} MiB; "
        f"the index's arrays: {index.nbytes / size:.1f} B/hash)"
    )

    for radius in (31, 52):
        count = args.queries if radius == 31 else max(50, args.queries // 10)
        sample = queries[:count]
        for query in sample[:20]:  # warm up
            index.query(query, radius)
        single = [timed(lambda q=q, r=radius: index.query(q, r)) for q in sample]
        batched = []
        for at in range(0, len(sample), args.batch):
            part = sample[at : at + args.batch]
            batched.append(timed(lambda p=part, r=radius: index.query_batch(p, r)) / len(part))
        if radius == 31:
            p50 = statistics.median(single)
        print(
            f"threshold {radius}: single query {percentiles(single)}; "
            f"batch of {args.batch}: {statistics.mean(batched) * 1e3:.3f} ms/query"
        )

    for radius in (31, 52):
        sample = queries[: args.recall_sample]
        expected = brute_force(codes, sample, radius)
        got = [
            {(m.entry_id, m.distance) for m in found} for found in index.query_batch(sample, radius)
        ]
        wanted = sum(len(e) for e in expected)
        hits = sum(len(e & g) for e, g in zip(expected, got, strict=True))
        extra = sum(len(g - e) for e, g in zip(expected, got, strict=True))
        print(
            f"recall at {radius} vs brute force ({len(sample)} queries, {wanted} matches): "
            f"{hits / max(wanted, 1):.4f}, wrong or extra results: {extra}"
        )

    folder = Path(tempfile.mkdtemp(prefix="pdq-bench-"))
    try:
        save = timed(lambda: index.save(folder))
        on_disk = sum(f.stat().st_size for f in folder.iterdir())
        start = time.perf_counter()
        loaded = load_pdq_index(Settings(), folder)
        load = time.perf_counter() - start
        same = all(loaded.query(q, 31) == index.query(q, 31) for q in queries[:50])
        del loaded
        mapped_before = smaps_rollup()
        start = time.perf_counter()
        loaded = load_pdq_index(Settings(), folder)
        again = time.perf_counter() - start
        first = timed(lambda index=loaded: index.query(queries[0], 31))
        for segment in loaded._segments:  # read every page, as a long-running server would
            int(segment.codes.sum(dtype=np.uint64)) + int(segment.ids.sum())
            if segment.mih is not None:
                int(segment.mih.postings.sum(dtype=np.uint64))
                int(segment.mih.offsets.sum(dtype=np.uint64))
        print(
            f"snapshot: save {save:.2f} s, load {load:.2f} s (again: {again:.2f} s, then first "
            f"query {first * 1e3:.1f} ms), {on_disk / 2**20:.0f} MiB on disk, loaded index "
            f"answers the same: {same}"
        )
        print(f"loaded snapshot, all pages read: {mapped_memory(loaded, size, mapped_before)}")
        del loaded
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    rng = np.random.default_rng(99)
    adds, visible = [], []
    for number in range(args.adds):
        entry = (size + 1 + number, rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex())
        started = time.perf_counter()
        index.add([entry])
        added = time.perf_counter()
        found = index.query(entry[1], 0)
        done = time.perf_counter()
        assert any(m.entry_id == entry[0] for m in found)
        adds.append(added - started)
        visible.append(done - started)
    print(
        f"add one entry ({args.adds} in a row, each then queried): add {percentiles(adds)} "
        f"max {max(adds) * 1e3:.1f} ms; add until it matches {percentiles(visible)} "
        f"max {max(visible) * 1e3:.1f} ms"
    )
    if args.stream_seconds > 0:
        print(
            "queries while adding 1 member/ms, background merges: "
            + stream_adds(index, size, queries, args.stream_seconds)
        )
        index.background = False
        print(
            "  the same with inline merges (before this change): "
            + stream_adds(index, size, queries, args.stream_seconds)
        )
        index.background = True
    return p50


def bench_pytx(
    args: argparse.Namespace, size: int, records: list[str], queries: list[str], ours_p50: float
) -> None:
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    print(f"--- python-threatexchange PDQIndex (IndexBinaryMultiHash), {size:,} hashes ---")
    before = rss()
    start = time.perf_counter()
    index = PDQIndex.build(zip(records, range(1, size + 1), strict=True))
    built = time.perf_counter() - start
    used = rss() - before
    sample = queries[: min(args.queries, 1000)]
    single = [timed(lambda q=q: index.query(q)) for q in sample]
    print(f"build {built:.2f} s; resident memory {used / size:.1f} B/hash")
    print(f"threshold 31 (its fixed threshold): single query {percentiles(single)}")
    ratio = statistics.median(single) / ours_p50
    print(f"=> hma_pdq p50 is {ratio:.1f}x faster at threshold 31 in this run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=2000, help="single queries at 31")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--recall-sample", type=int, default=200)
    parser.add_argument("--adds", type=int, default=10_000)
    parser.add_argument("--stream-seconds", type=float, default=15.0, help="0: skip")
    parser.add_argument("--baseline-max", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, help="force this many MIH chunks")
    parser.add_argument("--flat", action="store_true", help="no MIH: faiss flat scans only")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        f"faiss {faiss.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs, faiss threads 1"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        start = time.perf_counter()
        records, codes, queries = dataset(size, max(args.queries, args.recall_sample), args.seed)
        print(f"\n=== {size:,} hashes (data generated in {time.perf_counter() - start:.1f} s) ===")
        p50 = bench_ours(args, size, records, codes, queries)
        if size <= args.baseline_max:
            bench_pytx(args, size, records, queries, p50)
        else:
            print(
                f"(python-threatexchange baseline skipped above {args.baseline_max:,}: "
                "~640 B/hash and minutes to build)"
            )
        del records, codes, queries


if __name__ == "__main__":
    main()
