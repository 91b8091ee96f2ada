"""The console's Rules and handlers and Deliveries pages, with a real webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.testing import Tokens, run_jobs
from tests.test_actions_support import (
    PDQ,
    Receiver,
    bank_with,
    new_secret,
    quick_retries,
    registry_with_webhook,
)
from tests.test_console import page_token, sign_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_handlers_and_rules_are_made_with_the_apis_checks_and_secrets_stay_hidden(
    client: Any, runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    sign_in(client, tokens.read)
    assert client.get("/ui/actions").status_code == 403  # rules and handlers need admin
    client.post("/ui/logout", data={"csrf_token": page_token(client)})
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    secret = new_secret()
    bad_config = client.post(
        "/ui/actions/handlers",
        data={
            "csrf_token": token,
            "name": "hook",
            "type": "webhook",
            "config": "{",
            "secrets": f'{{"signing_secrets": ["{secret}"]}}',
        },
    )
    assert bad_config.status_code == 400 and "not valid JSON" in bad_config.text
    assert secret not in bad_config.text
    missing_url = client.post(
        "/ui/actions/handlers",
        data={
            "csrf_token": token,
            "name": "hook",
            "type": "webhook",
            "config": "{}",
            "secrets": f'{{"signing_secrets": ["{secret}"]}}',
        },
    )
    assert missing_url.status_code == 400 and "url" in missing_url.text
    assert secret not in missing_url.text
    made = client.post(
        "/ui/actions/handlers",
        data={
            "csrf_token": token,
            "name": "hook",
            "type": "webhook",
            "config": f'{{"url": "{receiver.url}/{{content_id}}"}}',
            "secrets": f'{{"signing_secrets": ["{secret}"]}}',
        },
    )
    assert made.status_code == 303, made.text
    listing = client.get("/ui/actions").text
    assert "signing_secrets" in listing and secret not in listing
    assert secret[6:20] not in listing

    unknown = client.post(
        "/ui/actions/rules",
        data={
            "csrf_token": token,
            "rule": '{"name": "all", "must_have": [], "action": {"handler": "nope"}}',
        },
    )
    through_api = client.post(
        "/rules",
        json={"name": "all", "must_have": [], "action": {"handler": "nope"}},
        headers=Tokens.header(tokens.admin),
    )
    assert unknown.status_code == through_api.status_code == 400
    assert through_api.json["message"] in unknown.text.replace("&#39;", "'")
    invalid = client.post(
        "/ui/actions/rules",
        data={"csrf_token": token, "rule": '{"name": "all", "bogus": 1}'},
    )
    assert invalid.status_code == 400 and "bogus" in invalid.text
    rule = client.post(
        "/ui/actions/rules",
        data={
            "csrf_token": token,
            "rule": '{"name": "all", "must_have": [], "action": {"handler": "hook"}}',
        },
    )
    assert rule.status_code == 303, rule.text
    assert 'class="rule"' in client.get("/ui/actions").text


def test_deliveries_put_the_given_up_first_and_redeliver(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    bank_with(runtime, "known")  # the handler and rule are made through the console below
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    client.post(
        "/ui/actions/handlers",
        data={
            "csrf_token": token,
            "name": "hook",
            "type": "webhook",
            "config": f'{{"url": "{receiver.url}/{{content_id}}"}}',
            "secrets": f'{{"signing_secrets": ["{new_secret()}"]}}',
        },
    )
    client.post(
        "/ui/actions/rules",
        data={
            "csrf_token": token,
            "rule": '{"name": "all", "must_have": [], "action": {"handler": "hook"}}',
        },
    )
    receiver.script = [(500, {})] * 4
    for content_id in ("bad-1",):
        sent = client.post(
            "/submit/hash/",
            json={
                "content_id": content_id,
                "content_type": "photo",
                "signal_type": "pdq",
                "signal_value": PDQ,
            },
            headers=Tokens.header(tokens.submit),
        )
        assert sent.status_code < 300, sent.text
    run_jobs(worker_runtime)
    listing = client.get("/ui/deliveries")
    assert listing.status_code == 200
    given_up = listing.text.split("<h2>Newest</h2>")[0]
    assert "bad-1" in given_up and "(gave up)" in given_up
    delivery_id = int(given_up.split('href="/ui/deliveries/')[1].split('"')[0])
    detail = client.get(f"/ui/deliveries/{delivery_id}").text
    assert detail.count('class="attempt"') == 4 and ">500<" in detail
    assert f'href="/ui/deliveries/{delivery_id}"' in client.get("/ui/").text  # on the Overview
    receiver.script = [(200, {})]
    again = client.post(
        f"/ui/deliveries/{delivery_id}/redeliver", data={"csrf_token": page_token(client)}
    )
    assert again.status_code == 303
    run_jobs(worker_runtime)
    detail = client.get(f"/ui/deliveries/{delivery_id}").text
    assert "succeeded" in detail and detail.count('class="attempt"') == 5
    busy = client.get("/ui/deliveries?status=succeeded").text
    assert "bad-1" in busy and "Given up" not in busy
    assert client.get("/ui/deliveries?status=weird").status_code == 400
