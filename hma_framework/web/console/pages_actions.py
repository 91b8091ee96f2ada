"""Deliveries: given-up and failing first, every attempt with status and timing, redeliver.

Redelivery goes through the same record change and job as
``POST /deliveries/<id>/redeliver`` (scope ``admin``).
"""

from __future__ import annotations

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions import deliveries as records
from hma_framework.actions.delivering import enqueue_deliveries
from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.actions.errors import ActionConflict, ActionNotFound
from hma_framework.web.api_schema import FORM, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime, safe_next

PAGE_SIZE = 50
#: Statuses a delivery can be redelivered from (the others are already on their way).
REDELIVERABLE = (records.SUCCEEDED, records.FAILED, records.HELD)


@blueprint.get("/deliveries")
@console_scope("read")
@operation("Console: deliveries", responses=html_page(400, 404))
def deliveries() -> Response:
    """Given up first, then failing (retrying or held), then the newest of any status."""
    queries = DeliveryQueries(runtime().store)
    status = request.args.get("status") or None
    if status is not None and status not in records.STATUSES:
        return error_page(400, f"status must be one of {', '.join(records.STATUSES)}")
    given_up = [] if status else queries.find(status=records.FAILED, limit=PAGE_SIZE)
    failing = [] if status else queries.failing(limit=PAGE_SIZE)
    newest = queries.find(status=status, limit=PAGE_SIZE)
    shown = {d["id"] for d in given_up + failing}
    return page(
        "deliveries.html",
        given_up=given_up,
        failing=failing,
        newest=[d for d in newest if d["id"] not in shown],
        statuses=records.STATUSES,
        chosen_status=status or "",
        here=url_for("console.deliveries", status=status),  # None leaves it out
        redeliverable=REDELIVERABLE,
    )


@blueprint.get("/deliveries/<int:delivery_id>")
@console_scope("read")
@operation("Console: delivery", responses=html_page(400, 404))
def delivery(delivery_id: int) -> Response:
    found = DeliveryQueries(runtime().store).get(delivery_id)
    if found is None:
        return error_page(404, f"No delivery {delivery_id}.")
    return page("delivery.html", delivery=found, redeliverable=REDELIVERABLE)


@blueprint.post("/deliveries/<int:delivery_id>/redeliver")
@console_scope("admin")
@operation("Console: redeliver", request=FORM, responses=html_page(400, 403, 404, 409))
def redeliver(delivery_id: int) -> Response:
    rt = runtime()
    try:
        job_id = records.redeliver(rt.store, delivery_id)
    except ActionNotFound as exc:
        return error_page(404, str(exc))
    except ActionConflict as exc:
        return error_page(409, str(exc))
    enqueue_deliveries(rt, job_id)
    default = url_for("console.delivery", delivery_id=delivery_id)
    back = request.form.get("back")
    return redirect(safe_next(back) if back else default, code=303)
