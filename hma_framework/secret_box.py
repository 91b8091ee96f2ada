"""Secrets at rest: the one place that touches ciphertext and the key that opens it.

Exchange credentials and action-handler secrets are stored as ``{"sealed": "<Fernet token>"}``
(a JSON object, so the columns keep their type). The key comes from ``HMA_SECRETS_KEY``; when
that is empty it is generated once into ``<data_dir>/secrets_key`` (owner-only). Generation
writes a temporary file and hard-links it into place, so two processes starting at once
agree on one key: the second link fails and that process reads the winner's file.

Rows written before encryption arrived hold the plain object; :meth:`SecretBox.open` reads
both forms and the next write seals them (see :func:`is_sealed`).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from hma_framework.settings import Settings

SEALED_FIELD = "sealed"
KEY_FILE_NAME = "secrets_key"


class SecretsUnreadableError(RuntimeError):
    """Stored secrets do not open with this key (a different ``HMA_SECRETS_KEY``)."""


def is_sealed(stored: Mapping[str, Any]) -> bool:
    return set(stored) == {SEALED_FIELD} and isinstance(stored[SEALED_FIELD], str)


class SecretBox:
    """Seals a mapping of secret values into a JSON-safe mapping, and opens it again."""

    def __init__(self, key_material: str) -> None:
        # Any string works as key material: SHA-256 stretches it to Fernet's 32 bytes.
        digest = hashlib.sha256(key_material.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    def seal(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if not values:
            return {}
        token = self._fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode())
        return {SEALED_FIELD: token.decode()}

    def open(self, stored: Mapping[str, Any] | None) -> dict[str, Any]:
        if not stored:
            return {}
        if not is_sealed(stored):
            return dict(stored)  # written before secrets were encrypted
        try:
            plain = self._fernet.decrypt(stored[SEALED_FIELD].encode())
        except InvalidToken:
            raise SecretsUnreadableError(
                "stored secrets do not open with this HMA_SECRETS_KEY; set the key they were "
                "sealed with, or enter the secrets again"
            ) from None
        opened: dict[str, Any] = json.loads(plain)
        return opened


def _generated_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        temporary = data_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(secrets.token_urlsafe(32))
                key_file.flush()
                os.fsync(key_file.fileno())
            # Atomic: fails if another process got there first, and then its key wins.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise SecretsUnreadableError(f"{path} is empty; delete it or set HMA_SECRETS_KEY")
    return key


@functools.lru_cache(maxsize=16)
def _box(key_setting: str, data_dir: str) -> SecretBox:
    return SecretBox(key_setting or _generated_key(Path(data_dir).resolve()))


def secret_box(settings: Settings) -> SecretBox:
    """The process's box for ``settings`` (the key file is read once per data folder)."""
    return _box(settings.secrets_key, settings.data_dir)
