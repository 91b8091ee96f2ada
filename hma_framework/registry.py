"""The registry: what the plugins offer, read once from the plugin manager into typed maps.

This is the only module that calls hooks. Everything else asks the registry, which has
already checked that names are well formed and unique.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from hma_framework.plugins import FailedPlugin, HmaPluginManager, PluginSource, make_plugin_manager
from hma_framework.types import (
    ActionHandlerRecord,
    ContentSourceRecord,
    ExchangeRecord,
    IndexRecord,
    SettingsSection,
    SignalTypeRecord,
)

if TYPE_CHECKING:
    from hma_framework.settings import Settings

R = TypeVar("R")


class RegistryError(RuntimeError):
    """The plugins disagree: a duplicate name, a record of the wrong type, a dangling index."""


class InvalidSignalError(ValueError):
    """A submitted hash is not valid for its signal type (or the type is unknown)."""


@attrs.frozen
class PluginSummary:
    """One loaded plugin and the names it contributed, by hook."""

    source: PluginSource
    provides: Mapping[str, tuple[str, ...]]


def _collect(
    pm: HmaPluginManager, hook_name: str, record_type: type[R], key: str
) -> tuple[dict[str, R], dict[str, str]]:
    """Call one hook on each plugin separately, so every record is attributed to its plugin."""
    records: dict[str, R] = {}
    owners: dict[str, str] = {}
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():  # registration order
        produced = impl.function()
        for record in produced or ():
            if not isinstance(record, record_type):
                raise RegistryError(
                    f"plugin {impl.plugin_name!r}: {hook_name} yielded {record!r}, "
                    f"expected a {record_type.__name__}"
                )
            name = getattr(record, key)
            if name in records:
                raise RegistryError(
                    f"{hook_name}: the name {name!r} is registered by both plugin "
                    f"{owners[name]!r} and plugin {impl.plugin_name!r}"
                )
            records[name] = record
            owners[name] = impl.plugin_name
    return records, owners


@attrs.frozen
class Registry:
    """Typed, validated mappings of everything the loaded plugins provide."""

    signal_types: Mapping[str, SignalTypeRecord]
    indexes: Mapping[str, IndexRecord]
    content_sources: Mapping[str, ContentSourceRecord]
    exchanges: Mapping[str, ExchangeRecord]
    action_handlers: Mapping[str, ActionHandlerRecord]
    plugins: tuple[PluginSummary, ...]
    failed_plugins: tuple[FailedPlugin, ...] = ()

    @classmethod
    def from_plugin_manager(cls, pm: HmaPluginManager) -> Registry:
        signal_types, signal_owners = _collect(pm, "hma_signal_types", SignalTypeRecord, "name")
        indexes, index_owners = _collect(pm, "hma_indexes", IndexRecord, "signal_type")
        sources, source_owners = _collect(pm, "hma_content_sources", ContentSourceRecord, "name")
        exchanges, exchange_owners = _collect(pm, "hma_exchanges", ExchangeRecord, "name")
        handlers, handler_owners = _collect(pm, "hma_action_handlers", ActionHandlerRecord, "name")
        for signal_type, owner in index_owners.items():
            if signal_type not in signal_types:
                raise RegistryError(
                    f"plugin {owner!r} provides an index for signal type {signal_type!r}, "
                    "which no plugin provides"
                )
        _check_unique_schemes(sources, source_owners)
        owners_by_hook = {
            "signal_types": signal_owners,
            "indexes": index_owners,
            "content_sources": source_owners,
            "exchanges": exchange_owners,
            "action_handlers": handler_owners,
        }
        summaries = tuple(
            PluginSummary(
                source=source,
                provides={
                    hook: tuple(n for n, owner in owners.items() if owner == source.name)
                    for hook, owners in owners_by_hook.items()
                },
            )
            for source in pm.sources.values()
        )
        return cls(
            signal_types=signal_types,
            indexes=indexes,
            content_sources=sources,
            exchanges=exchanges,
            action_handlers=handlers,
            plugins=summaries,
            failed_plugins=tuple(pm.failed),
        )

    def settings_sections(self) -> list[SettingsSection]:
        """The plugins' own settings sections, each once, in registration order."""
        found: dict[str, SettingsSection] = {}
        declared = [r.settings for r in self.signal_types.values()]
        declared += [r.settings for r in self.indexes.values()]
        declared += [r.settings for r in self.content_sources.values()]
        for section in declared:
            if section is None:
                continue
            if section.name in found and found[section.name].cls is not section.cls:
                raise RegistryError(f"two different settings sections are named {section.name!r}")
            found[section.name] = section
        return list(found.values())

    def normalize_signal(self, signal_type: str, value: str) -> str:
        """The canonical form of ``value``, or ``InvalidSignalError`` saying what is wrong."""
        record = self.signal_types.get(signal_type)
        if record is None:
            known = ", ".join(sorted(self.signal_types))
            raise InvalidSignalError(f"unknown signal_type {signal_type!r}; installed: {known}")
        try:
            return record.signal_type.validate_signal_str(value)
        except Exception as exc:  # pytx signal types raise assorted errors for bad input
            raise InvalidSignalError(f"not a valid {signal_type} hash: {exc}") from exc

    def signal_types_for(self, content_type: str) -> list[SignalTypeRecord]:
        """The signal types computed for a content type (``photo``, ``video``)."""
        return [r for r in self.signal_types.values() if content_type in r.applies_to()]

    def content_source_for(self, location: str) -> ContentSourceRecord | None:
        scheme = location.split(":", 1)[0].lower() if ":" in location else ""
        for record in self.content_sources.values():
            if scheme in record.schemes:
                return record
        return None

    def as_json(self) -> dict[str, Any]:
        """What ``GET /plugins`` and ``hma plugins --json`` show."""
        return {
            "plugins": [
                {
                    "name": summary.source.name,
                    "module": summary.source.module,
                    "distribution": summary.source.distribution,
                    "version": summary.source.version,
                    "provides": {k: list(v) for k, v in summary.provides.items() if v},
                }
                for summary in self.plugins
            ],
            "failed": [attrs.asdict(failed) for failed in self.failed_plugins],
            "signal_types": {
                name: {"content_types": list(record.applies_to())}
                for name, record in self.signal_types.items()
            },
            "indexes": sorted(self.indexes),
            "content_sources": {
                name: {"schemes": list(record.schemes)}
                for name, record in self.content_sources.items()
            },
            "exchanges": sorted(self.exchanges),
            "action_handlers": sorted(self.action_handlers),
        }


def _check_unique_schemes(
    sources: Mapping[str, ContentSourceRecord], owners: Mapping[str, str]
) -> None:
    claimed: dict[str, str] = {}
    for name, record in sources.items():
        for scheme in record.schemes:
            if scheme in claimed:
                raise RegistryError(
                    f"content sources {claimed[scheme]!r} (plugin {owners[claimed[scheme]]!r}) "
                    f"and {name!r} (plugin {owners[name]!r}) both claim the scheme {scheme!r}"
                )
            claimed[scheme] = name


def make_registry(
    settings: Settings | None = None,
    *,
    extra_plugins: Sequence[object] = (),
    load_entry_points: bool = True,
    strict: bool | None = None,
    blocked: Iterable[str] | None = None,
) -> Registry:
    """Build a fresh plugin manager and read it: the one way to get a ``Registry``."""
    plugin_settings = settings.plugins if settings is not None else None
    pm = make_plugin_manager(
        blocked=blocked
        if blocked is not None
        else (plugin_settings.blocked if plugin_settings else ()),
        strict=strict if strict is not None else bool(plugin_settings and plugin_settings.strict),
        extra_plugins=extra_plugins,
        load_entry_points=load_entry_points,
    )
    return Registry.from_plugin_manager(pm)
