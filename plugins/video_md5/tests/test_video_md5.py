"""Video MD5: streamed hashing and exact matching."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from hma_framework.registry import make_registry
from hma_framework.settings import Settings
from hma_framework.testing import check_signal_type_record


def test_hash_matches_md5_of_the_bytes(tmp_path: Path) -> None:
    record = make_registry(strict=True).signal_types["video_md5"]
    check_signal_type_record(record)
    video = tmp_path / "clip.mp4"
    payload = bytes(range(256)) * 40_000 + b"tail"  # several chunks plus a partial one
    video.write_bytes(payload)
    result = record.make_hasher(Settings()).hash_file(video)
    assert result.value == hashlib.md5(payload).hexdigest()
    assert record.signal_type.validate_signal_str(result.value) == result.value


def test_large_video_hashes_in_constant_memory(tmp_path: Path) -> None:
    video = tmp_path / "big.mp4"
    size = 1 << 30  # 1 GiB, sparse on disk
    with video.open("wb") as handle:
        handle.truncate(size)
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from hma_video_md5 import VideoMd5Hasher\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(VideoMd5Hasher().hash_file(Path(sys.argv[1])).value)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(after - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(video)], capture_output=True, text=True, check=True
    ).stdout.split()
    expected = hashlib.md5()
    zeros = bytes(1 << 20)
    for _ in range(size >> 20):
        expected.update(zeros)
    assert out[0] == expected.hexdigest()
    assert int(out[1]) < 16 * 1024, f"peak RSS grew by {out[1]} KiB while hashing 1 GiB"


def test_video_md5_uses_the_exact_match_index() -> None:
    registry = make_registry(strict=True)
    index = registry.indexes["video_md5"].factory(Settings())
    index.add([(1, "a" * 32), (2, "b" * 32), (3, "a" * 32)])
    assert [m.entry_id for m in index.query("a" * 32, 0)] == [1, 3]
    index.remove([1])
    assert [m.entry_id for m in index.query("a" * 32, 0)] == [3]
    index.add([(3, "c" * 32)])  # replacing an id's hash
    assert index.query("a" * 32, 0) == []
    assert len(index) == 2
