"""What every console page shares: the blueprint, the session check and rendering."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from hma_framework.runtime import Runtime
from hma_framework.store.api_keys import ApiKey
from hma_framework.web.console.sessions import COOKIE_NAME, ConsoleSession, ConsoleSessions

blueprint = Blueprint("console", __name__, template_folder="templates")


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["hma"]
    return found


def sessions() -> ConsoleSessions:
    rt = runtime()
    return ConsoleSessions(rt.redis, rt.settings.console.session_idle_minutes * 60)


def current_key() -> ApiKey:
    key: ApiKey = g.hma_api_key
    return key


def current_session() -> ConsoleSession:
    session: ConsoleSession = g.hma_console_session
    return session


def page(template: str, status: int = 200, **context: Any) -> Response:
    """Render ``template`` with what the layout needs: the key, its scopes, the CSRF token."""
    key: ApiKey | None = g.get("hma_api_key")
    session: ConsoleSession | None = g.get("hma_console_session")
    given_token = context.pop("csrf_token", "")  # the sign-in form's, before any session
    html = render_template(
        f"console/{template}",
        key=key,
        can_admin=key is not None and key.allows("admin"),
        csrf_token=session.csrf_token if session else given_token,
        media_previews=runtime().settings.console.media_previews,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def error_page(status: int, message: str) -> Response:
    return page("error.html", status=status, status_code=status, message=message)


def safe_next(target: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    default = url_for("console.overview")
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/ui") or "\\" in target:
        return default
    return target


def check_session(scope: str) -> Response | None:
    """The console's auth hook: a live session whose key holds ``scope``; CSRF on POST."""
    store = sessions()
    session = store.get(request.cookies.get(COOKIE_NAME))
    key = runtime().api_keys.live(session.key_id) if session is not None else None
    if session is None or key is None:
        if session is not None:
            store.end(session.session_id)  # its key was revoked
        if request.method != "GET":
            return error_page(401, "Your session has ended: sign in again.")
        return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
    g.hma_api_key = key
    g.hma_console_session = session
    if request.method == "POST" and not session.csrf_ok(request.form.get("csrf_token")):
        return error_page(403, "This form has expired or was not sent by the console.")
    if request.method == "POST" and any("\x00" in v for v in request.form.values()):
        return error_page(400, "A form field contains a NUL character.")  # PostgreSQL refuses
    if not key.allows(scope):
        return error_page(403, f"Your API key lacks the {scope!r} scope needed here.")
    return None
