"""``/openapi.json`` describes every route, and answers are checked against it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, jsonify
from jsonschema import Draft202012Validator

from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens
from hma_framework.testing_openapi import SpecCheckingClient, SpecViolation, response_problems
from hma_framework.web.api_schema import INT, obj, operation
from hma_framework.web.app import create_app
from hma_framework.web.auth import requires_scope
from hma_framework.web.openapi import build_spec, openapi_path

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _rules(app: Any) -> set[tuple[str, str]]:
    return {
        (method.lower(), openapi_path(rule)[0])
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in (rule.methods or set()) - IGNORED_METHODS
    }


def test_every_route_has_a_spec_entry(app: Any, client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    documented = {(m, path) for path, methods in spec["paths"].items() for m in methods}
    missing = _rules(app) - documented
    assert not missing, f"routes without an OpenAPI entry: {sorted(missing)}"
    assert "x-undocumented" not in spec
    assert len(documented) >= 100  # the API, the HMA 2.0 routes and the console


def test_route_coverage_fails_for_an_undeclared_route(runtime: Runtime) -> None:
    extra = Blueprint("extra", __name__)

    @extra.get("/extra/<int:n>")
    @requires_scope("read")
    def undeclared(n: int) -> Any:
        return jsonify(n=n)

    spec = build_spec(create_app(runtime, extra_blueprints=[extra]))
    assert spec["x-undocumented"] == ["GET /extra/<int:n>"]
    assert "/extra/{n}" not in spec["paths"]


def test_the_spec_is_valid_openapi_3_1(client: Any) -> None:
    from openapi_spec_validator import validate

    spec = client.get("/openapi.json").get_json()
    validate(spec)  # raises on any structural error
    for methods in spec["paths"].values():
        for op in methods.values():
            for answer in op["responses"].values():
                for media in answer.get("content", {}).values():
                    Draft202012Validator.check_schema(media["schema"])


def test_keyed_operations_name_their_scope_and_errors(client: Any) -> None:
    spec = client.get("/openapi.json").get_json()
    ops = spec["paths"]
    assert ops["/banks"]["post"]["security"] == [{"apiKey": ["admin"]}]
    assert ops["/banks"]["get"]["security"] == [{"apiKey": ["read"]}]
    assert ops["/submit/hash/"]["post"]["security"] == [{"apiKey": ["submit"]}]
    assert ops["/health"]["get"]["security"] == []
    assert ops["/metrics"]["get"]["security"] == [{"apiKey": ["read"]}]
    assert ops["/ui/banks"]["get"]["security"] == [{"consoleSession": ["read"]}]
    for status in ("400", "401", "403", "404"):
        answer = ops["/banks/{name}"]["get"]["responses"][status]
        assert (
            answer["content"]["application/json"]["schema"]
            == spec["components"]["schemas"]["Error"]
        )
    assert "401" not in ops["/health"]["get"]["responses"]


def test_openapi_and_docs_need_no_key_and_obey_the_csp(client: Any) -> None:
    assert client.get("/openapi.json").status_code == 200
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = page.get_data(as_text=True)
    assert '<script src="/docs/openapi-docs.js"' in html
    assert "<script>" not in html  # no inline script
    assert "http" not in html.replace('href="/openapi.json"', "")  # no third-party origin
    script = client.get("/docs/openapi-docs.js")
    assert script.status_code == 200 and 'fetch("/openapi.json")' in script.get_data(as_text=True)
    assert client.get("/docs/openapi-docs.css").status_code == 200


def test_the_checking_client_fails_on_a_drifted_answer(runtime: Runtime) -> None:
    """A view answering a shape its declaration does not allow fails the test that called it."""
    drift = Blueprint("drift", __name__)

    @drift.get("/drift")
    @requires_scope("read")
    @operation("declared as {count: integer}", responses={200: obj(count=INT)})
    def drifted() -> Any:
        return jsonify(count="three")

    @drift.get("/drift/status")
    @requires_scope("read")
    @operation("declared to answer 200 only", responses={200: obj(count=INT)})
    def undeclared_status() -> Any:
        return jsonify(message="gone"), 410

    app = create_app(runtime, extra_blueprints=[drift])
    app.test_client_class = SpecCheckingClient
    key = runtime.api_keys.create("drift", ["read"]).token
    client = app.test_client()
    with pytest.raises(SpecViolation, match="count: 'three' is not of type 'integer'"):
        client.get("/drift", headers={"Authorization": f"Bearer {key}"})
    with pytest.raises(SpecViolation, match="status 410 is not in the spec"):
        client.get("/drift/status", headers={"Authorization": f"Bearer {key}"})
    # The errors every keyed route may give are declared, so a 401 passes.
    assert client.get("/drift").status_code == 401


def test_response_problems_checks_media_type_and_body() -> None:
    spec = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "200": {"content": {"application/json": {"schema": obj(n=INT)}}},
                        "204": {"description": "none"},
                    }
                }
            }
        }
    }
    assert response_problems(spec, "/x", "GET", 200, "application/json", b'{"n": 1}') == []
    assert response_problems(spec, "/x", "GET", 200, "text/html", b"<p>")[0].endswith(
        "media type 'text/html' is not declared (application/json)"
    )
    assert (
        "'n' is a required property"
        in response_problems(spec, "/x", "GET", 200, "application/json", b"{}")[0]
    )
    assert response_problems(spec, "/x", "GET", 204, "", b"") == []
    assert "declares no body" in response_problems(spec, "/x", "GET", 204, "", b"x")[0]


def test_existing_answers_are_checked(client: Any, tokens: Tokens) -> None:
    """The suite's ``client`` is the checking one, so every test validates what it sees."""
    assert isinstance(client, SpecCheckingClient)
    answer = client.get("/banks", headers=Tokens.header(tokens.read))
    assert answer.status_code == 200
