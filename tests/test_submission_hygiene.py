"""Smaller review findings: credentials in URLs, unreadable ids, superseded matches, secrets."""

from __future__ import annotations

from typing import Any

import pytest

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens
from tests.test_actions_support import new_secret

STORED = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
OTHER = "0" * 64
WITH_CREDENTIALS = "http://alice:s3cret@127.0.0.1:1/photo.jpg"


def _call(client: Any, token: str, method: str, path: str, body: Any = None) -> Any:
    return client.open(path, method=method, json=body, headers=Tokens.header(token))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/submit/url/", {"content_id": "c-1", "content_type": "photo"}),
        (
            "/submit/hash/",
            {"content_id": "c-1", "content_type": "photo", "signal_type": "pdq"},
        ),
        ("/lookup", {"content_type": "photo"}),
        ("/banks/b/members", {"content_type": "photo"}),
        ("/banks/b/members", {"members": [{"content_type": "photo"}]}),
    ],
)
def test_urls_with_credentials_are_refused(
    client: Any, runtime: Runtime, tokens: Tokens, path: str, body: dict[str, Any]
) -> None:
    Banks(runtime.store).create_bank("b")
    if "members" in body:
        body = {"members": [{**body["members"][0], "content_url": WITH_CREDENTIALS}]}
    else:
        body = {**body, "content_url": WITH_CREDENTIALS}
    if path == "/submit/hash/":
        body["signal_value"] = STORED
    response = _call(client, tokens.admin, "POST", path, body)
    assert response.status_code == 400, response.get_data(as_text=True)
    text = response.get_data(as_text=True)
    assert "credentials" in text and "s3cret" not in text
    assert _call(client, tokens.admin, "GET", "/content/c-1").status_code == 404


@pytest.mark.parametrize("suffix", ["/matches", "/actions"])
def test_content_ids_that_could_not_be_read_back_are_refused(
    client: Any, tokens: Tokens, suffix: str
) -> None:
    body = {
        "content_id": f"post{suffix}",
        "content_type": "photo",
        "signal_type": "pdq",
        "signal_value": STORED,
    }
    response = _call(client, tokens.submit, "POST", "/submit/hash/", body)
    assert response.status_code == 400 and suffix in response.json["message"]
    fine = {**body, "content_id": f"post{suffix}/1"}
    assert _call(client, tokens.submit, "POST", "/submit/hash/", fine).status_code == 200
    read = _call(client, tokens.read, "GET", f"/content/post{suffix}/1")
    assert read.status_code == 200 and read.json["content_id"] == f"post{suffix}/1"


def test_a_forced_resubmission_supersedes_the_old_matches(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    Banks(runtime.store).create_bank("known")
    Banks(runtime.store).add_member("known", NewMember(signals=(("pdq", STORED),)))
    body = {"content_id": "s-1", "content_type": "photo", "signal_type": "pdq"}

    def submit(value: str) -> None:
        sent = {**body, "signal_value": value, "force_resubmit": True}
        response = _call(client, tokens.submit, "POST", "/submit/hash/", sent)
        assert response.status_code == 200, response.get_data(as_text=True)

    def matches() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = _call(
            client, tokens.read, "GET", "/content/s-1/matches"
        ).json["matches"]
        return found

    submit(STORED)
    [first] = matches()
    assert first["superseded"] is False and first["superseded_at"] is None
    submit(OTHER)  # no longer matches: the old match is history
    [old] = matches()
    assert old["id"] == first["id"] and old["superseded"] is True and old["superseded_at"]
    record = _call(client, tokens.read, "GET", "/content/s-1").json
    assert record["status"] == "no_match" and record["match_count"] == 0
    submit(STORED)  # matches again: the same match is current again
    [again] = matches()
    assert again["id"] == first["id"] and again["superseded"] is False
    assert _call(client, tokens.read, "GET", "/content/s-1").json["match_count"] == 1


def test_secret_header_values_must_be_long_enough_to_hide(client: Any, tokens: Tokens) -> None:
    def create(name: str, value: str) -> Any:
        config = {
            "url": "http://127.0.0.1:1/hook",
            "signing_secrets": [new_secret()],
            "secret_headers": {"X-Key": value},
        }
        return _call(
            client,
            tokens.admin,
            "POST",
            "/handlers",
            {"name": name, "type": "webhook", "config": config},
        )

    short = create("short", "ab")
    assert short.status_code == 400, short.get_data(as_text=True)
    assert "at least 8 characters" in short.json["message"]
    assert create("long", "abcdefgh").status_code == 201
