"""The upload-URL signing key: created once, atomically, in the data folder.

Several processes (API workers, ``hma serve``) may need the key before any of them has made
it. Creating it in place let a reader see an empty file and two creators collide, so the key
is written to a private temporary file and renamed into place under an exclusive lock: a
reader sees either no file or the whole key, and every process ends up with the same key.
``hma serve`` creates it at start so the API never races at all.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
from pathlib import Path

from hma_framework.data_folder import FILE_MODE, make_private_dir
from hma_framework.settings import Settings

KEY_FILE = "secret_key"
_cache: dict[Path, str] = {}
_cache_lock = threading.Lock()


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def _create(path: Path) -> str:
    make_private_dir(path.parent)
    lock_path = path.with_name(f".{KEY_FILE}.lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        key = _read(path)
        if key:
            return key  # another process made it while we waited
        key = secrets.token_urlsafe(48)
        temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)  # also replaces an empty key left by older versions
        return key
    finally:
        os.close(descriptor)  # releases the lock


def data_folder_key(data_path: Path) -> str:
    """The key in ``data_path``, made on first use; the same string in every process."""
    path = (data_path / KEY_FILE).resolve()
    with _cache_lock:
        cached = _cache.get(path)
        if cached:
            return cached
        key = _read(path) or _create(path)
        _cache[path] = key
        return key


def signing_key(settings: Settings) -> str:
    """The configured ``web.secret_key``, or the data folder's generated one."""
    return settings.web.secret_key or data_folder_key(settings.data_path)
