"""Configured exchanges: ``/exchanges`` (scope ``admin``), a thin layer over the service.

Credentials are write-only: accepted on create and update, never returned (views list which
credential fields are set).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.exchanges import fetching
from hma_framework.exchanges.configs import (
    ExchangeConflictError,
    ExchangeInputError,
    ExchangeNotFoundError,
    Exchanges,
    exchanges_of,
)
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import (
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
from hma_framework.web.errors import json_error
from hma_framework.web.validation import field, json_body

blueprint = Blueprint("exchanges", __name__)


def install_exchange_errors(target: Blueprint) -> None:
    """Answer the exchange service's errors with the status a client can act on."""
    statuses: tuple[tuple[type[Exception], int], ...] = (
        (ExchangeInputError, 400),
        (ExchangeNotFoundError, 404),
        (ExchangeConflictError, 409),
    )
    for error_type, status in statuses:

        def answer(error: Exception, status: int = status) -> tuple[Response, int]:
            return json_error(status, str(error))

        target.register_error_handler(error_type, answer)


install_exchange_errors(blueprint)

EXCHANGE = obj(
    name=STR,
    api=STR,
    config=OBJ,
    credentials_set=array(STR),
    bank=nullable(STR),
    enabled=BOOL,
    fetch_interval_seconds=INT,
    installed=BOOL,
    created_at=TIME,
)
FETCH_STATUS = obj(
    state=STR,
    last_started=nullable(TIME),
    last_succeeded=nullable(TIME),
    checkpoint_time=nullable(STR),
    items_added=INT,
    items_updated=INT,
    items_deleted=INT,
    items_skipped=INT,
    up_to_date=BOOL,
    last_error=nullable(STR),
)
API = obj(name=STR, config_fields=array(OBJ), credential_fields=array(OBJ), opinions=array(STR))
EXCHANGE_INPUT = obj(
    {
        "name": STR,
        "api": STR,
        "config": OBJ,
        "credentials": OBJ,
        "bank": STR,
        "enabled": BOOL,
        "fetch_interval_seconds": INT,
    }
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _exchanges() -> Exchanges:
    return exchanges_of(_runtime())


@blueprint.get("/exchanges/apis")
@requires_scope("admin")
@operation("The installed exchange APIs and their fields", responses={200: obj(apis=array(API))})
def exchange_apis() -> Response:
    return jsonify(apis=_exchanges().apis())


@blueprint.post("/exchanges")
@requires_scope("admin")
@operation(
    "Configure an exchange (credentials are write-only)",
    request=EXCHANGE_INPUT,
    responses={201: EXCHANGE, **errors(409)},
)
def create_exchange() -> tuple[Response, int]:
    body = json_body()
    created = _exchanges().create(
        name=field(body, "name", str),
        api=field(body, "api", str),
        config=field(body, "config", dict, required=False, default={}),
        credentials=field(body, "credentials", dict, required=False, default={}),
        bank=field(body, "bank", str, required=False),
        enabled=bool(field(body, "enabled", bool, required=False, default=True)),
        fetch_interval_seconds=int(
            field(body, "fetch_interval_seconds", int, required=False, default=900)
        ),
    )
    return jsonify(created), 201


@blueprint.get("/exchanges")
@requires_scope("admin")
@operation("List the exchanges", responses={200: obj(exchanges=array(EXCHANGE))})
def list_exchanges() -> Response:
    return jsonify(exchanges=_exchanges().all())


@blueprint.get("/exchanges/<name>")
@requires_scope("admin")
@operation("An exchange", responses={200: EXCHANGE})
def get_exchange(name: str) -> Response:
    return jsonify(_exchanges().get(name))


@blueprint.patch("/exchanges/<name>")
@requires_scope("admin")
@operation("Change an exchange", request=EXCHANGE_INPUT, responses={200: EXCHANGE, **errors(409)})
def update_exchange(name: str) -> Response:
    exchanges = _exchanges()
    exchanges.get(name)  # 404 before complaining about the body
    body = json_body()
    return jsonify(
        exchanges.update(
            name,
            config=field(body, "config", dict, required=False),
            credentials=field(body, "credentials", dict, required=False),
            enabled=field(body, "enabled", bool, required=False),
            fetch_interval_seconds=field(body, "fetch_interval_seconds", int, required=False),
        )
    )


@blueprint.delete("/exchanges/<name>")
@requires_scope("admin")
@operation("Delete an exchange", responses={204: None, **errors(409)})
def delete_exchange(name: str) -> tuple[str, int]:
    delete_bank = request.args.get("delete_bank") in ("1", "true", "yes")
    _exchanges().delete(name, delete_bank=delete_bank)
    return "", 204


@blueprint.post("/exchanges/<name>/fetch")
@requires_scope("admin")
@operation(
    "Fetch from the exchange now",
    responses={202: obj(enqueued=BOOL, status=FETCH_STATUS), **errors(409)},
)
def fetch_exchange(name: str) -> tuple[Response, int]:
    enqueued = fetching.trigger_by_name(_runtime(), name)
    return jsonify(enqueued=enqueued, status=fetching.status(_runtime(), name)), 202


@blueprint.get("/exchanges/<name>/status")
@requires_scope("admin")
@operation("The exchange's fetch state", responses={200: FETCH_STATUS})
def exchange_status(name: str) -> Response:
    return jsonify(fetching.status(_runtime(), name))
