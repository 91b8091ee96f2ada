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
    signal_types = runtime.registry.signal_types_for(content_type)
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
