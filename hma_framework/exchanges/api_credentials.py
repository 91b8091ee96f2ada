"""Credentials per exchange API, as HMA 2.0's ``/c/exchanges/api/<api>`` speaks of them.

HMA 2.0 keeps one credential set per API; this project keeps one per exchange (so two
collaborations on one API may use two tokens). An API's credentials are therefore the
credentials its exchanges hold: setting them sets them on every exchange of the API, a new
exchange given none borrows them from a sibling, and "has credentials" means some exchange
of the API holds a set. Nothing is stored twice and nothing needs a table of its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from hma_framework.exchanges.configs import (
    ExchangeConflictError,
    ExchangeInputError,
    Exchanges,
)
from hma_framework.store.tables import ExchangeRow


def supports_credentials(exchanges: Exchanges, api: str) -> bool:
    return exchanges.record(api).credential_class() is not None


def _rows(exchanges: Exchanges, api: str) -> list[ExchangeRow]:
    with exchanges.store.reading() as session:
        rows = session.scalars(
            select(ExchangeRow).where(ExchangeRow.api_type == api).order_by(ExchangeRow.id)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def own_credentials(exchanges: Exchanges, row: ExchangeRow) -> dict[str, Any]:
    """The row's credentials, opened (for the service's own use, never shown)."""
    return {k: v for k, v in exchanges.box.open(row.credentials).items() if v}


def shared_credentials(exchanges: Exchanges, api: str) -> dict[str, Any]:
    """The credentials of the oldest exchange of ``api`` holding any; ``{}`` if none does."""
    for row in _rows(exchanges, api):
        opened = own_credentials(exchanges, row)
        if opened:
            return opened
    return {}


def has_credentials(exchanges: Exchanges, api: str) -> bool:
    return bool(shared_credentials(exchanges, api))


def set_api_credentials(exchanges: Exchanges, api: str, credentials: Any) -> int:
    """Give every exchange of ``api`` exactly these credentials (``{}`` clears them, as in
    HMA 2.0, where the API lets its client go without); answers how many changed.

    Checked against the API's credential class first, so a bad field changes nothing.
    With no exchange of the API there is nowhere to keep them: a conflict that says to
    pass them when creating the exchange.
    """
    record = exchanges.record(api)
    if record.credential_class() is None:
        if not credentials:
            return 0  # "clear" on an API without credentials: nothing to do
        raise ExchangeInputError(f"credentials: {api} takes no credentials")
    checked = exchanges.check_credentials(record, credentials)
    rows = _rows(exchanges, api)
    if not rows:
        raise ExchangeConflictError(
            f"no exchange of {api} exists to hold credentials; "
            "pass credential_json when creating the exchange"
        )
    for row in rows:
        exchanges.replace_credentials(row.name, checked)
    return len(rows)
