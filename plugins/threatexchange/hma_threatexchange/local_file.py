"""``local_file``: signal lists read from files, only inside the configured file root.

The library opens whatever ``filename`` names. An admin key must not turn an exchange into
a way to read ``/etc/passwd``: the name is resolved (symlinks followed) and must stay under
``HMA_EXCHANGES_FILE_ROOT``; a relative name is taken from that folder.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.impl.file_api import (
    FileCollaborationConfig,
    LocalFileSignalExchangeAPI,
)
from threatexchange.signal_type.signal_base import SignalType

from hma_framework.types import ExchangeClientSpec


class FileOutsideRootError(PermissionError):
    """The configured file is not under the exchange file root."""


def confined_path(root: Path, filename: str) -> Path:
    """``filename`` resolved inside ``root``, or :class:`FileOutsideRootError`."""
    base = root.resolve()
    candidate = Path(filename)
    resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise FileOutsideRootError(
            f"{filename!r} is outside the exchange file root (HMA_EXCHANGES_FILE_ROOT)"
        )
    return resolved


class ConfinedLocalFileExchange(LocalFileSignalExchangeAPI):
    """The library's file reader, held to one folder; each fetch reads the whole file."""

    def __init__(self, collab: FileCollaborationConfig, root: Path) -> None:
        super().__init__(collab)
        self.root = root

    @classmethod
    def get_name(cls) -> str:
        return LocalFileSignalExchangeAPI.get_name()

    @classmethod
    def from_spec(cls, spec: ExchangeClientSpec) -> ConfinedLocalFileExchange:
        root = spec.settings.exchange_file_root
        confined_path(root, spec.collab.filename)  # refuse at configuration time too
        return cls(spec.collab, root)

    def _path(self) -> Path:
        return confined_path(self.root, self.collab.filename)

    def fetch_iter(
        self,
        supported_signal_types: Sequence[type[SignalType]],
        checkpoint: Any,
    ) -> Iterator[Any]:
        path = self._path()
        if not path.is_file():
            raise FileNotFoundError(f"no file {self.collab.filename!r} under the file root")
        updates: dict[tuple[str, str], state.FetchedSignalMetadata | None] = {}
        with path.open("r", encoding="utf-8", errors="replace") as lines:
            for line in lines:
                signal = line.strip()
                signal_type = self.collab.signal_type
                if signal_type is None:
                    signal_type, _, signal = signal.partition(" ")
                if signal_type and signal:
                    updates[signal_type, signal.strip()] = state.FetchedSignalMetadata()
        yield state.FetchDelta(updates, state.FetchCheckpointBase())

    def write_opinion(
        self, opinion: str, signal_type: str, signal_value: str, metadata: Mapping[str, Any]
    ) -> None:
        """A true positive is appended to the file (the library's only opinion)."""
        path = self._path()
        with path.open("a+", encoding="utf-8") as out:
            out.seek(0, 2)
            needs_newline = out.tell() > 0 and not path.read_bytes().endswith(b"\n")
            out.write(("\n" if needs_newline else "") + f"{signal_type} {signal_value}\n")
