"""Configured action handlers: plugin handler types with a stored, validated configuration.

A configuration is checked by structuring it (cattrs) into the handler type's attrs
``config_class`` before anything is stored. Fields the type names in ``secret_fields`` are
stored apart from the rest (``handler_config.secrets``) and are write-only: no view returns
them, an update that leaves them out keeps them, and error messages have their values blanked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import cattrs
from cattrs.v import transform_error
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hma_framework.actions.deliveries import DELIVERING, HELD, PENDING
from hma_framework.actions.errors import ActionConflict, ActionNotFound, InvalidActionInput
from hma_framework.registry import Registry
from hma_framework.secret_box import SecretBox, secret_box
from hma_framework.settings import Settings
from hma_framework.store.db import Store
from hma_framework.store.tables import ActionRuleRow, DeliveryRow, HandlerConfigRow
from hma_framework.types import ActionHandler, ActionHandlerRecord

HANDLER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
BLANKED = "[secret]"
UNFINISHED = (PENDING, DELIVERING, HELD)
_MIN_SECRET_LENGTH = 3  # shorter strings are blanked nowhere: they would mangle every message


def _strict(kind: type, what: str) -> Any:
    def structure(value: Any, _type: type) -> Any:
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"expected {what}")
        return value

    return structure


def _float(value: Any, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected a number")
    return float(value)


def _is_str_tuple(cls: Any) -> bool:
    return cls == tuple[str, ...]


def _str_tuple(value: Any, _type: type) -> tuple[str, ...]:
    # Without this a lone string would become a tuple of its characters.
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def make_config_converter() -> cattrs.Converter:
    """Strict JSON -> config: ``"5"`` is not an integer and ``5`` is not a string."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook_func(_is_str_tuple, _str_tuple)
    return converter


def _secret_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if len(value) >= _MIN_SECRET_LENGTH:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _secret_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secret_strings(item)


def blank_secrets(message: str, *secret_values: Any) -> str:
    """``message`` with every secret string in it replaced, longest first."""
    for secret in sorted(set(_secret_strings(secret_values)), key=len, reverse=True):
        message = message.replace(secret, BLANKED)
    return message


def _format(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return "unknown field(s) " + ", ".join(sorted(exc.extra_fields))
    if isinstance(exc, KeyError):
        return "required field missing"
    return str(exc) or type(exc).__name__


def _describe(exc: Exception) -> str:
    if not isinstance(exc, cattrs.BaseValidationError):
        return str(exc)
    lines = []
    for line in transform_error(exc, path="config", format_exception=_format):
        message, _, location = line.rpartition(" @ ")
        lines.append(f"{location}: {message}")
    return "; ".join(lines)


def _iso(row_time: Any) -> str | None:
    return row_time.isoformat() if row_time is not None else None


class ConfiguredHandlers:
    """The ``handler_config`` repository, validating against the installed handler types."""

    def __init__(self, store: Store, registry: Registry, box: SecretBox) -> None:
        self._store = store
        self._registry = registry
        self._box = box  # secrets are sealed at rest; only this repository opens them
        self._converter = make_config_converter()

    # --- configuration ---------------------------------------------------------------------

    def record(self, handler_type: str) -> ActionHandlerRecord:
        record = self._registry.action_handlers.get(handler_type)
        if record is None:
            installed = ", ".join(sorted(self._registry.action_handlers)) or "none"
            raise InvalidActionInput(
                f"unknown handler type {handler_type!r}; installed: {installed}"
            )
        return record

    def structure(self, record: ActionHandlerRecord, config: Mapping[str, Any]) -> Any:
        """The config object, or ``InvalidActionInput`` with any secret values blanked."""
        try:
            return self._converter.structure(dict(config), record.config_class)
        except Exception as exc:
            secrets = [config.get(name) for name in record.secret_fields]
            raise InvalidActionInput(
                blank_secrets(f"invalid {record.name} config: {_describe(exc)}", secrets)
            ) from None

    def _split(
        self, record: ActionHandlerRecord, config: Any
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        flat = self._converter.unstructure(config)
        secrets = {k: flat.pop(k) for k in record.secret_fields if k in flat}
        return flat, secrets

    def _checked(
        self, handler_type: str, config: Any, kept_secrets: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if not isinstance(config, dict):
            raise InvalidActionInput("config must be an object")
        record = self.record(handler_type)
        merged = {**kept_secrets, **config}  # a secret left out of an update is kept
        merged = {k: v for k, v in merged.items() if v is not None}
        return self._split(record, self.structure(record, merged))

    # --- records ---------------------------------------------------------------------------

    def view(self, row: HandlerConfigRow) -> dict[str, Any]:
        record = self._registry.action_handlers.get(row.handler_type)
        return {
            "name": row.name,
            "type": row.handler_type,
            "enabled": row.enabled,
            "disabled_reason": row.disabled_reason,
            "config": dict(row.config),
            "secrets_set": sorted(k for k, v in self.secrets(row).items() if v),
            "installed": record is not None,
            "created_at": _iso(row.created_at),
            "updated_at": _iso(row.updated_at),
        }

    def secrets(self, row: HandlerConfigRow) -> dict[str, Any]:
        """The row's secret fields in the clear (rows from before sealing read as they are)."""
        return self._box.open(row.secrets)

    def all(self) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.scalars(select(HandlerConfigRow).order_by(HandlerConfigRow.name))
            return [self.view(row) for row in rows]

    def get(self, name: str) -> dict[str, Any]:
        with self._store.reading() as session:
            return self.view(self._row(session, name))

    @staticmethod
    def _row(session: Any, name: str) -> HandlerConfigRow:
        row = session.scalars(
            select(HandlerConfigRow).where(HandlerConfigRow.name == name)
        ).one_or_none()
        if row is None:
            raise ActionNotFound(f"no handler named {name!r}")
        return row

    def create(
        self, name: str, handler_type: str, config: Any, enabled: bool = True
    ) -> dict[str, Any]:
        if not HANDLER_NAME.match(name):
            raise InvalidActionInput("name must be 1-128 letters, digits, '_', '.' or '-'")
        public, secrets = self._checked(handler_type, config, {})
        row = HandlerConfigRow(
            name=name,
            handler_type=handler_type,
            config=public,
            secrets=self._box.seal(secrets),
            enabled=enabled,
        )
        try:
            with self._store.transaction() as session:
                session.add(row)
                session.flush()
                return self.view(row)
        except IntegrityError as exc:
            raise ActionConflict(f"a handler named {name!r} already exists") from exc

    def replace(
        self, name: str, config: Any, enabled: bool | None, handler_type: str | None = None
    ) -> dict[str, Any]:
        """Replace the configuration (None keeps it); secrets not given are kept.

        Enabling a handler clears the reason it was disabled (a 410, an operator).
        """
        with self._store.transaction() as session:
            row = self._row(session, name)
            if handler_type is not None and handler_type != row.handler_type:
                raise InvalidActionInput(
                    f"handler {name!r} is a {row.handler_type} handler; its type cannot change"
                )
            if config is not None:
                public, secrets = self._checked(row.handler_type, config, self.secrets(row))
                row.config, row.secrets = public, self._box.seal(secrets)
            if enabled is not None:
                row.enabled = enabled
                if enabled:
                    row.disabled_reason = None
            session.flush()
            return self.view(row)

    def delete(self, name: str, *, force: bool = False) -> None:
        """Delete a handler no rule uses, and its delivery records with it.

        Deliveries still to be made (pending or held) would be dropped with it, so that takes
        ``force``.
        """
        with self._store.transaction() as session:
            row = self._row(session, name)
            using = session.scalars(
                select(ActionRuleRow.name).where(ActionRuleRow.handler_pk == row.id)
            ).all()
            if using:
                raise ActionConflict(
                    f"handler {name!r} is used by rule(s) {', '.join(sorted(using))}; "
                    "change or delete them first"
                )
            waiting = session.scalar(
                select(func.count())
                .select_from(DeliveryRow)
                .where(DeliveryRow.handler_pk == row.id, DeliveryRow.status.in_(UNFINISHED))
            )
            if waiting and not force:
                raise ActionConflict(
                    f"handler {name!r} has {waiting} deliveries still to make (pending or "
                    "held); redeliver them, or add ?force=true to drop them with the handler"
                )
            session.delete(row)

    # --- ready handlers ----------------------------------------------------------------------

    def build(self, row: HandlerConfigRow, settings: Settings) -> ActionHandler:
        """A ready handler for ``row``; raises ``InvalidActionInput`` if it cannot be built."""
        record = self.record(row.handler_type)
        config = self.structure(record, {**row.config, **self.secrets(row)})
        handler = record.factory(config)
        # A handler that needs process settings (timeouts, which networks it may reach)
        # offers bind_settings(settings) -> handler; the factory only ever sees its config.
        bind = getattr(handler, "bind_settings", None)
        return bind(settings) if callable(bind) else handler


def handlers_of(runtime: Any) -> ConfiguredHandlers:
    """The handler repository of a runtime, with its secrets key.

    Built once per runtime (its config converter costs milliseconds, which a deliver job
    would otherwise pay for every attempt), again only if the registry or settings change.
    """
    key = (id(runtime.store), id(runtime.registry), id(runtime.settings))
    cached = runtime.__dict__.get("_configured_handlers")
    if cached is None or cached[0] != key:
        handlers = ConfiguredHandlers(runtime.store, runtime.registry, secret_box(runtime.settings))
        cached = runtime.__dict__["_configured_handlers"] = (key, handlers)
    return cached[1]


@attrs.frozen
class _Cached:
    updated_at: Any
    handler: ActionHandler


def ready_handler(runtime: Any, row: HandlerConfigRow) -> ActionHandler:
    """The process's handler for ``row``, rebuilt only when its configuration changed.

    Kept across jobs so a webhook handler's connection pool (keep-alive) is reused.
    """
    cache: dict[int, _Cached] = runtime.__dict__.setdefault("_action_handlers", {})
    cached = cache.get(row.id)
    if cached is None or cached.updated_at != row.updated_at:
        handler = handlers_of(runtime).build(row, runtime.settings)
        cached = cache[row.id] = _Cached(row.updated_at, handler)
    return cached.handler
