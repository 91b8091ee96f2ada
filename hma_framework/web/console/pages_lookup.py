"""Lookup: paste a hash or a URL, or upload an image; see its signals and every match.
Compare: two images, URLs or hashes side by side, with their distance per signal type.

It hashes and matches exactly as ``/lookup`` does (``media_signals`` then the indexes) and
compares exactly as ``POST /compare`` does (``compare_signals``); it writes nothing. An
uploaded or fetched image is never shown back, only its hashes.
"""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response

from hma_framework.registry import InvalidSignalError
from hma_framework.web.api_schema import OBJ, Media, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, page, runtime
from hma_framework.web.errors import ApiError
from hma_framework.web.lookup import compare_signals, match_json, media_signals

SIDES = ("a", "b")


def _form(status: int = 200, **context: Any) -> Response:
    defaults: dict[str, Any] = {
        "signals": None,
        "matches": [],
        "message": "",
        "comparison": None,
        "compare_message": "",
    }
    return page(
        "lookup.html",
        status=status,
        signal_types=sorted(runtime().registry.signal_types),
        **{**defaults, **context},
    )


def _given_media(suffix: str = "") -> tuple[dict[str, Any], bytes | None] | None:
    """The URL or upload sent in the form fields ending in ``suffix``; None when neither."""
    url = request.form.get(f"content_url{suffix}", "").strip()
    if url:
        return {"content_url": url}, None
    upload = request.files.get(f"file{suffix}")
    if upload is not None and upload.filename:
        return {}, upload.read()
    return None


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
    readings: list[tuple[str, str, str, Any, bool]] = []  # type, variant, value, quality, ok
    given = _given_media()
    if given is not None:
        try:
            computed = media_signals(rt, given[0], "photo", media=given[1])
        except ApiError as exc:
            what = "that URL" if given[1] is None else "that image"
            return _form(exc.status, message=f"Cannot look up {what}: {exc.message}")
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


def _side_signals(side: str) -> dict[str, str]:
    """One side of a comparison as ``{signal_type: hash}``: an image's signals, or one hash."""
    given = _given_media(f"_{side}")
    if given is not None:
        computed = media_signals(runtime(), given[0], "photo", media=given[1])
        # An EXIF-rotated photo has two readings: compare the displayed one (listed first).
        signals: dict[str, str] = {}
        for s in computed:
            signals.setdefault(s.signal_type, s.value)
        return signals
    value = request.form.get(f"signal_{side}", "").strip()
    if not value:
        raise ApiError(400, f"give side {side.upper()} an image, an image URL or a hash")
    return {request.form.get("signal_type", ""): value}


@blueprint.post("/lookup/compare")
@console_scope("read")
@operation(
    "Console: compare submit",
    request=Media("multipart/form-data", OBJ),
    responses=html_page(400, 403, 404, 409, 413, 502, 503),
)
def compare_submit() -> Response:
    try:
        sides = [_side_signals(side) for side in SIDES]
        shared = [t for t in sides[0] if t in sides[1]]
        if not shared:
            raise ApiError(400, "the two sides share no signal type to compare")
        rows = [
            {
                **compare_signals(runtime(), t, sides[0][t], sides[1][t]),
                "a": sides[0][t],
                "b": sides[1][t],
            }
            for t in shared
        ]
    except ApiError as exc:
        return _form(exc.status, compare_message=f"Cannot compare: {exc.message}")
    return _form(comparison=rows)
