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
from threatexchange.signal_type.signal_base import FileHasher, SignalType

if TYPE_CHECKING:
    import flask

    from hma_framework.media import MediaStore
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
    ``hma settings`` document and validate it at startup. ``aliases`` are other TOML table
    names accepted for the same section (the variables stay ``HMA_<NAME>_*``), for a plugin
    whose documented table name differs from its short variable prefix.
    """

    name: str = attrs.field(validator=_lower_snake_case)
    cls: type[Any]
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)


# --- signal types ---------------------------------------------------------------------------


@attrs.frozen
class HashResult:
    """A computed signal, with its quality when the algorithm has one (PDQ: 0-100).

    ``quality_ok`` is False when the signal was computed but is under the configured quality
    threshold: it is recorded (with its quality) but not matched.

    Some media reads two ways, and hash lists hold either: a photo with an EXIF orientation is
    shown rotated, but reference tools hash its stored pixels. A hasher then names this
    result's reading in ``variant`` (e.g. ``"displayed"``) and returns the others in
    ``alternates`` (e.g. ``"stored"``); every reading is recorded and matched, and matches say
    which one matched. Media with a single reading leaves both empty, which is also all a
    hasher written before variants existed returns.
    """

    value: str
    quality: int | None = None
    quality_ok: bool = True
    variant: str = ""
    alternates: tuple[HashResult, ...] = attrs.field(default=())

    @alternates.validator
    def _named_apart(self, _attribute: attrs.Attribute[Any], alternates: tuple[Any, ...]) -> None:
        # Readings are stored one per (content, signal type, variant): a hasher that returned
        # two under one name would fail only when recorded, far from its cause.
        if not alternates:
            return
        names = [self.variant, *(a.variant for a in alternates)]
        if "" in names or len(set(names)) != len(names):
            raise ValueError(f"a result with alternates needs distinct variant names, got {names}")
        if any(a.alternates for a in alternates):
            raise ValueError("alternates are readings of their own, without alternates")

    def readings(self) -> tuple[HashResult, ...]:
        """This result, then its alternates."""
        return (self, *self.alternates)


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

    @property
    def hashes_media(self) -> bool:
        """Whether it can be computed from a media file (text and URL signal types cannot)."""
        return self.hasher_factory is not None or issubclass(self.signal_type, FileHasher)

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
    example. ``listener`` (optional) is a long-running callable taking the process's
    ``Runtime``, for example a queue poller: ``hma <name> listen`` runs it, and ``hma serve``
    starts that command in its own process when ``listener_enabled(settings)`` says the
    deployment configured it (no ``listener_enabled``: always). ``settings`` is the source's
    own settings section, documented and validated like any plugin's. ``media_store``
    (optional) returns a :class:`~hma_framework.media.MediaStore` when the settings ask for
    submitted media to be kept by this source (an object store), else None.
    """

    name: str = attrs.field(validator=_lower_snake_case)
    schemes: tuple[str, ...] = attrs.field(converter=_str_tuple)
    factory: Callable[[Settings], ContentSource]
    blueprint: flask.Blueprint | None = None
    listener: Callable[..., None] | None = None
    listener_enabled: Callable[[Settings], bool] | None = None
    settings: SettingsSection | None = None
    media_store: Callable[[Settings], MediaStore | None] | None = None

    def runs_listener(self, settings: Settings) -> bool:
        """Whether ``hma serve`` should run this source's listener with these settings."""
        if self.listener is None:
            return False
        return self.listener_enabled is None or self.listener_enabled(settings)


# --- exchanges ------------------------------------------------------------------------------


@attrs.frozen
class ExchangeClientSpec:
    """What building a ready exchange client takes: one configured exchange's parts.

    ``collab`` is the API's own collaboration config (its ``get_config_cls()``), structured
    from the stored config; ``credentials`` are opened from the secrets store just for this;
    ``base_url`` points the client somewhere else (tests, private deployments).
    """

    collab: Any
    credentials: Mapping[str, Any]
    settings: Settings
    base_url: str | None = None


class ExchangeOpinionWriter(Protocol):
    """A ready exchange client that can take opinions (``seen``, ``true_positive``, ...)."""

    def write_opinion(
        self, opinion: str, signal_type: str, signal_value: str, metadata: Mapping[str, Any]
    ) -> None: ...


def default_exchange_client(
    api: type[SignalExchangeAPI[Any, Any, Any, Any, Any]], spec: ExchangeClientSpec
) -> SignalExchangeAPI[Any, Any, Any, Any, Any]:
    """``for_collab`` with credentials when the API takes them (pytx's auth helper)."""
    from threatexchange.exchanges.auth import SignalExchangeWithAuth

    if issubclass(api, SignalExchangeWithAuth):
        credentials = api.get_credential_cls()(**dict(spec.credentials))
        return api.for_collab(spec.collab, credentials)
    return api.for_collab(spec.collab)


@attrs.frozen
class ExchangeRecord:
    """A hash exchange: a python-threatexchange ``SignalExchangeAPI`` subclass.

    Fetching, checkpoints and opinions follow that class's contract; the core stores
    checkpoints and fetched signals and schedules fetches. ``client_factory`` builds a ready
    client (timeouts, base URL) from an :class:`ExchangeClientSpec`; without one the core
    calls ``for_collab``. ``opinions`` lists what the client's ``write_opinion`` accepts
    (``seen``, ``true_positive``, ``false_positive``, ``remove``); others answer 409.
    ``full_snapshot`` says every fetch yields the whole list, so members a fetch did not
    yield are removed (a local file). ``takes_base_url``: the config may set ``base_url``.
    """

    api: type[SignalExchangeAPI[Any, Any, Any, Any, Any]] = attrs.field(
        validator=_exchange_api_class
    )
    client_factory: (
        Callable[[ExchangeClientSpec], SignalExchangeAPI[Any, Any, Any, Any, Any]] | None
    ) = None
    opinions: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
    full_snapshot: bool = False
    takes_base_url: bool = False

    @property
    def name(self) -> str:
        return self.api.get_name()

    def credential_class(self) -> type | None:
        """The API's credentials dataclass, if it takes credentials."""
        getter = getattr(self.api, "get_credential_cls", None)
        return getter() if callable(getter) else None

    def make_client(self, spec: ExchangeClientSpec) -> SignalExchangeAPI[Any, Any, Any, Any, Any]:
        if self.client_factory is not None:
            return self.client_factory(spec)
        return default_exchange_client(self.api, spec)


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
