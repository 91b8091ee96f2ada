"""HMA 2.0's hasher: ``GET /h/hash?url=`` and ``POST /h/hash`` (multipart, the field name is
the content type). Both answer ``{signal_type: hash}``; the lookup and bank-add routes share
the helpers here, as HMA 2.0's do.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.errors import PermanentMediaError, TransientFetchError
from hma_framework.media_hashing import bytes_file, fetched, guess_content_type, hash_for_lookup
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import (
    OBJ,
    STR,
    Media,
    errors,
    operation,
    string_map,
)
from hma_framework.web.compat_hma2.auth import compat_view
from hma_framework.web.compat_hma2.inputs import Part, multipart_parts, param
from hma_framework.web.errors import ApiError

blueprint = Blueprint("hma2_hashing", __name__)


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["hma"]
    return found


def content_types(rt: Runtime) -> list[str]:
    """Content types some installed signal type hashes (``photo``, ``video``)."""
    return sorted(
        {ct for record in rt.registry.signal_types.values() for ct in record.applies_to()}
    )


def _checked_content_type(rt: Runtime, name: str) -> str:
    if name not in content_types(rt):
        raise ApiError(400, f"no such content_type: '{name}'")
    return name


def _signal_types(rt: Runtime, content_type: str, types_arg: str | None) -> list[str] | None:
    """The ``types`` selection, checked against what hashes ``content_type``."""
    if types_arg is None:
        return None
    available = {r.name for r in rt.registry.signal_types_for(content_type)}
    chosen = [name.strip() for name in types_arg.split(",") if name.strip()]
    for name in chosen:
        if name not in available:
            raise ApiError(400, f"signal type '{name}' doesn't exist or is disabled")
    if not chosen:
        raise ApiError(400, "empty signal type selection")
    return chosen


def _hashed(
    rt: Runtime, content_type: str | None, types_arg: str | None, path: Path
) -> dict[str, str]:
    kind = _checked_content_type(rt, content_type or guess_content_type(path))
    return hash_for_lookup(rt, kind, path, _signal_types(rt, kind, types_arg))


def hash_url_content(url: str, content_type: str | None, types_arg: str | None) -> dict[str, str]:
    rt = runtime()
    if content_type:
        _checked_content_type(rt, content_type)
    try:
        with fetched(rt, url) as path:
            return _hashed(rt, content_type, types_arg, path)
    except PermanentMediaError as exc:
        raise ApiError(400, f"cannot hash the media: {exc}") from exc
    except TransientFetchError as exc:
        raise ApiError(502, f"cannot fetch the media now: {exc}") from exc


def upload_part(parts: list[Part], rt: Runtime) -> Part:
    """The one media part: its field name is its content type, its filename anything."""
    known = content_types(rt)
    media = [p for p in parts if p.name in known]
    if not media:
        names = [p.name for p in parts if p.filename is not None]
        if names:
            raise ApiError(400, f"no such content_type: '{names[0]}'")
        raise ApiError(400, "Missing multipart/form-data file upload")
    if len(media) > 1:
        raise ApiError(400, "Only one file allowed per request")
    return media[0]


def hash_upload(parts: list[Part]) -> dict[str, str]:
    rt = runtime()
    part = upload_part(parts, rt)
    if not part.data:
        raise ApiError(400, "the uploaded file is empty")
    try:
        with bytes_file(rt, part.data) as path:
            return _hashed(rt, part.name, request.args.get("types"), path)
    except PermanentMediaError as exc:
        raise ApiError(400, f"cannot hash the media: {exc}") from exc


@blueprint.get("/h/hash")
@compat_view("read")
@operation(
    "HMA 2.0: hash the media at a URL",
    query={"url": STR, "content_type": STR, "types": STR},
    responses={200: string_map(STR), **errors(502)},
)
def hash_get() -> Response:
    url = param("url")
    if not url:
        raise ApiError(400, "url is required")
    return jsonify(hash_url_content(str(url), param("content_type"), param("types")))


@blueprint.post("/h/hash")
@compat_view("read")
@operation(
    "HMA 2.0: hash an upload (form field named after its content type)",
    query={"types": STR},
    request=Media("multipart/form-data", OBJ),
    responses={200: string_map(STR)},
)
def hash_post() -> Response:
    return jsonify(hash_upload(multipart_parts()))
