"""A request id on every request: taken from ``X-Request-ID`` or made, echoed in the response.

The id (and the content id a route names) is bound to the log context for the request's
lines and the jobs it enqueues; see :mod:`hma_framework.log_context`.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from hma_framework import log_context

HEADER = "X-Request-ID"


def _bind() -> None:
    log_context.clear()
    g.hma_request_id = log_context.sane_request_id(request.headers.get(HEADER))
    content_id = (request.view_args or {}).get("content_id")
    log_context.bind(
        request_id=g.hma_request_id,
        content_id=content_id if isinstance(content_id, str) else None,
    )


def _echo(response: Response) -> Response:
    request_id = g.get("hma_request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response


def _forget(_error: BaseException | None) -> None:
    log_context.clear()


def install_request_ids(app: Flask) -> None:
    # First of the before_request hooks, so even a refused key's answer carries the id.
    app.before_request_funcs.setdefault(None, []).insert(0, _bind)
    app.after_request(_echo)
    app.teardown_request(_forget)
