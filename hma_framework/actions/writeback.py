"""The write-back seam: telling the exchange that filled a bank what a match turned out to be.

A rule's action may carry ``write_back`` (seen, true_positive, false_positive). Once the
action succeeds, each of its matches from an exchange-fed bank becomes an
:class:`OpinionRequest` for the :class:`ExchangeWriter` registered under that exchange's API
name (python-threatexchange's ``get_name()``, the ``exchange`` label). The exchanges issue
registers real writers: by default each exchange API that takes opinions gets one that
records the opinion and sends it as a retried job; APIs that take none are skipped.
:class:`RecordingExchangeWriter` is the test double.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs
from sqlalchemy import select

from hma_framework.store.db import Store
from hma_framework.store.tables import BankMemberRow, BankRow, ExchangeRow

log = logging.getLogger(__name__)


class Opinion(enum.StrEnum):
    SEEN = "seen"
    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"
    REMOVE = "remove"

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)


@attrs.frozen
class OpinionRequest:
    """One opinion about one banked item, addressed to the exchange that supplied it."""

    opinion: Opinion
    api_name: str
    exchange: str
    exchange_config: Mapping[str, Any]
    bank: str
    member_id: int
    external_id: str | None
    exchange_metadata: Mapping[str, Any]
    signal_type: str
    signal_value: str
    content_id: str


class ExchangeWriter(Protocol):
    """Records an opinion with an exchange; raise to report a failure."""

    def record_opinion(self, request: OpinionRequest) -> None: ...


@attrs.define
class ExchangeWriters:
    """The writers of one process, keyed by exchange API name."""

    writers: dict[str, ExchangeWriter] = attrs.field(factory=dict)

    def register(self, api_name: str, writer: ExchangeWriter) -> None:
        self.writers[api_name] = writer

    def for_api(self, api_name: str) -> ExchangeWriter | None:
        return self.writers.get(api_name)


_RUNTIME_KEY = "_exchange_writers"


def exchange_writers(runtime: Any) -> ExchangeWriters:
    """The process's writers, kept on its runtime like its content sources are.

    By default every installed exchange API that takes opinions gets a writer that records
    the opinion and sends it as a retried ``action`` job (``exchanges.opinions``).
    """
    writers: ExchangeWriters | None = runtime.__dict__.get(_RUNTIME_KEY)
    if writers is None:
        from hma_framework.exchanges.opinions import QueueingExchangeWriter

        writers = ExchangeWriters()
        for name, record in runtime.registry.exchanges.items():
            if record.opinions:
                writers.register(name, QueueingExchangeWriter(runtime))
        runtime.__dict__[_RUNTIME_KEY] = writers
    return writers


def set_exchange_writers(runtime: Any, writers: ExchangeWriters) -> None:
    runtime.__dict__[_RUNTIME_KEY] = writers


@attrs.frozen
class Target:
    """A matched member from an exchange-fed bank, as stored in a delivery's request."""

    member_id: int
    signal_type: str
    signal_value: str


def opinion_requests(
    store: Store, opinion: Opinion, content_id: str, targets: Sequence[Target]
) -> list[OpinionRequest]:
    """Requests for the targets whose bank an exchange fills; the others need none."""
    by_member = {t.member_id: t for t in targets}
    if not by_member:
        return []
    query = (
        select(BankMemberRow, BankRow.name, ExchangeRow)
        .join(BankRow, BankRow.id == BankMemberRow.bank_pk)
        .join(ExchangeRow, ExchangeRow.id == BankRow.exchange_pk)
        .where(BankMemberRow.id.in_(by_member))
    )
    with store.reading() as session:
        rows = session.execute(query).all()
    return [
        OpinionRequest(
            opinion=opinion,
            api_name=exchange.api_type,
            exchange=exchange.name,
            exchange_config=dict(exchange.config),
            bank=bank,
            member_id=member.id,
            external_id=member.external_id,
            exchange_metadata=dict(member.exchange_metadata),
            signal_type=by_member[member.id].signal_type,
            signal_value=by_member[member.id].signal_value,
            content_id=content_id,
        )
        for member, bank, exchange in rows
    ]


def write_back(writers: ExchangeWriters, requests: Iterable[OpinionRequest]) -> list[str]:
    """Send each request to its writer; one line per request says what happened."""
    results = []
    for request in requests:
        where = f"{request.api_name}/{request.exchange} member {request.member_id}"
        writer = writers.for_api(request.api_name)
        if writer is None:
            results.append(f"{where}: skipped, no writer for {request.api_name}")
            continue
        try:
            writer.record_opinion(request)
        except Exception as exc:
            log.warning("write-back to %s failed: %s", where, exc)
            results.append(f"{where}: failed: {exc}")
        else:
            results.append(f"{where}: {request.opinion.value} recorded")
    return results


class RecordingExchangeWriter:
    """Test double: remembers every request; fails with ``error`` when one is set."""

    def __init__(self, error: str | None = None) -> None:
        self.requests: list[OpinionRequest] = []
        self.error = error
        self._lock = threading.Lock()

    def record_opinion(self, request: OpinionRequest) -> None:
        with self._lock:
            self.requests.append(request)
        if self.error:
            raise RuntimeError(self.error)
