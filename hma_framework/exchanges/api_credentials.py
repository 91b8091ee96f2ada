"""Credentials per exchange API, as HMA 2.0's ``/c/exchanges/api/<api>`` speaks of them.

HMA 2.0 keeps one shared credential set per API, and (since its per-exchange credentials)
lets an exchange hold its own, which win. This project does the same: an exchange's own
credentials, else its API's shared ones (the ``exchange_api_credentials`` table, sealed like
the exchange's). Setting the API's set never touches an exchange's own.
"""

from __future__ import annotations

from typing import Any

from hma_framework.exchanges.configs import Exchanges


def supports_credentials(exchanges: Exchanges, api: str) -> bool:
    return exchanges.record(api).credential_class() is not None


def has_credentials(exchanges: Exchanges, api: str) -> bool:
    """HMA 2.0's ``has_set_authentification``: the API's shared set exists."""
    return bool(exchanges.api_credentials(api))


def set_api_credentials(exchanges: Exchanges, api: str, credentials: Any) -> None:
    """Set (or with ``{}`` clear) the API's shared set; checked before anything is stored."""
    exchanges.set_api_credentials(api, credentials)
