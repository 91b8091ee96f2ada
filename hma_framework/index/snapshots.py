"""Index snapshots on disk: the index's own files plus a small JSON manifest, never pickle.

A snapshot folder is written beside the live one and swapped in with a rename, so a reader
sees the old snapshot or the new one, never half of each. The manifest records the change-log
``seq`` the index had applied; a loading process catches up from there.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from hma_framework.settings import Settings
from hma_framework.types import IndexRecord, SignalIndex, SnapshotIndex

log = logging.getLogger(__name__)

MANIFEST = "snapshot.json"
FORMAT_VERSION = 1


def save(root: Path, signal_type: str, index: SignalIndex, seq: int) -> bool:
    """Write ``index`` if it supports snapshots; False if it does not."""
    if not isinstance(index, SnapshotIndex):
        return False
    root.mkdir(parents=True, exist_ok=True)
    final = root / signal_type
    staging = root / f".{signal_type}.{time.monotonic_ns()}.tmp"
    staging.mkdir()
    try:
        index.save(staging)
        manifest = {"format": FORMAT_VERSION, "seq": seq, "entries": len(index), "at": time.time()}
        (staging / MANIFEST).write_text(json.dumps(manifest))
        retired = root / f".{signal_type}.{time.monotonic_ns()}.old"
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def load(
    root: Path, signal_type: str, record: IndexRecord, settings: Settings
) -> tuple[SignalIndex, int] | None:
    """The saved index and its ``seq``, or None when there is no usable snapshot."""
    folder = root / signal_type
    manifest_path = folder / MANIFEST
    if record.loader is None or not manifest_path.exists():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"unknown snapshot format {manifest.get('format')!r}")
        index = record.loader(settings, folder)
        return index, int(manifest["seq"])
    except Exception as exc:
        log.warning("ignoring the %s snapshot in %s: %s", signal_type, folder, exc)
        return None


def stamp(root: Path, signal_type: str) -> tuple[int, int] | None:
    """What identifies the snapshot on disk now (a new save is a new manifest file)."""
    try:
        status = (root / signal_type / MANIFEST).stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


@contextlib.contextmanager
def build_lock(root: Path, signal_type: str) -> Iterator[None]:
    """Held while one process on the host builds ``signal_type``'s index from the records.

    The others wait, then load the snapshot the builder wrote: a host builds each index once,
    not once per process (an advisory ``flock``, released if the builder dies).
    """
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{signal_type}.build.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
