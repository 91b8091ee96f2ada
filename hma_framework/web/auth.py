"""API keys on every route: ``Authorization: Bearer <key>`` with a scope per view.

Each view declares its scope with :func:`requires_scope` or says it is :func:`public`;
``create_app`` refuses to start if a view says neither, so no route is left open by omission.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from werkzeug.wrappers import Response

from hma_framework.store.api_keys import SCOPES, ApiKey
from hma_framework.web.errors import ApiError

F = TypeVar("F", bound=Callable[..., Any])
_SCOPE_ATTR = "_hma_scope"
_CONSOLE_ATTR = "_hma_console"
PUBLIC = "public"
#: ``app.extensions`` key of the console's session check: ``(scope) -> Response | None``.
CONSOLE_AUTH = "hma_console_auth"


def requires_scope(scope: str) -> Callable[[F], F]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def mark(view: F) -> F:
        setattr(view, _SCOPE_ATTR, scope)
        return view

    return mark


def public(view: F) -> F:
    setattr(view, _SCOPE_ATTR, PUBLIC)
    return view


def console_scope(scope: str) -> Callable[[F], F]:
    """A console page: authenticated by its session cookie instead of a Bearer key.

    The scope is still declared, and checked by the console's session hook (registered as
    ``app.extensions[CONSOLE_AUTH]``); without that hook every console view is refused, so
    a console route can never be reached with no check at all.
    """
    mark_scope = requires_scope(scope)

    def mark(view: F) -> F:
        setattr(view, _CONSOLE_ATTR, True)
        return mark_scope(view)

    return mark


def current_key() -> ApiKey:
    key: ApiKey = g.hma_api_key
    return key


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _check_request() -> Response | None:
    if request.endpoint is None:
        return None  # 404/405: let Flask answer
    view = current_app.view_functions[request.endpoint]
    scope = getattr(view, _SCOPE_ATTR)
    if scope == PUBLIC:
        return None
    if getattr(view, _CONSOLE_ATTR, False):
        check = current_app.extensions.get(CONSOLE_AUTH)
        if check is None:
            raise ApiError(403, "the console is not installed on this app")
        answer: Response | None = check(scope)
        return answer
    token = bearer_token()
    if token is None:
        # Surfaces may accept other credentials on their own routes (HMA 2.0 compatibility).
        keyless = current_app.extensions.get("hma_keyless_auth")
        key = keyless(view) if keyless is not None else None
        if key is None:
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'")
    else:
        key = current_app.extensions["hma"].authenticate(token)
    if key is None:
        raise ApiError(401, "invalid or revoked API key")
    if not key.allows(scope):
        raise ApiError(403, f"this API key lacks the {scope!r} scope")
    g.hma_api_key = key
    return None


def install_auth(app: Flask) -> None:
    """Enforce scopes before every request; fail now if any view forgot to declare one."""
    undeclared = sorted(
        endpoint
        for endpoint, view in app.view_functions.items()
        if endpoint != "static" and not hasattr(view, _SCOPE_ATTR)
    )
    if undeclared:
        raise RuntimeError(f"views without a declared scope: {', '.join(undeclared)}")
    app.before_request(_check_request)
