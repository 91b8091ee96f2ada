"""Where submitted media waits to be hashed: a folder on the local disk by default.

Media is written under a random key, read back by the hash job as a local file (hashers stream
from paths), and deleted once hashed unless retention is configured. A content-source plugin
may keep media elsewhere (an object store) by offering a ``media_store`` factory on its
record; such a store may also take uploads directly (``direct_upload_url``), in which case
``/submit/put-url/`` answers its URL and the store's own event tells the pipeline an upload
arrived (the reconcile job checks ``exists`` for uploads whose event never came).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Protocol

from hma_framework.errors import PermanentMediaError

CHUNK_BYTES = 1 << 20


class MediaTooLargeError(ValueError):
    pass


class MediaStoreUnavailable(RuntimeError):
    """The store cannot take media now (an object store down or refusing): answer 503."""


class MediaStore(Protocol):
    def new_key(self) -> str: ...

    def write(self, key: str, source: IO[bytes], max_bytes: int) -> int:
        """Stream ``source`` in; ``MediaTooLargeError`` (keeping nothing) past ``max_bytes``."""
        ...

    def write_bytes(self, key: str, data: bytes) -> int: ...

    def local_file(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """The media as a local file for the length of the ``with`` block;
        ``PermanentMediaError`` if it is no longer stored."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def direct_upload_url(self, key: str, media_type: str, ttl_seconds: int) -> str | None:
        """A URL a client can ``PUT`` the media to, expiring after ``ttl_seconds``, or None
        when uploads go through the API's own ``/upload/<token>`` route."""
        ...


class LocalMediaStore:
    """Media files in ``<data_dir>/media``, written to a temporary name and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def new_key(self) -> str:
        return secrets.token_hex(16)

    def path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"invalid media key {key!r}")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    @contextlib.contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        if not path.exists():
            raise PermanentMediaError("the uploaded media is no longer in the media store")
        yield path

    def direct_upload_url(self, key: str, media_type: str, ttl_seconds: int) -> str | None:
        return None  # uploads arrive through the API's signed /upload/<token> URLs

    def write(self, key: str, source: IO[bytes], max_bytes: int) -> int:
        """Stream ``source`` into the store; refuse (and keep nothing) past ``max_bytes``."""
        final = self.path(key)
        partial = final.with_name(f".{key}.partial")
        written = 0
        try:
            with partial.open("wb") as target:
                while chunk := source.read(CHUNK_BYTES):
                    written += len(chunk)
                    if written > max_bytes:
                        raise MediaTooLargeError(f"media is larger than {max_bytes} bytes")
                    target.write(chunk)
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)
        return written

    def write_bytes(self, key: str, data: bytes) -> int:
        final = self.path(key)
        partial = final.with_name(f".{key}.partial")
        try:
            partial.write_bytes(data)
            os.replace(partial, final)
        finally:  # a full disk leaves part of it: give the space back at once
            partial.unlink(missing_ok=True)
        return len(data)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
