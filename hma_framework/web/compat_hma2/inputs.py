"""Reading requests the way HMA 2.0's clients send them, which is not always by the book.

Clients put POST parameters in the query string, send ``Content-Type: application/json`` on
bodiless GETs, name a multipart field after the content type with any filename or none, and
send JSON booleans and numbers as strings. These helpers accept all of that; the views stay
about what a request means.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from flask import Request, request
from werkzeug.sansio.multipart import Data, Field, File, MultipartDecoder, NeedData

from hma_framework.json_input import JsonInputError, parse_json
from hma_framework.web.errors import ApiError


def json_object() -> dict[str, Any]:
    """The JSON body if it is an object; ``{}`` for no body or a non-JSON one.

    Parsed once per request with the project's hardened parser, so hostile bodies (deep
    nesting, huge integers) read as "no JSON" instead of failing the request.
    """
    if not request.content_length and not request.data:
        return {}
    cached = request.environ.get("hma.compat_json")
    if cached is None:
        try:
            cached = parse_json(request.get_data(cache=True))
        except JsonInputError:
            cached = {}
        request.environ["hma.compat_json"] = cached
    return cached if isinstance(cached, dict) else {}


def param(name: str) -> Any:
    """A parameter from the query string, a form field or the JSON body, in that order."""
    if name in request.args:
        return request.args[name]
    if request.mimetype == "application/x-www-form-urlencoded" and name in request.form:
        return request.form[name]
    return json_object().get(name)


def to_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ApiError(400, f"{name} must be true or false, not {value!r}")


def to_ratio(value: Any, name: str) -> float:
    """A share from 0 to 1; clients send it as a number or as its string."""
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{name} must be a number from 0.0 to 1.0") from None
    if isinstance(value, bool) or not 0.0 <= ratio <= 1.0:
        raise ApiError(400, f"{name} must be a number from 0.0 to 1.0")
    return ratio


@attrs.frozen
class Part:
    """One multipart part, its bytes exactly as sent (binary-safe with or without filename)."""

    name: str
    filename: str | None
    data: bytes


def multipart_parts(req: Request | None = None) -> list[Part]:
    """Every part of a multipart body, read from the raw bytes.

    Werkzeug files a part without a filename under ``form`` as decoded text, which mangles
    binary media; clients that send a bare IO do exactly that, so the body is decoded here.
    """
    req = req or request
    boundary = req.mimetype_params.get("boundary")
    if req.mimetype != "multipart/form-data" or not boundary:
        return []
    try:
        return _decoded_parts(boundary, req.get_data(cache=True))
    except ValueError as exc:  # werkzeug's decoder on a truncated or malformed body
        raise ApiError(400, f"the multipart/form-data body is malformed: {exc}") from None


def _decoded_parts(boundary: str, body: bytes) -> list[Part]:
    decoder = MultipartDecoder(boundary.encode("latin-1"), max_form_memory_size=None)
    decoder.receive_data(body)
    decoder.receive_data(None)
    parts: list[Part] = []
    current: tuple[str, str | None] | None = None
    chunks: list[bytes] = []
    while True:
        event = decoder.next_event()
        if isinstance(event, NeedData):
            break
        if isinstance(event, File):
            current, chunks = (event.name, event.filename), []
        elif isinstance(event, Field):
            current, chunks = (event.name, None), []
        elif isinstance(event, Data) and current is not None:
            chunks.append(event.data)
            if not event.more_data:
                parts.append(Part(current[0], current[1], b"".join(chunks)))
                current = None
        elif type(event).__name__ == "Epilogue":
            break
    return parts


def form_text(parts: list[Part], name: str) -> str | None:
    for part in parts:
        if part.name == name:
            return part.data.decode("utf-8", errors="replace")
    return None


def metadata_object(raw: Any) -> dict[str, Any] | None:
    """HMA 2.0's optional content metadata: an object, or its JSON text in a form or query."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ApiError(400, "metadata should be a json object") from None
    if not isinstance(raw, dict):
        raise ApiError(400, "metadata should be a json object")
    raw = {k: v for k, v in raw.items() if k != "collab"}  # HMA 2.0 drops it too
    unknown = sorted(set(raw) - {"content_id", "content_uri", "json"})
    if unknown:
        raise ApiError(400, f"Invalid metadata: unknown fields {unknown}")
    for key in ("content_id", "content_uri"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ApiError(400, f"Invalid metadata: {key} must be a string")
    if raw.get("json") is not None and not isinstance(raw["json"], dict):
        raise ApiError(400, "Invalid metadata: json must be an object")
    return raw
