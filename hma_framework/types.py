"""The records plugins yield from their hooks, and the protocols their payloads implement.

Everything here is a frozen attrs record or a ``Protocol``: plugins *declare* what they
offer and the core composes it. Signal types and exchanges are python-threatexchange
classes (``SignalType``, ``SignalExchangeAPI``) so any existing pytx extension can be
loaded as a plugin without a wrapper of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

import attrs
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPI
from threatexchange.signal_type.signal_base import SignalType

if TYPE_CHECKING:
    import flask

    from hma_framework.settings import Settings

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


def _lower_snake_case(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not _NAME_PATTERN.match(value):
        raise ValueError(
            f"{attribute.name} {value!r} must be lower_snake_case (letters, digits, underscores)"
        )


def _signal_type_class(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, type) and issubclass(value, SignalType)):
        raise TypeError(f"{value!r} is not a threatexchange SignalType subclass")


def _exchange_api_class(_instance: object, _attribute: attrs.Attribute[Any], value: Any) -> None:
    if not (isinstance(value, type) and issubclass(value, SignalExchangeAPI)):
        raise TypeError(f"{value!r} is not a threatexchange SignalExchangeAPI subclass")


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


# --- settings sections ---------------------------------------------------------------------


@attrs.frozen
class SettingsSection:
    """A plugin's own settings: ``[name]`` in the TOML file and ``HMA_<NAME>_*`` variables.

    ``cls`` is an attrs class with defaults for every field; read it with
    ``hma_framework.settings.load_section(settings, name, cls)``. Declaring it on a record lets
    ``hma settings`` document and validate it at startup.
    """

    name: str = attrs.field(validator=_lower_snake_case)
    cls: type[Any]


# --- signal types ---------------------------------------------------------------------------


@attrs.frozen
class HashResult:
    """A computed signal, with its quality when the algorithm has one (PDQ: 0-100).

    ``quality_ok`` is False when the signal was computed but is under the configured quality
    threshold: it is recorded (with its quality) but not matched.
    """

    value: str
    quality: int | None = None
    quality_ok: bool = True


class MediaHasher(Protocol):
    """Computes one signal type from a media file on disk, streaming rather than loading it.

    Raise ``hma_framework.errors.UnhashableMediaError`` for media that can never be hashed
    (not an image, corrupt, a decompression bomb): the content is marked failed, not retried.
    """

    def hash_file(self, path: Path) -> HashResult: ...


@attrs.frozen
class _FileHasherAdapter:
    """The default hasher: the signal type's own ``hash_from_file``."""

    signal_type: type[SignalType]

    def hash_file(self, path: Path) -> HashResult:
        from hma_framework.errors import UnhashableMediaError

        value = self.signal_type.hash_from_file(path)  # type: ignore[attr-defined]
        if not value:
            raise UnhashableMediaError(f"{self.signal_type.get_name()} could not hash the media")
        return HashResult(value=value)


@attrs.frozen
class SignalTypeRecord:
    """A signal type a plugin can compute and match.

    ``signal_type`` is a python-threatexchange ``SignalType`` subclass; hashing comes from its
    ``BytesHasher``/``FileHasher`` methods and validation from ``validate_signal_str``.
    ``content_types`` names the kinds of content (``photo``, ``video``) it is computed for;
    when empty it is read from the signal type's own ``get_content_types()``.
    ``default_threshold`` is the match distance for banks that set none (0: exact only);
    ``max_threshold`` the largest a bank may set (default: ``default_threshold``).
    ``hamming_bits``, when set, says values are hex strings of that many bits compared by
    Hamming distance: retroaction then compares them with vectorised XOR and popcount.
    """

    signal_type: type[SignalType] = attrs.field(validator=_signal_type_class)
    content_types: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    enabled_by_default: bool = True
    default_threshold: int = 0
    max_threshold: int | None = None
    hamming_bits: int | None = None
    hasher_factory: Callable[[Settings], MediaHasher] | None = None
    settings: SettingsSection | None = None

    @property
    def name(self) -> str:
        return self.signal_type.get_name()

    def applies_to(self) -> tuple[str, ...]:
        """The content types (``photo``, ``video``...) this signal type hashes."""
        if self.content_types:
            return self.content_types
        return tuple(ct.get_name() for ct in self.signal_type.get_content_types())

    @property
    def threshold_limit(self) -> int:
        return self.default_threshold if self.max_threshold is None else self.max_threshold

    def make_hasher(self, settings: Settings) -> MediaHasher:
        """The configured hasher, or one over the signal type's own ``hash_from_file``."""
        if self.hasher_factory is not None:
            return self.hasher_factory(settings)
        return _FileHasherAdapter(self.signal_type)


# --- indexes --------------------------------------------------------------------------------


@attrs.frozen
class IndexMatch:
    """One stored entry found by a query: the entry id the caller gave and its distance."""

    entry_id: int
    distance: int


@runtime_checkable
class SignalIndex(Protocol):
    """An in-memory index over one signal type's stored hashes.

    Entries are identified by integer ids chosen by the caller (the store's signal ids), so the
    index holds nothing but hashes and ids. Implementations must be exact: every stored entry
    within ``max_distance`` is returned. Adding an id that is present replaces its hash;
    removing an unknown id does nothing. Signals passed in are already validated.
    """

    def add(self, entries: Sequence[tuple[int, str]]) -> None: ...

    def remove(self, entry_ids: Sequence[int]) -> None: ...

    def query(self, signal: str, max_distance: int) -> list[IndexMatch]: ...

    def query_batch(self, signals: Sequence[str], max_distance: int) -> list[list[IndexMatch]]: ...

    def __len__(self) -> int: ...


@runtime_checkable
class SnapshotIndex(SignalIndex, Protocol):
    """An index that can write itself to a folder (no pickle) for a fast restart."""

    def save(self, directory: Path) -> None: ...


@attrs.frozen
class IndexRecord:
    """An index implementation for one signal type.

    ``factory`` takes the process's ``Settings`` and returns an empty ``SignalIndex``.
    ``loader`` (optional) reads a folder an index's ``save`` wrote, for fast restarts.
    Signal types without an ``IndexRecord`` fall back to the core's linear scan over their
    ``compare_hash``.
    """

    signal_type: str = attrs.field(validator=_lower_snake_case)
    factory: Callable[[Settings], SignalIndex]
    name: str = attrs.field(default="", validator=attrs.validators.instance_of(str))
    loader: Callable[[Settings, Path], SignalIndex] | None = None
    settings: SettingsSection | None = None

    @property
    def display_name(self) -> str:
        return self.name or f"{self.signal_type}_index"


# --- content sources ------------------------------------------------------------------------


@attrs.frozen
class FetchedMedia:
    """What a content source wrote: how many bytes, and the media type it reported."""

    size: int
    media_type: str | None = None


class ContentSource(Protocol):
    """Reads media from where a submission says it lives (a URL, an S3 object...)."""

    def fetch(self, location: str, destination: BinaryIO) -> FetchedMedia:
        """Stream the media at ``location`` into ``destination``.

        Raise ``hma_framework.errors.TransientFetchError`` for failures worth retrying and
        ``PermanentFetchError`` for ones that are not.
        """
        ...


@attrs.frozen
class ContentSourceRecord:
    """A content source, the location schemes it serves, and what it mounts.

    ``blueprint`` (optional) is mounted on the web app: an endpoint that receives events, for
    example. ``listener`` (optional) is a long-running callable ``hma serve`` starts in its own
    process with the runtime, for example a queue poller.
    """

    name: str = attrs.field(validator=_lower_snake_case)
    schemes: tuple[str, ...] = attrs.field(converter=_str_tuple)
    factory: Callable[[Settings], ContentSource]
    blueprint: flask.Blueprint | None = None
    listener: Callable[..., None] | None = None


# --- exchanges ------------------------------------------------------------------------------


@attrs.frozen
class ExchangeRecord:
    """A hash exchange: a python-threatexchange ``SignalExchangeAPI`` subclass.

    Fetching, checkpoints and opinions follow that class's contract; the core stores
    checkpoints and fetched signals and schedules fetches.
    """

    api: type[SignalExchangeAPI[Any, Any, Any, Any, Any]] = attrs.field(
        validator=_exchange_api_class
    )

    @property
    def name(self) -> str:
        return self.api.get_name()


# --- action handlers ------------------------------------------------------------------------


@attrs.frozen
class MatchedSignal:
    """One match behind an action: what matched, how closely, and where it was banked."""

    signal_type: str
    signal_value: str
    distance: int
    bank: str
    member_id: int
    tags: tuple[str, ...] = ()


@attrs.frozen
class ActionRequest:
    """Everything a handler is told when a rule asks it to act on content."""

    content_id: str
    content_type: str
    additional_fields: tuple[str, ...]
    matches: tuple[MatchedSignal, ...]
    rules_fired: tuple[str, ...]
    params: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ActionOutcome:
    """What a handler reports back: success, or the error and whether to retry."""

    ok: bool
    detail: str = ""
    retry: bool = False


class ActionHandler(Protocol):
    """A configured handler: built from its config, asked to act once per request."""

    def perform(self, request: ActionRequest) -> ActionOutcome: ...


@attrs.frozen
class ActionHandlerRecord:
    """An action handler type.

    ``config_class`` is an attrs class cattrs structures from the stored configuration;
    ``factory`` turns one such config into a ready ``ActionHandler``. ``secret_fields`` names
    config fields that are write-only: never returned by the API.
    """

    name: str = attrs.field(validator=_lower_snake_case)
    config_class: type[Any]
    factory: Callable[[Any], ActionHandler]
    secret_fields: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if not attrs.has(self.config_class):
            raise TypeError(f"config_class of handler {self.name!r} must be an attrs class")


#: Every record type a hook may yield, for validation messages.
RegistrationRecord = (
    SignalTypeRecord | IndexRecord | ContentSourceRecord | ExchangeRecord | ActionHandlerRecord
)

RecordIterable = Iterable[RegistrationRecord]
