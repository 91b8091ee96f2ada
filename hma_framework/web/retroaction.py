"""``/retroaction``: start a full rescan of stored content signals and follow its progress."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from hma_framework.retroaction import rescans
from hma_framework.retroaction.periods import parse_when
from hma_framework.runtime import Runtime
from hma_framework.store.banks import BankNotFoundError
from hma_framework.web.api_schema import (
    INT,
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
from hma_framework.web.validation import field, json_body, string_list

blueprint = Blueprint("retroaction", __name__)

RESCAN = obj(
    id=INT,
    state=STR,
    banks=array(STR),
    since=TIME,
    until=TIME,
    total=nullable(INT),
    scanned=INT,
    matched=INT,
    error=nullable(STR),
    created_at=TIME,
    finished_at=nullable(TIME),
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _when(body: dict[str, Any], name: str, default: dt.datetime | None) -> dt.datetime:
    raw = field(body, name, str, required=default is None)
    if raw is None:
        assert default is not None
        return default
    try:
        return parse_when(raw)
    except ValueError as exc:
        raise ApiError(400, f"{name}: {exc}") from exc


@blueprint.post("/retroaction")
@requires_scope("admin")
@operation(
    "Rescan stored content signals against the banks",
    request=obj({"until": STR, "banks": array(STR)}, since=STR),
    responses={202: RESCAN, **errors(409)},
)
def start() -> tuple[Response, int]:
    """Body ``{"since": "30d" or ISO time, "until"?: ..., "banks"?: [names]}``."""
    runtime = _runtime()
    body = json_body()
    since = _when(body, "since", None)
    until = _when(body, "until", dt.datetime.now(dt.UTC))
    if since >= until:
        raise ApiError(400, "since must be before until")
    banks = string_list(body, "banks", max_items=1000, max_length=128)
    try:
        scan_pk = rescans.start_rescan(runtime, since, until, banks)
    except BankNotFoundError as exc:
        raise ApiError(404, str(exc)) from exc
    except rescans.RescanConflict as exc:
        raise ApiError(409, f"{exc}; follow it at /retroaction/{exc.scan_pk}") from exc
    described = rescans.describe(runtime, scan_pk)
    return jsonify(described), 202


@blueprint.get("/retroaction/<int:scan_id>")
@requires_scope("read")
@operation("A rescan's progress", responses={200: RESCAN})
def progress(scan_id: int) -> Response:
    described = rescans.describe(_runtime(), scan_id)
    if described is None:
        raise ApiError(404, f"no rescan {scan_id}")
    return jsonify(described)
