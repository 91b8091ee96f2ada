"""``GET /stats``: per interval and bank, what came in, what matched, what was acted on."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.retroaction.periods import parse_when
from hma_framework.runtime import Runtime
from hma_framework.store.stats_queries import INTERVALS, match_stats
from hma_framework.web.api_schema import (
    OBJ,
    STR,
    array,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError

blueprint = Blueprint("stats", __name__)

#: Enough for a quarter by the hour or years by the day, small enough to answer quickly.
MAX_BUCKETS = 24 * 92
_SPAN = {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1)}


EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(9000, 1, 1, tzinfo=dt.UTC)


def _time(name: str, default: dt.datetime) -> dt.datetime:
    raw = request.args.get(name)
    if not raw:
        return default
    try:
        value = parse_when(raw)
    except (ValueError, OverflowError) as exc:
        raise ApiError(400, f"{name}: {exc}") from exc
    if not EARLIEST <= value <= LATEST:  # arithmetic on the edge of the calendar overflows
        raise ApiError(400, f"{name} must be between {EARLIEST.year} and {LATEST.year}")
    return value


@blueprint.get("/stats")
@requires_scope("read")
@operation(
    "Per interval and bank: what came in, what matched, what was acted on",
    query={"since": STR, "until": STR, "interval": STR},
    responses={200: obj(since=STR, until=STR, interval=STR, intervals=array(OBJ))},
)
def stats() -> Response:
    """``?since=7d&until=...&interval=hour|day`` (default: the last day, by the hour)."""
    runtime: Runtime = current_app.extensions["hma"]
    interval = request.args.get("interval", "hour")
    if interval not in INTERVALS:
        raise ApiError(400, f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    now = dt.datetime.now(dt.UTC)
    until = _time("until", now)
    since = _time("since", until - dt.timedelta(days=1))
    if since >= until:
        raise ApiError(400, "since must be before until")
    if (until - since) / _SPAN[interval] > MAX_BUCKETS:
        raise ApiError(400, f"at most {MAX_BUCKETS} intervals per request; use interval=day")
    buckets = match_stats(runtime.store, since, until, interval)
    return jsonify(
        since=since.isoformat(), until=until.isoformat(), interval=interval, intervals=buckets
    )
