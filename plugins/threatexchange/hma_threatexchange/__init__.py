"""Exchanges from python-threatexchange: the hma_threatexchange plugin.

Every exchange the library ships is offered. ``fb_threatexchange``, ``local_file``,
``stop_ncii``, ``ncmec`` and ``tat`` come through subclasses that fix what the library gets
wrong for an unattended server: no timeouts, no base URL, files read from anywhere, withdrawn
StopNCII hashes kept live, NCMEC's local time labelled UTC, TAT's collaboration config
dropped. ``sample`` is as the library builds it.
"""

from __future__ import annotations

from collections.abc import Iterator

from threatexchange.exchanges.impl.static_sample import StaticSampleSignalExchangeAPI

from hma_framework.hookspecs import hookimpl
from hma_framework.types import ExchangeRecord
from hma_threatexchange.local_file import ConfinedLocalFileExchange
from hma_threatexchange.ncmec import FEEDBACK as NCMEC_FEEDBACK
from hma_threatexchange.ncmec import NCMECExchange
from hma_threatexchange.stop_ncii import FEEDBACK, StopNCIIExchange
from hma_threatexchange.tat import TATExchange
from hma_threatexchange.te import REACTIONS, ThreatExchangeExchange


@hookimpl
def hma_exchanges() -> Iterator[ExchangeRecord]:
    yield ExchangeRecord(
        ThreatExchangeExchange,
        client_factory=ThreatExchangeExchange.from_spec,
        opinions=tuple(REACTIONS),
        takes_base_url=True,
    )
    yield ExchangeRecord(
        ConfinedLocalFileExchange,
        client_factory=ConfinedLocalFileExchange.from_spec,
        opinions=("true_positive",),
        full_snapshot=True,
    )
    yield ExchangeRecord(
        NCMECExchange,
        client_factory=NCMECExchange.from_spec,
        opinions=tuple(NCMEC_FEEDBACK),
        takes_base_url=True,
    )
    yield ExchangeRecord(
        StopNCIIExchange,
        client_factory=StopNCIIExchange.from_spec,
        opinions=tuple(FEEDBACK),
        takes_base_url=True,
    )
    yield ExchangeRecord(TATExchange, client_factory=TATExchange.from_spec, takes_base_url=True)
    yield ExchangeRecord(StaticSampleSignalExchangeAPI)
