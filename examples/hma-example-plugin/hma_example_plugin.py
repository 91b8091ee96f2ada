"""An example third-party plugin for hma-framework.

It adds two things, each through one hook:

* ``photo_sha256``: a signal type, the SHA-256 of a photo's bytes (exact matching only);
* ``log_line``: an action handler that appends one JSON line per action to a file.

Install it next to hma-framework (``pip install ./examples/hma-example-plugin``) and
``hma plugins`` lists it.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import threading
from collections.abc import Iterator

import attrs
from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.photo import PhotoContent
from threatexchange.signal_type import signal_base

from hma_framework.hookspecs import hookimpl
from hma_framework.types import (
    ActionHandlerRecord,
    ActionOutcome,
    ActionRequest,
    SignalTypeRecord,
)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class PhotoSha256Signal(signal_base.SimpleSignalType, signal_base.BytesHasher):
    """SHA-256 of the photo file's bytes: finds byte-identical copies."""

    INDICATOR_TYPE = "HASH_SHA256"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [PhotoContent]

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        normalized = signal_str.strip().lower()
        if not _SHA256.match(normalized):
            raise ValueError(f"{signal_str!r} is not a SHA-256 hex digest")
        return normalized

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return hashlib.sha256(bytes_).hexdigest()

    @classmethod
    def hash_from_file(cls, file: pathlib.Path) -> str:
        digest = hashlib.sha256()
        with file.open("rb") as media:
            while chunk := media.read(1 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    @staticmethod
    def get_examples() -> list[str]:
        return [hashlib.sha256(b"an example photo").hexdigest()]


@attrs.frozen
class LogLineConfig:
    """Where the handler writes: one JSON object per line."""

    path: str


class LogLineHandler:
    _lock = threading.Lock()

    def __init__(self, config: LogLineConfig) -> None:
        self._path = pathlib.Path(config.path)

    def perform(self, request: ActionRequest) -> ActionOutcome:
        line = json.dumps(
            {
                "content_id": request.content_id,
                "rules": list(request.rules_fired),
                "banks": sorted({m.bank for m in request.matches}),
            }
        )
        try:
            with self._lock, self._path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")
        except OSError as exc:
            return ActionOutcome(ok=False, detail=str(exc), retry=True)
        return ActionOutcome(ok=True)


@hookimpl
def hma_signal_types() -> Iterator[SignalTypeRecord]:
    yield SignalTypeRecord(PhotoSha256Signal)


@hookimpl
def hma_action_handlers() -> Iterator[ActionHandlerRecord]:
    yield ActionHandlerRecord(
        name="log_line",
        config_class=LogLineConfig,
        factory=LogLineHandler,
        description="Append a JSON line per action to a file.",
    )
