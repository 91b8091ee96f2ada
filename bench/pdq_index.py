"""The exact PDQ index (``hma_pdq.index.PdqIndex``): speed, memory, recall, against pytx.

    .venv/bin/python bench/pdq_index.py --sizes 1000000,10000000

For each size: random PDQ hashes plus planted near-duplicates (1-31 bits from a stored hash),
built from hex records. Queries are half near-duplicates of stored hashes (1-31 bits away) and
half random misses. Prints the build time, single-query latency (p50/p99) and per-query latency
in batches at thresholds 31 and 52, recall and exactness against a faiss brute-force scan on a
sample, resident memory per stored hash (RSS delta around the build), snapshot save and load
times, and the cost of adding one entry at that size and the time until it matches. Then the
same workload on python-threatexchange's default ``PDQIndex`` (sizes up to --baseline-max,
since it keeps ~640 B a hash and builds slowly). ``--chunks 8`` or ``--flat`` show the memory
and speed trade-off of other layouts. Prints figures; it is not a test.
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
        start = time.perf_counter()
        loaded = load_pdq_index(Settings(), folder)
        again = time.perf_counter() - start
        print(
            f"snapshot: save {save:.2f} s, load {load:.2f} s (again: {again:.2f} s), "
            f"{on_disk / 2**20:.0f} MiB on disk, loaded index answers the same: {same}"
        )
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
