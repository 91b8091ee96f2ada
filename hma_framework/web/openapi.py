"""``GET /openapi.json`` (the OpenAPI 3.1 document of this app) and ``GET /docs`` (its reader).

The document is built from the app itself: every ``url_map`` rule, the scope its view
declares (``web/auth.py``) and the contract it declares (``web/api_schema.py``). A route
without a declared contract is listed under ``x-undocumented`` rather than guessed at, and
the route-coverage test fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, send_from_directory
from werkzeug.routing import Rule

from hma_framework.web.api_schema import (
    ERROR,
    STR,
    Body,
    Media,
    Operation,
    Schema,
    html_page,
    obj,
    operation,
    operation_of,
)
from hma_framework.web.auth import _CONSOLE_ATTR, _SCOPE_ATTR, PUBLIC, public

blueprint = Blueprint("openapi", __name__)
STATIC = Path(__file__).parent / "docs_static"
_IGNORED_METHODS = {"HEAD", "OPTIONS"}
_RULE_ARG = re.compile(r"<(?:(?P<converter>[a-z]+):)?(?P<name>\w+)>")
#: Answers any route may give, whatever the view does: a NUL in the URL or a bad body (400),
#: the body limit (413), a client too slow to send its body (408), Redis or the database down
#: (503). Keyed routes add 401 and 403; routes with path parameters add 404.
_COMMON_ERRORS = (400, 408, 413, 503)
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'; form-action 'none'"
)


def openapi_path(rule: Rule) -> tuple[str, list[Schema]]:
    """``/banks/<name>/members/<int:member_id>`` as ``/banks/{name}/members/{member_id}``."""
    parameters: list[Schema] = []
    for match in _RULE_ARG.finditer(rule.rule):
        converter, name = match.group("converter"), match.group("name")
        schema: Schema
        if converter == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
        elif converter == "path":
            schema = {"type": "string", "minLength": 1}
        else:  # the default converter: one segment without "/"
            schema = {"type": "string", "minLength": 1, "pattern": "^[^/]+$"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule.rule), parameters


def _content(body: Body, *, console: bool = False) -> dict[str, Any] | None:
    if body is None:
        return None
    if isinstance(body, Media):
        return {body.media_type: {"schema": body.schema}}
    content: dict[str, Any] = {"application/json": {"schema": body}}
    if console:  # a console page may fail with its HTML error page or the app's JSON error
        content["text/html"] = {"schema": {}}
    return content


def _response(status: int, body: Body, *, console: bool = False) -> Schema:
    answer: Schema = {"description": _describe(status)}
    content = _content(body, console=console)
    if content is not None:
        answer["content"] = content
    return answer


def _describe(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _security(view: Any, op: Operation) -> tuple[str, list[Schema]]:
    scope: str = getattr(view, _SCOPE_ATTR)
    if scope == PUBLIC and op.own_scope is not None:
        return op.own_scope, [{"apiKey": [op.own_scope]}]
    if scope == PUBLIC:
        return scope, []
    if getattr(view, _CONSOLE_ATTR, False):
        return scope, [{"consoleSession": [scope]}]
    return scope, [{"apiKey": [scope]}]


def _operation(rule: Rule, method: str, view: Any, op: Operation) -> Schema:
    _, path_parameters = openapi_path(rule)
    scope, security = _security(view, op)
    console = bool(getattr(view, _CONSOLE_ATTR, False))
    responses = {str(s): _response(s, b, console=console) for s, b in op.responses.items()}
    if console:  # a page's error may also come from the app-wide JSON handlers
        for status, answer in responses.items():
            if int(status) >= 400 and "content" in answer:
                answer["content"].setdefault("application/json", {"schema": ERROR})
    common = list(_COMMON_ERRORS)
    if scope != PUBLIC:
        common += [401, 403]
    if path_parameters:
        common.append(404)
    for code in common:
        responses.setdefault(str(code), _response(code, ERROR, console=console))
    parameters = path_parameters + [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in op.query.items()
    ]
    entry: Schema = {
        "operationId": f"{method.lower()}_{rule.endpoint.replace('.', '_')}",
        "summary": op.summary,
        "tags": [rule.endpoint.partition(".")[0]],
        "security": security,
        "x-scope": scope,
        "responses": dict(sorted(responses.items())),
    }
    if parameters:
        entry["parameters"] = parameters
    request_content = _content(op.request)
    if request_content is not None:
        entry["requestBody"] = {"required": op.request_required, "content": request_content}
    return entry


def build_spec(app: Flask) -> Schema:
    """The OpenAPI 3.1 document of ``app``'s routes as they are mounted now."""
    paths: dict[str, dict[str, Schema]] = {}
    undocumented: list[str] = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue  # Flask's own static route; this app has no static folder
        view = app.view_functions[rule.endpoint]
        op = operation_of(view)
        path, _ = openapi_path(rule)
        for method in sorted((rule.methods or set()) - _IGNORED_METHODS):
            if op is None:
                undocumented.append(f"{method} {rule.rule}")
                continue
            paths.setdefault(path, {})[method.lower()] = _operation(rule, method, view, op)
    spec: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "hma-framework",
            "version": _version(),
            "description": (
                "The Hasher-Matcher-Actioner API. Send an API key as "
                "`Authorization: Bearer <key>`; each operation names the scope its key "
                "needs (`x-scope`, also the role in `security`): `submit`, `read` or "
                '`admin` (which holds every scope). Errors are `{"message": ...}`.'
            ),
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`hma keys create`) with the named scope.",
                },
                "consoleSession": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "hma_console",
                    "description": "The web console's session, opened at /ui/login.",
                },
            },
            "schemas": {"Error": ERROR},
        },
    }
    if undocumented:
        spec["x-undocumented"] = undocumented
    return spec


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hma-framework")
    except PackageNotFoundError:
        return "0"


def spec_for(app: Flask) -> Schema:
    """The document, built once per app (routes do not change after startup)."""
    cached: Schema | None = app.extensions.get("hma_openapi")
    if cached is None:
        cached = app.extensions["hma_openapi"] = build_spec(app)
    return cached


@blueprint.get("/openapi.json")
@public
@operation("This OpenAPI document", responses={200: obj(openapi=STR, paths={"type": "object"})})
def openapi_json() -> Response:
    return jsonify(spec_for(current_app))


def _docs_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/docs")
@public
@operation("The API reference, rendered from /openapi.json in the browser", responses=html_page())
def docs() -> Response:
    return _docs_headers(send_from_directory(STATIC, "index.html", max_age=0))


@blueprint.get("/docs/openapi-docs.js")
@public
@operation("The reference page's script", responses={200: Media("text/javascript")})
def docs_script() -> Response:
    return _docs_headers(send_from_directory(STATIC, "openapi-docs.js", max_age=3600))


@blueprint.get("/docs/openapi-docs.css")
@public
@operation("The reference page's style sheet", responses={200: Media("text/css")})
def docs_style() -> Response:
    return _docs_headers(send_from_directory(STATIC, "openapi-docs.css", max_age=3600))
