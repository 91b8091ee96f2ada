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
    ANY,
    INT,
    OBJ,
    STR,
    Media,
    Schema,
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
#: Where a member keeps HMA 2.0's content fields (``content_id`` is the member's own column).
CONTENT_URI, METADATA_JSON, ORIGINAL_MEDIA_URI = (
    "content_uri",
    "metadata_json",
    "original_media_uri",
)
_BASE: dict[str, Schema] = {
    "id": INT,
    "disable_until_ts": INT,
    "original_media_uri": nullable(STR),
    "bank": obj(name=STR, matching_enabled_ratio={"type": "number"}),
}
_COLLAB = string_map({"type": "array", "items": STR})
#: ``GET``: signals, metadata and note only when asked for and present (see content_view).
HMA2_CONTENT = obj(
    {
        "signals": string_map(STR),
        "metadata": obj(
            content_id=nullable(STR), content_uri=nullable(STR), json=ANY, collab=nullable(_COLLAB)
        ),
        "note": STR,
    },
    **_BASE,
)
#: ``PUT``: the whole stored record (see content_record).
HMA2_CONTENT_RECORD = obj(
    **_BASE,
    collab_metadata=_COLLAB,
    user_metadata=nullable(OBJ),
    note=nullable(STR),
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


def _collab(member: dict[str, Any], bank: dict[str, Any]) -> dict[str, list[str]]:
    """HMA 2.0's ``collab_metadata``: the exchange that filled the bank -> the fetch keys."""
    if not bank["exchange"]:
        return {}
    return {bank["exchange"]: [member["external_id"] or str(member["id"])]}


def _user_metadata(member: dict[str, Any]) -> dict[str, Any] | None:
    """What a client gave as ``metadata`` (only the keys it gave), or None."""
    extra = member["exchange_metadata"] or {}
    given = {
        "content_id": member["content_id"],
        "content_uri": extra.get(CONTENT_URI),
        "json": extra.get(METADATA_JSON),
    }
    return {k: v for k, v in given.items() if v is not None} or None


def _base(member: dict[str, Any], bank: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": member["id"],
        "disable_until_ts": _disable_until_ts(member),
        "original_media_uri": (member["exchange_metadata"] or {}).get(ORIGINAL_MEDIA_URI),
        "bank": bank_view(bank),
    }


def content_view(
    member: dict[str, Any],
    bank: dict[str, Any],
    signals: dict[str, str] | None = None,
    include_metadata: bool = True,
) -> dict[str, Any]:
    """``GET /c/bank/<name>/content/<id>``: ``signals``, ``metadata`` and ``note`` appear only
    when asked for and present, as HMA 2.0 drops them otherwise."""
    view = _base(member, bank)
    if signals is not None:
        view["signals"] = signals
    collab = _collab(member, bank)
    user = _user_metadata(member)
    if include_metadata and (user or collab):
        view["metadata"] = {
            "content_id": None,
            "content_uri": None,
            "json": None,
            **(user or {}),
            "collab": collab or None,
        }
    if member["notes"]:
        view["note"] = member["notes"]
    return view


def content_record(member: dict[str, Any], bank: dict[str, Any]) -> dict[str, Any]:
    """``PUT /c/bank/<name>/content/<id>``: HMA 2.0 answers its whole stored record."""
    base = _base(member, bank)
    return {
        "id": base["id"],
        "disable_until_ts": base["disable_until_ts"],
        "collab_metadata": _collab(member, bank),
        "original_media_uri": base["original_media_uri"],
        "bank": base["bank"],
        "user_metadata": _user_metadata(member),
        "note": member["notes"] or None,
    }


def _member_or_404(bank_name: str, content_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    bank = bank_or_404(bank_name)
    found = BankQueries(runtime().store).members(bank_name, member_pk=content_id)
    if not found:
        raise ApiError(404, f"content '{content_id}' not found")
    return found[0], bank


def _added(
    bank_name: str, signals: dict[str, Any], metadata: dict[str, Any] | None, note: str | None
) -> dict[str, Any]:
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
    metadata = metadata or {}
    extra = {CONTENT_URI: metadata.get("content_uri"), METADATA_JSON: metadata.get("json")}
    member = NewMember(
        signals=tuple(sorted(checked.items())),
        content_id=metadata.get("content_id"),
        notes=note or "",
        exchange_metadata={k: v for k, v in extra.items() if v is not None},
    )
    member_pk = Banks(rt.store).add_member(bank_name, member)
    # Read-your-writes in this process; other processes see it within the refresh interval.
    rt.indexes.refresh(force=True)
    return {"id": member_pk, "signals": checked}


def _note(raw: Any) -> str | None:
    """HMA 2.0's note: a string of at most 255 characters; empty means none."""
    if not raw:
        return None
    if not isinstance(raw, str):
        raise ApiError(400, "note should be a string")
    if len(raw) > MAX_NOTE:
        raise ApiError(400, f"note must be at most {MAX_NOTE} characters")
    return raw


def _loose_metadata(raw: str | None, fields: dict[str, str | None]) -> dict[str, Any] | None:
    """Metadata from form fields or the query string, as clients send it there.

    The Ruby gem sends the whole object as ``metadata``; Coop sends ``content_id`` and
    ``content_uri`` as fields of their own and only the free-form ``json`` part as
    ``metadata``. An object holding only metadata keys is the former. (HMA 2.0 drops
    query-string metadata; the clients mean it to be stored, so it is.)
    """
    found: dict[str, Any] = {}
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise ApiError(400, "metadata form field must be valid JSON") from None
        if not isinstance(parsed, dict):
            raise ApiError(400, "metadata should be a json object")
        whole = parsed and set(parsed) <= {"content_id", "content_uri", "json", "collab"}
        found = dict(metadata_object(parsed) or {}) if whole else {"json": parsed}
    for key, value in fields.items():
        if value:
            found[key] = value
    return found or None


def _request_metadata(parts: list[Part]) -> dict[str, Any] | None:
    """A JSON body's ``metadata`` is checked strictly (HMA 2.0's 400s); form fields beside
    an upload and query parameters are read the clients' ways."""
    body = json_object()
    if "metadata" in body:
        return metadata_object(body["metadata"])
    keys = ("content_id", "content_uri")
    if parts:
        return _loose_metadata(form_text(parts, "metadata"), {k: form_text(parts, k) for k in keys})
    return _loose_metadata(request.args.get("metadata"), {k: request.args.get(k) for k in keys})


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
    metadata = _request_metadata(parts)
    note = _note(form_text(parts, "note") or param("note"))
    url = request.args.get("url") or param("url")
    if url:
        signals = hash_url_content(str(url), param("content_type"), param("types"))
    elif parts:
        signals = hash_upload(parts)
    else:
        raise ApiError(400, "Neither `url` nor multipart file upload was received")
    return jsonify(_added(bank_name, signals, metadata, note))


@blueprint.post("/c/bank/<bank_name>/signal")
@compat_view("admin")
@operation(
    "HMA 2.0: add {signal_type: hash} to the bank",
    request=string_map(STR),
    responses={200: ADDED},
)
def add_signals(bank_name: str) -> Response:
    """``{signal_type: hash, "note": ...}`` straight into the bank; matchable at once."""
    bank_or_404(bank_name)
    body = dict(json_object())
    note = _note(body.pop("note", None))
    return jsonify(_added(bank_name, body, None, note))


@blueprint.get("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("read")
@operation(
    "HMA 2.0: a bank content (a member)",
    query={"signal_type": STR, "include_signals": STR},
    responses={200: HMA2_CONTENT},
)
def get_content(bank_name: str, content_id: int) -> Response:
    """``include_signals=true`` adds every signal (``signal_type=`` only that type's);
    ``include_metadata=false`` leaves the metadata out."""
    member, bank = _member_or_404(bank_name, content_id)
    signals = {s["signal_type"]: s["signal_value"] for s in member["signals"]}
    only = request.args.get("signal_type")
    shown: dict[str, str] | None = None
    if only is not None:
        if only not in runtime().registry.signal_types:
            raise ApiError(400, f"No such signal type '{only}'")
        shown = {k: v for k, v in signals.items() if k == only}
    elif request.args.get("include_signals", "false").lower() == "true":
        shown = signals
    include_metadata = request.args.get("include_metadata", "true").lower() == "true"
    return jsonify(content_view(member, bank, shown, include_metadata))


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


def _set_disable_until(content_id: int, value: int) -> None:
    banks = Banks(runtime().store)
    if value == DISABLED:
        banks.update_member(content_id, enabled=False)
        banks.set_member_disabled_until(content_id, None)
    else:
        until = None if value == ENABLED else dt.datetime.fromtimestamp(value, dt.UTC)
        banks.set_member_disabled_until(content_id, until)
        banks.update_member(content_id, enabled=True)


@blueprint.put("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("admin")
@operation(
    "HMA 2.0: switch a bank content off, on, or off until a time",
    request=obj({"disable_until_ts": INT}),
    request_required=False,
    responses={200: HMA2_CONTENT_RECORD},
)
def update_content(bank_name: str, content_id: int) -> Response:
    """``disable_until_ts`` and ``note`` (empty clears it); everything is checked first."""
    member, bank = _member_or_404(bank_name, content_id)
    body = json_object()
    raw = body.get("disable_until_ts", param("disable_until_ts"))
    value = None if raw is None else _timestamp(raw)
    has_note = "note" in body
    note = _note(body.get("note")) if has_note else None
    if value is not None:
        _set_disable_until(content_id, value)
    if has_note:
        Banks(runtime().store).update_member(content_id, notes=note or "")
    if value is not None or has_note:
        member, bank = _member_or_404(bank_name, content_id)
    return jsonify(content_record(member, bank))


@blueprint.delete("/c/bank/<bank_name>/content/<int:content_id>")
@compat_view("admin")
@operation("HMA 2.0: remove a bank content", responses={200: obj(deleted=INT)})
def delete_content(bank_name: str, content_id: int) -> Response:
    bank_or_404(bank_name)
    found = BankQueries(runtime().store).members(bank_name, member_pk=content_id)
    if found:
        Banks(runtime().store).remove_member(content_id)
    return jsonify(deleted=len(found))
