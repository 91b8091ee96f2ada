"""Index queries that write nothing: ``GET/POST /lookup`` and ``POST /compare``.

Every lookup endpoint answers with the same match shape, so a client parses one format.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.errors import PermanentMediaError, TransientFetchError
from hma_framework.index.manager import BankMatch
from hma_framework.media_hashing import bytes_file, compute_signals, fetched
from hma_framework.registry import InvalidSignalError
from hma_framework.runtime import Runtime
from hma_framework.store.content import ComputedSignal
from hma_framework.store.content_queries import variant_field
from hma_framework.web.api_schema import (
    BOOL,
    INT,
    NUM,
    STR,
    array,
    enum,
    errors,
    nullable,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError
from hma_framework.web.fetch_slots import fetch_slot
from hma_framework.web.validation import (
    CREDENTIALS_REFUSED,
    base64_media_field,
    field,
    json_body,
    string_list,
    url_has_credentials,
)

blueprint = Blueprint("lookup", __name__)

MATCH = obj(
    {"exchange": obj(name=STR), "variant": STR},
    bank=STR,
    member_id=INT,
    content_id=nullable(STR),
    tags=array(STR),
    bank_tags=array(STR),
    notes=nullable(STR),
    signal_type=STR,
    signal=STR,
    distance=nullable(NUM),
)
LOOKUP_INPUT = obj(
    {"content_url": STR, "content_bytes": STR, "content": STR, "banks": array(STR)},
    content_type=enum("photo", "video", "text", "url"),
)
COMPUTED_SIGNAL = obj(
    {"variant": STR},
    signal_type=STR,
    signal_value=STR,
    quality=nullable(NUM),
    quality_ok=BOOL,
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def match_json(match: BankMatch) -> dict[str, Any]:
    found: dict[str, Any] = {
        "bank": match.bank_name,
        "member_id": match.member_pk,
        "content_id": match.member_content_id,
        "tags": list(match.member_tags),
        "bank_tags": list(match.bank_tags),
        "notes": match.member_notes,
        "signal_type": match.signal_type,
        "signal": match.stored_signal,
        "distance": match.distance,
    }
    if match.exchange:
        found["exchange"] = {"name": match.exchange, **match.exchange_metadata}
    return found


def _normalized(runtime: Runtime, signal_type: str, value: str) -> str:
    try:
        return runtime.registry.normalize_signal(signal_type, value)
    except InvalidSignalError as exc:
        raise ApiError(400, str(exc)) from exc


def _banks_filter(raw: Any) -> list[str] | None:
    if raw is None or raw == "" or raw == []:
        return None
    if isinstance(raw, str):
        return [name for name in raw.split(",") if name]
    return list(raw)


@blueprint.get("/lookup")
@requires_scope("read")
@operation(
    "Match one hash against the banks",
    query={"signal_type": STR, "signal": STR, "banks": STR},
    responses={200: obj(signal_type=STR, signal=STR, matches=array(MATCH))},
)
def lookup_hash() -> Response:
    runtime = _runtime()
    signal_type = request.args.get("signal_type", "")
    signal = request.args.get("signal", "")
    if not signal_type or not signal:
        raise ApiError(400, "lookup needs signal_type and signal query parameters")
    value = _normalized(runtime, signal_type, signal)
    matches = runtime.indexes.match(
        signal_type, value, banks=_banks_filter(request.args.get("banks"))
    )
    return jsonify(signal_type=signal_type, signal=value, matches=[match_json(m) for m in matches])


def media_signals(
    runtime: Runtime, body: dict[str, Any], content_type: str, media: bytes | None = None
) -> list[Any]:
    """Hash ``media`` (an upload), or ``content_url`` or ``content_bytes`` of ``body``.

    Errors are ``ApiError``s. Shared by ``POST /lookup`` and the console's Lookup page, so
    both fetch under the same slots and address rules and refuse the same things with the
    same messages.
    """
    try:
        if media is not None:
            if not media:
                raise ApiError(400, "the media is empty")
            with bytes_file(runtime, media) as path:
                return compute_signals(runtime, content_type, path)
        if "content_url" in body:
            url = field(body, "content_url", str)
            if url_has_credentials(url):
                raise ApiError(400, CREDENTIALS_REFUSED)
            with fetch_slot(runtime), fetched(runtime, url) as path:
                return compute_signals(runtime, content_type, path)
        media = base64_media_field(body)
        with bytes_file(runtime, media) as path:
            return compute_signals(runtime, content_type, path)
    except PermanentMediaError as exc:
        raise ApiError(400, f"cannot hash the media: {exc}") from exc
    except TransientFetchError as exc:
        raise ApiError(502, f"cannot fetch the media now: {exc}") from exc


#: Content that is its own signal source: a URL or a text is sent as ``content``.
TEXT_CONTENT_TYPES = ("text", "url")


def _text_signals(runtime: Runtime, content_type: str, content: str) -> list[ComputedSignal]:
    """Signals of a text or URL: hashed where the type hashes strings, else the value itself."""
    records = runtime.registry.signal_types_for(content_type)
    if not records:
        raise ApiError(400, f"no installed signal type matches {content_type} content")
    signals = []
    for record in records:
        hash_from_str = getattr(record.signal_type, "hash_from_str", None)
        try:
            value = hash_from_str(content) if callable(hash_from_str) else content
            value = record.signal_type.validate_signal_str(value)
        except Exception as exc:
            raise ApiError(400, f"content is not a valid {record.name}: {exc}") from None
        signals.append(ComputedSignal(record.name, value, None, True))
    return signals


@blueprint.post("/lookup")
@requires_scope("read")
@operation(
    "Hash media (by URL or bytes) or a text, then match it against the banks",
    request=LOOKUP_INPUT,
    responses={200: obj(signals=array(COMPUTED_SIGNAL), matches=array(MATCH)), **errors(502)},
)
def lookup_media() -> Response:
    """Hash a URL or media bytes, then match: one call answers "what is it" and "is it known".

    A photo with an EXIF orientation gives two signals per signal type, ``variant``
    "displayed" and "stored"; each match names the variant that matched. Media read one way
    has no ``variant`` key, as before.
    """
    runtime = _runtime()
    body = json_body()
    content_type = field(body, "content_type", str)
    if content_type not in ("photo", "video", *TEXT_CONTENT_TYPES):
        raise ApiError(400, "content_type must be one of photo, video, text, url")
    banks = _banks_filter(string_list(body, "banks") if "banks" in body else None)
    if content_type in TEXT_CONTENT_TYPES:
        signals = _text_signals(runtime, content_type, field(body, "content", str))
    elif "content_url" not in body and "content_bytes" not in body:
        raise ApiError(400, "lookup needs content_url or content_bytes")
    else:
        signals = media_signals(runtime, body, content_type)
    matches = []
    for signal in signals:
        if signal.quality_ok:
            matches += [
                {**match_json(m), **variant_field(signal.variant)}
                for m in runtime.indexes.match(signal.signal_type, signal.value, banks=banks)
            ]
    return jsonify(
        signals=[
            {
                "signal_type": s.signal_type,
                **variant_field(s.variant),
                "signal_value": s.value,
                "quality": s.quality,
                "quality_ok": s.quality_ok,
            }
            for s in signals
        ],
        matches=matches,
    )


def compare_signals(
    runtime: Runtime, signal_type: str, first: str, second: str, threshold: int | None = None
) -> dict[str, Any]:
    """Two hashes of one signal type: their distance and whether they match at ``threshold``.

    The service behind ``POST /compare`` and the console's side-by-side comparison; bad input
    raises ``ApiError``.
    """
    first = _normalized(runtime, signal_type, first)
    second = _normalized(runtime, signal_type, second)
    record = runtime.registry.signal_types[signal_type]
    if threshold is None:
        threshold = record.default_threshold
    if not 0 <= threshold <= record.threshold_limit:
        raise ApiError(400, f"threshold must be from 0 to {record.threshold_limit}")
    compare_hash = getattr(record.signal_type, "compare_hash", None)
    if compare_hash is None:
        raise ApiError(400, f"signal type {signal_type} cannot compare hashes")
    comparison = compare_hash(first, second)
    distance = getattr(comparison.distance, "distance", 0 if comparison.match else None)
    if isinstance(distance, int):
        return {"signal_type": signal_type, "match": distance <= threshold, "distance": distance}
    return {"signal_type": signal_type, "match": bool(comparison.match), "distance": None}


@blueprint.post("/compare")
@requires_scope("read")
@operation(
    "Compare two hashes of one signal type",
    request=obj({"threshold": INT}, signal_type=STR, signal_a=STR, signal_b=STR),
    responses={200: obj(signal_type=STR, match=BOOL, distance=nullable(INT))},
)
def compare() -> Response:
    runtime = _runtime()
    body = json_body()
    signal_type = field(body, "signal_type", str)
    first, second = field(body, "signal_a", str), field(body, "signal_b", str)
    threshold = field(body, "threshold", int, required=False)
    return jsonify(compare_signals(runtime, signal_type, first, second, threshold))
