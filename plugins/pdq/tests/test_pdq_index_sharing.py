"""Processes that load the same PDQ snapshot share its segment pages (Linux ``smaps``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hma_pdq.index import PdqIndex

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/<pid>/smaps"
)

# Loads the snapshot, reads every page of the mapped arrays, checks an answer, then waits.
CHILD = """
import sys
from pathlib import Path
import numpy as np
from hma_pdq.index import PdqIndex

index = PdqIndex.load(Path(sys.argv[1]))
(segment,) = index._segments
touched = int(segment.codes.sum(dtype=np.uint64)) + int(segment.ids.sum())
touched += int(segment.mih.postings.sum(dtype=np.uint64)) + int(segment.mih.offsets[-1])
found = index.query(segment.codes[5].tobytes().hex(), 0)
assert [m.entry_id for m in found] == [int(segment.ids[5])], found
print("ready", touched, flush=True)
sys.stdin.readline()
"""


def mapping_stats(pid: int, file_name: str) -> dict[str, int]:
    """The ``smaps`` fields (kB) of the mapping of ``file_name`` in process ``pid``."""
    stats: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = len(fields) >= 6 and fields[5].endswith(file_name)
        elif inside and fields[0].endswith(":") and len(fields) >= 2 and fields[1].isdigit():
            stats[fields[0][:-1]] = stats.get(fields[0][:-1], 0) + int(fields[1])
    return stats


def test_two_processes_share_the_segment_pages(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    count = 120_000
    index = PdqIndex()
    index.add_arrays(np.arange(1, count + 1), rng.integers(0, 256, (count, 32), dtype=np.uint8))
    index.save(tmp_path)

    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().startswith("ready")
        for child in children:
            for name, size in (
                ("segment0.codes.npy", 32 * count),
                ("segment0.postings.npy", 4 * 16 * count),
            ):
                stats = mapping_stats(child.pid, name)
                size_kb = size // 1024
                # Resident and mapped by both processes: shared (dirty only while the page
                # cache has not yet written back the file the test just saved), never private.
                shared = stats["Shared_Clean"] + stats["Shared_Dirty"]
                assert stats["Rss"] >= 0.9 * size_kb, (name, stats)
                assert shared >= 0.9 * size_kb, (name, stats)
                assert stats["Private_Clean"] + stats["Private_Dirty"] == 0, (name, stats)
                assert stats["Anonymous"] == 0, (name, stats)
                assert stats["Pss"] <= 0.6 * stats["Rss"], (name, stats)  # half each
            # Only the alive bitmap is copied: no anonymous copy of the codes exists.
            assert mapping_stats(child.pid, "segment0.alive.npy") == {}
    finally:
        for child in children:
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=30)


def test_a_mapped_snapshot_takes_changes_and_merges_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    codes = rng.integers(0, 256, (30_000, 32), dtype=np.uint8)
    index = PdqIndex()
    index.add_arrays(np.arange(1, len(codes) + 1), codes)
    index.save(tmp_path)
    loaded = PdqIndex.load(tmp_path)
    (mapped,) = loaded._segments
    assert not mapped.codes.flags.writeable and not mapped.ids.flags.writeable
    assert mapped.alive.flags.writeable  # private: removals clear its bits
    loaded.delta_max, loaded.growth = 64, 10**9  # every full delta merges the mapped segment

    model = dict(zip(range(1, len(codes) + 1), codes, strict=True))
    for step in range(300):
        code = rng.integers(0, 256, 32, dtype=np.uint8)
        entry_id = int(rng.integers(1, 40_000))  # new ids and replacements
        loaded.add([(entry_id, code.tobytes().hex())])
        model[entry_id] = code
        if step % 7 == 0:
            gone = int(rng.integers(1, 40_000))
            loaded.remove([gone])
            model.pop(gone, None)
    loaded._finish_merge()
    loaded.query("0" * 64, 0)  # swaps in a merge that finished, starts the next
    loaded._finish_merge()
    assert all(s is not mapped for s in loaded._segments)  # rebuilt into private memory
    ids = np.fromiter(model, dtype=np.int64)
    stored = np.stack([model[i] for i in ids.tolist()])
    for probe in (*stored[:5], *stored[-5:]):
        distances = np.bitwise_count(stored ^ probe).sum(axis=1)
        expected = sorted((int(d), int(i)) for i, d in zip(ids, distances, strict=True) if d <= 31)
        found = [(m.distance, m.entry_id) for m in loaded.query(probe.tobytes().hex(), 31)]
        assert found == expected
    assert len(loaded) == len(model)
