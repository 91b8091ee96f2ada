"""Turning media into signals: fetch a URL to a temporary file, hash a file for a content type.

Shared by the pipeline's hash job and by the API calls that hash synchronously (adding bank
members from media, ``POST /lookup``).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hma_framework.errors import PermanentMediaError
from hma_framework.runtime import Runtime
from hma_framework.store.content import ComputedSignal


@contextlib.contextmanager
def fetched(runtime: Runtime, url: str) -> Iterator[Path]:
    """Download ``url`` through its content source into a temporary file, removed after."""
    source = runtime.content_source(url)
    if source is None:
        raise PermanentMediaError(f"no content source can fetch {url!r}")
    tmp_dir = runtime.settings.data_path / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=tmp_dir, prefix="fetch-")
    download = Path(name)
    try:
        with open(handle, "wb") as target:
            source.fetch(url, target)
        yield download
    finally:
        download.unlink(missing_ok=True)


@contextlib.contextmanager
def bytes_file(runtime: Runtime, media: bytes) -> Iterator[Path]:
    """``media`` in a temporary file (hashers stream from paths), removed after."""
    tmp_dir = runtime.settings.data_path / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="upload-") as handle:
        handle.write(media)
        handle.flush()
        yield Path(handle.name)


def compute_signals(
    runtime: Runtime, content_type: str, path: Path, *, alternates: bool = True
) -> list[ComputedSignal]:
    """Every installed signal type for ``content_type``, computed from the file at ``path``.

    Each hasher's result comes first, then (with ``alternates``) the other readings it gives
    of the same media, such as the stored pixels of an EXIF-rotated photo.
    """
    signal_types = [r for r in runtime.registry.signal_types_for(content_type) if r.hashes_media]
    if not signal_types:
        raise PermanentMediaError(f"no installed signal type hashes {content_type} content")
    computed = []
    for record in signal_types:
        result = runtime.hashers[record.name].hash_file(path)
        readings = result.readings() if alternates else (result,)
        computed += [
            ComputedSignal(record.name, r.value, r.quality, r.quality_ok, r.variant)
            for r in readings
        ]
    return computed


# Leading bytes of the image formats the photo hashers decode.
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")


def guess_content_type(path: Path) -> str:
    """``photo`` for a file that starts like an image, else ``video``.

    For callers that are not told the content type (HMA 2.0's ``/h/hash?url=``, which reads
    it from the download's header); sniffing the bytes also works for uploads.
    """
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return "photo"
    return "video"


def hash_for_lookup(
    runtime: Runtime, content_type: str, path: Path, signal_types: list[str] | None = None
) -> dict[str, str]:
    """``{signal_type: hash}`` of the file, limited to ``signal_types`` when given.

    Signals under their quality bar are left out: a lookup by them matches noise.
    """
    wanted = set(signal_types) if signal_types else None
    return {
        s.signal_type: s.value
        for s in compute_signals(runtime, content_type, path)
        if s.quality_ok and (wanted is None or s.signal_type in wanted)
    }
