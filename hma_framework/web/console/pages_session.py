"""Sign-in, sign-out and the vendored static files.

Sign-in is a public form, so its CSRF protection is a double submit: a random token in a
short-lived ``SameSite=Strict`` cookie that the form must echo.
"""

from __future__ import annotations

import hmac
import secrets
from pathlib import Path

from flask import redirect, request, send_from_directory, url_for
from werkzeug.wrappers import Response

from hma_framework.web.api_schema import ERROR, FORM, STR, Media, html_page, operation
from hma_framework.web.auth import console_scope, public
from hma_framework.web.console.common import (
    blueprint,
    current_session,
    error_page,
    page,
    runtime,
    safe_next,
    sessions,
)
from hma_framework.web.console.sessions import COOKIE_NAME

STATIC = Path(__file__).parent / "static"
LOGIN_COOKIE = "hma_console_login"


def _cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/ui",
        httponly=True,
        secure=request.is_secure,
        samesite="Strict",
    )


@blueprint.get("/static/<path:filename>")
@public
@operation("Console: its style sheet and icon", responses={200: Media("*/*"), 404: ERROR})
def static(filename: str) -> Response:
    return send_from_directory(STATIC, filename, max_age=3600)


@blueprint.get("/login")
@public
@operation("Console: the sign-in form", query={"next": STR}, responses=html_page())
def login() -> Response:
    token = secrets.token_urlsafe(32)
    response = page("login.html", csrf_token=token, next=safe_next(request.args.get("next")))
    _cookie(response, LOGIN_COOKIE, token, 900)
    return response


@blueprint.post("/login")
@public
@operation("Console: sign in with an API key", request=FORM, responses=html_page(400, 401, 403))
def login_submit() -> Response:
    form_token = request.form.get("csrf_token", "")
    cookie_token = request.cookies.get(LOGIN_COOKIE, "")
    if not form_token or not hmac.compare_digest(form_token, cookie_token):
        return error_page(403, "The sign-in form expired: reload the page and try again.")
    target = safe_next(request.form.get("next"))
    key = runtime().authenticate(request.form.get("api_key", "").strip())
    if key is None:
        token = secrets.token_urlsafe(32)
        response = page(
            "login.html",
            status=401,
            csrf_token=token,
            next=target,
            message="That API key is unknown or revoked.",
        )
        _cookie(response, LOGIN_COOKIE, token, 900)
        return response
    if not key.allows("read"):
        return error_page(403, "The console needs an API key with the 'read' scope.")
    session = sessions().create(key.key_id)
    answer = redirect(target, code=303)
    # A browser-session cookie: the server's record carries the idle expiry, renewed on each
    # request, so an analyst at work is never cut off by a cookie timer set at sign-in.
    _cookie(answer, COOKIE_NAME, session.session_id, None)
    answer.delete_cookie(LOGIN_COOKIE, path="/ui")
    return answer


@blueprint.post("/logout")
@console_scope("read")
@operation("Console: sign out", request=FORM, responses=html_page())
def logout() -> Response:
    sessions().end(current_session().session_id)
    answer = redirect(url_for("console.login"), code=303)
    answer.delete_cookie(COOKIE_NAME, path="/ui", httponly=True, samesite="Strict")
    return answer
