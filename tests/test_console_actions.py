"""The console's Rules and handlers and Deliveries pages, with a real webhook receiver."""

from __future__ import annotations

import html
import json
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
from tests.test_console import csrf_of, page_token, sign_in


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


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


def _make_hook(client: Any, token: str, receiver: Receiver, secret: str) -> None:
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


def test_rules_are_edited_with_the_apis_checks(
    client: Any, runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    _make_hook(client, token, receiver, new_secret())
    client.post(
        "/ui/actions/rules",
        data={
            "csrf_token": token,
            "rule": '{"name": "r1", "must_have": [{"label": "bank", "equals": "a"}], '
            '"action": {"handler": "hook"}}',
        },
    )
    listing = client.get("/ui/actions").text
    assert (
        'href="/ui/actions/rules/r1"' in listing and 'href="/ui/actions/handlers/hook"' in listing
    )
    form = client.get("/ui/actions/rules/r1")
    assert form.status_code == 200 and '"equals": "a"' in html.unescape(form.text)
    assert 'action="/ui/actions/rules/r1"' in form.text and "Save rule" in form.text
    assert client.get("/ui/actions/rules/nope").status_code == 404

    body = '{"must_have": [{"label": "colour"}], "action": {"handler": "hook"}}'
    bad = client.post("/ui/actions/rules/r1", data={"csrf_token": token, "rule": body})
    through_api = client.put(
        "/rules/r1", json=json.loads(body), headers=Tokens.header(tokens.admin)
    )
    assert bad.status_code == through_api.status_code == 400
    assert through_api.json["message"] in html.unescape(bad.text)
    assert html.unescape(bad.text).count(body) == 1  # the text is kept, to be fixed
    assert client.post("/ui/actions/rules/r1", data={"rule": body}).status_code == 403  # no CSRF

    renamed = client.post(
        "/ui/actions/rules/r1",
        data={
            "csrf_token": token,
            "rule": '{"name": "r2", "enabled": false, "must_have": [], '
            '"action": {"handler": "hook"}}',
        },
    )
    assert renamed.status_code == 303, renamed.text
    [stored] = client.get("/rules", headers=Tokens.header(tokens.admin)).json["rules"]
    assert (stored["name"], stored["enabled"], stored["must_have"]) == ("r2", False, [])
    missing = client.post(
        "/ui/actions/rules/r1", data={"csrf_token": token, "rule": '{"name": "x"}'}
    )
    assert missing.status_code == 404  # the API's order: 404 before the body's faults

    client.post("/ui/logout", data={"csrf_token": token})
    sign_in(client, tokens.read)
    read_token = page_token(client, "/ui/matches")
    for path in ("/ui/actions/rules/r2", "/ui/actions/handlers/hook"):
        assert client.get(path).status_code == 403
        assert client.post(path, data={"csrf_token": read_token, "rule": "{}"}).status_code == 403
    checked = client.post("/ui/actions/check", data={"csrf_token": read_token, "rule": "{}"})
    assert checked.status_code == 403 and "admin" in checked.text
    assert "Rules and handlers" not in client.get("/ui/matches").text


def test_would_this_rule_fire_uses_the_actioners_labels(
    client: Any, runtime: Runtime, worker_runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    bank_with(runtime, "known", tags=["csam"])
    sent = client.post(
        "/submit/hash/",
        json={
            "content_id": "c-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": PDQ,
            "additional_fields": ["uploader:42"],
        },
        headers=Tokens.header(tokens.submit),
    )
    assert sent.status_code < 300
    run_jobs(worker_runtime)
    sign_in(client, tokens.admin)
    page = client.get("/ui/actions").text
    token = csrf_of(page)
    match_id = int(page.split('name="match_id"><option value="')[1].split('"')[0])
    assert "c-1 in known" in page

    def check(rule: dict[str, Any], **form: str) -> Any:
        data = {"csrf_token": token, "rule": json.dumps(rule), "match_id": str(match_id)}
        return client.post("/ui/actions/check", data={**data, **form})

    action = {"handler": "not-made-yet"}  # checking does not need the handler to exist
    fires = check(
        {
            "name": "t",
            "must_have": [{"label": "tag", "equals": "csam"}, {"field": "uploader"}],
            "must_not_have": [{"label": "bank", "equals": "other"}],
            "action": action,
        }
    )
    assert fires.status_code == 200 and f"Would fire for match #{match_id}" in fires.text
    assert fires.text.count('class="condition"') == 3
    assert "&#34;member-tag&#34;" in fires.text or "member-tag" in fires.text  # its labels
    assert "Create rule" in fires.text  # a new rule: the form still creates it
    nope = check(
        {
            "name": "t",
            "must_have": [{"max_distance": 0}],
            "must_not_have": [{"label": "tag", "in": ["csam"]}],
            "action": action,
        }
    )
    assert nope.status_code == 200 and "Would not fire" in nope.text
    assert nope.text.count('<td class="check no">') == 1  # only the must_not_have one stops it
    invalid = check({"name": "t", "must_have": [{"label": "colour"}], "action": action})
    assert invalid.status_code == 400 and "unknown label" in html.unescape(invalid.text)
    no_match = check({"name": "t", "action": action}, match_id="")
    assert no_match.status_code == 400 and "Choose a recent match" in no_match.text
    gone = check({"name": "t", "action": action}, match_id="999999")
    assert gone.status_code == 404 and "no match 999999" in gone.text
    forged = client.post("/ui/actions/check", data={"rule": "{}", "match_id": str(match_id)})
    assert forged.status_code == 403

    # a saved rule, checked from its own page, keeps saving to itself
    _make_hook(client, token, receiver, new_secret())
    client.post(
        "/ui/actions/rules",
        data={"csrf_token": token, "rule": '{"name": "saved", "action": {"handler": "hook"}}'},
    )
    saved = client.get("/ui/actions/rules/saved").text
    text = html.unescape(saved.split('name="rule" rows="14" required>')[1].split("</textarea>")[0])
    checked = check(json.loads(text), original="saved")
    assert "Would fire" in checked.text and 'action="/ui/actions/rules/saved"' in checked.text


def test_handlers_are_edited_and_their_secrets_stay_write_only(
    client: Any, runtime: Runtime, tokens: Tokens, receiver: Receiver
) -> None:
    from hma_framework.actions.handlers import handlers_of

    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    first = new_secret()
    _make_hook(client, token, receiver, first)
    form = client.get("/ui/actions/handlers/hook")
    assert form.status_code == 200 and receiver.url in form.text
    assert first not in form.text and first[6:20] not in form.text
    assert "Secret fields set: signing_secrets" in form.text
    assert client.get("/ui/actions/handlers/nope").status_code == 404

    def save(config: str, secrets: str = "", enabled: bool = True, **extra: str) -> Any:
        data = {"csrf_token": token, "config": config, "secrets": secrets, **extra}
        if enabled:
            data["enabled"] = "on"
        return client.post("/ui/actions/handlers/hook", data=data)

    def stored_secrets() -> Any:
        with runtime.store.reading() as session:
            from sqlalchemy import select

            from hma_framework.store.tables import HandlerConfigRow

            row = session.scalars(select(HandlerConfigRow)).one()
            return handlers_of(runtime).secrets(row)["signing_secrets"]

    new_url = f'{{"url": "{receiver.url}/v2/{{content_id}}"}}'
    moved = save(new_url)  # no secret given: the stored one is kept
    assert moved.status_code == 303, moved.text
    assert stored_secrets() == [first]
    shown = client.get("/ui/actions/handlers/hook").text
    assert "/v2/" in shown and first not in shown

    second = new_secret()
    leaked = save(f'{{"url": "{receiver.url}/x", "signing_secrets": ["{second}"]}}')
    assert leaked.status_code == 400 and "is secret" in leaked.text
    assert second not in leaked.text and stored_secrets() == [first]
    bad = save('{"url": "ftp://x"}', f'{{"signing_secrets": ["{second}"]}}')
    through_api = client.put(
        "/handlers/hook", json={"config": {"url": "ftp://x"}}, headers=Tokens.header(tokens.admin)
    )
    assert bad.status_code == through_api.status_code == 400
    assert through_api.json["message"] in html.unescape(bad.text)
    assert second not in bad.text and stored_secrets() == [first]
    rotated = save(new_url, f'{{"signing_secrets": ["{second}"]}}', enabled=False)
    assert rotated.status_code == 303 and stored_secrets() == [second]
    assert handlers_of(runtime).get("hook")["enabled"] is False
    assert second not in client.get("/ui/actions").text
    forged = client.post("/ui/actions/handlers/hook", data={"config": "{}"})
    assert forged.status_code == 403 and stored_secrets() == [second]


def test_deliveries_list_failing_ones_and_redeliver_from_the_list(
    client: Any,
    runtime: Runtime,
    worker_runtime: Runtime,
    tokens: Tokens,
    receiver: Receiver,
) -> None:
    bank_with(runtime, "known")
    sign_in(client, tokens.admin)
    token = page_token(client, "/ui/actions")
    _make_hook(client, token, receiver, new_secret())
    client.post(
        "/ui/actions/rules",
        data={"csrf_token": token, "rule": '{"name": "all", "action": {"handler": "hook"}}'},
    )
    url = f'{{"url": "{receiver.url}/{{content_id}}"}}'
    off = client.post("/ui/actions/handlers/hook", data={"csrf_token": token, "config": url})
    assert off.status_code == 303  # the enabled box unticked: deliveries are held
    client.post(
        "/submit/hash/",
        json={
            "content_id": "held-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": PDQ,
        },
        headers=Tokens.header(tokens.submit),
    )
    run_jobs(worker_runtime)
    listing = client.get("/ui/deliveries").text
    failing = listing.split("<h2>Failing: retrying or held</h2>")[1].split("<h2>Newest</h2>")[0]
    assert "held-1" in failing and "handler disabled" in failing
    assert "held-1" not in listing.split("<h2>Newest</h2>")[1]  # listed once, up top
    delivery_id = int(failing.split('href="/ui/deliveries/')[1].split('"')[0])
    redeliver = f"/ui/deliveries/{delivery_id}/redeliver"
    assert f'action="{redeliver}"' in failing
    still_off = client.post(redeliver, data={"csrf_token": token, "back": "/ui/deliveries"})
    assert still_off.status_code == 409 and "enable handler" in still_off.text
    client.post(
        "/ui/actions/handlers/hook", data={"csrf_token": token, "config": url, "enabled": "on"}
    )
    again = client.post(redeliver, data={"csrf_token": token, "back": "/ui/deliveries"})
    assert again.status_code == 303 and again.headers["Location"] == "/ui/deliveries"
    assert "(retrying)" not in client.get("/ui/deliveries").text
    run_jobs(worker_runtime)
    assert [r.path for r in receiver.received] == ["/held-1"]
    done = client.get("/ui/deliveries").text
    assert "held-1" in done.split("<h2>Newest</h2>")[1] and 'class="delivery succeeded"' in done

    client.post("/ui/logout", data={"csrf_token": token})
    sign_in(client, tokens.read)
    seen = client.get("/ui/deliveries").text
    assert "held-1" in seen and "Redeliver" not in seen
    refused = client.post(redeliver, data={"csrf_token": csrf_of(seen)})
    assert refused.status_code == 403 and len(receiver.received) == 1
