"""The whole plugin contract: five hooks, each taking no arguments and yielding records.

A plugin is any importable module (or object) with functions marked ``@hookimpl`` whose names
match the hooks below. Register it with an entry point in the ``hma`` group of your package::

    # pyproject.toml of your package
    [project.entry-points.hma]
    my_plugin = "my_plugin_module"

Names yielded by plugins are lower_snake_case and unique across all plugins; a duplicate stops
startup with an error naming both plugins. A function whose name starts with ``hma_`` but
matches no hook (a typo) also stops startup.

Existing python-threatexchange extensions (a module with a ``TX_MANIFEST``) load through
:func:`hma_framework.plugins.tx_extension_plugin` in three lines; see its docstring.
"""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

from hma_framework.types import (
    ActionHandlerRecord,
    ContentSourceRecord,
    ExchangeRecord,
    IndexRecord,
    SignalTypeRecord,
)

PROJECT_NAME = "hma"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def hma_signal_types() -> Iterable[SignalTypeRecord]:  # type: ignore[empty-body]
    """Signal types this plugin can compute and match.

    Yield one :class:`~hma_framework.types.SignalTypeRecord` per python-threatexchange
    ``SignalType`` subclass. The signal type's ``get_name()`` is its name everywhere (API,
    banks, settings); its ``hash_from_file`` / ``hash_from_bytes`` compute it and its
    ``validate_signal_str`` checks submitted hashes.

    Example::

        import hashlib, pathlib, typing as t
        from threatexchange.content_type.content_base import ContentType
        from threatexchange.content_type.photo import PhotoContent
        from threatexchange.signal_type import signal_base
        from hma_framework.hookspecs import hookimpl
        from hma_framework.types import SignalTypeRecord

        class PhotoSha256Signal(signal_base.SimpleSignalType, signal_base.BytesHasher):
            INDICATOR_TYPE = "HASH_SHA256"

            @classmethod
            def get_content_types(cls) -> list[type[ContentType]]:
                return [PhotoContent]

            @classmethod
            def hash_from_bytes(cls, bytes_: bytes) -> str:
                return hashlib.sha256(bytes_).hexdigest()

            @classmethod
            def hash_from_file(cls, file: pathlib.Path) -> str:
                return cls.hash_from_bytes(file.read_bytes())

            @staticmethod
            def get_examples() -> list[str]:
                return [hashlib.sha256(b"example").hexdigest()]

        @hookimpl
        def hma_signal_types():
            yield SignalTypeRecord(PhotoSha256Signal)
    """


@hookspec
def hma_indexes() -> Iterable[IndexRecord]:  # type: ignore[empty-body]
    """Fast in-memory indexes for signal types.

    Yield one :class:`~hma_framework.types.IndexRecord` per signal type you index. The factory
    receives the process's ``Settings`` and returns an empty object implementing
    :class:`~hma_framework.types.SignalIndex` (``add``, ``remove``, ``query``, ``__len__``);
    the core fills it from the banks and keeps it fresh. A signal type with no index record is
    matched by a linear scan over its ``compare_hash``, which is correct but slow.

    Example::

        from hma_framework.hookspecs import hookimpl
        from hma_framework.types import IndexMatch, IndexRecord

        class ExactIndex:
            def __init__(self) -> None:
                self._ids_by_hash: dict[str, set[int]] = {}
                self._hash_by_id: dict[int, str] = {}

            def add(self, entries):
                for entry_id, signal in entries:
                    self._hash_by_id[entry_id] = signal
                    self._ids_by_hash.setdefault(signal, set()).add(entry_id)

            def remove(self, entry_ids):
                for entry_id in entry_ids:
                    signal = self._hash_by_id.pop(entry_id, None)
                    if signal is not None:
                        self._ids_by_hash[signal].discard(entry_id)

            def query(self, signal, max_distance):
                return [IndexMatch(i, 0) for i in self._ids_by_hash.get(signal, ())]

            def __len__(self):
                return len(self._hash_by_id)

        @hookimpl
        def hma_indexes():
            yield IndexRecord(signal_type="photo_sha256", factory=lambda settings: ExactIndex())
    """


@hookspec
def hma_content_sources() -> Iterable[ContentSourceRecord]:  # type: ignore[empty-body]
    """Places media can be read from: URLs, object stores, anything with an address.

    Yield :class:`~hma_framework.types.ContentSourceRecord` objects. ``schemes`` are the
    location prefixes the source serves (``"https"``, ``"s3"``); the factory receives
    ``Settings`` and returns an object with ``fetch(location, destination) -> FetchedMedia``
    that streams the media into a binary file object. A source may also bring a Flask
    ``blueprint`` (mounted on the API, for example to receive bucket events) and a
    ``listener`` (run by ``hma serve`` in its own process, for example a queue poller).

    Example::

        import pathlib
        from hma_framework.hookspecs import hookimpl
        from hma_framework.types import ContentSourceRecord, FetchedMedia

        class LocalFolderSource:
            def __init__(self, root: pathlib.Path) -> None:
                self._root = root

            def fetch(self, location, destination):
                path = self._root / location.removeprefix("folder://")
                with path.open("rb") as media:
                    size = 0
                    while chunk := media.read(1 << 20):
                        destination.write(chunk)
                        size += len(chunk)
                return FetchedMedia(size=size)

        @hookimpl
        def hma_content_sources():
            yield ContentSourceRecord(
                name="local_folder",
                schemes=("folder",),
                factory=lambda settings: LocalFolderSource(pathlib.Path(settings.data_dir)),
            )
    """


@hookspec
def hma_exchanges() -> Iterable[ExchangeRecord]:  # type: ignore[empty-body]
    """Hash exchanges that fill banks on a schedule and take opinions back.

    Yield :class:`~hma_framework.types.ExchangeRecord` objects wrapping a
    python-threatexchange ``SignalExchangeAPI`` subclass. The core stores each configured
    exchange's checkpoint, calls ``fetch_iter`` on the ``fetch`` queue (one fetch at a time
    per exchange), merges the deltas into the exchange's bank and, when a rule asks, reports
    opinions through the API's ``report_opinion`` / ``report_seen`` methods.

    Example::

        from threatexchange.exchanges.impl.file_api import LocalFileSignalExchangeAPI
        from hma_framework.hookspecs import hookimpl
        from hma_framework.types import ExchangeRecord

        @hookimpl
        def hma_exchanges():
            yield ExchangeRecord(LocalFileSignalExchangeAPI)
    """


@hookspec
def hma_action_handlers() -> Iterable[ActionHandlerRecord]:  # type: ignore[empty-body]
    """Things that happen when content matches: webhooks, queue messages, log lines.

    Yield :class:`~hma_framework.types.ActionHandlerRecord` objects. ``config_class`` is an
    attrs class; operators create configured instances through the API (``/handlers``) and
    cattrs structures them into it. ``factory(config)`` returns an object whose
    ``perform(request) -> ActionOutcome`` carries out one action; return
    ``ActionOutcome(ok=False, retry=True)`` for failures worth retrying. Fields named in
    ``secret_fields`` are accepted but never returned by the API.

    Example::

        import attrs
        from hma_framework.hookspecs import hookimpl
        from hma_framework.types import ActionHandlerRecord, ActionOutcome

        @attrs.frozen
        class PrintConfig:
            prefix: str = "matched"

        class PrintHandler:
            def __init__(self, config: PrintConfig) -> None:
                self._config = config

            def perform(self, request):
                print(self._config.prefix, request.content_id, request.rules_fired)
                return ActionOutcome(ok=True)

        @hookimpl
        def hma_action_handlers():
            yield ActionHandlerRecord(name="print", config_class=PrintConfig,
                                      factory=PrintHandler)
    """
