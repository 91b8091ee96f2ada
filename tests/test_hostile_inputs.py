"""Hostile input to every route never earns a 5xx: the client gets a 4xx with a message.

The routes come from ``app.url_map``, so a route added later is covered without editing this
file. Each request carries a hostile query string too, and goes out with each scope's key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens

PDQ = "f" * 64
NESTED = "[" * 50_000 + "]" * 50_000
HUGE_INT = "1" * 5000

#: Raw request bodies (sent as application/json), each a way a parser or validator can break.
BODIES: tuple[bytes, ...] = (
    NESTED.encode(),
    ('{"a": ' + NESTED + "}").encode(),
    ('{"content_id": "x", "members": [' + "{" * 40 + "}" * 40 + "]}").encode(),
    ('{"content_id": ' + HUGE_INT + ', "limit": ' + HUGE_INT + "}").encode(),
    b'{"content_id": "\xff\xfe", "name": "\xc0"}',
    b"1e999999",
    b"[]",
    b'"just a string"',
    b"",
    json.dumps(
        {
            "content_id": "h-1",
            "content_type": "photo",
            "_upload": "AAAA",
            "content_url": None,
            "content_bytes": None,
            "signal_type": "pdq",
            "signal_value": PDQ,
        }
    ).encode(),
    json.dumps(
        {
            "content_id": "h-2",
            "content_type": "photo",
            "content_url": "http://user:secret@127.0.0.1:1/x.jpg",
            "name": "b2",
        }
    ).encode(),
    json.dumps(
        {
            "content_id": ["x"],
            "content_type": {"a": 1},
            "members": "nope",
            "thresholds": [1],
            "tags": {"a": 1},
            "signals": [None, 1, "x", {"signal_type": 1}],
            "additional_fields": [1, None],
            "force_resubmit": "yes",
            "name": 12,
            "description": [],
            "enabled": "maybe",
            "notes": 5,
            "threshold": 2**70,
            "signal_a": PDQ,
            "signal_b": 7,
            "config": [],
            "conditions": "x",
            "actions": 5,
            "labels": {"x": NESTED[:100]},
            "file_type": "../../etc",
            "content_url": "http://[::1",
            "content_bytes": "###",
        }
    ).encode(),
    json.dumps(
        {"content_id": "nul\x00", "name": "n\x00", "notes": "\x00", "tags": ["\x00"]}
    ).encode(),
    b'{"signal_type": "pdq", "signal_value": "' + PDQ.encode() + b'", "notes": "a\\u0000b"}\n',
    json.dumps({"members": [{"_upload": "AAAA", "content_type": "photo"}] * 3}).encode(),
    json.dumps({"members": [{"content_url": None, "content_type": "photo"}]}).encode(),
)

#: Query strings that int(), fromisoformat() and the database once disagreed about.
QUERIES: tuple[str, ...] = (
    "limit=%C2%B2&cursor=%D9%A3",
    "limit=99999999999999999999999&cursor=9223372036854775808",
    "since=9999-12-31T23:59:59-23:59&until=0001-01-01T00:00:00%2B23:59",
    "since=0001-01-01&until=9999-12-31T23:59:59.999999&limit=-1&enabled=%FF&strict=true",
)

#: Values for path variables; `int` ones beyond 2**63 must not reach the database.
INT_VALUES = ("1", "9223372036854775807", "9223372036854775808", str(2**80))
TEXT_VALUES = ("b", "x" * 300, "%C2%B2", "no/matches", "%00")


def _paths(rule: Any) -> Iterator[str]:
    """The rule's path with each hostile value in every variable (one variable at a time)."""
    names = sorted(rule.arguments)
    defaults = {n: ("1" if _is_int(rule, n) else "b") for n in names}
    variants = [defaults] if names else [{}]
    for name in names:
        for value in INT_VALUES if _is_int(rule, name) else TEXT_VALUES:
            variants.append({**defaults, name: value})
    for values in variants:
        path = rule.rule
        for name in names:
            path = path.replace(f"<{_converter_text(rule, name)}{name}>", values[name])
        yield path


def _is_int(rule: Any, name: str) -> bool:
    return type(rule._converters[name]).__name__.lower().endswith(("intconverter", "idconverter"))


def _converter_text(rule: Any, name: str) -> str:
    """The ``converter:`` prefix as written in the rule, e.g. ``int:`` or ``path:``."""
    start = rule.rule.index(f"{name}>")
    opening = rule.rule.rindex("<", 0, start)
    return rule.rule[opening + 1 : start]


@pytest.fixture
def seeded(runtime: Runtime) -> Runtime:
    """A bank with a member and a content item, so valid names get past their 404."""
    banks = Banks(runtime.store)
    banks.create_bank("b")
    banks.add_member("b", NewMember(signals=(("pdq", PDQ),)))
    return runtime


def test_no_route_answers_5xx_to_hostile_input(app: Any, seeded: Runtime, tokens: Tokens) -> None:
    client = app.test_client()
    keys = {"admin": tokens.admin, "read": tokens.read, "submit": tokens.submit}
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static"]
    assert len(rules) > 30, "every route is enumerated"
    # Deleting routes last, so the seeded bank is there for the others.
    ordered = sorted(
        ((rule, method) for rule in rules for method in sorted(rule.methods - {"HEAD", "OPTIONS"})),
        key=lambda pair: pair[1] == "DELETE",
    )
    failures: list[str] = []
    sent = 0
    for rule, method in ordered:
        for path_index, path in enumerate(_paths(rule)):
            for scope, token in keys.items():
                # Every hostile body with each key on the plain path; one body elsewhere.
                bodies = BODIES if path_index == 0 else BODIES[:1] + BODIES[-5:]
                for index, body in enumerate(bodies):
                    query = QUERIES[index % len(QUERIES)]
                    response = client.open(
                        f"{path}?{query}",
                        method=method,
                        data=body,
                        headers={**Tokens.header(token), "Content-Type": "application/json"},
                    )
                    sent += 1
                    status = response.status_code
                    # The console is for browsers: its errors are pages, the API's are JSON
                    # (an id past the routes' range never reaches the console: JSON 404).
                    console = rule.rule.startswith("/ui")
                    shaped = response.is_json or (console and response.mimetype == "text/html")
                    if status >= 500 or (status >= 400 and not shaped):
                        failures.append(
                            f"{method} {path}?{query} [{scope}] body#{index} -> "
                            f"{response.status_code} {response.get_data(as_text=True)[:120]}"
                        )
                    elif status >= 400 and not console:
                        assert response.json is not None and response.json.get("message")
    print(f"sent {sent} hostile requests to {len(ordered)} route/method pairs")
    assert not failures, "\n".join(failures[:40])


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/submit/hash/", NESTED, 400, "nested more than"),
        ("POST", "/rules", '{"name": ' + HUGE_INT + "}", 400, "digits"),
        ("POST", "/banks/b/members", '{"_upload": "AAAA", "content_type": "photo"}', 400, "signal"),
        ("POST", "/banks/b/members", '{"content_url": null, "content_type": "photo"}', 400, "URL"),
        ("GET", "/matches?limit=%C2%B2", None, 400, "limit must be an integer"),
        ("GET", "/banks/b/members?cursor=%D9%A3", None, 400, "cursor must be an integer"),
        ("GET", "/deliveries?limit=%C2%B2", None, 400, "limit must be an integer"),
        ("GET", "/banks/b/members/9223372036854775808", None, 404, "not found"),
        ("GET", "/deliveries/99999999999999999999", None, 404, "not found"),
        ("GET", "/matches?since=9999-12-31T23:59:59-23:59", None, 400, "ISO 8601"),
        ("GET", "/matches?until=0001-01-01T00:00:00%2B23:59", None, 400, "ISO 8601"),
        ("GET", "/banks/%00", None, 400, "NUL"),
        ("POST", "/banks", '{"name": "a\\u0000"}', 400, "NUL"),
    ],
)
def test_each_reported_case_is_a_4xx_saying_why(
    client: Any,
    seeded: Runtime,
    tokens: Tokens,
    method: str,
    path: str,
    body: str | None,
    status: int,
    says: str,
) -> None:
    response = client.open(
        path,
        method=method,
        data=body,
        headers={**Tokens.header(tokens.admin), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.get_data(as_text=True)
    assert says in response.json["message"]
