"""The exchange half of ``hma import-hma2``: configs, credentials, fetch checkpoints, and
signal type ratios, read from HMA 2.0's tables.

- ``exchange``: name, API and ``typed_config`` (minus the name/api/enabled it repeats), checked
  against the installed API; ``credentials_json`` (HMA 2.0's per-exchange credentials, where
  that column exists) becomes the exchange's own credentials.
- ``exchange_api_config.default_credentials_json``: the API's shared credentials, used by every
  exchange without its own (HMA 2.0's fallback).
- ``exchange_fetch_status``: the checkpoint (so the first fetch here resumes where HMA 2.0
  stopped, in step with the imported items), the last completed fetch and "up to date".
- ``signal_type_override``: each signal type's ``enabled_ratio``.

Credentials are checked by the API's credential class and sealed by the secret box like any
other; they are never printed, and a refusal names only the exchange or API.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import attrs
import cattrs

from hma_framework.exchanges.configs import OWN_FIELDS, ExchangeInputError, Exchanges
from hma_framework.store.signal_type_settings import set_enabled_ratio
from hma_framework.store.tables import ExchangeCheckpointRow, ExchangeRow

_checkpoints = cattrs.Converter()


@attrs.define
class ExchangeImport:
    exchanges: int = 0
    exchange_credentials: int = 0
    api_credentials: int = 0
    checkpoints: int = 0
    signal_type_ratios: int = 0
    notes: list[str] = attrs.field(factory=list)


def _config(exchanges: Exchanges, row: dict[str, Any], found: ExchangeImport) -> dict[str, Any]:
    typed = {k: v for k, v in dict(row.get("typed_config") or {}).items() if k not in OWN_FIELDS}
    record = exchanges.installed_record(row["api_cls"])
    if record is None:
        found.notes.append(f"exchange {row['name']}: API {row['api_cls']} is not installed here")
        return typed
    try:
        return exchanges.check_config(record, typed)
    except ExchangeInputError as exc:
        found.notes.append(f"exchange {row['name']}: config kept as stored ({exc})")
        return typed


def _own_credentials(
    exchanges: Exchanges, row: dict[str, Any], found: ExchangeImport
) -> dict[str, Any]:
    given = row.get("credentials_json")
    record = exchanges.installed_record(row["api_cls"])
    if not given or record is None:
        return {}
    try:
        checked = exchanges.check_credentials(record, given)
    except ExchangeInputError:
        found.notes.append(f"exchange {row['name']}: its credentials were refused; set them again")
        return {}
    found.exchange_credentials += 1
    return checked


def _checkpoint(
    exchanges: Exchanges, row: dict[str, Any], status: dict[str, Any], found: ExchangeImport
) -> dict[str, Any] | None:
    stored = status.get("checkpoint_json")
    record = exchanges.installed_record(row["api_cls"])
    if not stored or record is None:
        return None
    try:
        checkpoint = _checkpoints.structure(stored, record.api.get_checkpoint_cls())
    except Exception:
        found.notes.append(f"exchange {row['name']}: checkpoint unreadable, fetching starts over")
        return None
    found.checkpoints += 1
    unstructured: dict[str, Any] = _checkpoints.unstructure(checkpoint)
    return unstructured


def _when(ts: Any) -> dt.datetime | None:
    return None if not ts else dt.datetime.fromtimestamp(int(ts), dt.UTC)


def import_exchanges(
    exchanges: Exchanges,
    rows: list[dict[str, Any]],
    statuses: dict[int, dict[str, Any]],
    found: ExchangeImport,
) -> dict[int, int]:
    """Store HMA 2.0's exchanges; answers HMA 2.0 exchange id -> this project's id."""
    prepared = []
    for row in rows:
        status = statuses.get(row["id"], {})
        config = _config(exchanges, row, found)
        credentials = _own_credentials(exchanges, row, found)
        prepared.append(
            (row, status, config, credentials, _checkpoint(exchanges, row, status, found))
        )
    ids: dict[int, int] = {}
    with exchanges.store.transaction() as session:
        for row, status, config, credentials, checkpoint in prepared:
            created = ExchangeRow(
                name=row["name"],
                api_type=row["api_cls"],
                config=config,
                credentials=exchanges.box.seal(credentials),
                enabled=bool(row.get("fetching_enabled", True)),
                last_succeeded_at=_when(status.get("last_fetch_complete_ts")),
                up_to_date=bool(status.get("is_up_to_date", False)),
            )
            session.add(created)
            session.flush()
            ids[row["id"]] = created.id
            if checkpoint is not None:
                session.add(ExchangeCheckpointRow(exchange_pk=created.id, checkpoint=checkpoint))
    found.exchanges = len(ids)
    return ids


def import_api_credentials(
    exchanges: Exchanges, rows: list[dict[str, Any]], found: ExchangeImport
) -> None:
    """HMA 2.0's per-API credentials; an API that already has some here keeps its own."""
    for row in rows:
        api, given = row["api"], row.get("default_credentials_json")
        if not given:
            continue
        if exchanges.installed_record(api) is None:
            found.notes.append(f"API {api}: not installed here, its credentials were not imported")
            continue
        if exchanges.api_credentials(api):
            found.notes.append(f"API {api}: has credentials here already, kept them")
            continue
        try:
            exchanges.set_api_credentials(api, given)
        except ExchangeInputError:
            found.notes.append(f"API {api}: its credentials were refused; set them again")
            continue
        found.api_credentials += 1


def import_signal_type_ratios(
    exchanges: Exchanges, rows: list[dict[str, Any]], installed: set[str], found: ExchangeImport
) -> None:
    for row in rows:
        ratio = float(row.get("enabled_ratio", 1.0))
        if row["name"] in installed and 0.0 <= ratio <= 1.0:
            set_enabled_ratio(exchanges.store, row["name"], ratio)
            found.signal_type_ratios += 1
