"""Banks and their members: ``/banks``, ``/banks/<name>``, ``/banks/<name>/members``."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError

from hma_framework.retroaction.automatic import request_retroaction
from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks
from hma_framework.web.api_schema import (
    BOOL,
    ERROR,
    INT,
    NUM,
    STR,
    TIME,
    array,
    errors,
    nullable,
    obj,
    operation,
    string_map,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError
from hma_framework.web.fetch_slots import RETRY_AFTER_SECONDS
from hma_framework.web.member_input import MAX_BATCH, MemberError, member_from_json
from hma_framework.web.validation import field, int_arg, json_body, string_list

blueprint = Blueprint("banks", __name__)

BANK = obj(
    name=STR,
    description=STR,
    tags=array(STR),
    enabled=BOOL,
    matching_enabled_ratio=NUM,
    thresholds=string_map(INT),
    exchange=nullable(STR),
    member_count=INT,
    created_at=TIME,
    updated_at=TIME,
)
BANK_INPUT = obj(
    {
        "name": STR,
        "description": STR,
        "tags": array(STR),
        "enabled": BOOL,
        "thresholds": string_map(INT),
    }
)
SIGNAL = obj(signal_type=STR, signal_value=STR)
MEMBER = obj(
    id=INT,
    bank=STR,
    content_id=nullable(STR),
    external_id=nullable(STR),
    notes=nullable(STR),
    tags=array(STR),
    enabled=BOOL,
    disabled_until=nullable(TIME),
    signals=array(SIGNAL),
    exchange_metadata=nullable({"type": "object"}),
    created_at=TIME,
    updated_at=TIME,
)
MEMBER_INPUT = obj(
    {
        "content_type": STR,
        "signal_type": STR,
        "signal_value": STR,
        "signals": array(SIGNAL),
        "content_url": STR,
        "content_bytes": STR,
        "content_id": STR,
        "external_id": STR,
        "notes": STR,
        "tags": array(STR),
    }
)
MEMBER_BATCH_RESULT = obj(
    {"message": STR},
    added=array(obj(index=INT, id=INT)),
    errors=array(obj(index=INT, message=STR)),
)
_BANK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def valid_bank_name(name: str) -> bool:
    """The API's and the console's rule for bank names."""
    return bool(_BANK_NAME.match(name))


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _bank_or_404(name: str) -> dict[str, Any]:
    bank = BankQueries(_runtime().store).bank(name)
    if bank is None:
        raise ApiError(404, f"no bank named {name!r}")
    return bank


def checked_thresholds(body: dict[str, Any], runtime: Runtime) -> dict[str, int] | None:
    """``body['thresholds']`` checked against each signal type's limit (the console's too)."""
    given = field(body, "thresholds", dict, required=False)
    if given is None:
        return None
    checked = {}
    for signal_type, value in given.items():
        record = runtime.registry.signal_types.get(signal_type)
        if record is None:
            raise ApiError(400, f"thresholds: unknown signal type {signal_type!r}")
        limit = record.threshold_limit
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise ApiError(
                400,
                f"thresholds: {signal_type} must be an integer from 0 to {limit}, not {value!r}",
            )
        checked[signal_type] = value
    return checked


@blueprint.post("/banks")
@requires_scope("admin")
@operation("Create a bank", request=BANK_INPUT, responses={201: BANK, **errors(409)})
def create_bank() -> tuple[Response, int]:
    runtime = _runtime()
    body = json_body()
    name = field(body, "name", str)
    if not valid_bank_name(name):
        raise ApiError(400, "name must be 1-128 letters, digits, '_', '.' or '-'")
    try:
        Banks(runtime.store).create_bank(
            name,
            description=field(body, "description", str, required=False, default=""),
            tags=string_list(body, "tags"),
            thresholds=checked_thresholds(body, runtime),
            enabled=field(body, "enabled", bool, required=False, default=True),
        )
    except IntegrityError as exc:
        raise ApiError(409, f"a bank named {name!r} already exists") from exc
    return jsonify(_bank_or_404(name)), 201


@blueprint.get("/banks")
@requires_scope("read")
@operation("List the banks", responses={200: obj(banks=array(BANK))})
def list_banks() -> Response:
    return jsonify(banks=BankQueries(_runtime().store).banks())


@blueprint.get("/banks/<name>")
@requires_scope("read")
@operation("A bank", responses={200: BANK})
def get_bank(name: str) -> Response:
    return jsonify(_bank_or_404(name))


@blueprint.patch("/banks/<name>")
@requires_scope("admin")
@operation("Change a bank's settings", request=BANK_INPUT, responses={200: BANK})
def update_bank(name: str) -> Response:
    runtime = _runtime()
    body = json_body()
    _bank_or_404(name)
    Banks(runtime.store).update_bank(
        name,
        description=field(body, "description", str, required=False),
        tags=string_list(body, "tags") if "tags" in body else None,
        enabled=field(body, "enabled", bool, required=False),
        thresholds=checked_thresholds(body, runtime),
    )
    return jsonify(_bank_or_404(name))


@blueprint.delete("/banks/<name>")
@requires_scope("admin")
@operation(
    "Delete a bank and its members",
    query={"force": STR},
    responses={204: None, **errors(409)},
)
def delete_bank(name: str) -> tuple[str, int]:
    bank = _bank_or_404(name)
    if bank["exchange"] and request.args.get("force") not in ("1", "true", "yes"):
        raise ApiError(
            409,
            f"bank {name!r} is filled by exchange {bank['exchange']!r}; delete the exchange "
            "first, or add ?force=true to delete the bank anyway",
        )
    Banks(_runtime().store).delete_bank(name)
    return "", 204


# --- members ---------------------------------------------------------------------------------


@blueprint.post("/banks/<name>/members")
@requires_scope("admin")
@operation(
    "Add a member (by hash, URL or media) or a batch of them",
    request={"anyOf": [MEMBER_INPUT, obj(members=array(MEMBER_INPUT))]},
    responses={201: MEMBER, 200: MEMBER_BATCH_RESULT, 400: {"anyOf": [ERROR, MEMBER_BATCH_RESULT]}},
)
def add_members(name: str) -> tuple[Response, int]:
    """One member (JSON object or multipart upload), or ``{"members": [...]}`` in a batch.

    In a batch, invalid rows are reported by index and the valid ones are added.
    """
    runtime = _runtime()
    _bank_or_404(name)
    banks = Banks(runtime.store)
    upload: bytes | None = None
    if request.mimetype == "multipart/form-data":
        rows: list[Any] = [dict(request.form)]
        if any("\x00" in value for value in request.form.values()):
            raise ApiError(400, "a form field contains a NUL character")
        uploaded = request.files.get("file")
        if uploaded is None:
            raise ApiError(400, "a multipart request needs the media in a 'file' field")
        upload = uploaded.read()
        batch = False
    else:
        body = json_body()
        batch = "members" in body
        rows = field(body, "members", list) if batch else [body]
    if len(rows) > MAX_BATCH:
        raise ApiError(413, f"at most {MAX_BATCH} members per request; split the batch")
    members, errors = [], []
    for index, row in enumerate(rows):
        try:
            members.append((index, member_from_json(runtime, row, upload)))
        except MemberError as exc:
            if not batch:
                busy = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status == 503 else None
                raise ApiError(exc.status, str(exc), headers=busy) from exc
            errors.append({"index": index, "message": str(exc)})
    ids = banks.add_members(name, [m for _, m in members]) if members else []
    if ids:
        request_retroaction(runtime)
    if not batch:
        queries = BankQueries(runtime.store)
        return jsonify(queries.members(name, member_pk=ids[0])[0]), 201
    added = [{"index": i, "id": pk} for (i, _), pk in zip(members, ids, strict=True)]
    if errors and not added:
        return jsonify(
            message="no member was added: every row is invalid", added=[], errors=errors
        ), 400
    return jsonify(added=added, errors=errors), 200


def _bool_arg(name: str) -> bool | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false, not {raw!r}")


def _int_arg(name: str, default: int | None, high: int) -> int | None:
    return int_arg(name, default, low=1, high=high)


@blueprint.get("/banks/<name>/members")
@requires_scope("read")
@operation(
    "List a bank's members, a page at a time",
    query={"limit": INT, "cursor": INT, "signal_type": STR, "tag": STR, "enabled": BOOL},
    responses={200: obj(members=array(MEMBER), next_cursor=nullable(STR))},
)
def list_members(name: str) -> Response:
    _bank_or_404(name)
    limit = _int_arg("limit", 100, 1000) or 100
    members = BankQueries(_runtime().store).members(
        name,
        after_id=_int_arg("cursor", None, 2**62),
        limit=limit,
        signal_type=request.args.get("signal_type") or None,
        tag=request.args.get("tag") or None,
        enabled=_bool_arg("enabled"),
    )
    cursor = str(members[-1]["id"]) if len(members) == limit else None
    return jsonify(members=members, next_cursor=cursor)


def _member_or_404(name: str, member_id: int) -> dict[str, Any]:
    _bank_or_404(name)
    found = BankQueries(_runtime().store).members(name, member_pk=member_id)
    if not found:
        raise ApiError(404, f"bank {name!r} has no member {member_id}")
    return found[0]


@blueprint.get("/banks/<name>/members/<int:member_id>")
@requires_scope("read")
@operation("A member", responses={200: MEMBER})
def get_member(name: str, member_id: int) -> Response:
    return jsonify(_member_or_404(name, member_id))


@blueprint.patch("/banks/<name>/members/<int:member_id>")
@requires_scope("admin")
@operation(
    "Change a member's notes, tags or state",
    request=obj({"notes": STR, "tags": array(STR), "enabled": BOOL}),
    responses={200: MEMBER},
)
def update_member(name: str, member_id: int) -> Response:
    body = json_body()
    _member_or_404(name, member_id)
    Banks(_runtime().store).update_member(
        member_id,
        notes=field(body, "notes", str, required=False),
        tags=string_list(body, "tags") if "tags" in body else None,
        enabled=field(body, "enabled", bool, required=False),
    )
    return jsonify(_member_or_404(name, member_id))


@blueprint.delete("/banks/<name>/members/<int:member_id>")
@requires_scope("admin")
@operation("Remove a member", responses={204: None})
def delete_member(name: str, member_id: int) -> tuple[str, int]:
    _member_or_404(name, member_id)
    Banks(_runtime().store).remove_member(member_id)
    return "", 204
