"""Sweeping media nobody will read: files no content references, downloads killed mid-way.

Media is written before the row that references it is committed (``/submit/bytes/``, an
upload URL), and downloads land in ``<data_dir>/tmp`` for as long as a fetch and its hashing
take, so a file is only swept once it is older than a safe age: the configured
``pipeline.orphan_media_after_seconds``, and never less than a job's timeout plus a minute.
Called from reconcile; kept apart from it so each stays small.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from sqlalchemy import select

from hma_framework.runtime import Runtime
from hma_framework.store.tables import ContentRow

log = logging.getLogger(__name__)

#: How many media keys one reference query checks.
CHUNK = 500
#: In the data folder, touched at each sweep (outside media/, which the sweep lists).
SWEPT_MARKER = ".media-swept"


def safe_age_seconds(runtime: Runtime) -> int:
    """Files younger than this may still be on their way to being referenced or hashed."""
    settings = runtime.settings
    floor = max(settings.workers.job_timeout_seconds, settings.fetch.timeout_seconds) + 60
    return max(settings.pipeline.orphan_media_after_seconds, floor)


def _old_files(folder: Path, cutoff: float) -> Iterator[Path]:
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                yield path
        except FileNotFoundError:  # removed meanwhile by its own job
            continue


def _chunks(paths: Iterable[Path]) -> Iterator[list[Path]]:
    chunk: list[Path] = []
    for path in paths:
        chunk.append(path)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _referenced(runtime: Runtime, keys: list[str]) -> set[str]:
    with runtime.store.reading() as session:
        found = session.scalars(select(ContentRow.media_key).where(ContentRow.media_key.in_(keys)))
        return {key for key in found if key}


def _due(runtime: Runtime, now: float) -> bool:
    """Whether a quarter of the safe age passed since the last sweep (a marker file's mtime).

    Reconcile runs every minute; listing a media folder that retains millions of files that
    often would cost more than the few files it could free.
    """
    marker = runtime.settings.data_path / SWEPT_MARKER
    try:
        if now - marker.stat().st_mtime < safe_age_seconds(runtime) / 4:
            return False
    except FileNotFoundError:
        pass
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os.utime(marker, (now, now))
    return True


def sweep_media(
    runtime: Runtime, now: float | None = None, *, force: bool = False
) -> dict[str, int]:
    """Delete old unreferenced media and old partial files; return what was removed.

    Runs at most once per quarter of the safe age unless ``force`` is set.
    """
    now = time.time() if now is None else now
    if not force and not _due(runtime, now):
        return {"swept_media": 0, "swept_partial": 0}
    cutoff = now - safe_age_seconds(runtime)
    media_root = runtime.settings.data_path / "media"
    removed_media = removed_partial = 0
    for chunk in _chunks(_old_files(media_root, cutoff)):
        partial = [p for p in chunk if p.name.startswith(".")]  # ".<key>.partial" writes
        complete = [p for p in chunk if not p.name.startswith(".")]
        keep = _referenced(runtime, [p.name for p in complete]) if complete else set()
        for path in partial:
            path.unlink(missing_ok=True)
            removed_partial += 1
        for path in complete:
            if path.name not in keep:
                path.unlink(missing_ok=True)
                removed_media += 1
    for path in _old_files(runtime.settings.data_path / "tmp", cutoff):
        path.unlink(missing_ok=True)  # a download or upload copy whose worker died
        removed_partial += 1
    if removed_media or removed_partial:
        log.info(
            "swept %d unreferenced media file(s) and %d partial file(s)",
            removed_media,
            removed_partial,
        )
    return {"swept_media": removed_media, "swept_partial": removed_partial}
