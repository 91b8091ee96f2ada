"""HMA 2.0's plain-text health checks: ``GET /status`` and ``GET /status/live``.

Its clients compare the body with ``I-AM-ALIVE`` (200) and treat ``INDEX-STALE`` /
``INDEX-NOT-LOADED`` (503) as "not ready". Here the index is fresh by construction (every
lookup applies the change log first), so "stale" means the change log cannot be read now.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app

from hma_framework.index.warmup import wait_until_loaded
from hma_framework.runtime import Runtime
from hma_framework.web.api_schema import Media, operation
from hma_framework.web.auth import public

log = logging.getLogger(__name__)
blueprint = Blueprint("hma2_status", __name__)

ALIVE = "I-AM-ALIVE"
STALE = "INDEX-STALE"
NOT_LOADED = "INDEX-NOT-LOADED"
FIRST_LOAD_WAIT_SECONDS = 2.0
PLAIN = Media("text/plain", {"type": "string"})


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, mimetype="text/plain")


@blueprint.get("/status")
@public
@operation(
    "HMA 2.0: I-AM-ALIVE, or INDEX-NOT-LOADED / INDEX-STALE with 503",
    responses={200: PLAIN, 503: PLAIN},
)
def status() -> Response:
    runtime: Runtime = current_app.extensions["hma"]
    if not wait_until_loaded(runtime, FIRST_LOAD_WAIT_SECONDS):
        return _text(NOT_LOADED, 503)
    try:
        runtime.indexes.refresh()
    except Exception as exc:
        log.warning("index refresh failed: %s", exc)
        return _text(STALE, 503)
    return _text(ALIVE, 200)


@blueprint.get("/status/live")
@public
@operation("HMA 2.0: the process answers", responses={200: PLAIN})
def live() -> Response:
    """The process answers requests; says nothing about the index (use ``/status``)."""
    return _text(ALIVE, 200)
