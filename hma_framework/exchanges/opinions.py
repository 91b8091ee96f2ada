"""Opinions written back to the exchange that supplied a matched member.

``POST /matches/<id>/opinion`` and rules' ``write_back`` both end here: a request is checked
at once (the match's bank must be exchange-fed, and the exchange must take that opinion, or
the caller gets a 409), recorded in ``exchange_opinion`` and sent by an ``action``-queue job
that RQ retries with backoff. Every attempt's outcome stays on the record, which
``GET /matches/<id>`` lists.
"""

from __future__ import annotations

import logging
from typing import Any

from rq import Retry, get_current_job
from sqlalchemy import select

from hma_framework.actions.handlers import blank_secrets
from hma_framework.actions.writeback import OpinionRequest
from hma_framework.exchanges.configs import (
    ExchangeConflictError,
    ExchangeInputError,
    ExchangeNotFoundError,
    exchanges_of,
)
from hma_framework.pipeline.context import current_runtime
from hma_framework.runtime import Runtime
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    ContentRow,
    ExchangeOpinionRow,
    ExchangeRow,
    MatchRow,
    utcnow,
)

log = logging.getLogger(__name__)

OPINIONS = ("seen", "true_positive", "false_positive", "remove")
PENDING, SENT, RETRYING, FAILED = "pending", "sent", "retrying", "failed"
RETRY_INTERVALS = (5, 30, 120, 600)


def _view(row: ExchangeOpinionRow, exchange: str | None) -> dict[str, Any]:
    return {
        "id": row.id,
        "exchange": exchange,
        "opinion": row.opinion,
        "source": row.source,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def request_opinion(runtime: Runtime, match_pk: int, opinion: str, source: str) -> dict[str, Any]:
    """Record and enqueue one write-back, or refuse it now (400/404/409)."""
    if opinion not in OPINIONS:
        raise ExchangeInputError(f"opinion must be one of {', '.join(OPINIONS)}")
    with runtime.store.transaction() as session:
        found = session.execute(
            select(MatchRow, BankRow, ExchangeRow)
            .outerjoin(BankRow, BankRow.id == MatchRow.bank_pk)
            .outerjoin(ExchangeRow, ExchangeRow.id == BankRow.exchange_pk)
            .where(MatchRow.id == match_pk)
        ).one_or_none()
        if found is None:
            raise ExchangeNotFoundError(f"no match {match_pk}")
        match, bank, exchange = found
        if match.member_pk is None or bank is None:
            raise ExchangeConflictError(
                "the matched member was removed from its bank (withdrawn by its exchange or "
                "deleted); there is no record left to give an opinion on"
            )
        if exchange is None:
            raise ExchangeConflictError(
                f"bank {bank.name!r} is not filled by an exchange; there is no one to tell"
            )
        record = runtime.registry.exchanges.get(exchange.api_type)
        if record is None or opinion not in record.opinions:
            takes = ", ".join(record.opinions) if record and record.opinions else "none"
            raise ExchangeConflictError(
                f"exchange {exchange.name!r} ({exchange.api_type}) cannot take the opinion "
                f"{opinion!r}; it takes: {takes}"
            )
        row = ExchangeOpinionRow(
            match_pk=match.id,
            member_pk=match.member_pk,
            exchange_pk=exchange.id,
            opinion=opinion,
            source=source,
            status=PENDING,
            attempts=0,
        )
        session.add(row)
        session.flush()
        view = _view(row, exchange.name)
    runtime.queues["action"].enqueue(
        send_opinion,
        view["id"],
        retry=Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)),
        result_ttl=0,
        failure_ttl=7 * 24 * 3600,
    )
    return view


def send_opinion(opinion_pk: int) -> str:
    """The ``action``-queue job: one attempt; raising lets RQ retry it later."""
    runtime = current_runtime()
    with runtime.store.reading() as session:
        found = session.execute(
            select(ExchangeOpinionRow, ExchangeRow, BankMemberRow, MatchRow)
            .join(ExchangeRow, ExchangeRow.id == ExchangeOpinionRow.exchange_pk)
            .join(BankMemberRow, BankMemberRow.id == ExchangeOpinionRow.member_pk)
            .join(MatchRow, MatchRow.id == ExchangeOpinionRow.match_pk)
            .where(ExchangeOpinionRow.id == opinion_pk)
        ).one_or_none()
        if found is None:
            # Withdrawn before it was sent: say so rather than leave it pending for ever.
            _record(runtime, opinion_pk, FAILED, "the match, member or exchange is gone")
            return "the match, member or exchange is gone"
        opinion, exchange, member, match = found
        session.expunge_all()
    exchanges = exchanges_of(runtime)
    try:
        _, client = exchanges.client_for(exchange)
        client.write_opinion(
            opinion.opinion, match.signal_type, match.member_signal, dict(member.exchange_metadata)
        )
    except Exception as exc:
        message = blank_secrets(
            f"{type(exc).__name__}: {exc}", exchanges.credential_values(exchange)
        )
        job = get_current_job()
        final = job is None or not job.retries_left
        _record(runtime, opinion_pk, FAILED if final else RETRYING, message[:2000])
        log.warning("write-back %s to %s failed: %s", opinion_pk, exchange.name, message)
        raise RuntimeError(message) from None
    _record(runtime, opinion_pk, SENT, None)
    return "sent"


def _record(runtime: Runtime, opinion_pk: int, status: str, error: str | None) -> None:
    with runtime.store.transaction() as session:
        row = session.get(ExchangeOpinionRow, opinion_pk)
        if row is not None:
            row.status, row.last_error = status, error
            row.attempts += 1
            row.updated_at = utcnow()


def opinions_of_match(runtime: Runtime, match_pk: int) -> list[dict[str, Any]]:
    return opinions_of_matches(runtime, [match_pk]).get(match_pk, [])


def opinions_of_matches(runtime: Runtime, match_pks: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each match's write-backs, oldest first, in one query (a page of matches at a time)."""
    if not match_pks:
        return {}
    with runtime.store.reading() as session:
        rows = session.execute(
            select(ExchangeOpinionRow, ExchangeRow.name)
            .outerjoin(ExchangeRow, ExchangeRow.id == ExchangeOpinionRow.exchange_pk)
            .where(ExchangeOpinionRow.match_pk.in_(match_pks))
            .order_by(ExchangeOpinionRow.id)
        ).all()
        found: dict[int, list[dict[str, Any]]] = {}
        for row, name in rows:
            if row.match_pk is not None:
                found.setdefault(row.match_pk, []).append(_view(row, name))
        return found


def opinions_taken(runtime: Runtime) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Exchange-fed bank name -> (exchange name, the opinions its API takes, in OPINIONS order).

    What a review page offers per match; ``request_opinion`` still decides each request.
    """
    with runtime.store.reading() as session:
        rows = session.execute(
            select(BankRow.name, ExchangeRow.name, ExchangeRow.api_type).join(
                ExchangeRow, ExchangeRow.id == BankRow.exchange_pk
            )
        ).all()
    taken = {}
    for bank, exchange, api in rows:
        record = runtime.registry.exchanges.get(api)
        takes = record.opinions if record is not None else ()
        taken[bank] = (exchange, tuple(o for o in OPINIONS if o in takes))
    return taken


class QueueingExchangeWriter:
    """The rules' write-back seam: each request becomes a recorded, retried opinion job."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def record_opinion(self, request: OpinionRequest) -> None:
        with self._runtime.store.reading() as session:
            match_pk = session.scalar(
                select(MatchRow.id)
                .join(ContentRow, ContentRow.id == MatchRow.content_pk)
                .where(
                    ContentRow.content_id == request.content_id,
                    MatchRow.member_pk == request.member_id,
                )
                .order_by(MatchRow.id)
                .limit(1)
            )
        if match_pk is None:
            raise ExchangeNotFoundError(f"no match of member {request.member_id}")
        request_opinion(self._runtime, match_pk, request.opinion.value, "rule")
