"""``/rules``, ``/handlers`` and ``/deliveries``: shapes, validation, conflicts, scopes."""

from __future__ import annotations

from typing import Any

import pytest

from hma_framework.registry import Registry
from hma_framework.testing import Tokens
from tests.test_actions_support import new_secret, registry_with_webhook

HOOK = {"url": "http://127.0.0.1:9/{content_id}", "signing_secrets": [new_secret()]}


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


class Admin:
    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = Tokens.header(token)

    def __call__(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        return self.client.open(
            path, method=method, json=body, headers=self.headers, query_string=query
        )


@pytest.fixture
def admin(client: Any, tokens: Tokens) -> Admin:
    return Admin(client, tokens.admin)


@pytest.fixture
def hook(admin: Admin) -> str:
    response = admin("POST", "/handlers", {"name": "hook", "type": "webhook", "config": HOOK})
    assert response.status_code == 201, response.json
    return "hook"


def test_rule_lifecycle(admin: Admin, hook: str) -> None:
    body = {
        "name": "csam",
        "must_have": [{"label": "tag", "in": ["csam"]}, {"max_distance": 10}],
        "must_not_have": [{"field": "reviewed"}],
        "action": {"handler": hook, "params": {"queue": "urgent"}, "write_back": "seen"},
    }
    created = admin("POST", "/rules", body)
    assert created.status_code == 201, created.json
    rule = created.json
    assert rule["enabled"] is True and rule["must_have"] == body["must_have"]
    assert rule["action"] == body["action"] and rule["created_at"]
    assert admin("POST", "/rules", body).status_code == 409
    assert admin("GET", "/rules").json["rules"] == [rule]
    assert admin("GET", "/rules/csam").json == rule

    replaced = admin("PUT", "/rules/csam", {"name": "csam-v2", "action": {"handler": hook}})
    assert replaced.status_code == 200, replaced.json
    assert replaced.json["name"] == "csam-v2" and replaced.json["must_have"] == []
    assert replaced.json["action"] == {"handler": hook, "params": {}}
    assert admin("GET", "/rules/csam").status_code == 404
    admin("POST", "/rules", {**body, "name": "other"})
    clash = admin("PUT", "/rules/other", {"name": "csam-v2", "action": {"handler": hook}})
    assert clash.status_code == 409
    assert admin("PUT", "/rules/nope", body).status_code == 404

    in_use = admin("DELETE", f"/handlers/{hook}")
    assert in_use.status_code == 409 and "csam-v2" in in_use.json["message"]
    assert admin("DELETE", "/rules/csam-v2").status_code == 204
    assert admin("DELETE", "/rules/other").status_code == 204
    assert admin("DELETE", "/rules/other").status_code == 404
    assert admin("DELETE", f"/handlers/{hook}").status_code == 204
    assert admin("GET", "/handlers").json["handlers"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": {"handler": "missing"}}, "no configured handler named 'missing'"),
        ({"action": "hook"}, "action must be an object"),
        ({"action": {"handler": "hook", "params": []}}, "action.params must be an object"),
        ({"action": {"handler": "hook", "write_back": "maybe"}}, "write_back must be one of"),
        ({"action": {"handler": "hook", "extra": 1}}, "unknown field(s) extra"),
        ({"name": "has space"}, "name must be"),
        ({"enabled": "yes"}, "enabled must be true or false"),
        ({"must_have": {"label": "bank"}}, "must_have must be a list"),
        ({"must_have": ["bank"]}, "must_have[0]: a condition is a JSON object"),
        ({"must_have": [{"labl": "bank"}]}, "must_have[0]: a condition needs 'label'"),
        ({"must_have": [{"label": "bnk", "equals": "x"}]}, "unknown label 'bnk'"),
        (
            {"must_not_have": [{"label": "bank", "equals": "a", "in": ["b"]}]},
            "must_not_have[0]: give 'equals' or 'in', not both",
        ),
        ({"must_have": [{"label": "tag", "in": []}]}, "must not be empty"),
        ({"must_have": [{"label": "tag", "in": "csam"}]}, "in: expected a list of strings"),
        ({"must_have": [{"label": "tag", "equals": 5}]}, "equals: expected a string"),
        ({"must_have": [{"label": "tag", "typo": 5}]}, "unknown key(s) typo"),
        ({"must_have": [{"max_distance": -1}]}, "max_distance must be 0 or more"),
        ({"must_have": [{"max_distance": "10"}]}, "max_distance: expected an integer"),
        ({"must_have": [{"max_distance": True}]}, "max_distance: expected an integer"),
        ({"must_have": [{"field": ""}]}, "field must not be empty"),
        ({"whatever": 1}, "unknown field(s) whatever"),
    ],
)
def test_malformed_rules_are_a_400_naming_the_problem(
    admin: Admin, hook: str, change: dict[str, Any], message: str
) -> None:
    body = {"name": "r", "action": {"handler": hook}, **change}
    response = admin("POST", "/rules", body)
    assert response.status_code == 400, response.json
    assert message in response.json["message"]
    assert admin("GET", "/rules").json["rules"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "h", "type": "carrier_pigeon", "config": {}}, "unknown handler type"),
        ({"name": "h", "type": "webhook", "config": []}, "field 'config' must be"),
        ({"name": "bad name", "type": "webhook", "config": HOOK}, "name must be"),
        ({"name": "h", "type": "webhook", "config": {}}, "config.url: required field missing"),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "url": "ftp://x/"}},
            "absolute http:// or https:// URL",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "url": "http://x/{id}"}},
            "only {content_id} is substituted",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "url": "http://u:p@x/"}},
            "must not carry credentials",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "method": "PATCH"}},
            "'method' must be in",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "headers": {"Host": "x"}}},
            "'Host' is set by the handler itself",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "headers": {"A": "b\r\nC: d"}}},
            "contains a line break",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "signing_secrets": []}},
            "needs at least one whsec_ secret",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "signing_secrets": ["abc"]}},
            "signing_secrets[0]: a signing secret starts with 'whsec_'",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "signing_secrets": ["whsec_YQ"]}},
            "24 to 64 bytes",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "timeout_seconds": 0}},
            "timeout_seconds must be more than 0",
        ),
        (
            {"name": "h", "type": "webhook", "config": {**HOOK, "colour": "red"}},
            "unknown field(s) colour",
        ),
    ],
)
def test_malformed_handlers_are_a_400_naming_the_problem(
    admin: Admin, body: dict[str, Any], message: str
) -> None:
    response = admin("POST", "/handlers", body)
    assert response.status_code == 400, response.json
    assert message in response.json["message"]


def test_handler_views_updates_and_conflicts(admin: Admin, hook: str) -> None:
    view = admin("GET", f"/handlers/{hook}").json
    assert view["type"] == "webhook" and view["enabled"] and view["installed"]
    assert view["config"] == {
        "url": HOOK["url"],
        "method": "POST",
        "headers": {},
        "timeout_seconds": None,
    }
    assert view["secrets_set"] == ["signing_secrets"]
    again = admin("POST", "/handlers", {"name": hook, "type": "webhook", "config": HOOK})
    assert again.status_code == 409
    assert admin("GET", "/handlers/nope").status_code == 404
    assert admin("PUT", "/handlers/nope", {"enabled": False}).status_code == 404
    retyped = admin("PUT", f"/handlers/{hook}", {"type": "log_line", "config": {}})
    assert retyped.status_code == 400 and "cannot change" in retyped.json["message"]
    disabled = admin("PUT", f"/handlers/{hook}", {"enabled": False}).json
    assert disabled["enabled"] is False and disabled["config"] == view["config"]
    moved = admin("PUT", f"/handlers/{hook}", {"config": {"url": "http://127.0.0.1:9/v2"}}).json
    assert moved["config"]["url"].endswith("/v2") and moved["secrets_set"] == ["signing_secrets"]
    types = admin("GET", "/handlers/types").json["types"]
    assert types["webhook"]["secret_fields"] == ["signing_secrets", "secret_headers"]
    assert types["webhook"]["required"] == ["url", "signing_secrets"]


def test_scopes(client: Any, tokens: Tokens, hook: str) -> None:
    def status(token: str, method: str, path: str) -> int:
        return int(client.open(path, method=method, headers=Tokens.header(token)).status_code)

    for path in ("/rules", "/handlers", "/handlers/types", f"/handlers/{hook}"):
        assert status(tokens.read, "GET", path) == 403
        assert status(tokens.admin, "GET", path) == 200
    assert status(tokens.read, "GET", "/deliveries") == 200
    assert status(tokens.submit, "GET", "/deliveries") == 403
    assert status(tokens.read, "POST", "/deliveries/1/redeliver") == 403
    assert client.get("/deliveries").status_code == 401


def test_delivery_listing_arguments(admin: Admin) -> None:
    assert admin("GET", "/deliveries").json == {"deliveries": [], "next_cursor": None}
    bad = admin("GET", "/deliveries", status="lost")
    assert bad.status_code == 400 and "status must be one of" in bad.json["message"]
    assert admin("GET", "/deliveries", limit="0").status_code == 400
    assert admin("GET", "/deliveries", cursor="x").status_code == 400
    assert admin("GET", "/deliveries/42").status_code == 404
    assert admin("POST", "/deliveries/42/redeliver").status_code == 404
