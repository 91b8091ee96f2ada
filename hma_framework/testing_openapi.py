"""Checking real answers against ``/openapi.json``: every test client call of the suite.

``hma_framework.testing``'s ``app`` fixture gives its app a :class:`SpecCheckingClient`, so
each answer an existing test provokes is validated against the operation the request
matched: a status the spec does not list, a media type it does not declare, or a JSON body
its schema rejects fails that test. Requests that match no route (404/405 from routing) have
no operation to check against and pass through.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from werkzeug.exceptions import HTTPException
from werkzeug.test import TestResponse

from hma_framework.web.openapi import openapi_path, spec_for


class SpecViolation(AssertionError):
    """An answer that does not match what ``/openapi.json`` says the route answers."""


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def response_problems(
    spec: dict[str, Any], path: str, method: str, status: int, content_type: str, body: bytes
) -> list[str]:
    """What is wrong with an answer of ``method`` ``path`` (an OpenAPI path) by the spec."""
    operation = spec["paths"].get(path, {}).get(method.lower())
    where = f"{method.upper()} {path} -> {status}"
    if operation is None:
        return [f"{where}: the spec has no such operation"]
    response = operation["responses"].get(str(status))
    if response is None:
        return [
            f"{where}: status {status} is not in the spec ({', '.join(operation['responses'])})"
        ]
    content = response.get("content")
    if not content:
        return [f"{where}: the spec declares no body, got {len(body)} bytes"] if body else []
    media = _media_type(content_type)
    if media not in content and "*/*" in content:
        return []  # any media (a file served as it is stored)
    if media not in content:
        return [f"{where}: media type {media!r} is not declared ({', '.join(content)})"]
    if media != "application/json":
        return []
    try:
        document = json.loads(body)
    except ValueError as exc:
        return [f"{where}: the body is not JSON: {exc}"]
    validator = Draft202012Validator(content[media]["schema"])
    return [
        f"{where}: {'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(document)
    ][:5]


def check_response(app: Flask, environ: dict[str, Any], response: TestResponse) -> None:
    """Raise :class:`SpecViolation` when ``response`` does not match its operation."""
    adapter = app.url_map.bind_to_environ(environ)
    try:
        rule, _ = adapter.match(return_rule=True)
    except HTTPException:
        return  # no route matched (or a redirect to add a slash): no operation to check
    if rule.endpoint == "static":
        return
    path, _ = openapi_path(rule)
    problems = response_problems(
        spec_for(app),
        path,
        environ["REQUEST_METHOD"],
        response.status_code,
        response.content_type or "",
        response.get_data(),
    )
    if problems:
        raise SpecViolation("answer does not match /openapi.json:\n" + "\n".join(problems))


class SpecCheckingClient(FlaskClient):
    """A test client that validates every answer against the app's OpenAPI document."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        response = super().open(*args, **kwargs)
        import os

        if os.environ.get("HMA_OPENAPI_RECORD"):
            _record(self.application, response.request.environ, response)
        elif response.request.method not in ("HEAD", "OPTIONS"):
            check_response(self.application, response.request.environ, response)
        return response


def _record(app: Flask, environ: dict[str, Any], response: TestResponse) -> None:
    import os

    adapter = app.url_map.bind_to_environ(environ)
    try:
        rule, _ = adapter.match(return_rule=True)
    except HTTPException:
        return
    body: Any = None
    if _media_type(response.content_type) == "application/json":
        try:
            body = json.loads(response.get_data())
        except ValueError:
            body = "<<not json>>"
    line = {
        "rule": rule.rule,
        "endpoint": rule.endpoint,
        "method": environ["REQUEST_METHOD"],
        "status": response.status_code,
        "media": _media_type(response.content_type),
        "body": body,
    }
    with open(os.environ["HMA_OPENAPI_RECORD"] + f".{os.getpid()}", "a") as out:
        out.write(json.dumps(line) + "\n")
