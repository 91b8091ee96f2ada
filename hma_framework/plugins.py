"""Building the plugin manager: the one place that discovers and registers plugins.

Built-in plugins and third-party ones arrive the same way, through the ``hma`` entry-point
group, so every test run exercises the path a stranger's plugin takes.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs
import pluggy

from hma_framework import hookspecs
from hma_framework.hookspecs import hookimpl
from hma_framework.types import ExchangeRecord, SignalTypeRecord

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hma"


class PluginLoadError(RuntimeError):
    """A plugin could not be imported or registered, or two plugins conflict."""


@attrs.frozen
class PluginSource:
    """Where a registered plugin came from, for listings and error messages."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""

    def describe(self) -> str:
        where = f"{self.distribution} {self.version}".strip()
        return f"{self.name} ({self.module}{', ' + where if where else ''})"


@attrs.frozen
class FailedPlugin:
    """A plugin that was skipped because it failed to load, and why."""

    name: str
    module: str
    error: str


class HmaPluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers each plugin's origin and the plugins it skipped."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.sources: dict[str, PluginSource] = {}
        self.failed: list[FailedPlugin] = []

    def register_from(self, plugin: object, source: PluginSource) -> None:
        if source.name in self.sources:
            raise PluginLoadError(
                f"two plugins are named {source.name!r}: {self.sources[source.name].describe()} "
                f"and {source.describe()}"
            )
        self.register(plugin, name=source.name)
        self.sources[source.name] = source


def _iter_entry_points() -> Iterator[importlib.metadata.EntryPoint]:
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        previous = seen.get(entry_point.name)
        if previous is not None:
            if previous.value == entry_point.value:
                continue  # the same distribution seen twice on sys.path
            raise PluginLoadError(
                f"two plugins are named {entry_point.name!r}: {previous.value} "
                f"({_dist_name(previous)}) and {entry_point.value} ({_dist_name(entry_point)})"
            )
        seen[entry_point.name] = entry_point
        yield entry_point


def _dist_name(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = entry_point.dist
    return dist.name if dist is not None else "unknown distribution"


def _load_entry_points(pm: HmaPluginManager, *, strict: bool) -> None:
    for entry_point in _iter_entry_points():
        if pm.is_blocked(entry_point.name):
            log.info("plugin %s is blocked by settings; not loading it", entry_point.name)
            continue
        dist = entry_point.dist
        source = PluginSource(
            name=entry_point.name,
            module=entry_point.value,
            distribution=dist.name if dist is not None else "",
            version=dist.version if dist is not None else "",
        )
        try:
            plugin = entry_point.load()
        except Exception as exc:
            if strict:
                raise PluginLoadError(
                    f"plugin {entry_point.name!r} ({entry_point.value}) failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            log.error(
                "plugin %s (%s) failed to import and is skipped: %s: %s",
                entry_point.name,
                entry_point.value,
                type(exc).__name__,
                exc,
            )
            pm.failed.append(FailedPlugin(entry_point.name, entry_point.value, f"{exc}"))
            continue
        pm.register_from(plugin, source)


def make_plugin_manager(
    *,
    blocked: Iterable[str] = (),
    strict: bool = False,
    extra_plugins: Sequence[object] = (),
    load_entry_points: bool = True,
) -> HmaPluginManager:
    """Build a plugin manager with every installed plugin, validated.

    ``blocked`` names entry points not to load. ``strict`` turns an import failure into an
    error (tests, CI) instead of a logged skip (serving). ``extra_plugins`` are registered
    directly, for tests and embedding. A hook implementation that matches no hook (a typo)
    raises ``pluggy.PluginValidationError`` here, at startup.
    """
    pm = HmaPluginManager()
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    if load_entry_points:
        _load_entry_points(pm, strict=strict)
    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.register_from(plugin, PluginSource(name=name, module=name))
    pm.check_pending()
    return pm


def tx_extension_hooks(manifest: Any) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Hook implementations for a python-threatexchange extension's ``TX_MANIFEST``.

    Any pytx extension (vPDQ, TLSH, ...) becomes an HMA plugin with a three-line module
    registered in your package's ``hma`` entry-point group::

        from hma_framework.plugins import tx_extension_hooks
        from threatexchange.extensions.vpdq.manifest import TX_MANIFEST
        hma_signal_types, hma_exchanges = tx_extension_hooks(TX_MANIFEST)
    """

    @hookimpl
    def hma_signal_types() -> Iterator[SignalTypeRecord]:
        for signal_type in manifest.signal_types:
            yield SignalTypeRecord(signal_type)

    @hookimpl
    def hma_exchanges() -> Iterator[ExchangeRecord]:
        for api in manifest.apis:
            yield ExchangeRecord(api)

    return hma_signal_types, hma_exchanges
