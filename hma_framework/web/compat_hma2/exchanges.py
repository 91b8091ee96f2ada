"""HMA 2.0's exchange routes (``/c/exchanges...``, ``/c/exchange/<name>...``).

They map onto this project's exchanges through the exchanges service; the views translate
only. HMA 2.0 names an exchange after its bank (``UPPER_SNAKE``), so an exchange is found
here by its bank's name first and by its own name second, and is listed by its bank's name.
Credentials stay write-only: answers say whether they are set, never what they are. An
exchange uses its own credentials, else its API's shared ones (HMA 2.0's fallback order;
HMA 2.0's last fallback, an environment variable, does not exist here).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from flask import Blueprint, Response, jsonify
from threatexchange.utils import dataclass_json

from hma_framework.exchanges import api_credentials, fetching
from hma_framework.exchanges.configs import (
    API_SOURCE,
    BASE_URL,
    OWN_SOURCE,
    ExchangeInputError,
    Exchanges,
    exchanges_of,
)
from hma_framework.store.bank_queries import BankQueries
from hma_framework.web.api_schema import (
    BOOL,
    INT,
    OBJ,
    STR,
    array,
    enum,
    errors,
    nullable,
    obj,
    operation,
)
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.hashing import runtime
from hma_framework.web.compat_hma2.inputs import json_object, param, to_bool
from hma_framework.web.compat_hma2.schema import field_descriptors
from hma_framework.web.errors import ApiError
from hma_framework.web.exchanges import install_exchange_errors

blueprint = Blueprint("hma2_exchanges", __name__)
install_exchange_errors(blueprint)
_BANK = r"^[A-Z0-9_]+$"
#: Fields of HMA 2.0's collaboration config that this project fills itself.
_OWN = ("name", "api", "enabled")
API_ANSWER = obj(supports_authentification=BOOL, has_set_authentification=BOOL)
CREDENTIAL_STATUS = obj(
    supports_auth=BOOL, has_credentials=BOOL, source=nullable(enum(OWN_SOURCE, API_SOURCE))
)
COLLAB = obj(name=STR, api=STR, enabled=BOOL, credential_status=CREDENTIAL_STATUS)


def _exchanges() -> Exchanges:
    return exchanges_of(runtime())


def _known_api(api: str) -> None:
    if api not in runtime().registry.exchanges:
        raise ApiError(400, f"no such Exchange API '{api}'")


def _find(exchanges: Exchanges, name: str) -> dict[str, Any] | None:
    views = exchanges.all()
    by_bank = [v for v in views if v["bank"] == name]
    by_name = [v for v in views if v["name"] == name]
    found = by_bank or by_name
    return found[0] if found else None


def _exchange_or_404(exchanges: Exchanges, name: str) -> dict[str, Any]:
    found = _find(exchanges, name)
    if found is None:
        raise ApiError(404, f"Exchange '{name}' not found")
    return found


def _credential_status(exchanges: Exchanges, view: dict[str, Any]) -> dict[str, Any]:
    """HMA 2.0's ``credential_status``: ``source`` is ``exchange`` (its own), ``api`` (the
    API's shared set) or null (none: its fetches fail until some are set)."""
    supports = view["installed"] and api_credentials.supports_credentials(exchanges, view["api"])
    source = None
    if supports and view["credentials_set"]:
        source = OWN_SOURCE
    elif supports and exchanges.api_credentials(view["api"]):
        source = API_SOURCE
    return {"supports_auth": supports, "has_credentials": source is not None, "source": source}


def _config_fields(exchanges: Exchanges, view: dict[str, Any]) -> dict[str, Any]:
    """Every field of the API's collaboration config, defaults included (sets as lists), as
    HMA 2.0 dumps it; only what is stored if the API is not installed here."""
    stored = {k: v for k, v in view["config"].items() if k != BASE_URL}
    record = exchanges.installed_record(view["api"])
    if record is None:
        return stored
    try:
        collab = exchanges.collab(record, view["name"], stored)
        dumped = json.loads(dataclass_json.dataclass_dumps(collab))  # enums, sets: plain JSON
    except Exception:  # a stored config the API no longer accepts: show it as stored
        return stored
    return {k: v for k, v in dumped.items() if k not in _OWN}


def _collab(exchanges: Exchanges, view: dict[str, Any]) -> dict[str, Any]:
    """HMA 2.0's dump of a collaboration config: name (the bank), api, enabled, its fields."""
    config = _config_fields(exchanges, view)
    return {
        **config,
        "name": view["bank"] or view["name"],
        "api": view["api"],
        "enabled": view["enabled"],
        "credential_status": _credential_status(exchanges, view),
    }


# --- APIs ------------------------------------------------------------------------------------


@blueprint.get("/c/exchanges/apis")
@compat_view("admin")
@operation("HMA 2.0: the installed exchange APIs", responses={200: array(STR)})
def exchange_apis() -> Response:
    return jsonify(sorted(runtime().registry.exchanges))


def _api_answer(exchanges: Exchanges, api: str) -> Response:
    return jsonify(
        supports_authentification=api_credentials.supports_credentials(exchanges, api),
        has_set_authentification=api_credentials.has_credentials(exchanges, api),
    )


@blueprint.get("/c/exchanges/api/<api>")
@compat_view("admin")
@operation("HMA 2.0: whether an exchange API has shared credentials", responses={200: API_ANSWER})
def get_api(api: str) -> Response:
    exchanges = _exchanges()
    _known_api(api)
    return _api_answer(exchanges, api)


@blueprint.post("/c/exchanges/api/<api>")
@compat_view("admin")
@operation(
    "HMA 2.0: set an exchange API's shared credentials",
    request=obj({"credential_json": OBJ}),
    responses={200: API_ANSWER, **errors(409)},
)
def set_api_credentials(api: str) -> Response:
    """The API's shared credentials: an object sets them, ``{}`` clears them, a missing or
    null ``credential_json`` leaves them. Exchanges with their own keep using theirs."""
    exchanges = _exchanges()
    _known_api(api)
    body = json_object()
    if not body:
        raise ApiError(400, "this endpoint expects a json object payload")
    credentials = body.get("credential_json")
    if credentials is not None:
        if not isinstance(credentials, dict):
            raise ApiError(400, "credential_json must be an object")
        api_credentials.set_api_credentials(exchanges, api, credentials)
    return _api_answer(exchanges, api)


@blueprint.get("/c/exchanges/api/<api>/schema")
@compat_view("admin")
@operation(
    "HMA 2.0: an exchange API's configuration and credential fields",
    responses={
        200: obj(
            config_schema=obj(fields=array(OBJ)),
            credentials_schema=nullable(obj(fields=array(OBJ))),
        )
    },
)
def api_schema(api: str) -> Response:
    exchanges = _exchanges()
    record = exchanges.installed_record(api)
    if record is None:
        raise ApiError(404, f"Exchange API '{api}' not found")
    credential_cls = record.credential_class()
    return jsonify(
        config_schema={"fields": field_descriptors(record.api.get_config_cls(), _OWN)},
        credentials_schema=(
            None if credential_cls is None else {"fields": field_descriptors(credential_cls)}
        ),
    )


# --- exchanges -------------------------------------------------------------------------------


def _create_arguments() -> tuple[str, str, dict[str, Any], Any]:
    body = json_object()
    bank = body.get("bank", param("bank"))
    if bank is None or bank == "":
        raise ApiError(400, "Field `bank` is required")
    if not isinstance(bank, str) or not re.match(_BANK, bank):
        raise ApiError(400, f"Field `bank` must match /{_BANK}/")
    api_json = body.get("api_json", {})
    if not isinstance(api_json, dict):
        raise ApiError(400, "Field `api_json` must be object")
    api = body.get("api", param("api"))
    if api is None:
        raise ApiError(400, "Field `api_type` is required")
    if not isinstance(api, str) or api not in runtime().registry.exchanges:
        raise ApiError(400, f"No such exchange type '{api}'")
    credentials = body.get("credential_json")
    if credentials is not None and not isinstance(credentials, dict):
        raise ApiError(400, "Field `credential_json` must be object")
    return bank, api, api_json, credentials


@blueprint.post("/c/exchanges")
@compat_view("admin")
@operation(
    "HMA 2.0: create an exchange and its bank",
    request=obj({"bank": STR, "api": STR, "api_json": OBJ, "credential_json": OBJ}),
    request_required=False,
    responses={201: obj(message=STR), **errors(409)},
)
def create_exchange() -> tuple[Response, int]:
    bank, api, api_json, credentials = _create_arguments()
    exchanges = _exchanges()
    if _find(exchanges, bank) is not None:
        raise ApiError(409, f"an exchange named '{bank}' already exists")
    config = {k: v for k, v in api_json.items() if k not in _OWN}
    enabled = to_bool(api_json.get("enabled", True), "api_json.enabled")
    try:
        exchanges.create(
            name=bank,
            api=api,
            config=config,
            credentials=credentials or {},
            bank=bank,
            enabled=enabled,
            credentials_later=True,
        )
    except ExchangeInputError as error:
        if str(error).startswith("credentials"):
            raise ApiError(400, str(error)) from None
        raise ApiError(
            400, f"Failed to parse `api_json` - verify all fields are supplied. {error}"
        ) from None
    return jsonify(message="Created successfully"), 201


@blueprint.get("/c/exchanges")
@compat_view("admin")
@operation("HMA 2.0: the exchanges' names", responses={200: array(STR)})
def list_exchanges() -> Response:
    return jsonify([v["bank"] or v["name"] for v in _exchanges().all()])


@blueprint.get("/c/exchange/<name>")
@compat_view("admin")
@operation("HMA 2.0: an exchange", responses={200: COLLAB})
def get_exchange(name: str) -> Response:
    exchanges = _exchanges()
    return jsonify(_collab(exchanges, _exchange_or_404(exchanges, name)))


@blueprint.put("/c/exchange/<name>")
@compat_view("admin")
@operation(
    "HMA 2.0: switch an exchange on or off",
    request=obj({"enabled": BOOL}),
    request_required=False,
    responses={200: COLLAB},
)
def update_exchange(name: str) -> Response:
    """HMA 2.0 changes ``enabled`` only."""
    exchanges = _exchanges()
    view = _exchange_or_404(exchanges, name)
    enabled = param("enabled")
    if enabled is not None:
        view = exchanges.update(view["name"], enabled=to_bool(enabled, "enabled"))
    return jsonify(_collab(exchanges, view))


@blueprint.delete("/c/exchange/<name>")
@compat_view("admin")
@operation(
    "HMA 2.0: delete an exchange and its bank (200 if missing)",
    responses={200: obj(message=STR)},
)
def delete_exchange(name: str) -> Response:
    """The exchange and its bank go together, as in HMA 2.0; a missing one is a 200."""
    exchanges = _exchanges()
    view = _find(exchanges, name)
    if view is not None:
        exchanges.delete(view["name"], delete_bank=True)
    return jsonify(message="Exchange deleted")


@blueprint.get("/c/exchange/<name>/credentials")
@compat_view("admin")
@operation(
    "HMA 2.0: whether an exchange has credentials, and whose", responses={200: CREDENTIAL_STATUS}
)
def exchange_credentials(name: str) -> Response:
    """Whether the exchange has credentials and where they come from; never the values."""
    exchanges = _exchanges()
    return jsonify(_credential_status(exchanges, _exchange_or_404(exchanges, name)))


@blueprint.post("/c/exchange/<name>/credentials")
@compat_view("admin")
@operation(
    "HMA 2.0: set or clear one exchange's credentials",
    request=obj(credential_json=nullable(OBJ)),
    responses={200: CREDENTIAL_STATUS},
)
def set_exchange_credentials(name: str) -> Response:
    """This exchange's own credentials; ``{}`` or null clears them (it then uses its API's
    shared set, if any). Only ``credential_json`` is accepted."""
    exchanges = _exchanges()
    view = _exchange_or_404(exchanges, name)
    body = json_object()
    if "credential_json" not in body:
        raise ApiError(400, "Field `credential_json` is required")
    if set(body) != {"credential_json"}:
        raise ApiError(400, "Only `credential_json` is accepted")
    credentials = body["credential_json"] or {}
    if not isinstance(credentials, dict):
        raise ApiError(400, "Field `credential_json` must be object")
    view = exchanges.replace_credentials(view["name"], credentials)
    return jsonify(_credential_status(exchanges, view))


def _timestamp(iso: str | None) -> int | None:
    """Unix seconds; a time stored without a zone (SQLite) is UTC, not the host's zone."""
    if iso is None:
        return None
    when = dt.datetime.fromisoformat(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp())


@blueprint.get("/c/exchange/<name>/status")
@compat_view("admin")
@operation(
    "HMA 2.0: an exchange's fetch status",
    responses={
        200: obj(
            last_fetch_time=INT,
            checkpoint_time=INT,
            success=BOOL,
            last_fetch_succeeded=nullable(BOOL),
            last_fetch_complete_ts=nullable(INT),
            running_fetch_start_ts=nullable(INT),
            checkpoint_ts=nullable(INT),
            up_to_date=BOOL,
            fetched_items=INT,
        )
    },
)
def exchange_status(name: str) -> Response:
    """Both spellings: HMA 2.0's documented one and the fetch status fields Coop reads."""
    exchanges = _exchanges()
    view = _exchange_or_404(exchanges, name)
    status = fetching.status(runtime(), view["name"])
    bank = BankQueries(runtime().store).bank(view["bank"]) if view["bank"] else None
    started = _timestamp(status["last_started"])
    succeeded: bool | None = None  # HMA 2.0: unknown until a fetch has ended
    if status["state"] == fetching.FAILED:
        succeeded = False
    elif status["last_succeeded"] is not None:
        succeeded = status["last_error"] is None
    return jsonify(
        last_fetch_time=started or 0,
        checkpoint_time=_timestamp(status["checkpoint_time"]) or 0,
        success=succeeded is not False,
        last_fetch_succeeded=succeeded,
        last_fetch_complete_ts=_timestamp(status["last_succeeded"]),
        running_fetch_start_ts=started if status["state"] == fetching.FETCHING else None,
        checkpoint_ts=_timestamp(status["checkpoint_time"]),
        up_to_date=status["up_to_date"],
        fetched_items=0 if bank is None else bank["member_count"],
    )
