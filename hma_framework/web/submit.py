"""The Content Submissions API: ``/submit/url/``, ``/bytes/``, ``/hash/`` and ``/put-url/``.

The contract is Hasher-Matcher-Actioner's: ``{"content_id", "submit_successful": true}`` on
success, ``{"message"}`` otherwise. Resubmitting a ``content_id`` with identical parameters is
a no-op; with different ones it is a 409 unless ``force_resubmit`` is set.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from hma_framework import log_context
from hma_framework.media import MediaStoreUnavailable
from hma_framework.pipeline.act_queue import queue_for_action
from hma_framework.pipeline.stages import (
    HASH,
    enqueue_stage,
    find_matches,
    find_matches_many,
    new_job_id,
)
from hma_framework.registry import InvalidSignalError
from hma_framework.runtime import Runtime
from hma_framework.store import content as records
from hma_framework.store.content import ComputedSignal, Submission, SubmitOutcome
from hma_framework.store.hash_submissions import HashItem, HashSubmissions
from hma_framework.store.tables import ContentRow
from hma_framework.web.api_schema import (
    BOOL,
    STR,
    array,
    enum,
    errors,
    nullable,
    obj,
    operation,
)
from hma_framework.web.auth import requires_scope
from hma_framework.web.errors import ApiError, media_write_refused
from hma_framework.web.uploads import public_base_url, upload_url
from hma_framework.web.validation import (
    CREDENTIALS_REFUSED,
    base64_media_field,
    field,
    json_body,
    string_list,
    text_field,
    url_has_credentials,
)

blueprint = Blueprint("submit", __name__)

CONTENT_TYPES = ("photo", "video")
UNREADABLE_SUFFIXES = ("/matches", "/actions")
#: The most items ``/submit/hashes/`` takes in one request.
MAX_BATCH_ITEMS = 1000
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

_COMMON_INPUT = {
    "content_id": STR,
    "content_type": enum(*CONTENT_TYPES),
    "additional_fields": array(STR),
    "force_resubmit": BOOL,
}
_REQUIRED = ["content_id", "content_type"]


def _input(required: list[str], **fields: dict[str, Any]) -> dict[str, Any]:
    properties = {**_COMMON_INPUT, **fields}
    return {"type": "object", "properties": properties, "required": _REQUIRED + required}


ACCEPTED = obj(content_id=STR, submit_successful={"const": True})
HASH_INPUT = _input(
    ["signal_type", "signal_value"], signal_type=STR, signal_value=STR, content_url=STR
)
HASHES_RESULT = obj(
    {"matched": BOOL, "message": STR},
    content_id=nullable(STR),
    submit_successful=BOOL,
)


def _runtime() -> Runtime:
    runtime: Runtime = current_app.extensions["hma"]
    return runtime


def _common(body: dict[str, Any]) -> tuple[str, str, tuple[str, ...], bool]:
    content_id = text_field(body, "content_id")
    log_context.bind(content_id=content_id)
    assert content_id is not None
    if content_id.endswith(UNREADABLE_SUFFIXES):
        # /content/<id>/matches would route to the matches of "<id>", not to this content.
        raise ApiError(
            400,
            f"content_id must not end with {' or '.join(UNREADABLE_SUFFIXES)}: it could not "
            "be read back at /content/<content_id>",
        )
    content_type = field(body, "content_type", str)
    if content_type not in CONTENT_TYPES:
        raise ApiError(
            400, f"content_type must be one of {', '.join(CONTENT_TYPES)}, not {content_type!r}"
        )
    additional_fields = string_list(body, "additional_fields")
    force = field(body, "force_resubmit", bool, required=False, default=False)
    assert content_id is not None
    return content_id, content_type, additional_fields, bool(force)


def _accepted(content_id: str) -> Response:
    return jsonify(content_id=content_id, submit_successful=True)


def _conflict_message(content_id: str) -> str:
    return (
        f"content {content_id!r} was already submitted with different parameters; "
        "set force_resubmit to process it again"
    )


def _check_outcome(outcome: SubmitOutcome, content_id: str) -> None:
    if outcome is SubmitOutcome.CONFLICT:
        raise ApiError(409, _conflict_message(content_id))


def _stored_media_key(session: Session, content_id: str) -> str | None:
    """The media an earlier submission of ``content_id`` left waiting, if any."""
    return session.scalar(select(ContentRow.media_key).where(ContentRow.content_id == content_id))


def _forget_superseded(runtime: Runtime, outcome: SubmitOutcome, media_key: str | None) -> None:
    """A forced resubmission replaced the row's media key: delete the file it pointed to.

    A hash job of the old submission still queued then hashes the new submission (it reads
    the row by id), so nothing reads the old file any more.
    """
    if outcome is SubmitOutcome.RESUBMITTED and media_key:
        runtime.media.delete(media_key)


def _validated_url(body: dict[str, Any], runtime: Runtime, *, required: bool) -> str | None:
    url = text_field(body, "content_url", max_length=4096, required=required)
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ApiError(400, f"content_url is not a valid URL: {exc}") from exc
    if url_has_credentials(url):
        raise ApiError(400, CREDENTIALS_REFUSED)
    if not parts.scheme or not (parts.netloc or parts.path):
        raise ApiError(400, f"content_url {url!r} is not an absolute URL")
    if runtime.registry.content_source_for(url) is None:
        raise ApiError(400, f"no content source can fetch {parts.scheme}:// URLs")
    return url


@blueprint.post("/submit/url/")
@requires_scope("submit")
@operation(
    "Submit content by URL; it is fetched, hashed, matched and actioned",
    request=_input(["content_url"], content_url=STR),
    responses={200: ACCEPTED, **errors(409)},
)
def submit_url() -> Response:
    runtime = _runtime()
    body = json_body()
    content_id, content_type, fields, force = _common(body)
    url = _validated_url(body, runtime, required=True)
    submission = Submission(content_id, content_type, "url", fields, content_url=url)
    job_id = None
    with runtime.store.transaction() as session:
        superseded = _stored_media_key(session, content_id)
        outcome, content_pk = runtime.content.submit(submission, force=force, session=session)
        _check_outcome(outcome, content_id)
        if outcome is not SubmitOutcome.UNCHANGED:
            job_id = new_job_id("hash", content_pk)
            session.get_one(ContentRow, content_pk).job_id = job_id
    _forget_superseded(runtime, outcome, superseded)
    if job_id is not None:
        enqueue_stage(runtime, "hash", content_pk, job_id)
    return _accepted(content_id)


@blueprint.post("/submit/bytes/")
@requires_scope("submit")
@operation(
    "Submit content as base64 bytes",
    request=_input(["content_bytes"], content_bytes=STR),
    responses={200: ACCEPTED, **errors(409)},
)
def submit_bytes() -> Response:
    runtime = _runtime()
    body = json_body()
    content_id, content_type, fields, force = _common(body)
    media = base64_media_field(body)
    submission = Submission(
        content_id,
        content_type,
        "bytes",
        fields,
        parameters={"sha256": hashlib.sha256(media).hexdigest(), "size": len(media)},
    )
    media_key = runtime.media.new_key()
    try:
        runtime.media.write_bytes(media_key, media)  # stored before the job can look for it
    except (OSError, MediaStoreUnavailable) as exc:
        raise media_write_refused(exc) from exc
    job_id = None
    try:
        with runtime.store.transaction() as session:
            superseded = _stored_media_key(session, content_id)
            outcome, content_pk = runtime.content.submit(submission, force=force, session=session)
            _check_outcome(outcome, content_id)
            if outcome is not SubmitOutcome.UNCHANGED:
                job_id = new_job_id("hash", content_pk)
                row = session.get_one(ContentRow, content_pk)
                row.job_id, row.media_key = job_id, media_key
    finally:
        if job_id is None:  # refused or unchanged: keep nothing
            runtime.media.delete(media_key)
    _forget_superseded(runtime, outcome, superseded)
    if job_id is not None:
        HASH.add(runtime, [content_pk])  # hashed with others: one RQ job per few uploads
    return _accepted(content_id)


def _validated_signal(body: dict[str, Any], runtime: Runtime, content_type: str) -> tuple[str, str]:
    signal_type = field(body, "signal_type", str)
    value = field(body, "signal_value", str)
    try:
        normalized = runtime.registry.normalize_signal(signal_type, value)
    except InvalidSignalError as exc:
        message = str(exc)
        detail = message if "unknown" in message else f"signal_value is {message}"
        raise ApiError(400, detail) from exc
    if content_type not in runtime.registry.signal_types[signal_type].applies_to():
        raise ApiError(400, f"signal type {signal_type} does not apply to {content_type} content")
    return signal_type, normalized


def _hash_submission(
    body: dict[str, Any], runtime: Runtime
) -> tuple[Submission, ComputedSignal, bool]:
    """A ``/submit/hash/`` body validated (``ApiError`` says what is wrong)."""
    content_id, content_type, fields, force = _common(body)
    signal_type, value = _validated_signal(body, runtime, content_type)
    url = _validated_url(body, runtime, required=False)
    submission = Submission(
        content_id,
        content_type,
        "hash",
        fields,
        content_url=url,
        parameters={"signal_type": signal_type, "signal_value": value},
    )
    return submission, ComputedSignal(signal_type, value), force


@blueprint.post("/submit/hash/")
@requires_scope("submit")
@operation(
    "Submit a hash computed elsewhere; matched before the answer",
    request=HASH_INPUT,
    responses={200: ACCEPTED, **errors(409)},
)
def submit_hash() -> Response:
    """The high-throughput path: matched here, in the API process, against its own index.

    Content, signal and matches are recorded in one transaction before the response (shared
    with the process's other requests recording at the same moment); only matched content goes
    on to the action queue.
    """
    runtime = _runtime()
    submission, signal, force = _hash_submission(json_body(), runtime)
    content_id = submission.content_id
    matches = find_matches(runtime, [signal])
    # Recorded as the content's job; the act job that takes it serves many (see act_queue).
    act_job = new_job_id("act")
    outcome, content_pk = runtime.hash_submissions.record(
        HashItem(submission, signal, matches, force), act_job_id=act_job
    )
    _check_outcome(outcome, content_id)
    if matches and outcome is not SubmitOutcome.UNCHANGED:
        queue_for_action(runtime, [content_pk])
    return _accepted(content_id)


def _item_failure(raw: Any, message: str) -> dict[str, Any]:
    content_id = raw.get("content_id") if isinstance(raw, dict) else None
    return {
        "content_id": content_id if isinstance(content_id, str) else None,
        "submit_successful": False,
        "message": message,
    }


@blueprint.post("/submit/hashes/")
@requires_scope("submit")
@operation(
    "Submit many hashes; answered item by item, in order",
    request=obj(items=array(HASH_INPUT)),
    responses={200: obj(results=array(HASHES_RESULT))},
)
def submit_hashes() -> Response:
    """Many ``/submit/hash/`` items in one request, answered item by item, in order.

    A successful item's answer also says whether it matched (``"matched"``), which a
    backfill tool counts without asking again.

    Each item has exactly the single path's semantics (validation, idempotency, a conflict
    without ``force_resubmit`` fails that item only); valid items are recorded in one
    transaction before the answer, and every matched item goes to the act stage's queue.
    """
    runtime = _runtime()
    items = field(json_body(), "items", list)
    if not items:
        raise ApiError(400, "field 'items' must not be empty")
    if len(items) > MAX_BATCH_ITEMS:
        raise ApiError(413, f"at most {MAX_BATCH_ITEMS} items per request, not {len(items)}")
    results: list[dict[str, Any]] = [{} for _ in items]
    parsed: list[tuple[int, Submission, ComputedSignal, bool]] = []
    for position, raw in enumerate(items):
        if not isinstance(raw, dict):
            results[position] = _item_failure(raw, "each item must be a JSON object")
            continue
        try:
            parsed.append((position, *_hash_submission(raw, runtime)))
        except ApiError as exc:
            results[position] = _item_failure(raw, exc.message)
    # One batched index query and one holder resolution for the whole request.
    matches_per_item = find_matches_many(runtime, [signal for _, _, signal, _ in parsed])
    valid = [
        (position, HashItem(submission, signal, matches, force))
        for (position, submission, signal, force), matches in zip(
            parsed, matches_per_item, strict=True
        )
    ]
    act_job = new_job_id("act")
    outcomes = HashSubmissions(runtime.store).record_many(
        [item for _, item in valid], act_job_id=act_job
    )
    to_act: list[int] = []
    for (position, item), (outcome, content_pk) in zip(valid, outcomes, strict=True):
        content_id = item.submission.content_id
        if outcome is SubmitOutcome.CONFLICT:
            results[position] = _item_failure(
                {"content_id": content_id}, _conflict_message(content_id)
            )
            continue
        results[position] = {
            "content_id": content_id,
            "submit_successful": True,
            "matched": bool(item.matches),  # recorded before this answer
        }
        if item.matches and outcome is not SubmitOutcome.UNCHANGED and content_pk not in to_act:
            to_act.append(content_pk)
    if to_act:
        queue_for_action(runtime, to_act)
    return jsonify(results=results)


@blueprint.post("/submit/put-url/")
@requires_scope("submit")
@operation(
    "Get a URL to PUT the content's media to",
    request=_input(["file_type"], file_type=STR),
    responses={200: obj(content_id=STR, file_type=STR, presigned_url=STR), **errors(409)},
)
def submit_put_url() -> Response:
    runtime = _runtime()
    body = json_body()
    content_id, content_type, fields, force = _common(body)
    file_type = text_field(body, "file_type", max_length=128)
    assert file_type is not None
    if not _MIME.match(file_type.lower()):
        raise ApiError(400, f"file_type {file_type!r} is not a MIME type like image/jpeg")
    ttl = runtime.settings.pipeline.upload_url_ttl_seconds
    submission = Submission(
        content_id,
        content_type,
        "put_url",
        fields,
        parameters={"file_type": file_type},
        initial_status=records.AWAITING_UPLOAD,
        upload_expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=ttl),
        media_type=file_type,
    )
    direct_url = None
    with runtime.store.transaction() as session:
        superseded = _stored_media_key(session, content_id)
        outcome, content_pk = runtime.content.submit(submission, force=force, session=session)
        _check_outcome(outcome, content_id)
        row = session.get_one(ContentRow, content_pk)
        awaiting = row.status == records.AWAITING_UPLOAD
        if awaiting:
            # A store that takes uploads itself (an object store) gets them under a key that
            # names the content, so its upload event leads back here.
            key = row.media_key or f"{content_pk}-{runtime.media.new_key()}"
            direct_url = runtime.media.direct_upload_url(key, file_type, ttl)
            if direct_url is not None:
                row.media_key = key
        submission_pk = runtime.content.latest_submission_pk(content_pk, session)
    _forget_superseded(runtime, outcome, superseded)
    if outcome is SubmitOutcome.UNCHANGED and not awaiting:
        raise ApiError(
            409,
            f"content {content_id!r} was already uploaded; set force_resubmit to upload again",
        )
    return jsonify(
        content_id=content_id,
        file_type=file_type,
        presigned_url=direct_url
        or upload_url(
            runtime, content_pk, submission_pk or 0, public_base_url(runtime, request.host_url)
        ),
    )
