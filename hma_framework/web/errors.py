"""Every error is JSON ``{"message": ...}`` with a status the client can act on."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raise from a view to answer ``{"message": message}`` with ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


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

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error: %s", error)
        return json_error(500, "internal error; the server log has the details")
