"""MD5 of video bytes: the hma_video_md5 plugin.

Exact matching only, so its index is the core's hash map.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from threatexchange.signal_type.md5 import VideoMD5Signal

from hma_framework.hookspecs import hookimpl
from hma_framework.index.simple import ExactMatchIndex
from hma_framework.settings import Settings
from hma_framework.types import HashResult, IndexRecord, SignalTypeRecord

CHUNK_BYTES = 1 << 20


class VideoMd5Hasher:
    """Streams the file through MD5 in 1 MiB chunks: constant memory for a multi-GB video."""

    def hash_file(self, path: Path) -> HashResult:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as video:
            while chunk := video.read(CHUNK_BYTES):
                digest.update(chunk)
        return HashResult(value=digest.hexdigest())


def make_hasher(_settings: Settings) -> VideoMd5Hasher:
    return VideoMd5Hasher()


@hookimpl
def hma_signal_types() -> Iterator[SignalTypeRecord]:
    yield SignalTypeRecord(VideoMD5Signal, content_types=("video",), hasher_factory=make_hasher)


@hookimpl
def hma_indexes() -> Iterator[IndexRecord]:
    yield IndexRecord(
        signal_type="video_md5",
        factory=lambda _settings: ExactMatchIndex(),
        loader=lambda _settings, directory: ExactMatchIndex.load(directory),
    )
