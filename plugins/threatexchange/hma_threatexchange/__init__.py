"""Facebook ThreatExchange: the hma_threatexchange plugin."""

from __future__ import annotations

from collections.abc import Iterator

from threatexchange.exchanges.impl.fb_threatexchange_api import (
    FBThreatExchangeSignalExchangeAPI,
)

from hma_framework.hookspecs import hookimpl
from hma_framework.types import ExchangeRecord


@hookimpl
def hma_exchanges() -> Iterator[ExchangeRecord]:
    yield ExchangeRecord(FBThreatExchangeSignalExchangeAPI)
