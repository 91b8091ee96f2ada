"""Matches and Content: views over the records, and the opinion buttons (the Overview is
pages_overview).

An opinion goes through the same service as ``POST /matches/<id>/opinion`` (scope
``submit``): the exchange write-back is recorded and queued, or refused with its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from flask import redirect, request, url_for
from werkzeug.wrappers import Response

from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.exchanges.configs import (
    ExchangeConflictError,
    ExchangeInputError,
    ExchangeNotFoundError,
)
from hma_framework.exchanges.opinions import opinions_of_matches, opinions_taken, request_opinion
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import utcnow
from hma_framework.web.api_schema import FORM, STR, Media, html_page, operation
from hma_framework.web.auth import console_scope
from hma_framework.web.console.common import (
    blueprint,
    current_key,
    error_page,
    page,
    runtime,
    safe_next,
)

PAGE_SIZE = 50
#: The Matches page's time filter: label -> how far back.
#: The Matches page's live/retroactive filter: choice -> ``retroactive`` value.
KINDS: dict[str, bool | None] = {"": None, "live": False, "retroactive": True}
PERIODS = {
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "week": dt.timedelta(days=7),
    "30 days": dt.timedelta(days=30),
}


@blueprint.get("/matches")
@console_scope("read")
@operation(
    "Console: recent matches",
    query={"bank": STR, "signal_type": STR, "cursor": STR},
    responses=html_page(400),
)
def matches() -> Response:
    return _matches_page(request.args)


def _matches_page(args: Mapping[str, str], status: int = 200, message: str = "") -> Response:
    """Newest matches first under the filters in ``args``, each with its write-backs."""
    rt = runtime()
    try:
        chosen, query = _match_filters(args)
    except ValueError as exc:
        return error_page(400, str(exc))
    found = ContentQueries(rt.store).matches(**query, limit=PAGE_SIZE)
    opinions = opinions_of_matches(rt, [m["id"] for m in found])
    taken = opinions_taken(rt)
    filters: dict[str, Any] = {k: v for k, v in chosen.items() if v}
    for m in found:
        m["write_backs"] = opinions.get(m["id"], [])
        m["exchange"], m["opinions"] = taken.get(m["bank"], (None, ()))
    return page(
        "matches.html",
        status=status,
        message=message,
        matches=found,
        banks=BankQueries(rt.store).names(),
        signal_types=sorted(rt.registry.signal_types),
        periods=list(PERIODS),
        kinds=KINDS,
        chosen=chosen,
        here=url_for("console.matches", **{**filters, **_cursor(args)}),
        can_opine=current_key().allows("submit"),
        older=(
            url_for("console.matches", before=found[-1]["id"], **filters)
            if len(found) == PAGE_SIZE
            else None
        ),
    )


def _cursor(args: Mapping[str, str]) -> dict[str, str]:
    """The page's ``before`` cursor, so an opinion sent from an older page comes back there."""
    before = args.get("before", "")
    return {"before": before} if before.isdigit() and len(before) < 19 else {}


def _match_filters(args: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
    """The filters as chosen (to refill the form) and as query arguments; ValueError if bad."""
    chosen = {k: args.get(k, "").strip() for k in ("bank", "signal_type", "period", "kind")}
    chosen.update({k: args.get(k, "").strip() for k in ("from", "to")})
    cursor = _cursor(args)
    before = int(cursor["before"]) if cursor else None
    since = utcnow() - PERIODS[chosen["period"]] if chosen["period"] in PERIODS else None
    if chosen["kind"] not in KINDS:
        chosen["kind"] = ""
    day_from, day_to = _day(chosen["from"], "from"), _day(chosen["to"], "to")
    if day_from is not None:
        since = max(since, day_from) if since is not None else day_from
    query: dict[str, Any] = {
        "bank": chosen["bank"] or None,
        "signal_type": chosen["signal_type"] or None,
        "since": since,
        "until": day_to + dt.timedelta(days=1) if day_to is not None else None,
        "before_id": before,
        "retroactive": KINDS.get(chosen["kind"]),
    }
    return chosen, query


def _day(text: str, name: str) -> dt.datetime | None:
    """A ``YYYY-MM-DD`` filter day as the start of that day (UTC, as matches are stored)."""
    if not text:
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(text), dt.time()).replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"{name} must be a day as YYYY-MM-DD, not {text[:40]!r}") from None


@blueprint.post("/matches/<int:match_id>/opinion")
@console_scope("submit")
@operation("Console: match opinion", request=FORM, responses=html_page(400, 403, 404, 409))
def match_opinion(match_id: int) -> Response:
    """The opinion buttons: the same service as ``POST /matches/<id>/opinion``."""
    back = safe_next(request.form.get("back") or url_for("console.matches"))
    back_args = dict(parse_qsl(urlsplit(back).query))
    opinion = request.form.get("opinion", "")
    try:
        request_opinion(runtime(), match_id, opinion, f"console:{current_key().name}"[:128])
    except ExchangeInputError as exc:
        return _matches_page(back_args, 400, f"Opinion not recorded: {exc}")
    except ExchangeNotFoundError as exc:
        return _matches_page(back_args, 404, f"Opinion not recorded: {exc}")
    except ExchangeConflictError as exc:
        return _matches_page(back_args, 409, f"Opinion not recorded: {exc}")
    return redirect(f"{back}#match-{match_id}", code=303)


@blueprint.get("/content")
@console_scope("read")
@operation("Console: a content record", query={"content_id": STR}, responses=html_page(404))
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
@operation(
    "Console: the content's retained media",
    query={"content_id": STR},
    responses={**html_page(404), 200: Media("*/*")},
)
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
