"""Presigned upload URLs for ``/submit/put-url/`` with the local media store.

The URL carries a signed token (content id and a nonce) that expires after
``pipeline.upload_url_ttl_seconds``; the token is the credential, so the ``PUT`` needs no API
key. It works once: the first upload moves the content out of ``awaiting_upload`` and later
ones are refused.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, Response, current_app, jsonify, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from hma_framework.media import MediaTooLargeError
from hma_framework.pipeline.stages import advance
from hma_framework.runtime import Runtime
from hma_framework.secret_key import signing_key
from hma_framework.store import content as records
from hma_framework.web.auth import public
from hma_framework.web.errors import ApiError

blueprint = Blueprint("uploads", __name__)
_SALT = "hma-upload-url"


def secret_key(runtime: Runtime) -> str:
    """The configured key, or the one generated once into the data folder (owner-only)."""
    return signing_key(runtime.settings)


def _serializer(runtime: Runtime) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(runtime), salt=_SALT)


def upload_url(runtime: Runtime, content_pk: int, host_url: str) -> str:
    token = _serializer(runtime).dumps({"c": content_pk, "n": secrets.token_hex(8)})
    return f"{host_url.rstrip('/')}/upload/{token}"


@blueprint.put("/upload/<token>")
@public
def upload(token: str) -> Response:
    runtime: Runtime = current_app.extensions["hma"]
    ttl = runtime.settings.pipeline.upload_url_ttl_seconds
    try:
        payload = _serializer(runtime).loads(token, max_age=ttl)
    except SignatureExpired as exc:
        raise ApiError(410, "this upload URL has expired; request a new one") from exc
    except BadSignature as exc:
        raise ApiError(403, "this upload URL is not valid") from exc
    content_pk = int(payload["c"])
    row = runtime.content.get_row(content_pk)
    if row is None or row.status != records.AWAITING_UPLOAD:
        raise ApiError(409, "this upload URL was already used")
    media_key = runtime.media.new_key()
    try:
        size = runtime.media.write(media_key, request.stream, runtime.settings.web.max_body_bytes)
    except MediaTooLargeError as exc:
        raise ApiError(413, str(exc)) from exc
    if size == 0:
        runtime.media.delete(media_key)
        raise ApiError(400, "the upload is empty")
    if not runtime.content.claim_upload(content_pk, media_key):
        runtime.media.delete(media_key)
        raise ApiError(409, "this upload URL was already used or has expired")
    advance(runtime, "hash", content_pk)
    return jsonify(content_id=row.content_id, size=size, submit_successful=True)
