"""Exchanges: each one's fetch status, and "fetch now" (scope ``admin``, as ``/exchanges``).

Read through the same service as ``GET /exchanges`` and ``/exchanges/<name>/status``, so no
credential can reach the page: the service only says which credential fields are set, and
fetch errors are stored with credential values blanked out.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.exchanges import fetching
from hma_framework.exchanges.configs import ExchangeNotFoundError, exchanges_of
from hma_framework.store.bank_queries import BankQueries
from hma_framework.web.api_schema import FORM, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime


def _listing() -> list[dict[str, Any]]:
    rt = runtime()
    banks = BankQueries(rt.store)
    shown = []
    for exchange in exchanges_of(rt).all():
        bank = banks.bank(exchange["bank"]) if exchange["bank"] else None
        shown.append(
            {
                **exchange,
                "status": fetching.status(rt, exchange["name"]),
                "members": bank["member_count"] if bank is not None else None,
            }
        )
    return shown


@blueprint.get("/exchanges")
@console_scope("admin")
@operation("Console: exchanges", responses=html_page(400, 404))
def exchanges() -> Response:
    fetched = request.args.get("fetched", "")
    notice = ""
    if fetched:
        queued = request.args.get("enqueued") == "1"
        notice = (
            f"A fetch of {fetched} was queued."
            if queued
            else f"{fetched} is already being fetched or queued."
        )
    return page("exchanges.html", exchanges=_listing(), notice=notice)


@blueprint.post("/exchanges/<name>/fetch")
@console_scope("admin")
@operation("Console: fetch exchange", request=FORM, responses=html_page(400, 403, 404, 409))
def fetch_exchange(name: str) -> Response:
    try:
        enqueued = fetching.trigger_by_name(runtime(), name)
    except ExchangeNotFoundError as exc:
        return error_page(404, str(exc))
    return redirect(
        url_for("console.exchanges", fetched=name, enqueued="1" if enqueued else "0"), code=303
    )
