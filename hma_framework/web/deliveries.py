"""Deliveries: ``GET /deliveries`` (scope ``read``) and redelivery (scope ``admin``)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.actions import deliveries as records
from hma_framework.actions.delivering import enqueue_deliveries
from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import (
    ANY,
    BOOL,
    INT,
    OBJ,
    STR,
    TIME,
    array,
    errors,
    nullable,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError
from hma_framework.web.rules import install_action_errors
from hma_framework.web.validation import int_arg

blueprint = Blueprint("deliveries", __name__)
install_action_errors(blueprint)
MAX_PAGE = 1000
DELIVERY = obj(
    {
        "request": OBJ,
        "attempt_log": array(
            obj(
                attempted_at=nullable(TIME),
                status_code=nullable(INT),
                latency_ms=nullable(INT),
                error=nullable(STR),
                detail=ANY,
            )
        ),
    },
    id=INT,
    content_id=nullable(STR),
    handler=STR,
    status=STR,
    gave_up=BOOL,
    rules_fired=array(STR),
    params=OBJ,
    write_back=ANY,
    matches=INT,
    attempts=INT,
    next_attempt_at=nullable(TIME),
    last_error=nullable(STR),
    created_at=nullable(TIME),
    updated_at=nullable(TIME),
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _int_arg(name: str, default: int | None, high: int) -> int | None:
    return int_arg(name, default, low=1, high=high)


@blueprint.get("/deliveries")
@requires_scope("read")
@operation(
    "Deliveries to action handlers, newest first",
    query={"handler": STR, "status": STR, "content_id": STR, "limit": INT, "cursor": INT},
    responses={200: obj(deliveries=array(DELIVERY), next_cursor=nullable(STR))},
)
def list_deliveries() -> Response:
    """Newest first; filter by ``handler``, ``status``, ``content_id``; page with ``cursor``."""
    status = request.args.get("status") or None
    if status is not None and status not in records.STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(records.STATUSES)}")
    limit = _int_arg("limit", 100, MAX_PAGE) or 100
    found = DeliveryQueries(_runtime().store).find(
        handler=request.args.get("handler") or None,
        status=status,
        content_id=request.args.get("content_id") or None,
        before_id=_int_arg("cursor", None, 2**62),
        limit=limit,
    )
    cursor = str(found[-1]["id"]) if len(found) == limit else None
    return jsonify(deliveries=found, next_cursor=cursor)


@blueprint.get("/deliveries/<int:delivery_id>")
@requires_scope("read")
@operation("A delivery with every attempt", responses={200: DELIVERY})
def get_delivery(delivery_id: int) -> Response:
    """One delivery with every attempt (time, HTTP status, latency, error)."""
    found = DeliveryQueries(_runtime().store).get(delivery_id)
    if found is None:
        raise ApiError(404, f"no delivery {delivery_id}")
    return jsonify(found)


@blueprint.post("/deliveries/<int:delivery_id>/redeliver")
@requires_scope("admin")
@operation(
    "Deliver again from the start of the retry schedule",
    responses={202: DELIVERY, **errors(409)},
)
def redeliver(delivery_id: int) -> tuple[Response, int]:
    """Try again from the start of the retry schedule, whatever the delivery's outcome was."""
    runtime = _runtime()
    job_id = records.redeliver(runtime.store, delivery_id)
    enqueue_deliveries(runtime, job_id)
    return jsonify(DeliveryQueries(runtime.store).get(delivery_id)), 202
