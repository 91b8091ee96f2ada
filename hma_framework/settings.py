"""Settings: one attrs tree, read from ``HMA_*`` environment variables and an optional TOML file.

Every field's environment variable is ``HMA_`` followed by its path in upper case, joined with
underscores (``web.port`` is ``HMA_WEB_PORT``); the same field in the TOML file named by
``HMA_CONFIG`` is ``[web] port = 5000``. Environment variables win over the file. A bad value
stops startup with a :class:`SettingsError` naming the key, never later in a request.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.v import transform_error

ENV_PREFIX = "HMA_"
CONFIG_ENV_VAR = "HMA_CONFIG"
#: ``HMA_X_FILE=/path`` sets ``HMA_X`` from the file's contents (secrets mounted as files).
FILE_SUFFIX = "_FILE"
QUEUE_NAMES = ("hash", "match", "action", "fetch", "maintenance", "retroact")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")


T = TypeVar("T")


class SettingsError(ValueError):
    """A setting has a value the system cannot run with; the message names the key."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


class FieldValueError(ValueError):
    """A validator's complaint, carrying the field name so the message can name the key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


Validator = Any  # attrs's validator callables


def _at_least(minimum: int) -> Validator:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < minimum:
            raise FieldValueError(attribute.name, f"must be at least {minimum}, got {value}")

    return check


def _at_most(maximum: int) -> Validator:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if value > maximum:
            raise FieldValueError(attribute.name, f"must be at most {maximum}, got {value}")

    return check


def _one_of(choices: tuple[str, ...]) -> Validator:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise FieldValueError(
                attribute.name, f"must be one of {', '.join(choices)}, got {value!r}"
            )

    return check


def _known_queues(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    unknown = [name for name in value if name not in QUEUE_NAMES]
    if unknown:
        raise FieldValueError(
            attribute.name, f"unknown queue(s) {unknown}; known: {', '.join(QUEUE_NAMES)}"
        )


def _networks(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    import ipaddress

    for network in value:
        try:
            ipaddress.ip_network(network, strict=True)
        except ValueError as exc:
            raise FieldValueError(attribute.name, f"{network!r} is not a network: {exc}") from exc


def _http_base_url(_instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and not (value.startswith(("http://", "https://")) and "@" not in value):
        raise FieldValueError(
            attribute.name, f"must be an http(s) URL without credentials, got {value!r}"
        )


@attrs.frozen
class WebSettings:
    host: str = attrs.field(default="127.0.0.1", metadata=_help("Address the API listens on."))
    port: int = attrs.field(
        default=5000,
        validator=[_at_least(1), _at_most(65535)],
        metadata=_help("Port the API listens on."),
    )
    processes: int = attrs.field(
        default=2, validator=_at_least(1), metadata=_help("API processes (gunicorn workers).")
    )
    threads: int = attrs.field(
        default=4, validator=_at_least(1), metadata=_help("Threads per API process.")
    )
    secret_key: str = attrs.field(
        default="",
        repr=False,
        metadata=_help(
            "Key that signs upload URLs. Empty: generated once into `<data_dir>/secret_key`. "
            "Set the same value on every API node of a fleet."
        ),
    )
    public_url: str = attrs.field(
        default="",
        validator=_http_base_url,
        metadata=_help(
            "Base URL clients reach the API at (e.g. `https://hma.example.com`), used in "
            "presigned upload URLs. Empty: the address each request came in on (its Host "
            "header), which is fine on a laptop but should be set behind a proxy."
        ),
    )
    max_concurrent_fetches: int = attrs.field(
        default=2,
        validator=[_at_least(1), _at_most(1000)],
        metadata=_help(
            "URL fetches one API process runs at once for `POST /lookup` and bank members "
            "by URL; more get 503 with Retry-After. Keep it below `threads` so slow URLs "
            "cannot occupy every API thread."
        ),
    )
    key_cache_seconds: int = attrs.field(
        default=2,
        validator=[_at_least(0), _at_most(60)],
        metadata=_help(
            "How long an API process trusts a key it has checked; a key revoked elsewhere "
            "stops working within this time (0: check the database on every request)."
        ),
    )
    max_body_bytes: int = attrs.field(
        default=32 * 1024 * 1024,
        validator=_at_least(1024),
        metadata=_help("Largest request body accepted; larger bodies get 413."),
    )
    metrics_networks: tuple[str, ...] = attrs.field(
        default=(),
        validator=_networks,
        metadata=_help(
            "Networks (CIDRs) whose requests to `/metrics` need no key, e.g. a monitoring "
            "subnet. Everyone else needs a key with the `read` scope."
        ),
    )
    header_timeout_seconds: int = attrs.field(
        default=10,
        validator=_at_least(1),
        metadata=_help(
            "A connection must send a request's headers within this time or is closed; "
            "slow clients wait in the event loop, never in a request thread."
        ),
    )
    body_timeout_seconds: int = attrs.field(
        default=60,
        validator=_at_least(1),
        metadata=_help("Longest time to receive one request body; slower ones get 408."),
    )


@attrs.frozen
class WorkerSettings:
    processes: int = attrs.field(
        default=2,
        validator=_at_least(0),
        metadata=_help("Worker processes `hma serve` starts (each serves every queue)."),
    )
    queues: tuple[str, ...] = attrs.field(
        default=QUEUE_NAMES,
        validator=_known_queues,
        metadata=_help("Queues a worker serves when `--queues` is not given (comma-separated)."),
    )
    job_timeout_seconds: int = attrs.field(
        default=600, validator=_at_least(1), metadata=_help("Longest a single job may run.")
    )
    move_due_retries: bool = attrs.field(
        default=True,
        metadata=_help(
            "Whether workers move retries that are due back onto their queues (RQ's scheduler, "
            "a forked process). `hma serve` turns it off for its workers: its scheduler does it."
        ),
    )


@attrs.frozen
class FetchSettings:
    timeout_seconds: int = attrs.field(
        default=30,
        validator=[_at_least(1), _at_most(600)],
        metadata=_help("Longest a URL fetch may take in all (connect, redirects, body)."),
    )
    max_bytes: int = attrs.field(
        default=256 * 1024 * 1024,
        validator=_at_least(1024),
        metadata=_help("Largest media a URL fetch downloads; larger media fails the content."),
    )
    max_redirects: int = attrs.field(
        default=5, validator=[_at_least(0), _at_most(20)], metadata=_help("Redirects followed.")
    )
    allowed_networks: tuple[str, ...] = attrs.field(
        default=(),
        validator=_networks,
        metadata=_help(
            "Private, loopback or link-local networks URL fetches may reach anyway, as CIDRs "
            "(e.g. `10.1.0.0/16,127.0.0.1/32`). Everything else non-public is refused."
        ),
    )


def _positive_each(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value or any(v < 1 for v in value):
        raise FieldValueError(attribute.name, f"must be one or more positive numbers, got {value}")


@attrs.frozen
class PipelineSettings:
    retain_media: bool = attrs.field(
        default=False,
        metadata=_help("Keep submitted media after hashing (by default it is deleted)."),
    )
    upload_url_ttl_seconds: int = attrs.field(
        default=900,
        validator=[_at_least(10), _at_most(7 * 24 * 3600)],
        metadata=_help("How long a `/submit/put-url/` upload URL stays valid."),
    )
    retry_intervals_seconds: tuple[int, ...] = attrs.field(
        default=(5, 30, 120, 600, 1800),
        validator=_positive_each,
        metadata=_help(
            "Waits between retries of a stage that failed transiently (timeouts, 5xx); "
            "after the last one the content is marked failed with the reason."
        ),
    )
    stuck_after_seconds: int = attrs.field(
        default=900,
        validator=_at_least(1),
        metadata=_help(
            "Content in one stage for longer than this, with no job queued for it, is "
            "re-enqueued by the reconcile job (a killed worker or a lost Redis loses nothing)."
        ),
    )
    reconcile_interval_seconds: int = attrs.field(
        default=60, validator=_at_least(1), metadata=_help("How often reconcile runs.")
    )
    orphan_media_after_seconds: int = attrs.field(
        default=3600,
        validator=_at_least(60),
        metadata=_help(
            "Reconcile deletes media files no content references, and partial downloads "
            "left by killed workers, once they are this old (never sooner than a job's "
            "timeout plus a minute)."
        ),
    )


@attrs.frozen
class IndexSettings:
    refresh_interval_ms: int = attrs.field(
        default=250,
        validator=[_at_least(0), _at_most(1000)],
        metadata=_help(
            "How stale a matching process's index may get: before answering, it applies bank "
            "changes if it last looked longer ago than this."
        ),
    )
    snapshot_interval_seconds: int = attrs.field(
        default=600,
        validator=_at_least(10),
        metadata=_help("How often the scheduler has index snapshots written to the data folder."),
    )
    shared_snapshots: bool = attrs.field(
        default=False,
        metadata=_help(
            "Also publish each index snapshot to the database, and start a process whose data "
            "folder has none from it (then the change log): for fleets, where a new host "
            "would otherwise build every index from the records."
        ),
    )


@attrs.frozen
class RetroactionSettings:
    window_hours: int = attrs.field(
        default=72,
        validator=[_at_least(0), _at_most(24 * 366)],
        metadata=_help(
            "How long signals of recent content are kept for automatic retroaction: when a "
            "bank grows, content submitted within this many hours is matched again. 0 turns "
            "automatic retroaction off (rescans over stored content still work)."
        ),
    )
    segment_entries: int = attrs.field(
        default=65536,
        validator=[_at_least(16), _at_most(16 * 1024 * 1024)],
        metadata=_help(
            "Entries per segment of the on-disk ring of recent signals; whole segments expire."
        ),
    )
    scan_batch: int = attrs.field(
        default=65536,
        validator=[_at_least(16)],
        metadata=_help("Signals streamed through the new bank signals' index per query batch."),
    )
    gap_wait_seconds: int = attrs.field(
        default=900,
        validator=[_at_least(0), _at_most(7 * 24 * 3600)],
        metadata=_help(
            "PostgreSQL only: how long the feed that copies new content signals into the "
            "retroaction rings keeps looking for an id it found missing. A writer takes its id "
            "when it inserts and its row shows when it commits, so a row can appear after "
            "higher ids were copied; it still reaches the rings if it commits within this "
            "time. Waiting adds no latency (visible rows are copied at once), only a small "
            "lookup per pass; keep it above the longest transaction that writes content "
            "signals (jobs stop after `HMA_WORKERS_JOB_TIMEOUT_SECONDS`)."
        ),
    )
    sweep_interval_seconds: int = attrs.field(
        default=60,
        validator=_at_least(1),
        metadata=_help(
            "How often the scheduler checks for bank members no retroaction pass has seen "
            "(additions made by any path are caught even if their trigger was lost)."
        ),
    )


@attrs.frozen
class PluginSettings:
    blocked: tuple[str, ...] = attrs.field(
        default=(),
        metadata=_help("Plugin (entry point) names not to load, comma-separated."),
    )
    strict: bool = attrs.field(
        default=False,
        metadata=_help(
            "Stop on a plugin that fails to import, instead of logging and skipping it."
        ),
    )


@attrs.frozen
class ActionSettings:
    webhook_timeout_seconds: int = attrs.field(
        default=10,
        validator=[_at_least(1), _at_most(300)],
        metadata=_help(
            "Longest one webhook attempt may take (connect, send, answer); a handler's own "
            "`timeout_seconds` overrides it."
        ),
    )
    retry_intervals_seconds: tuple[int, ...] = attrs.field(
        default=(10, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800),
        metadata=_help(
            "Waits before each retry of a failed action (no answer, non-2xx): exponential, "
            "about a day in all; after the last one the delivery is marked failed (gave up). "
            "0 retries at once; empty never retries."
        ),
    )
    retry_jitter_percent: int = attrs.field(
        default=20,
        validator=[_at_least(0), _at_most(100)],
        metadata=_help(
            "Each retry wait is moved at random by up to this share of itself, so deliveries "
            "that failed together do not all retry in the same second."
        ),
    )
    max_retry_after_seconds: int = attrs.field(
        default=3600,
        validator=_at_least(0),
        metadata=_help(
            "Longest `Retry-After` a receiver may ask for; a longer one waits this long."
        ),
    )
    stuck_after_seconds: int = attrs.field(
        default=300,
        validator=_at_least(1),
        metadata=_help(
            "A delivery due this long ago with no job queued or running for it (a lost Redis, "
            "a killed worker) is re-enqueued by the reconcile job."
        ),
    )

    @retry_intervals_seconds.validator
    def _check_intervals(self, attribute: attrs.Attribute[Any], value: tuple[int, ...]) -> None:
        if any(wait < 0 for wait in value):
            raise FieldValueError(attribute.name, f"must be zero or more seconds each, got {value}")


def _scopes(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    unknown = [scope for scope in value if scope not in ("submit", "read", "admin")]
    if unknown:
        raise FieldValueError(
            attribute.name, f"unknown scope(s) {unknown}; known: submit, read, admin"
        )


@attrs.frozen
class Hma2CompatSettings:
    enabled: bool = attrs.field(
        default=True,
        metadata=_help("Answer HMA 2.0's API (`/h`, `/m`, `/c`, `/status`) at the root."),
    )
    trusted_networks: tuple[str, ...] = attrs.field(
        default=(),
        validator=_networks,
        metadata=_help(
            "CIDRs whose keyless requests to the HMA 2.0 routes act with `trusted_scopes`. "
            "Anyone sending from them has those scopes: keep them narrow."
        ),
    )
    trusted_scopes: tuple[str, ...] = attrs.field(
        default=("read",),
        validator=_scopes,
        metadata=_help("Scopes of keyless requests from `trusted_networks` (comma-separated)."),
    )
    basic_auth: bool = attrs.field(
        default=False,
        metadata=_help(
            "Accept an API key as the HTTP Basic password on the HMA 2.0 routes, for clients "
            "that take credentials only in their base URL (the key may reach their logs)."
        ),
    )


@attrs.frozen
class ExchangeSettings:
    file_root: str = attrs.field(
        default="",
        metadata=_help(
            "Folder the `local_file` exchange may read; files outside it (`..`, symlinks out) "
            "are refused. Empty: `<data_dir>/exchange-files`."
        ),
    )
    http_timeout_seconds: int = attrs.field(
        default=30,
        validator=[_at_least(1), _at_most(600)],
        metadata=_help("Longest one request to an exchange API may take (connect or read)."),
    )
    http_retries: int = attrs.field(
        default=4,
        validator=[_at_least(0), _at_most(20)],
        metadata=_help(
            "Retries of an exchange request answered 429/5xx or not answered, with exponential "
            "backoff that honours `Retry-After`."
        ),
    )
    max_retry_after_seconds: int = attrs.field(
        default=120,
        validator=_at_least(0),
        metadata=_help("Longest `Retry-After` an exchange may make a fetch wait per retry."),
    )
    batch_size: int = attrs.field(
        default=10_000,
        validator=_at_least(1),
        metadata=_help(
            "Fetched records committed per transaction, with the checkpoint that covers them."
        ),
    )
    lease_seconds: int = attrs.field(
        default=120,
        validator=_at_least(5),
        metadata=_help(
            "Lease of the fleet-wide lock one fetch holds, renewed per batch; a dead worker's "
            "lease runs out after this long and the next trigger fetches again."
        ),
    )
    schedule_tick_seconds: int = attrs.field(
        default=30,
        validator=_at_least(1),
        metadata=_help("How often the scheduler looks for exchanges whose fetch is due."),
    )


@attrs.frozen
class ConsoleSettings:
    session_idle_minutes: int = attrs.field(
        default=30,
        validator=[_at_least(1), _at_most(7 * 24 * 60)],
        metadata=_help(
            "Minutes without a request after which a console session ends (sign in again)."
        ),
    )
    media_previews: bool = attrs.field(
        default=True,
        metadata=_help(
            "Show retained media in the console (blurred and greyscale until one item is "
            "clicked). `false`: never show media at all."
        ),
    )


@attrs.frozen
class Settings:
    data_dir: str = attrs.field(
        default="./hma-data",
        metadata=_help("Folder for the SQLite database, the embedded Redis and media."),
    )
    database_url: str = attrs.field(
        default="",
        metadata=_help(
            "SQLAlchemy URL of the records database, e.g. `postgresql+psycopg://host/db`. "
            "Empty: SQLite at `<data_dir>/hma.sqlite3`."
        ),
    )
    redis_url: str = attrs.field(
        default="",
        metadata=_help(
            "Redis for the job queues, e.g. `redis://host:6379/0`. Empty: `hma serve` starts "
            "an embedded Redis in the data folder."
        ),
    )
    log_level: str = attrs.field(
        default="INFO", validator=_one_of(LOG_LEVELS), metadata=_help("Logging level.")
    )
    log_format: str = attrs.field(
        default="text",
        validator=_one_of(LOG_FORMATS),
        metadata=_help(
            "`text` (one readable line per event) or `json` (one JSON object per line, with "
            "`request_id` and `content_id` when known, for log shippers)."
        ),
    )
    secrets_key: str = attrs.field(
        default="",
        repr=False,
        metadata=_help(
            "Key that encrypts secrets at rest (exchange credentials, handler secrets). Empty: "
            "generated once into `<data_dir>/secrets_key`. Set the same value on every node."
        ),
    )
    web: WebSettings = attrs.field(factory=WebSettings)
    workers: WorkerSettings = attrs.field(factory=WorkerSettings)
    index: IndexSettings = attrs.field(factory=IndexSettings)
    retroaction: RetroactionSettings = attrs.field(factory=RetroactionSettings)
    fetch: FetchSettings = attrs.field(factory=FetchSettings)
    pipeline: PipelineSettings = attrs.field(factory=PipelineSettings)
    actions: ActionSettings = attrs.field(factory=ActionSettings)
    plugins: PluginSettings = attrs.field(factory=PluginSettings)
    compat_hma2: Hma2CompatSettings = attrs.field(factory=Hma2CompatSettings)
    exchanges: ExchangeSettings = attrs.field(factory=ExchangeSettings)
    console: ConsoleSettings = attrs.field(factory=ConsoleSettings)
    # Raw material for plugin sections (``[pdq]`` tables, ``HMA_PDQ_*`` variables), read by
    # :func:`load_section` with the plugin's own attrs class.
    plugin_tables: Mapping[str, Any] = attrs.field(
        factory=dict, repr=False, metadata={"internal": True}
    )
    plugin_environ: Mapping[str, str] = attrs.field(
        factory=dict, repr=False, metadata={"internal": True}
    )

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_path / 'hma.sqlite3').resolve()}"

    @property
    def exchange_file_root(self) -> Path:
        return Path(self.exchanges.file_root or self.data_path / "exchange-files")


# --- loading --------------------------------------------------------------------------------


def _structure_int(value: Any, _type: type) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _structure_bool(value: Any, _type: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_str(value: Any, _type: type) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _structure_int_tuple(value: Any, _type: type) -> tuple[int, ...]:
    parts = value.split(",") if isinstance(value, str) else value
    if isinstance(parts, list | tuple):
        return tuple(_structure_int(part, int) for part in parts if part != "")
    raise ValueError(f"expected a list of integers, got {value!r}")


def _structure_str_tuple(value: Any, _type: type) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def _is_record_tuple(cls: Any) -> bool:
    """``tuple[SomeAttrsClass, ...]``: a list of tables (``[[section.items]]`` in TOML)."""
    args = typing.get_args(cls)
    return (
        typing.get_origin(cls) is tuple
        and len(args) == 2
        and args[1] is Ellipsis
        and attrs.has(args[0])
    )


def _record_tuple_hook(converter: cattrs.Converter) -> Callable[[Any], Any]:
    def factory(cls: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item_type = typing.get_args(cls)[0]

        def structure(value: Any, _type: Any) -> tuple[Any, ...]:
            if isinstance(value, str):  # an environment variable holds the list as JSON
                try:
                    value = json.loads(value) if value.strip() else []
                except json.JSONDecodeError as exc:
                    raise ValueError(f"expected a JSON list of objects: {exc}") from exc
            if not isinstance(value, list | tuple) or not all(isinstance(v, dict) for v in value):
                raise ValueError(f"expected a list of tables (objects), got {value!r}")
            return tuple(converter.structure(item, item_type) for item in value)

        return structure

    return factory


def make_settings_converter() -> cattrs.Converter:
    """A converter that accepts TOML values and environment strings alike."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook_factory(_is_record_tuple, _record_tuple_hook(converter))
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook_func(lambda cls: cls == tuple[str, ...], _structure_str_tuple)
    converter.register_structure_hook_func(lambda cls: cls == tuple[int, ...], _structure_int_tuple)
    return converter


@attrs.frozen
class SettingField:
    """One leaf of the settings tree, for documentation and environment lookup."""

    path: tuple[str, ...]
    attribute: attrs.Attribute[Any]

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + "_".join(self.path).upper()

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def help(self) -> str:
        return str(self.attribute.metadata.get("help", ""))

    @property
    def default(self) -> Any:
        default: Any = self.attribute.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            return default.factory()
        return default


def iter_setting_fields(
    cls: type = Settings, prefix: tuple[str, ...] = ()
) -> Iterator[SettingField]:
    """Every leaf setting, depth first, in declaration order."""
    for attribute in attrs.fields(attrs.resolve_types(cls)):
        if attribute.metadata.get("internal"):
            continue
        path = (*prefix, attribute.name)
        if isinstance(attribute.type, type) and attrs.has(attribute.type):
            yield from iter_setting_fields(attribute.type, path)
        else:
            yield SettingField(path, attribute)


def _set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise SettingsError(f"{'.'.join(path[:-1])}: expected a table in the config file")
        node = child
    node[path[-1]] = value


def _read_config_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as config_file:
            return tomllib.load(config_file)
    except FileNotFoundError as exc:
        raise SettingsError(f"{CONFIG_ENV_VAR}: config file {path!r} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{CONFIG_ENV_VAR}: {path!r} is not valid TOML: {exc}") from exc


def _format_exception(exc: BaseException, _type: Any) -> str:
    # Validators run on the enclosing class: put the field back into the location.
    if isinstance(exc, FieldValueError):
        return f"[{exc.field}] {exc}"
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return "unknown setting(s) " + ", ".join(sorted(exc.extra_fields))
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required field missing"
    return f"invalid value ({type(exc).__name__})"


def _error_key(location: str) -> str:
    """Turn cattrs's ``$.web.port`` into ``HMA_WEB_PORT (web.port)``."""
    dotted = location.removeprefix("$").lstrip(".")
    if not dotted:
        return "settings"
    env_var = ENV_PREFIX + dotted.replace(".", "_").upper()
    return f"{env_var} ({dotted})"


def _overlay_environ(
    tree: dict[str, Any], cls: type, environ: Mapping[str, str], prefix: tuple[str, ...] = ()
) -> None:
    for setting in iter_setting_fields(cls, prefix):
        if setting.env_var in environ:
            _set_path(tree, setting.path[len(prefix) :], environ[setting.env_var])
        elif setting.env_var + FILE_SUFFIX in environ:
            value = _read_secret_file(setting.env_var + FILE_SUFFIX, environ)
            _set_path(tree, setting.path[len(prefix) :], value)


def _read_secret_file(variable: str, environ: Mapping[str, str]) -> str:
    """A setting's value from the file ``HMA_..._FILE`` names (Docker and Kubernetes secrets).

    One trailing newline is dropped, as editors and ``echo`` add one.
    """
    path = environ[variable]
    try:
        with open(path, encoding="utf-8") as secret:
            value = secret.read()
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read {path!r}: {exc.strerror}") from exc
    return value[:-1] if value.endswith("\n") else value


def _structure(tree: dict[str, Any], cls: type[T], prefix: tuple[str, ...] = ()) -> T:
    try:
        return make_settings_converter().structure(tree, cls)
    except Exception as exc:
        messages = _describe_errors(exc, prefix)
        raise SettingsError("invalid settings: " + "; ".join(messages)) from exc


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | None = None
) -> Settings:
    """Build ``Settings`` from a TOML file (``HMA_CONFIG``) overlaid with ``HMA_*`` variables."""
    environ = os.environ if environ is None else environ
    config_path = config_file if config_file is not None else environ.get(CONFIG_ENV_VAR)
    tree: dict[str, Any] = _read_config_file(config_path) if config_path else {}
    core_names = {a.name for a in attrs.fields(Settings) if not a.metadata.get("internal")}
    # Top-level tables that are not core sections belong to plugins ([pdq], ...).
    plugin_tables = {
        name: tree.pop(name)
        for name in list(tree)
        if name not in core_names and isinstance(tree[name], dict)
    }
    _overlay_environ(tree, Settings, environ)
    core_env = {f.env_var for f in iter_setting_fields()}
    plugin_environ = {
        k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and k not in core_env
    }
    settings = _structure(tree, Settings)
    return attrs.evolve(settings, plugin_tables=plugin_tables, plugin_environ=plugin_environ)


def load_section(settings: Settings, name: str, cls: type[T], aliases: Sequence[str] = ()) -> T:
    """A plugin's settings: the ``[name]`` TOML table overlaid with ``HMA_<NAME>_*`` variables.

    ``cls`` is the plugin's attrs class; errors name the key exactly as core settings do. The
    table may instead be given under one of ``aliases``; giving it twice is an error, as the
    two tables could only be merged by guessing which one was meant.
    """
    given = [n for n in (name, *aliases) if n in settings.plugin_tables]
    if len(given) > 1:
        tables = " and ".join(f"[{n}]" for n in given)
        raise SettingsError(f"{tables} configure the same settings: keep only one of them")
    table = settings.plugin_tables.get(given[0], {}) if given else {}
    tree: dict[str, Any] = dict(table) if isinstance(table, dict) else {}
    _overlay_environ(tree, cls, settings.plugin_environ, (name,))
    return _structure(tree, cls, (name,))


def _describe_errors(exc: Exception, prefix: tuple[str, ...] = ()) -> list[str]:
    if not isinstance(exc, cattrs.BaseValidationError):
        return [str(exc)]
    root = "$" + "".join(f".{part}" for part in prefix)
    messages = []
    for line in transform_error(exc, path=root, format_exception=_format_exception):
        detail, _, location = line.rpartition(" @ ")
        if detail.startswith("["):
            field, _, detail = detail[1:].partition("] ")
            location = f"{location}.{field}"
        if detail.startswith("unknown setting"):
            section = location.removeprefix("$").lstrip(".") or "the top level"
            messages.append(f"{detail} in {section}")
        else:
            messages.append(f"{_error_key(location)}: {detail}")
    return messages


def settings_markdown_table(cls: type = Settings, prefix: tuple[str, ...] = ()) -> str:
    """The README's settings tables, generated so they never drift from the code."""
    rows = ["| Environment variable | TOML key | Default | Meaning |", "|---|---|---|---|"]
    for setting in iter_setting_fields(cls, prefix):
        default = setting.default
        if isinstance(default, tuple):
            default = ",".join(str(part) for part in default)
        elif isinstance(default, bool):
            default = str(default).lower()
        shown = f"`{default}`" if default not in ("", ()) else "(empty)"
        rows.append(f"| `{setting.env_var}` | `{setting.dotted}` | {shown} | {setting.help} |")
    return "\n".join(rows)
