"""Reading JSON request bodies: every wrong field is a 400 naming the field, never a 500."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import request

from hma_framework.json_input import JsonInputError, parse_json
from hma_framework.web.errors import ApiError

T = TypeVar("T")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object; any parse failure is a 400 saying why."""
    raw = request.get_data(cache=True)  # over the body limit: 413 from the error handler
    if not raw.strip():
        raise ApiError(400, "the request body must be a JSON object")
    try:
        body = parse_json(raw)
    except JsonInputError as exc:
        raise ApiError(400, f"the request body must be a JSON object; it is {exc}") from exc
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


_ASCII_INTEGER = re.compile(r"[0-9]{1,19}")
#: The largest id a BIGINT column holds; ids in paths and cursors beyond it cannot exist.
MAX_ID = 2**63 - 1


def int_arg(name: str, default: int | None, *, low: int = 1, high: int = MAX_ID) -> int | None:
    """An integer query parameter of ASCII digits (``int()`` also takes '²'-like digits)."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _ASCII_INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}, not {raw[:40]!r}")
    return int(raw)


def time_arg(name: str) -> dt.datetime | None:
    """An ISO 8601 query parameter as an aware UTC time; no time zone means UTC.

    Converted here, so a value at the edge of the calendar ('9999-12-31T23:59-23:59') is a
    400 rather than an overflow inside the database driver.
    """
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:
        raise ApiError(400, f"{name} must be an ISO 8601 time, not {raw[:40]!r}") from exc


CREDENTIALS_REFUSED = (
    "content_url must not carry credentials (user:password@); they would be stored and "
    "shown to every reader: use a presigned or token URL instead"
)


def url_has_credentials(url: str) -> bool:
    """Whether ``url`` has a userinfo part, which would be kept in records and logs."""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:  # malformed (e.g. an unclosed IPv6 bracket): the fetch refuses it
        return False


def refuse_nul_characters() -> None:
    """Before every request: no NUL in the path or query (PostgreSQL cannot compare them)."""
    if "\x00" in request.path or "%00" in request.query_string.decode("latin-1"):
        raise ApiError(400, "the URL contains a NUL character (%00)")
    if any("\x00" in value for value in request.args.values()):
        raise ApiError(400, "the URL contains a NUL character (%00)")
