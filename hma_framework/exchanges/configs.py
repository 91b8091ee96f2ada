"""Configured exchanges: the repository every surface (HTTP, CLI, compat API) calls.

An exchange is one collaboration on one API (``fb_threatexchange`` privacy group 123, a
local file). Its ``config`` is checked against the API's own collaboration config class (a
python-threatexchange dataclass) so a bad field is a 400 naming it; its credentials are
checked against the API's credential class, sealed by :mod:`hma_framework.secret_box` and
never shown again. Creating an exchange creates the bank it fills, marked exchange-fed.

An exchange with no credentials of its own uses its API's shared ones, if set (HMA 2.0's
``/c/exchanges/api/<api>``): own credentials first, then the API's.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any

import cattrs
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from hma_framework.exchanges.records import json_safe
from hma_framework.registry import Registry
from hma_framework.secret_box import SecretBox, secret_box
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks
from hma_framework.store.db import Store
from hma_framework.store.tables import BankRow, ExchangeApiCredentialsRow, ExchangeRow
from hma_framework.types import ExchangeClientSpec, ExchangeRecord

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
#: Collaboration fields HMA fills itself; the rest come from the request's ``config``.
OWN_FIELDS = ("name", "api", "enabled")
BASE_URL = "base_url"
#: Longer credential strings, or ones holding control characters, are refused (typos, junk).
MAX_SECRET_CHARS = 4096
#: Where an exchange's credentials come from (HMA 2.0's ``credential_status.source``).
OWN_SOURCE, API_SOURCE = "exchange", "api"


class ExchangeInputError(ValueError):
    """Bad input (400); never quotes a credential."""


class ExchangeNotFoundError(LookupError):
    """No such exchange or API (404)."""


class ExchangeConflictError(Exception):
    """Clashes with what is stored, or the exchange cannot do it (409)."""


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(annotation: Any) -> str:
    names = {int: "integer", str: "string", bool: "boolean", float: "number"}
    if annotation in names:
        return names[annotation]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(args) == 1:
        return _type_name(args[0])
    return "array" if typing.get_origin(annotation) in (list, set, tuple) else "object"


def describe_fields(cls: type | None, skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Name, type, required and help of a pytx config/credentials dataclass's fields."""
    if cls is None or not dataclasses.is_dataclass(cls):
        return []
    types = _field_types(cls)
    described = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name in skip:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        described.append(
            {
                "name": f.name,
                "type": _type_name(types.get(f.name)),
                "required": required,
                "help": str(f.metadata.get("help", "")),
            }
        )
    return described


def describe_api(record: ExchangeRecord) -> dict[str, Any]:
    config = describe_fields(record.api.get_config_cls(), OWN_FIELDS)
    if record.takes_base_url:
        config.append(
            {
                "name": BASE_URL,
                "type": "string",
                "required": False,
                "help": "Base URL of the API (tests, private deployments).",
            }
        )
    return {
        "name": record.name,
        "config_fields": config,
        "credential_fields": describe_fields(record.credential_class()),
        "opinions": list(record.opinions),
    }


def _structure_fields(
    cls: type, values: Mapping[str, Any], where: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``values`` checked field by field against ``cls``; errors name ``where.field``."""
    converter = cattrs.Converter()
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in skip}
    types = _field_types(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown and where == "credentials":
        # The key itself may be a pasted secret: never quote it.
        raise ExchangeInputError(f"credentials: unknown field; expected {', '.join(fields)}")
    if unknown:
        raise ExchangeInputError(f"{where}.{unknown[0]}: unknown field")
    checked: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in values:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ExchangeInputError(f"{where}.{name}: required field missing")
            continue
        value = values[name]
        annotation = types[name]
        if annotation is int and isinstance(value, bool | float):
            raise ExchangeInputError(f"{where}.{name}: expected an integer")
        if where == "credentials" and annotation is str and not isinstance(value, str):
            raise ExchangeInputError(f"{where}.{name}: expected a string")
        try:
            structured = converter.structure(value, annotation)
            checked[name] = json_safe(converter.unstructure(structured))  # sets as lists
        except Exception:
            raise ExchangeInputError(f"{where}.{name}: expected {_type_name(annotation)}") from None
    return checked


def _check_base_url(value: Any) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
        raise ExchangeInputError("config.base_url: expected an http(s) URL")
    return value.rstrip("/")


class Exchanges:
    """The ``exchange`` repository, validating against the installed exchange APIs."""

    def __init__(self, store: Store, registry: Registry, box: SecretBox, settings: Settings):
        self._store = store
        self._registry = registry
        self._box = box
        self._settings = settings

    @property
    def store(self) -> Store:
        return self._store

    @property
    def box(self) -> SecretBox:
        return self._box

    # --- APIs ------------------------------------------------------------------------------

    def record(self, api: str) -> ExchangeRecord:
        record = self._registry.exchanges.get(api)
        if record is None:
            installed = ", ".join(sorted(self._registry.exchanges)) or "none"
            raise ExchangeInputError(f"api: unknown exchange API {api!r}; installed: {installed}")
        return record

    def installed_record(self, api: str) -> ExchangeRecord | None:
        """The installed API of that name, or None (unlike :meth:`record`, no error)."""
        return self._registry.exchanges.get(api)

    def apis(self) -> list[dict[str, Any]]:
        return [describe_api(r) for _, r in sorted(self._registry.exchanges.items())]

    def check_config(self, record: ExchangeRecord, config: Any) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise ExchangeInputError("config must be an object")
        values = dict(config)
        base_url = values.pop(BASE_URL, None)
        checked = _structure_fields(record.api.get_config_cls(), values, "config", OWN_FIELDS)
        if base_url is not None:
            if not record.takes_base_url:
                raise ExchangeInputError(f"config.base_url: {record.name} takes no base URL")
            checked[BASE_URL] = _check_base_url(base_url)
        return checked

    def check_credentials(self, record: ExchangeRecord, credentials: Any) -> dict[str, Any]:
        if not isinstance(credentials, dict):
            raise ExchangeInputError("credentials must be an object")
        cls = record.credential_class()
        if cls is None:
            if credentials:
                raise ExchangeInputError(f"credentials: {record.name} takes no credentials")
            return {}
        checked = _structure_fields(cls, credentials, "credentials")
        required = {f["name"] for f in describe_fields(cls) if f["required"]}
        for name, value in checked.items():
            if not isinstance(value, str):
                continue
            if name in required and not value.strip():
                raise ExchangeInputError(f"credentials.{name}: must not be empty")
            if len(value) > MAX_SECRET_CHARS or any(ord(c) < 32 for c in value):
                raise ExchangeInputError(f"credentials.{name}: not a valid value")
        return checked

    # --- an API's shared credentials --------------------------------------------------------

    def api_credentials(self, api: str) -> dict[str, Any]:
        """The API's shared credentials, opened (for the service's own use, never shown)."""
        with self._store.reading() as session:
            row = session.get(ExchangeApiCredentialsRow, api)
            stored = None if row is None else dict(row.credentials)
        return {k: v for k, v in self._box.open(stored).items() if v}

    def set_api_credentials(self, api: str, credentials: Any) -> None:
        """Set the API's shared credentials to exactly these; empty clears them. Checked
        against the API's credential class first, so a bad field changes nothing."""
        record = self.record(api)
        if credentials is not None and not isinstance(credentials, dict):
            raise ExchangeInputError("credentials must be an object")
        checked = self.check_credentials(record, credentials) if credentials else {}
        with self._store.transaction() as session:
            row = session.get(ExchangeApiCredentialsRow, api)
            if not checked:
                if row is not None:
                    session.delete(row)
            elif row is None:
                session.add(ExchangeApiCredentialsRow(api=api, credentials=self._box.seal(checked)))
            else:
                row.credentials = self._box.seal(checked)

    def credentials_of(self, row: ExchangeRow) -> tuple[dict[str, Any], str | None]:
        """The credentials a client of this exchange uses, and where they come from."""
        own = {k: v for k, v in self._box.open(row.credentials).items() if v}
        if own:
            return own, OWN_SOURCE
        shared = self.api_credentials(row.api_type)
        return (shared, API_SOURCE) if shared else ({}, None)

    # --- records ---------------------------------------------------------------------------

    def view(self, row: ExchangeRow, bank: str | None) -> dict[str, Any]:
        record = self._registry.exchanges.get(row.api_type)
        credentials = self._box.open(row.credentials)  # only which are set is shown
        return {
            "name": row.name,
            "api": row.api_type,
            "config": dict(row.config),
            "credentials_set": sorted(k for k, v in credentials.items() if v),
            "bank": bank,
            "enabled": row.enabled,
            "fetch_interval_seconds": row.fetch_interval_seconds,
            "installed": record is not None,
            "created_at": row.created_at.isoformat(),
        }

    def _row(self, session: Any, name: str) -> ExchangeRow:
        row = session.scalars(select(ExchangeRow).where(ExchangeRow.name == name)).one_or_none()
        if row is None:
            raise ExchangeNotFoundError(f"no exchange named {name!r}")
        return row

    @staticmethod
    def _bank_of(session: Any, row: ExchangeRow) -> str | None:
        return session.scalar(select(BankRow.name).where(BankRow.exchange_pk == row.id))

    def all(self) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.scalars(select(ExchangeRow).order_by(ExchangeRow.name)).all()
            return [self.view(row, self._bank_of(session, row)) for row in rows]

    def get(self, name: str) -> dict[str, Any]:
        with self._store.reading() as session:
            row = self._row(session, name)
            return self.view(row, self._bank_of(session, row))

    def create(
        self,
        name: Any,
        api: Any,
        config: Any,
        credentials: Any = None,
        bank: Any = None,
        enabled: bool = True,
        fetch_interval_seconds: int = 900,
        credentials_later: bool = False,
    ) -> dict[str, Any]:
        """``credentials_later``: an API that takes credentials may start with none (HMA 2.0
        allows it; its fetches fail until some are set here or on the API)."""
        if not isinstance(name, str) or not NAME.match(name):
            raise ExchangeInputError("name must be 1-128 letters, digits, '_', '.' or '-'")
        if not isinstance(api, str):
            raise ExchangeInputError("api must be a string")
        record = self.record(api)
        checked = self.check_config(record, config)
        secret = (
            self.check_credentials(record, credentials or {})
            if credentials or not credentials_later
            else {}
        )
        usable = secret or self.api_credentials(api)
        if usable or record.credential_class() is None or not credentials_later:
            self.make_client(record, name, checked, usable)  # refuses what cannot be built
        if fetch_interval_seconds < 10:
            raise ExchangeInputError("fetch_interval_seconds must be at least 10")
        bank_name = bank if bank is not None else name.upper()
        if not isinstance(bank_name, str) or not NAME.match(bank_name):
            raise ExchangeInputError("bank must be 1-128 letters, digits, '_', '.' or '-'")
        try:
            with self._store.transaction() as session:
                if self._bank_exists(session, bank_name):
                    raise ExchangeConflictError(f"a bank named {bank_name!r} already exists")
                row = ExchangeRow(
                    name=name,
                    api_type=api,
                    config=checked,
                    credentials=self._box.seal(secret),
                    enabled=enabled,
                    fetch_interval_seconds=fetch_interval_seconds,
                )
                session.add(row)
                session.flush()
                exchange_pk = row.id
        except IntegrityError as exc:
            raise ExchangeConflictError(f"an exchange named {name!r} already exists") from exc
        Banks(self._store).create_bank(bank_name, description=f"filled by exchange {name}")
        with self._store.transaction() as session:
            session.execute(
                update(BankRow).where(BankRow.name == bank_name).values(exchange_pk=exchange_pk)
            )
        return self.get(name)

    @staticmethod
    def _bank_exists(session: Any, name: str) -> bool:
        return session.scalar(select(BankRow.id).where(BankRow.name == name)) is not None

    def update(
        self,
        name: str,
        *,
        config: Any = None,
        credentials: Any = None,
        enabled: bool | None = None,
        fetch_interval_seconds: int | None = None,
    ) -> dict[str, Any]:
        """Change what is given; credentials merge into the stored ones."""
        with self._store.transaction() as session:
            row = self._row(session, name)
            record = self.record(row.api_type)
            if config is not None:
                row.config = self.check_config(record, config)
            if credentials is not None:
                if not isinstance(credentials, dict):
                    raise ExchangeInputError("credentials must be an object")
                merged = {**self._box.open(row.credentials), **credentials}
                row.credentials = self._box.seal(self.check_credentials(record, merged))
            if enabled is not None:
                row.enabled = enabled
            if fetch_interval_seconds is not None:
                if fetch_interval_seconds < 10:
                    raise ExchangeInputError("fetch_interval_seconds must be at least 10")
                row.fetch_interval_seconds = fetch_interval_seconds
            usable, _ = self.credentials_of(row)
            if usable or record.credential_class() is None:
                self.make_client(record, row.name, row.config, usable)
        return self.get(name)

    def replace_credentials(self, name: str, credentials: Any) -> dict[str, Any]:
        """Set the credentials to exactly these (``update`` merges); checked, then sealed.
        Empty clears them: the exchange falls back to its API's shared credentials."""
        if credentials is not None and not isinstance(credentials, dict):
            raise ExchangeInputError("credentials must be an object")
        with self._store.transaction() as session:
            row = self._row(session, name)
            record = self.record(row.api_type)
            checked = self.check_credentials(record, credentials) if credentials else {}
            usable = checked or self.api_credentials(row.api_type)
            if usable:
                self.make_client(record, row.name, row.config, usable)
            row.credentials = self._box.seal(checked)
        return self.get(name)

    def delete(self, name: str, *, delete_bank: bool = False) -> None:
        with self._store.transaction() as session:
            row = self._row(session, name)
            bank = self._bank_of(session, row)
            session.execute(
                update(BankRow).where(BankRow.exchange_pk == row.id).values(exchange_pk=None)
            )
            session.delete(row)
        if delete_bank and bank is not None:
            Banks(self._store).delete_bank(bank)

    # --- clients ---------------------------------------------------------------------------

    def collab(self, record: ExchangeRecord, name: str, config: Mapping[str, Any]) -> Any:
        cls = record.api.get_config_cls()
        types = _field_types(cls)
        converter = cattrs.Converter()
        # Stored values are JSON; the config class wants its own types (enums, sets).
        values = {k: converter.structure(v, types[k]) for k, v in config.items() if k != BASE_URL}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        own = {"name": name, "api": record.name, "enabled": True}
        return cls(**{k: v for k, v in own.items() if k in init}, **values)

    def make_client(
        self,
        record: ExchangeRecord,
        name: str,
        config: Mapping[str, Any],
        credentials: Mapping[str, Any],
    ) -> Any:
        """A ready API client; a config the API refuses (a file outside the root) is a 400."""
        spec = ExchangeClientSpec(
            collab=self.collab(record, name, config),
            credentials=credentials,
            settings=self._settings,
            base_url=config.get(BASE_URL),
        )
        try:
            return record.make_client(spec)
        except (ValueError, TypeError, PermissionError) as exc:
            raise ExchangeInputError(f"config: {exc}") from None

    def client_for(self, row: ExchangeRow) -> tuple[ExchangeRecord, Any]:
        record = self.record(row.api_type)
        credentials, _ = self.credentials_of(row)
        if not credentials and record.credential_class() is not None:
            raise ExchangeInputError(
                f"credentials: none set for exchange {row.name!r} or its API {row.api_type!r}"
            )
        return record, self.make_client(record, row.name, row.config, credentials)

    def credential_values(self, row: ExchangeRow) -> list[str]:
        """The credential strings in use, for blanking them out of error messages."""
        own = self._box.open(row.credentials).values()
        shared = self.api_credentials(row.api_type).values()
        return [str(v) for v in (*own, *shared) if v]


def exchanges_of(runtime: Any) -> Exchanges:
    return Exchanges(
        runtime.store, runtime.registry, secret_box(runtime.settings), runtime.settings
    )
