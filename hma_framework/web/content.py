"""Asking about content: its record, its matches, its actions; recent matches overall."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from hma_framework.runtime import Runtime
from hma_framework.store.content_queries import ContentQueries
from hma_framework.web.api_schema import (
    BOOL,
    INT,
    NUM,
    STR,
    TIME,
    array,
    nullable,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError
from hma_framework.web.validation import int_arg, time_arg

blueprint = Blueprint("content", __name__)
MAX_PAGE = 1000

MATCH = obj(
    {"variant": STR},
    id=INT,
    content_id=STR,
    bank=nullable(STR),
    member_id=nullable(INT),
    member_removed=BOOL,
    signal_type=STR,
    content_signal=STR,
    member_signal=STR,
    distance=nullable(NUM),
    matched_at=TIME,
    superseded=BOOL,
    superseded_at=nullable(TIME),
    retroactive=BOOL,
)
MATCH_PAGE = obj(matches=array(MATCH), next_cursor=nullable(STR))
CONTENT = obj(
    content_id=STR,
    content_type=STR,
    submission_method=STR,
    content_url=nullable(STR),
    additional_fields=array(STR),
    status=STR,
    error=nullable(STR),
    stages=obj(
        submitted=nullable(TIME),
        hashed=nullable(TIME),
        matched=nullable(TIME),
        actioned=nullable(TIME),
    ),
    upload_expires_at=nullable(TIME),
    updated_at=nullable(TIME),
    submissions=array(obj(submitted_at=nullable(TIME), method=STR)),
    signals=array(
        obj(
            {"variant": STR},
            signal_type=STR,
            signal_value=STR,
            quality=nullable(NUM),
            status=STR,
        )
    ),
    match_count=INT,
)
ACTION = obj(
    id=INT,
    action=STR,
    rules_fired=array(STR),
    status=STR,
    attempts=INT,
    last_error=nullable(STR),
    created_at=nullable(TIME),
)


def _queries() -> ContentQueries:
    runtime: Runtime = current_app.extensions["hma"]
    return ContentQueries(runtime.store)


def _content_pk(content_id: str) -> int:
    content_pk = _queries().content_pk(content_id)
    if content_pk is None:
        raise ApiError(404, f"no content with content_id {content_id!r}")
    return content_pk


def _int_arg(name: str, default: int | None, *, low: int, high: int) -> int | None:
    return int_arg(name, default, low=low, high=high)


def _time_arg(name: str) -> dt.datetime | None:
    return time_arg(name)


def _page(matches: list[dict[str, Any]], limit: int) -> Response:
    cursor = str(matches[-1]["id"]) if len(matches) == limit else None
    return jsonify(matches=matches, next_cursor=cursor)


@blueprint.get("/content/<path:content_id>/matches")
@requires_scope("read")
@operation(
    "The content's matches, newest first",
    query={"limit": INT, "cursor": INT},
    responses={200: MATCH_PAGE},
)
def content_matches(content_id: str) -> Response:
    limit = _int_arg("limit", 100, low=1, high=MAX_PAGE) or 100
    cursor = _int_arg("cursor", None, low=1, high=2**62)
    matches = _queries().matches(content_pk=_content_pk(content_id), before_id=cursor, limit=limit)
    return _page(matches, limit)


@blueprint.get("/content/<path:content_id>/actions")
@requires_scope("read")
@operation(
    "The actions taken on the content",
    responses={200: obj(content_id=STR, actioned_at=nullable(TIME), actions=array(ACTION))},
)
def content_actions(content_id: str) -> Response:
    queries = _queries()
    described = queries.describe(content_id)
    if described is None:
        raise ApiError(404, f"no content with content_id {content_id!r}")
    return jsonify(
        content_id=content_id,
        actioned_at=described["stages"]["actioned"],
        actions=queries.actions(_content_pk(content_id)),
    )


@blueprint.get("/content/<path:content_id>")
@requires_scope("read")
@operation("The content's record: status, stages, signals", responses={200: CONTENT})
def content(content_id: str) -> Response:
    described = _queries().describe(content_id)
    if described is None:
        raise ApiError(404, f"no content with content_id {content_id!r}")
    return jsonify(described)


@blueprint.get("/matches")
@requires_scope("read")
@operation(
    "Recent matches overall, newest first",
    query={
        "bank": STR,
        "signal_type": STR,
        "since": STR,
        "until": STR,
        "cursor": INT,
        "limit": INT,
    },
    responses={200: MATCH_PAGE},
)
def matches() -> Response:
    limit = _int_arg("limit", 100, low=1, high=MAX_PAGE) or 100
    found = _queries().matches(
        bank=request.args.get("bank") or None,
        signal_type=request.args.get("signal_type") or None,
        since=_time_arg("since"),
        until=_time_arg("until"),
        before_id=_int_arg("cursor", None, low=1, high=2**62),
        limit=limit,
    )
    return _page(found, limit)
