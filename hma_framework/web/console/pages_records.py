"""Matches and Content: read-only views over the records (the Overview is pages_overview)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import utcnow
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import blueprint, error_page, page, runtime

PAGE_SIZE = 50
#: The Matches page's time filter: label -> how far back.
PERIODS = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "30 days": dt.timedelta(days=30),
}


@blueprint.get("/matches")
@console_scope("read")
def matches() -> Response:
    rt = runtime()
    bank = request.args.get("bank") or None
    signal_type = request.args.get("signal_type") or None
    period = request.args.get("period", "")
    raw_before = request.args.get("before", "")
    before = int(raw_before) if raw_before.isdigit() and len(raw_before) < 19 else None
    since = utcnow() - PERIODS[period] if period in PERIODS else None
    found = ContentQueries(rt.store).matches(
        bank=bank, signal_type=signal_type, since=since, before_id=before, limit=PAGE_SIZE
    )
    return page(
        "matches.html",
        matches=found,
        banks=[b["name"] for b in BankQueries(rt.store).banks()],
        signal_types=sorted(rt.registry.signal_types),
        periods=list(PERIODS),
        chosen={"bank": bank or "", "signal_type": signal_type or "", "period": period},
        next_before=found[-1]["id"] if len(found) == PAGE_SIZE else None,
    )


@blueprint.get("/content")
@console_scope("read")
def content() -> Response:
    content_id = request.args.get("content_id", "").strip()
    if not content_id:
        return page("content.html", content_id="", record=None)
    queries = ContentQueries(runtime().store)
    record = queries.describe(content_id)
    if record is None:
        return page("content.html", status=404, content_id=content_id, record=None)
    pk = queries.content_pk(content_id)
    media_key = queries.media_key(content_id)
    shown = runtime().settings.console.media_previews and media_key is not None
    if shown and media_key is not None and not runtime().media.exists(media_key):
        shown = False
    deliveries = DeliveryQueries(runtime().store).find(content_id=content_id, limit=100)
    return page(
        "content.html",
        content_id=content_id,
        record=record,
        matches=queries.matches(content_pk=pk, limit=100),
        deliveries=deliveries,
        preview_url=url_for("console.content_media", content_id=content_id) if shown else None,
    )


@blueprint.get("/content/media")
@console_scope("read")
def content_media() -> Response:
    """Retained media for the Content page's veiled preview; 404 when previews are off."""
    rt = runtime()
    content_id = request.args.get("content_id", "")
    media_key = ContentQueries(rt.store).media_key(content_id) if content_id else None
    if not rt.settings.console.media_previews or media_key is None:
        return error_page(404, "No media to show.")
    if not rt.media.exists(media_key):
        return error_page(404, "The media is no longer kept.")
    with rt.media.local_file(media_key) as path:  # a temporary copy when media is in S3
        mimetype = _image_type(path)
        body = path.read_bytes()
    return Response(body, mimetype=mimetype)


def _image_type(path: Path) -> str:
    """The image's MIME type from its bytes; unknown kinds are sent as bytes to download."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return Image.MIME.get(image.format or "", "application/octet-stream")
    except (OSError, ValueError):
        return "application/octet-stream"
