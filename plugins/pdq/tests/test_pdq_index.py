"""The exact PDQ index: every answer checked against a numpy brute-force Hamming scan."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hma_pdq.index import MANIFEST, PdqIndex, codes_from_hex, load_pdq_index, make_pdq_index

from hma_framework.settings import Settings
from hma_framework.types import IndexMatch, SnapshotIndex

THRESHOLDS = (0, 31, 52, 63)

# PdqIndex options under test. "auto" picks 16 chunks of 16 bits at these sizes; 12, 11 and 8
# chunks key on part of each chunk (exactness must survive the projection); "flat" never probes.
LAYOUTS: dict[str, dict[str, int]] = {
    "auto": {},
    "12_chunks": {"chunks": 12},
    "11_chunks": {"chunks": 11},
    "8_chunks": {"chunks": 8},
    "flat": {"flat_max": 2**62},
}


def flip_bits(code: np.ndarray, rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    out = code.copy()
    bits = rng.choice(256, size=int(rng.integers(low, high + 1)), replace=False)
    np.bitwise_xor.at(out, bits // 8, (1 << (bits % 8)).astype(np.uint8))
    return out


def random_codes(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 32), dtype=np.uint8)


def clustered_codes(rng: np.random.Generator, count: int, centers: np.ndarray) -> np.ndarray:
    """Near-duplicates of a few centers: mostly 1-31 bits away, some 32-63, a few exact."""
    rows = []
    for i in range(count):
        center = centers[int(rng.integers(len(centers)))]
        if i % 10 == 0:
            rows.append(flip_bits(center, rng, 32, 63))
        elif i % 50 == 1:
            rows.append(center.copy())
        else:
            rows.append(flip_bits(center, rng, 1, 31))
    return np.stack(rows)


def to_hex(codes: np.ndarray) -> list[str]:
    return [row.tobytes().hex() for row in codes]


def brute_force(
    ids: np.ndarray, codes: np.ndarray, query: np.ndarray, radius: int
) -> list[IndexMatch]:
    distances = np.bitwise_count(codes ^ query).sum(axis=1)
    hit = np.flatnonzero(distances <= radius)
    order = np.lexsort((ids[hit], distances[hit]))
    return [IndexMatch(int(ids[i]), int(distances[i])) for i in hit[order]]


def check_queries(
    index: PdqIndex,
    model: dict[int, np.ndarray],
    queries: np.ndarray,
    radii: tuple[int, ...] = THRESHOLDS,
) -> None:
    """Batch and single queries both equal the brute force over ``model`` (id -> code)."""
    ids = np.fromiter(model, dtype=np.int64, count=len(model))
    codes = np.stack(list(model.values())) if model else np.zeros((0, 32), dtype=np.uint8)
    hexes = to_hex(queries)
    for radius in radii:
        batch = index.query_batch(hexes, radius)
        for query, signal, found in zip(queries, hexes, batch, strict=True):
            expected = brute_force(ids, codes, query, radius)
            assert found == expected, f"radius {radius}"
            assert index.query(signal, radius) == expected
    assert len(index) == len(model)


def queries_for(rng: np.random.Generator, stored: np.ndarray, centers: np.ndarray) -> np.ndarray:
    near_stored = [flip_bits(stored[int(rng.integers(len(stored)))], rng, 0, 40) for _ in range(12)]
    near_centers = [flip_bits(centers[i % len(centers)], rng, 0, 20) for i in range(12)]
    return np.stack([*near_stored, *near_centers, *random_codes(rng, 6)])


# --- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_exact_on_random_and_clustered_data(layout: str) -> None:
    rng = np.random.default_rng(7)
    centers = random_codes(rng, 8)
    codes = np.concatenate([random_codes(rng, 30_000), clustered_codes(rng, 6_000, centers)])
    ids = rng.permutation(np.arange(1, 40 * len(codes), 40))[: len(codes)].astype(np.int64)
    index = PdqIndex(**LAYOUTS[layout])
    index.add_arrays(ids, codes)
    check_queries(
        index, dict(zip(ids.tolist(), codes, strict=True)), queries_for(rng, codes, centers)
    )


def test_segments_use_the_layout_asked_for() -> None:
    rng = np.random.default_rng(1)
    for options, expected in (({}, (16, 16)), ({"chunks": 12}, (12, 16)), ({"chunks": 8}, (8, 16))):
        index = PdqIndex(**options)
        index.add_arrays(np.arange(1, 20_001), random_codes(rng, 20_000))
        assert len(index) == 20_000
        (segment,) = index._segments
        assert segment.mih is not None
        assert (segment.mih.chunks, segment.mih.key_bits) == expected
        postings = 4 * expected[0] * 20_000
        assert index.nbytes > 40 * 20_000 + postings  # codes, ids, postings, offsets


def test_radius_beyond_63_and_below_0() -> None:
    rng = np.random.default_rng(2)
    codes = random_codes(rng, 20_000)
    index = PdqIndex()
    index.add(list(zip(range(1, 20_001), to_hex(codes), strict=True)))
    model = dict(zip(range(1, 20_001), codes, strict=True))
    check_queries(index, model, codes[:3], radii=(-1, 100, 256))


def test_query_batch_equals_single_queries() -> None:
    rng = np.random.default_rng(3)
    centers = random_codes(rng, 4)
    codes = np.concatenate([random_codes(rng, 20_000), clustered_codes(rng, 6_000, centers)])
    index = PdqIndex()
    index.add_arrays(np.arange(1, 26_001), codes)
    index.add(list(zip(range(30_001, 30_101), to_hex(random_codes(rng, 100)), strict=True)))
    signals = to_hex(queries_for(rng, codes, centers)) * 10  # more than one block of queries
    for radius in THRESHOLDS:
        batch = index.query_batch(signals, radius)
        assert batch == [index.query(signal, radius) for signal in signals]


# --- changes ----------------------------------------------------------------------------------


def test_adds_removes_and_replacements_interleaved_with_queries() -> None:
    """Entries in the delta, in pending bulk batches, in small and merged segments."""
    rng = np.random.default_rng(4)
    centers = random_codes(rng, 6)
    # A tiny delta and growth factor: many folds, merges and compactions in a small test.
    index = PdqIndex(delta_max=64, growth=2, flat_max=512)
    model: dict[int, np.ndarray] = {}

    def bulk(ids: np.ndarray, codes: np.ndarray) -> None:
        index.add_arrays(ids, codes)
        model.update(zip(ids.tolist(), codes, strict=True))

    bulk(np.arange(1, 3_001), clustered_codes(rng, 3_000, centers))
    for step in range(40):
        action = step % 5
        if action == 0:  # single adds: some new, some replacing a stored id's hash
            for _ in range(30):
                entry_id = int(rng.integers(1, 6_000))
                code = flip_bits(centers[int(rng.integers(len(centers)))], rng, 0, 40)
                index.add([(entry_id, code.tobytes().hex())])
                model[entry_id] = code
        elif action == 1:  # removals, unknown ids among them
            gone = rng.integers(1, 7_000, size=80)
            index.remove(gone.tolist())
            for entry_id in gone.tolist():
                model.pop(entry_id, None)
        elif action == 2:  # a bulk batch with repeated ids: the last one wins
            ids = rng.integers(1, 6_000, size=500)
            codes = clustered_codes(rng, 500, centers)
            bulk(ids, codes)
        elif action == 3:  # remove then re-add the same id in one go
            entry_id = int(rng.choice(list(model))) if model else 1
            index.remove([entry_id])
            model.pop(entry_id, None)
            code = random_codes(rng, 1)[0]
            index.add([(entry_id, code.tobytes().hex())])
            model[entry_id] = code
        else:  # pending batch followed by removals and adds before the next query
            ids = np.arange(10_000 + 100 * step, 10_000 + 100 * step + 100)
            bulk(ids, random_codes(rng, 100))
            index.remove([int(ids[0]), int(ids[1])])
            del model[int(ids[0])], model[int(ids[1])]
            index.add([(int(ids[1]), centers[0].tobytes().hex())])
            model[int(ids[1])] = centers[0].copy()
        if step % 4 == 3:
            stored = np.stack(list(model.values()))
            check_queries(index, model, queries_for(rng, stored, centers), radii=(0, 31, 63))
    assert len(index._segments) > 1  # several segments were searched together


def test_replacing_an_id_keeps_only_the_new_hash() -> None:
    rng = np.random.default_rng(5)
    old, new = random_codes(rng, 2)
    index = PdqIndex(delta_max=4)
    index.add_arrays(np.arange(1, 20_001), random_codes(rng, 20_000))
    index.add([(7, old.tobytes().hex())])
    assert index.query(old.tobytes().hex(), 0) == [IndexMatch(7, 0)]
    index.add([(7, new.tobytes().hex())])
    assert index.query(old.tobytes().hex(), 0) == []
    assert index.query(new.tobytes().hex(), 0) == [IndexMatch(7, 0)]
    index.add([(7, new.tobytes().hex())])  # re-adding the same value changes nothing
    assert len(index) == 20_000
    index.add(list(zip(range(100_001, 100_011), to_hex(random_codes(rng, 10)), strict=True)))
    assert index.query(new.tobytes().hex(), 0) == [IndexMatch(7, 0)]  # after a fold too
    index.remove([7, 7, 123_456_789])
    assert index.query(new.tobytes().hex(), 0) == []
    assert len(index) == 20_009


def test_empty_index() -> None:
    index = make_pdq_index(Settings())
    assert isinstance(index, SnapshotIndex)
    assert len(index) == 0
    assert index.query("0" * 64, 63) == []
    assert index.query_batch(["f" * 64, "0" * 64], 31) == [[], []]
    assert index.query_batch([], 31) == []
    index.remove([1, 2, 3])
    index.add([])
    assert len(index) == 0


def test_hex_conversion() -> None:
    assert codes_from_hex(["00" * 31 + "ff", "AB" * 32]).tolist() == [
        [0] * 31 + [255],
        [0xAB] * 32,
    ]
    assert codes_from_hex([]).shape == (0, 32)
    for bad in ("0" * 63, "0" * 65, "g" * 64, " " + "0" * 63):
        with pytest.raises(ValueError):
            codes_from_hex(["0" * 64, bad])
    with pytest.raises(ValueError):
        PdqIndex().query("0" * 62, 31)


# --- snapshots --------------------------------------------------------------------------------


def test_save_then_load_answers_the_same_and_keeps_working(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    centers = random_codes(rng, 5)
    codes = np.concatenate([random_codes(rng, 20_000), clustered_codes(rng, 5_000, centers)])
    model = dict(zip(range(1, len(codes) + 1), codes, strict=True))
    index = PdqIndex(delta_max=256)
    index.add_arrays(np.arange(1, len(codes) + 1), codes)
    index.remove([3, 4, 5])
    for entry_id in (3, 4, 5):
        del model[entry_id]
    assert len(index) == len(model)  # the bulk batch is a segment now
    extra = random_codes(rng, 50)  # stays in the delta: saved too
    index.add(list(zip(range(900_001, 900_051), to_hex(extra), strict=True)))
    model.update(zip(range(900_001, 900_051), extra, strict=True))

    index.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["delta"] == 50
    for path in tmp_path.glob("*.npy"):
        np.load(path, allow_pickle=False)  # plain arrays: no pickle anywhere
    assert {p.suffix for p in tmp_path.iterdir()} == {".npy", ".json"}

    loaded = load_pdq_index(Settings(), tmp_path)
    queries = queries_for(rng, codes, centers)
    for radius in THRESHOLDS:
        assert loaded.query_batch(to_hex(queries), radius) == index.query_batch(
            to_hex(queries), radius
        )
    check_queries(loaded, model, queries, radii=(31,))

    more = random_codes(rng, 300)
    loaded.add(list(zip(range(800_001, 800_301), to_hex(more), strict=True)))
    model.update(zip(range(800_001, 800_301), more, strict=True))
    loaded.remove([900_001, 10])
    del model[900_001], model[10]
    check_queries(loaded, model, np.concatenate([queries, more[:5]]), radii=(0, 31))


def test_empty_index_round_trips(tmp_path: Path) -> None:
    PdqIndex().save(tmp_path)
    loaded = load_pdq_index(Settings(), tmp_path)
    assert len(loaded) == 0
    loaded.add([(1, "0" * 64)])
    assert loaded.query("0" * 63 + "1", 1) == [IndexMatch(1, 1)]


def test_load_refuses_a_foreign_or_mismatched_snapshot(tmp_path: Path) -> None:
    index = PdqIndex()
    index.add_arrays(np.arange(1, 20_001), random_codes(np.random.default_rng(8), 20_000))
    index.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    manifest["segments"][0]["entries"] += 1
    (tmp_path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError):
        load_pdq_index(Settings(), tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError):
        load_pdq_index(Settings(), tmp_path)


# --- background merges -------------------------------------------------------------------------


def test_single_adds_merge_inline_when_asked_to() -> None:
    rng = np.random.default_rng(9)
    index = PdqIndex(delta_max=64, growth=1, background=False, flat_max=512)
    model: dict[int, np.ndarray] = {}
    for entry_id, code in enumerate(random_codes(rng, 1_000), start=1):
        index.add([(entry_id, code.tobytes().hex())])
        model[entry_id] = code
        assert not index.merging
    assert len(index._segments) > 1
    check_queries(index, model, random_codes(rng, 4), radii=(31, 63))


def test_queries_and_changes_go_on_while_a_merge_is_held() -> None:
    """A merge forced to wait on a gate: nothing else waits for it, and it swaps in exactly."""
    rng = np.random.default_rng(10)
    centers = random_codes(rng, 4)
    codes = np.concatenate([random_codes(rng, 40_000), clustered_codes(rng, 2_000, centers)])
    index = PdqIndex(delta_max=128, growth=10**9)  # every merge rebuilds the main segment too
    index.add_arrays(np.arange(1, len(codes) + 1), codes)
    model = dict(zip(range(1, len(codes) + 1), codes, strict=True))
    assert len(index) == len(model)
    gate = threading.Event()
    index.merge_gate = gate

    def add(entry_id: int, code: np.ndarray) -> None:
        index.add([(entry_id, code.tobytes().hex())])
        model[entry_id] = code

    for number, code in enumerate(clustered_codes(rng, 128, centers)):
        add(100_000 + number, code)
    assert index.merging
    started = time.perf_counter()
    # While it is held: adds (a second delta fills and freezes), replacements, removals of
    # entries the merge is rebuilding, and queries, all answered exactly.
    for number, code in enumerate(clustered_codes(rng, 300, centers)):
        add(200_000 + number, code)
    add(5, centers[1])  # replaces an entry of the segment being merged
    add(100_003, centers[2])  # replaces an entry of the frozen delta being merged
    index.remove([7, 100_010, 200_001, 999_999])
    for gone in (7, 100_010, 200_001):
        del model[gone]
    queries = queries_for(rng, np.stack(list(model.values())), centers)
    check_queries(index, model, queries, radii=(0, 31))
    assert index.merging and len(index._frozen) >= 3
    assert time.perf_counter() - started < 30  # generous: the point is it did not block

    gate.set()
    index._merge.wait()  # type: ignore[union-attr]
    index.remove([8])
    del model[8]
    check_queries(index, model, queries, radii=(0, 31, 52))
    while index.merging:  # the frozen deltas left behind are merged next
        index._merge.wait()  # type: ignore[union-attr]
        index.query("0" * 64, 0)
    assert not index._frozen and len(index._segments) == 1
    check_queries(index, model, queries, radii=(31,))


@pytest.mark.slow
def test_no_query_waits_for_a_large_merge() -> None:
    """A real rebuild of a 600k-entry segment on the background thread, queries timed."""
    rng = np.random.default_rng(11)
    codes = random_codes(rng, 600_000)
    index = PdqIndex(delta_max=64, growth=10**9)
    index.add_arrays(np.arange(1, len(codes) + 1), codes)
    assert len(index) == len(codes)
    signals = to_hex(codes[:2_000])
    for number, code in enumerate(random_codes(rng, 64)):
        index.add([(1_000_000 + number, code.tobytes().hex())])
    assert index.merging
    started = time.perf_counter()
    latencies = []
    while index.merging:
        signal = signals[len(latencies) % len(signals)]
        before = time.perf_counter()
        found = index.query(signal, 31)
        latencies.append(time.perf_counter() - before)
        assert found[0].distance == 0
    merge_seconds = time.perf_counter() - started
    assert len(index._segments) == 1 and len(index) == 600_064
    assert merge_seconds > 0.3 and len(latencies) > 100
    latencies.sort()
    # A query that waited for the merge would take about as long as the merge (seconds on a
    # busy machine); the bound leaves room for the CPU contention of a shared test host.
    assert latencies[len(latencies) // 2] < 0.005
    assert latencies[-1] < min(0.25, merge_seconds / 4), (latencies[-5:], merge_seconds)
