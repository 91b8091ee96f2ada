"""MD5 of video bytes: the hma_video_md5 plugin."""

from __future__ import annotations

from collections.abc import Iterator

from threatexchange.signal_type.md5 import VideoMD5Signal

from hma_framework.hookspecs import hookimpl
from hma_framework.types import SignalTypeRecord


@hookimpl
def hma_signal_types() -> Iterator[SignalTypeRecord]:
    yield SignalTypeRecord(VideoMD5Signal, content_types=("video",))
