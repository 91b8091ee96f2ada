"""Lookup: paste a hash or a URL, or upload an image; see its signals and every match.

It hashes and matches exactly as ``/lookup`` does (``compute_signals`` then the indexes) and
writes nothing. The uploaded image is never shown back.
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response

from hma_framework.errors import PermanentMediaError
from hma_framework.media_hashing import bytes_file, compute_signals
from hma_framework.registry import InvalidSignalError
from hma_framework.web.api_schema import OBJ, Media, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, page, runtime
from hma_framework.web.errors import ApiError
from hma_framework.web.lookup import match_json, media_signals


def _form(status: int = 200, **context: Any) -> Response:
    defaults: dict[str, Any] = {"signals": None, "matches": [], "message": ""}
    return page(
        "lookup.html",
        status=status,
        signal_types=sorted(runtime().registry.signal_types),
        **{**defaults, **context},
    )


@blueprint.get("/lookup")
@console_scope("read")
@operation("Console: the lookup form", responses=html_page())
def lookup() -> Response:
    return _form()


@blueprint.post("/lookup")
@console_scope("read")
@operation(
    "Console: look up a URL, an upload or a hash",
    request=Media("multipart/form-data", OBJ),
    responses=html_page(400, 413, 502, 503),
)
def lookup_submit() -> Response:
    rt = runtime()
    upload = request.files.get("file")
    readings: list[tuple[str, str, str, Any, bool]] = []  # type, variant, value, quality, ok
    url = request.form.get("content_url", "").strip()
    if url:
        try:
            computed = media_signals(rt, {"content_url": url}, "photo")
        except ApiError as exc:
            return _form(exc.status, message=f"Cannot look up that URL: {exc.message}")
        readings = [(s.signal_type, s.variant, s.value, s.quality, s.quality_ok) for s in computed]
    elif upload is not None and upload.filename:
        media = upload.read()
        if not media:
            return _form(400, message="The file is empty.")
        try:
            with bytes_file(rt, media) as path:
                computed = compute_signals(rt, "photo", path)
        except PermanentMediaError as exc:
            return _form(400, message=f"Cannot hash the image: {exc}")
        readings = [(s.signal_type, s.variant, s.value, s.quality, s.quality_ok) for s in computed]
    else:
        signal_type = request.form.get("signal_type", "")
        try:
            value = rt.registry.normalize_signal(signal_type, request.form.get("signal", ""))
        except InvalidSignalError as exc:
            return _form(400, message=str(exc))
        readings = [(signal_type, "", value, None, True)]
    matches = []
    for signal_type, variant, value, _quality, ok in readings:
        if ok:
            for found in rt.indexes.match(signal_type, value):
                matches.append({**match_json(found), "variant": variant})
    signals = [
        {"signal_type": t, "variant": v, "value": val, "quality": q, "quality_ok": ok}
        for t, v, val, q, ok in readings
    ]
    return _form(signals=signals, matches=matches)
