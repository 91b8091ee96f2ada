"""Presigned upload URLs for ``/submit/put-url/`` with the local media store.

The URL carries a signed token (the content id and the id of the submission it was issued
for) that expires after ``pipeline.upload_url_ttl_seconds``; the token is the credential, so
the ``PUT`` needs no API key. It works once: the first upload moves the content out of
``awaiting_upload`` and later ones are refused; after a forced resubmission only the new URL
works. Tokens are credentials, so the logs show them redacted (see ``log_redaction``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from hma_framework.media import MediaStoreUnavailable, MediaTooLargeError
from hma_framework.pipeline.stages import advance
from hma_framework.runtime import Runtime
from hma_framework.secret_key import signing_key
from hma_framework.store import content as records
from hma_framework.web.api_schema import (
    INT,
    STR,
    Media,
    errors,
    obj,
    operation,
)
from hma_framework.web.auth import public
from hma_framework.web.errors import ApiError, media_write_refused

blueprint = Blueprint("uploads", __name__)
_SALT = "hma-upload-url"


def secret_key(runtime: Runtime) -> str:
    """The configured key, or the one generated once into the data folder (owner-only)."""
    return signing_key(runtime.settings)


def _serializer(runtime: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(runtime), salt=_SALT)


def upload_url(runtime: Runtime, content_pk: int, submission_pk: int, base_url: str) -> str:
    """A URL for one upload to one submission of the content (``submission_pk``)."""
    token = _serializer(runtime).dumps({"c": content_pk, "s": submission_pk})
    return f"{base_url.rstrip('/')}/upload/{token}"


def public_base_url(runtime: Runtime, request_host_url: str) -> str:
    """``web.public_url`` when set; otherwise the address the request came in on."""
    return runtime.settings.web.public_url or request_host_url


def _bound_submission(runtime: Runtime, token: str) -> tuple[int, int]:
    """The (content, submission) ids a token is for, or the 4xx saying why it is not usable."""
    ttl = runtime.settings.pipeline.upload_url_ttl_seconds
    try:
        payload = _serializer(runtime).loads(token, max_age=ttl)
    except SignatureExpired as exc:
        raise ApiError(410, "this upload URL has expired; request a new one") from exc
    except BadSignature as exc:
        raise ApiError(403, "this upload URL is not valid") from exc
    if not isinstance(payload, dict) or not all(
        isinstance(payload.get(k), int) for k in ("c", "s")
    ):
        raise ApiError(403, "this upload URL is not valid; request a new one")
    return int(payload["c"]), int(payload["s"])


@blueprint.put("/upload/<token>")
@public
@operation(
    "Upload the media of a /submit/put-url/ submission (the URL is the credential)",
    request=Media("application/octet-stream", {"type": "string", "format": "binary"}),
    responses={
        200: obj(content_id=STR, size=INT, submit_successful={"const": True}),
        **errors(403, 409, 410),
    },
)
def upload(token: str) -> Response:
    runtime: Runtime = current_app.extensions["hma"]
    content_pk, submission_pk = _bound_submission(runtime, token)
    row = runtime.content.get_row(content_pk)
    if row is None or row.status != records.AWAITING_UPLOAD:
        raise ApiError(409, "this upload URL was already used")
    with runtime.store.reading() as session:
        if runtime.content.latest_submission_pk(content_pk, session) != submission_pk:
            raise ApiError(
                409, "this upload URL belongs to an earlier submission; use the newest URL"
            )
    media_key = runtime.media.new_key()
    try:
        size = runtime.media.write(media_key, request.stream, runtime.settings.web.max_body_bytes)
    except MediaTooLargeError as exc:
        raise ApiError(413, str(exc)) from exc
    except (OSError, MediaStoreUnavailable) as exc:
        raise media_write_refused(exc) from exc
    if size == 0:
        runtime.media.delete(media_key)
        raise ApiError(400, "the upload is empty")
    if not runtime.content.claim_upload(content_pk, media_key, submission_pk):
        runtime.media.delete(media_key)
        raise ApiError(409, "this upload URL was already used, has expired or was replaced")
    advance(runtime, "hash", content_pk)
    return jsonify(content_id=row.content_id, size=size, submit_successful=True)
