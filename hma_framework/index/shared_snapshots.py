"""Index snapshots shared through the database, so a new host starts without a build.

In a fleet each host has its own data folder; a host that joins has no snapshot and would
build every index from the records (minutes at 10M hashes). With ``index.shared_snapshots``
the maintenance job also publishes the snapshot folder it wrote into the database, in chunks
of a few MiB, and a process that finds no local snapshot downloads the newest one into its
data folder, loads it (memory-mapped, like any local snapshot) and catches up from the change
log past the snapshot's ``seq``. Each publication is one transaction that replaces the
previous generation, so readers see one complete snapshot or the one before it.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from sqlalchemy import delete, select

from hma_framework.store.db import Store
from hma_framework.store.tables import IndexSnapshotChunkRow, IndexSnapshotRow

log = logging.getLogger(__name__)

CHUNK_BYTES = 8 << 20
MANIFEST = "snapshot.json"


def publish(store: Store, signal_type: str, folder: Path) -> int:
    """Store the snapshot in ``folder`` as the newest shared one; returns its generation."""
    manifest = json.loads((folder / MANIFEST).read_text())
    paths = sorted(p for p in folder.iterdir() if p.is_file())
    with store.transaction() as session:
        current = session.get(IndexSnapshotRow, signal_type)
        generation = current.generation + 1 if current is not None else 1
        files = []
        for path in paths:
            chunks = 0
            with path.open("rb") as source:
                while data := source.read(CHUNK_BYTES):
                    row = IndexSnapshotChunkRow(
                        signal_type=signal_type,
                        generation=generation,
                        name=path.name,
                        chunk=chunks,
                        data=data,
                    )
                    session.add(row)
                    session.flush()
                    session.expunge(row)  # one chunk in memory at a time
                    chunks += 1
            files.append({"name": path.name, "size": path.stat().st_size, "chunks": chunks})
        if current is None:
            current = IndexSnapshotRow(signal_type=signal_type)
            session.add(current)
        current.generation = generation
        current.seq = int(manifest["seq"])
        current.entries = int(manifest.get("entries", 0))
        current.files = files
        session.execute(
            delete(IndexSnapshotChunkRow).where(
                IndexSnapshotChunkRow.signal_type == signal_type,
                IndexSnapshotChunkRow.generation != generation,
            )
        )
    return generation


def fetch(store: Store, signal_type: str, root: Path) -> bool:
    """Download the newest shared snapshot of ``signal_type`` to ``root / signal_type``.

    False when there is none, or when it was replaced while downloading (the caller then
    builds from the records, or tries again later). Callers hold the host's build lock.
    """
    with store.reading() as session:
        pointer = session.get(IndexSnapshotRow, signal_type)
        if pointer is None:
            return False
        generation, files = pointer.generation, list(pointer.files)
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".{signal_type}.{time.monotonic_ns()}.shared"
    staging.mkdir()
    try:
        for entry in files:
            with (staging / entry["name"]).open("wb") as target:
                for chunk in range(int(entry["chunks"])):
                    with store.reading() as session:
                        data = session.scalar(
                            select(IndexSnapshotChunkRow.data).where(
                                IndexSnapshotChunkRow.signal_type == signal_type,
                                IndexSnapshotChunkRow.generation == generation,
                                IndexSnapshotChunkRow.name == entry["name"],
                                IndexSnapshotChunkRow.chunk == chunk,
                            )
                        )
                    if data is None:
                        log.info("shared %s snapshot %d was replaced", signal_type, generation)
                        return False
                    target.write(data)
            if (staging / entry["name"]).stat().st_size != int(entry["size"]):
                raise ValueError(f"shared snapshot file {entry['name']} has the wrong size")
        final = root / signal_type
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
