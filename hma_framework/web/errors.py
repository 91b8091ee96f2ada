"""Every error is JSON ``{"message": ...}`` with a status the client can act on."""

from __future__ import annotations

import errno
import logging

from flask import Flask, Response, jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)

#: Seconds a client is told to wait when a backing service is down: about one restart with
#: backoff of the embedded Redis, or a database failover.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5


class RequestBodyTimeout(Exception):
    """The client did not send its request body within ``web.body_timeout_seconds``.

    Not an ``OSError``: werkzeug turns those into a 400 "client disconnected".
    """


class ApiError(Exception):
    """Raise from a view to answer ``{"message": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


#: What a full disk (or a spent quota) says when media is written.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def media_write_refused(exc: Exception) -> ApiError:
    """The answer when submitted media could not be stored: nothing of it was kept.

    A full disk is 507 Insufficient Storage, anything else 503; both say to retry later and
    when. The OS error names a path in the data folder: it goes to the log, not the caller.
    """
    retry = {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)}
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        log.error("media not stored, the media store is full: %s", exc)
        return ApiError(
            507, "the media store is full: the media was not stored; retry later", retry
        )
    log.error("media not stored: %s", exc)
    return ApiError(
        503, "the media store cannot take media now: the media was not stored; retry later", retry
    )


def json_error(status: int, message: str) -> tuple[Response, int]:
    return jsonify(message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> tuple[Response, int]:
        response, status = json_error(error.status, error.message)
        response.headers.update(error.headers)  # e.g. Retry-After on a 503
        return response, status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return json_error(413, f"request body is larger than the limit of {limit} bytes")

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        return json_error(status, error.description or error.name)

    @app.errorhandler(RequestBodyTimeout)
    def _body_timeout(error: RequestBodyTimeout) -> tuple[Response, int]:
        log.warning("%s %s: %s", request.method, request.path, error)
        response, status = json_error(408, str(error))
        response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(RedisConnectionError)
    @app.errorhandler(RedisTimeoutError)
    def _queue_down(error: Exception) -> tuple[Response, int]:
        # Submissions record the content before they enqueue its job, and reconcile
        # re-enqueues what Redis never received: the client learns that, and when to retry.
        log.warning("Redis unavailable during %s %s: %s", request.method, request.path, error)
        return _unavailable(
            "the job queue is unavailable; anything this request recorded is kept and will "
            "be processed when the queue is back. Retry later."
        )

    @app.errorhandler(DBAPIError)
    def _database_error(error: DBAPIError) -> tuple[Response, int]:
        # OperationalError: the server went away, refused us, or a lock timed out; an
        # invalidated connection: it dropped mid-statement. Both pass; the rest is a bug.
        if not (isinstance(error, OperationalError) or error.connection_invalidated):
            return _unexpected(error)
        log.warning("database unavailable during %s %s: %s", request.method, request.path, error)
        return _unavailable("the database is unavailable; retry later.")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error: %s", error)
        return json_error(500, "internal error; the server log has the details")


def _unavailable(message: str) -> tuple[Response, int]:
    response, status = json_error(503, message)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response, status
