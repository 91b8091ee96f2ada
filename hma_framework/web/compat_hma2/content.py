"""HMA 2.0's bank contents: ``/c/bank/<name>/content[/<id>]`` and ``/c/bank/<name>/signal``.

A bank content is a bank member; its integer id is the member id, the same number
``/banks/<name>/members/<id>`` and ``/lookup`` answers use. ``disable_until_ts`` maps onto the
member's switch (0: off, 1: on) and its disabled-until time (any later timestamp), which the
index checks at query time so the member comes back by itself.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from hma_framework.registry import InvalidSignalError
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks, NewMember
from hma_framework.web.api_schema import (
    INT,
    OBJ,
    STR,
    Media,
    errors,
    nullable,
    obj,
    operation,
    string_map,
)
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.banks import bank_or_404, bank_view
from hma_framework.web.compat_hma2.hashing import hash_upload, hash_url_content, runtime
from hma_framework.web.compat_hma2.inputs import (
    Part,
    form_text,
    json_object,
    metadata_object,
    multipart_parts,
    param,
)
from hma_framework.web.errors import ApiError

blueprint = Blueprint("hma2_content", __name__)

ENABLED, DISABLED = 1, 0  # HMA 2.0's magic disable_until_ts values
MAX_NOTE = 255
FIVE_YEARS = 5 * 365 * 24 * 3600
HMA2_CONTENT = obj(
    {"signals": string_map(STR)},
    id=INT,
    disable_until_ts=INT,
    collab_metadata=string_map({"type": "array", "items": STR}),
    original_media_uri=nullable(STR),
    bank=obj(name=STR, matching_enabled_ratio={"type": "number"}),
)
ADDED = obj(id=INT, signals=string_map(STR))
UPLOAD = Media("multipart/form-data", OBJ)


def _disable_until_ts(member: dict[str, Any]) -> int:
    if not member["enabled"]:
        return DISABLED
    until = member["disabled_until"]
    if until is None:
        return ENABLED
    return int(dt.datetime.fromisoformat(until).timestamp())


def content_view(member: dict[str, Any], bank: dict[str, Any]) -> dict[str, Any]:
    extra = member["exchange_metadata"] or {}
    collab: dict[str, list[str]] = {}
    if bank["exchange"]:
        collab[bank["exchange"]] = [member["external_id"] or str(member["id"])]
    return {
        "id": member["id"],
        "disable_until_ts": _disable_until_ts(member),
        "collab_metadata": collab,
        "original_media_uri": extra.get("original_media_uri"),
        "bank": bank_view(bank),
    }


def _member_or_404(bank_name: str, content_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    bank = bank_or_404(bank_name)
    found = BankQueries(runtime().store).members(bank_name, member_pk=content_id)
    if not found:
        raise ApiError(404, f"content '{content_id}' not found")
    return found[0], bank


def _added(bank_name: str, signals: dict[str, str], extra: dict[str, Any]) -> dict[str, Any]:
    """Store one member holding ``signals``; the answer is HMA 2.0's ``{id, signals}``."""
    if not signals:
        raise ApiError(400, "No signals given")
    rt = runtime()
    checked: dict[str, str] = {}
    for name, value in signals.items():
        if name not in rt.registry.signal_types:
            raise ApiError(400, f"No such signal type {name}")
        try:
            checked[name] = rt.registry.normalize_signal(name, str(value))
        except InvalidSignalError as exc:
            raise ApiError(400, f"Invalid {name} signal: {exc}") from exc
    metadata = extra.get("metadata") or {}
    member = NewMember(
        signals=tuple(sorted(checked.items())),
        content_id=metadata.get("content_id"),
        notes=extra.get("note") or "",
        exchange_metadata={
            k: v
            for k, v in {
                "original_media_uri": metadata.get("content_uri"),
                "metadata_json": metadata.get("json"),
            }.items()
            if v is not None
        },
    )
    member_pk = Banks(rt.store).add_member(bank_name, member)
    # Read-your-writes in this process; other processes see it within the refresh interval.
    rt.indexes.refresh(force=True)
    return {"id": member_pk, "signals": checked}


def _note(raw: Any) -> str | None:
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str):
        raise ApiError(400, "note must be a string")
    if len(raw) > MAX_NOTE:
        raise ApiError(400, f"note must be at most {MAX_NOTE} characters")
    return raw


def _form_metadata(parts: list[Part]) -> dict[str, Any] | None:
    """Metadata beside an upload. The Ruby gem sends the whole object as ``metadata``; Coop
    sends ``content_id`` and ``content_uri`` as fields and only the free-form ``json`` part
    as ``metadata``. An object with only the metadata keys is the former."""
    found: dict[str, Any] = {}
    raw = form_text(parts, "metadata")
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise ApiError(400, "metadata should be a json object") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "metadata should be a json object")
        whole = parsed and set(parsed) <= {"content_id", "content_uri", "json"}
        found = dict(metadata_object(parsed) or {}) if whole else {"json": parsed}
    for key in ("content_id", "content_uri"):
        value = form_text(parts, key)
        if value:
            found[key] = value
    return found or None


@blueprint.post("/c/bank/<bank_name>/content")
@compat_view("admin")
@operation(
    "HMA 2.0: hash a ?url= or an upload (form field named after its content type) into the bank",
    query={"url": STR, "content_type": STR, "types": STR, "note": STR},
    request=UPLOAD,
    request_required=False,
    responses={200: ADDED, **errors(502)},
)
def add_content(bank_name: str) -> Response:
    """Hash a ``?url=`` or an upload (field named after its content type) into the bank.

    ``metadata`` (``content_id``, ``content_uri``, ``json``) and ``note`` may come in the
    JSON body, as form fields beside the upload, or in the query string.
    """
    bank_or_404(bank_name)
    parts = multipart_parts()
    extra = {
        "metadata": _form_metadata(parts) if parts else metadata_object(param("metadata")),
        "note": _note(form_text(parts, "note") or param("note")),
    }
    url = request.args.get("url") or param("url")
    if url:
        signals = hash_url_content(str(url), param("content_type"), param("types"))
    elif parts:
        signals = hash_upload(parts)
    else:
        raise ApiError(400, "Neither `url` nor multipart file upload was received")
    return jsonify(_added(bank_name, signals, extra))


@blueprint.post("/c/bank/<bank_name>/signal")
@compat_view("admin")
@operation(
    "HMA 2.0: add {signal_type: hash} to the bank",
    request=string_map(STR),
    responses={200: ADDED},
)
def add_signals(bank_name: str) -> Response:
    """``{signal_type: hash}`` straight into the bank; matchable within the refresh interval."""
    bank_or_404(bank_name)
    body = json_object()
    return jsonify(_added(bank_name, {k: v for k, v in body.items()}, {}))


@blueprint.get("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("read")
@operation(
    "HMA 2.0: a bank content (a member)",
    query={"signal_type": STR, "include_signals": STR},
    responses={200: HMA2_CONTENT},
)
def get_content(bank_name: str, content_id: int) -> Response:
    """``include_signals=true`` adds every signal; ``signal_type=`` only that type's."""
    member, bank = _member_or_404(bank_name, content_id)
    view = content_view(member, bank)
    signals = {s["signal_type"]: s["signal_value"] for s in member["signals"]}
    only = request.args.get("signal_type")
    if only is not None:
        if only not in runtime().registry.signal_types:
            raise ApiError(400, f"No such signal type '{only}'")
        view["signals"] = {k: v for k, v in signals.items() if k == only}
    elif request.args.get("include_signals", "false").lower() == "true":
        view["signals"] = signals
    return jsonify(view)


def _timestamp(raw: Any) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ApiError(400, "disable_until_ts must be a non-negative integer") from None
    if isinstance(raw, bool) or value < 0:
        raise ApiError(400, "disable_until_ts must be a non-negative integer")
    if value > time.time() + FIVE_YEARS:
        raise ApiError(400, "disable_until_ts must be less than 5 years in the future")
    return value


@blueprint.put("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("admin")
@operation(
    "HMA 2.0: switch a bank content off, on, or off until a time",
    request=obj({"disable_until_ts": INT}),
    request_required=False,
    responses={200: HMA2_CONTENT},
)
def update_content(bank_name: str, content_id: int) -> Response:
    member, bank = _member_or_404(bank_name, content_id)
    body = json_object()
    raw = body.get("disable_until_ts", param("disable_until_ts"))
    if raw is not None:
        value = _timestamp(raw)
        banks = Banks(runtime().store)
        if value == DISABLED:
            banks.update_member(content_id, enabled=False)
            banks.set_member_disabled_until(content_id, None)
        else:
            banks.set_member_disabled_until(
                content_id, None if value == ENABLED else dt.datetime.fromtimestamp(value, dt.UTC)
            )
            banks.update_member(content_id, enabled=True)
        member, bank = _member_or_404(bank_name, content_id)
    return jsonify(content_view(member, bank))


@blueprint.delete("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("admin")
@operation("HMA 2.0: remove a bank content", responses={200: obj(deleted=INT)})
def delete_content(bank_name: str, content_id: int) -> Response:
    bank_or_404(bank_name)
    found = BankQueries(runtime().store).members(bank_name, member_pk=content_id)
    if found:
        Banks(runtime().store).remove_member(content_id)
    return jsonify(deleted=len(found))
