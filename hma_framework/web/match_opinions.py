"""One match and the opinions written back about it: ``/matches/<id>`` and its ``/opinion``.

``GET`` (scope ``read``) shows the match, the exchange record behind the matched member and
every write-back with its outcome; ``POST /matches/<id>/opinion`` (scope ``submit``) tells
the exchange, or answers 409 at once when it cannot take that opinion.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import select

from hma_framework.exchanges.configs import ExchangeNotFoundError
from hma_framework.exchanges.opinions import opinions_of_match, request_opinion
from hma_framework.runtime import Runtime
from hma_framework.store.tables import BankMemberRow, BankRow, ContentRow, ExchangeRow, MatchRow
from hma_framework.web.api_schema import (
    BOOL,
    INT,
    NUM,
    STR,
    TIME,
    array,
    enum,
    errors,
    nullable,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.exchanges import install_exchange_errors
from hma_framework.web.validation import field, json_body

blueprint = Blueprint("match_opinions", __name__)
install_exchange_errors(blueprint)

OPINION = obj(
    id=INT,
    exchange=nullable(STR),
    opinion=STR,
    source=STR,
    status=STR,
    attempts=INT,
    last_error=nullable(STR),
    created_at=TIME,
    updated_at=TIME,
)
MATCH = obj(
    id=INT,
    content_id=STR,
    bank=nullable(STR),
    member_id=nullable(INT),
    member_removed=BOOL,
    signal_type=STR,
    content_signal=STR,
    member_signal=STR,
    distance=nullable(NUM),
    matched_at=TIME,
    exchange=nullable(obj(name=STR, api=STR, metadata=nullable({"type": "object"}))),
    write_backs=array(OPINION),
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _match(runtime: Runtime, match_pk: int) -> dict[str, Any]:
    with runtime.store.reading() as session:
        found = session.execute(
            select(MatchRow, BankRow.name, ContentRow.content_id, BankMemberRow, ExchangeRow)
            .outerjoin(BankRow, BankRow.id == MatchRow.bank_pk)
            .join(ContentRow, ContentRow.id == MatchRow.content_pk)
            .outerjoin(BankMemberRow, BankMemberRow.id == MatchRow.member_pk)
            .outerjoin(ExchangeRow, ExchangeRow.id == BankRow.exchange_pk)
            .where(MatchRow.id == match_pk)
        ).one_or_none()
        if found is None:
            raise ExchangeNotFoundError(f"no match {match_pk}")
        match, bank, content_id, member, exchange = found
        shown: dict[str, Any] = {
            "id": match.id,
            "content_id": content_id,
            "bank": bank,
            "member_id": match.member_pk,
            "member_removed": match.member_pk is None,
            "signal_type": match.signal_type,
            "content_signal": match.content_signal,
            "member_signal": match.member_signal,
            "distance": match.distance,
            "matched_at": match.created_at.isoformat(),
            "exchange": None,
        }
        if exchange is not None:
            shown["exchange"] = {
                "name": exchange.name,
                "api": exchange.api_type,
                "metadata": dict(member.exchange_metadata) if member is not None else None,
            }
    return shown


@blueprint.get("/matches/<int:match_id>")
@requires_scope("read")
@operation("A match, the exchange record behind it and its write-backs", responses={200: MATCH})
def get_match(match_id: int) -> Response:
    runtime = _runtime()
    shown = _match(runtime, match_id)
    shown["write_backs"] = opinions_of_match(runtime, match_id)
    return jsonify(shown)


@blueprint.post("/matches/<int:match_id>/opinion")
@requires_scope("submit")
@operation(
    "Tell the exchange behind a match what you think of it",
    request=obj(opinion=enum("seen", "true_positive", "false_positive", "remove")),
    responses={202: OPINION, **errors(409)},
)
def post_opinion(match_id: int) -> tuple[Response, int]:
    body = json_body()
    opinion = field(body, "opinion", str)
    return jsonify(request_opinion(_runtime(), match_id, opinion, "api")), 202
