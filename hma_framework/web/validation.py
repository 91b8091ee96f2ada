"""Reading JSON request bodies: every wrong field is a 400 naming the field, never a 500."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from flask import request

from hma_framework.web.errors import ApiError

T = TypeVar("T")


def json_body() -> dict[str, Any]:
    body = request.get_json(silent=True, force=True)
    if body is None:
        raise ApiError(400, "the request body must be a JSON object")
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object, not a list or a value")
    return body


_TYPE_NAMES = {str: "a string", bool: "true or false", int: "an integer", list: "a list"}


def field(
    body: dict[str, Any],
    name: str,
    kind: type[T],
    *,
    required: bool = True,
    default: T | None = None,
) -> T:
    if name not in body or body[name] is None:
        if required:
            raise ApiError(400, f"missing required field '{name}'")
        return default  # type: ignore[return-value]
    value = body[name]
    # bool is an int in Python; a JSON true is not an integer here.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(400, f"field '{name}' must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value


def text_field(
    body: dict[str, Any], name: str, *, max_length: int = 255, required: bool = True
) -> str | None:
    value = field(body, name, str, required=required)
    if value is None:
        return None
    if not value.strip():
        raise ApiError(400, f"field '{name}' must not be empty")
    if len(value) > max_length:
        raise ApiError(400, f"field '{name}' is longer than {max_length} characters")
    return value


def string_list(
    body: dict[str, Any], name: str, *, max_items: int = 100, max_length: int = 1024
) -> tuple[str, ...]:
    values = field(body, name, list, required=False, default=[])
    if len(values) > max_items:
        raise ApiError(400, f"field '{name}' has more than {max_items} entries")
    for value in values:
        if not isinstance(value, str):
            raise ApiError(400, f"field '{name}' must be a list of strings")
        if len(value) > max_length:
            raise ApiError(400, f"an entry of '{name}' is longer than {max_length} characters")
    return tuple(values)


def decode_base64_media(encoded: str, name: str = "content_bytes") -> bytes:
    """Media sent as base64 (line breaks allowed); ``ValueError`` names what is wrong."""
    try:
        media = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} is not valid base64: {exc}") from exc
    if not media:
        raise ValueError(f"{name} is empty")
    return media


def base64_media_field(body: dict[str, Any], name: str = "content_bytes") -> bytes:
    try:
        return decode_base64_media(field(body, name, str), name)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from exc
