"""The web console under ``/ui/``: server-rendered pages for analysts.

The console translates forms into calls on the same store and service modules the API uses
and renders their answers; it holds no business rules. It authenticates by a server-side
session (see :mod:`.sessions`) through the ``console_scope`` marker in ``web/auth.py``, so
every page still declares its scope. Every answer under ``/ui/`` carries a strict
Content-Security-Policy: no inline script, no third-party origin.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.wrappers import Response

from hma_framework.web.auth import CONSOLE_AUTH
from hma_framework.web.console import (
    pages_actions,
    pages_banks,
    pages_exchanges,
    pages_lookup,
    pages_overview,
    pages_records,
    pages_removal,
    pages_rules,
    pages_session,
)
from hma_framework.web.console.common import blueprint, check_session

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
PREFIX = "/ui"

__all__ = [
    "CSP",
    "install",
    "pages_actions",
    "pages_banks",
    "pages_exchanges",
    "pages_lookup",
    "pages_overview",
    "pages_records",
    "pages_removal",
    "pages_rules",
    "pages_session",
]


def _secure_headers(response: Response) -> Response:
    if request.path == PREFIX or request.path.startswith(PREFIX + "/"):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        if not request.path.startswith(PREFIX + "/static/"):
            response.headers["Cache-Control"] = "no-store"
    return response


def install(app: Flask) -> None:
    """Mount the console on ``app`` (before ``install_auth`` checks every view's scope)."""
    app.register_blueprint(blueprint, url_prefix=PREFIX)
    app.extensions[CONSOLE_AUTH] = check_session
    app.after_request(_secure_headers)
