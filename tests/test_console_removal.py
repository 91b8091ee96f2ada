"""Deleting rules and handlers from the console: confirmed, CSRF-checked, admin only, and
with the API's own refusals (a handler a rule uses; deliveries still to make)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from hma_framework.actions.delivery_queries import DeliveryQueries
from hma_framework.actions.handlers import handlers_of
from hma_framework.actions.rule_store import RuleStore
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
from tests.test_console import csrf_of, page_token, sign_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A failed delivery waits an hour for its retry: it stays "still to make".
    return quick_retries(settings, retry_intervals_seconds=(3600,))


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


def _rule_names(runtime: Runtime) -> list[str]:
    return [r["name"] for r in RuleStore(runtime.store).all()]


def _handler_names(runtime: Runtime) -> list[str]:
    return [h["name"] for h in handlers_of(runtime).all()]


def test_rules_and_handlers_are_deleted_after_a_confirmation(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    bank_with(runtime, "known")
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    made = client.post(
        "/ui/actions/handlers",
        data={
            "csrf_token": token,
            "name": "hook",
            "type": "webhook",
            "config": f'{{"url": "{receiver.url}/{{content_id}}"}}',
            "secrets": f'{{"signing_secrets": ["{new_secret()}"]}}',
        },
    )
    assert made.status_code == 303, made.text
    rule = '{"name": "all", "must_have": [], "action": {"handler": "hook"}}'
    made = client.post("/ui/actions/rules", data={"csrf_token": token, "rule": rule})
    assert made.status_code == 303, made.text

    # The edit pages link to a confirmation page; nothing is deleted by following a link.
    assert 'href="/ui/actions/rules/all/delete"' in client.get("/ui/actions/rules/all").text
    assert 'href="/ui/actions/handlers/hook/delete"' in client.get("/ui/actions/handlers/hook").text
    confirm = client.get("/ui/actions/rules/all/delete")
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.text
    assert csrf_of(confirm.text) == token and _rule_names(runtime) == ["all"]
    assert client.get("/ui/actions/rules/nope/delete").status_code == 404
    assert client.get("/ui/actions/handlers/nope/delete").status_code == 404

    # Without the session's token, or without confirming, nothing happens.
    forged = client.post("/ui/actions/rules/all/delete", data={"confirm": "yes"})
    assert forged.status_code == 403
    unconfirmed = client.post("/ui/actions/rules/all/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 400 and "Confirm to delete" in unconfirmed.text
    assert _rule_names(runtime) == ["all"]

    # A handler a rule uses is refused with the API's message.
    used = client.post(
        "/ui/actions/handlers/hook/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert used.status_code == 409 and "used by rule(s) all" in used.text
    assert _handler_names(runtime) == ["hook"]

    # A match makes a delivery, which fails and waits for its retry: still to make.
    receiver.script = [(500, {})]
    sent = client.post(
        "/submit/hash/",
        json={
            "content_id": "c-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": PDQ,
        },
        headers=Tokens.header(tokens.submit),
    )
    assert sent.status_code < 300, sent.text
    run_jobs(worker_runtime)
    waiting = DeliveryQueries(runtime.store).find(content_id="c-1", limit=10)
    assert [d["status"] for d in waiting] == ["pending"]

    deleted = client.post(
        "/ui/actions/rules/all/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert deleted.status_code == 303
    assert deleted.headers["Location"].endswith("/ui/actions?deleted=rule+all")
    assert "Deleted rule all." in client.get(deleted.headers["Location"]).text
    assert _rule_names(runtime) == []
    again = client.post(
        "/ui/actions/rules/all/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert again.status_code == 404

    held_back = client.post(
        "/ui/actions/handlers/hook/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert held_back.status_code == 409 and "deliveries still to make" in held_back.text
    assert 'name="force"' in held_back.text  # the confirmation again, with the box to tick
    assert _handler_names(runtime) == ["hook"]
    forced = client.post(
        "/ui/actions/handlers/hook/delete",
        data={"csrf_token": token, "confirm": "yes", "force": "yes"},
    )
    assert forced.status_code == 303
    assert _handler_names(runtime) == []
    assert DeliveryQueries(runtime.store).find(content_id="c-1", limit=10) == []
    assert re.search(r"Deleted handler hook\.", client.get(forced.headers["Location"]).text)


def test_a_read_key_cannot_delete(client: Any, runtime: Runtime, tokens: Tokens) -> None:
    admin = Tokens.header(tokens.admin)
    hook = {
        "name": "nobody",
        "type": "webhook",
        "config": {"url": "http://127.0.0.1:9/x", "signing_secrets": [new_secret()]},
    }
    assert client.post("/handlers", json=hook, headers=admin).status_code < 300
    rule = {"name": "kept", "must_have": [], "action": {"handler": "nobody"}}
    assert client.post("/rules", json=rule, headers=admin).status_code < 300
    sign_in(client, tokens.read)
    token = page_token(client, "/ui/matches")
    assert client.get("/ui/actions/rules/kept/delete").status_code == 403
    for path in ("/ui/actions/rules/kept/delete", "/ui/actions/handlers/nobody/delete"):
        refused = client.post(path, data={"csrf_token": token, "confirm": "yes"})
        assert refused.status_code == 403, path
    assert _rule_names(runtime) == ["kept"] and _handler_names(runtime) == ["nobody"]
