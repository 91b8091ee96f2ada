"""Where submitted media waits to be hashed: a folder on the local disk by default.

Media is written under a random key, read back by the hash job as a file path (hashers stream
from paths), and deleted once hashed unless retention is configured.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import IO, Protocol

CHUNK_BYTES = 1 << 20


class MediaTooLargeError(ValueError):
    pass


class MediaStore(Protocol):
    def new_key(self) -> str: ...

    def write(self, key: str, source: IO[bytes], max_bytes: int) -> int: ...

    def write_bytes(self, key: str, data: bytes) -> int: ...

    def path(self, key: str) -> Path: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


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
        partial.write_bytes(data)
        os.replace(partial, final)
        return len(data)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
