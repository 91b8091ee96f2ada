"""Actions end to end: submit over HTTP, real workers, a real loopback webhook receiver.

Signatures are verified with the ``standardwebhooks`` library. Runs on SQLite and, when
configured, PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from hma_framework.actions.writeback import (
    ExchangeWriters,
    Opinion,
    RecordingExchangeWriter,
    set_exchange_writers,
)
from hma_framework.pipeline.acting import evaluate_actions
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import BankRow, ExchangeRow
from hma_framework.testing import run_jobs
from hma_framework.web.app import create_app
from tests.conftest import EXAMPLE_PLUGIN_DIR
from tests.test_actions_support import (
    OTHER_PDQ,
    PDQ,
    Api,
    Receiver,
    bank_with,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    submit_hash,
    webhook_handler,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def admin(live_server: str, runtime: Runtime) -> Api:
    return Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)


def test_a_matching_submission_delivers_one_signed_webhook(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    member = bank_with(runtime, "known-bad", tags=["csam"])
    old, new = new_secret(), new_secret()
    webhook_handler(
        admin,
        "moderation",
        receiver.url + "/hooks/{content_id}?source=hma",
        [old, new],
        headers={"X-Team": "trust"},
        secret_headers={"Authorization": "Bearer not-for-display"},
    )
    rule(admin, "csam-to-moderation", "moderation", [{"label": "tag", "equals": "csam"}])

    submit_hash(admin, "post/1 a", fields=["uploader:42"])
    run_jobs(worker_runtime)

    [got] = receiver.received
    assert got.method == "POST" and got.path == "/hooks/post%2F1%20a?source=hma"
    assert got.verify(old) == got.verify(new) == got.json(), "both rotation secrets verify"
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.headers["x-team"] == "trust"
    assert got.headers["authorization"] == "Bearer not-for-display"
    assert got.headers["content-type"] == "application/json"
    body = got.json()
    assert body["type"] == "hma.content.matched"
    assert body["data"] == {
        "content_id": "post/1 a",
        "content_type": "photo",
        "additional_fields": ["uploader:42"],
        "matches": [
            {
                "signal_type": "pdq",
                "signal_value": PDQ,
                "distance": 0,
                "bank": "known-bad",
                "member_id": member,
                "tags": ["csam", "member-tag"],
            }
        ],
        "rules_fired": ["csam-to-moderation"],
        "params": {},
    }

    [delivery] = admin.ok("GET", "/deliveries")["deliveries"]
    assert delivery["status"] == "succeeded" and delivery["content_id"] == "post/1 a"
    assert delivery["handler"] == "moderation" and delivery["attempts"] == 1
    [attempt] = admin.ok("GET", f"/deliveries/{delivery['id']}")["attempt_log"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert isinstance(attempt["latency_ms"], int) and attempt["attempted_at"]
    content = admin.ok("GET", "/content/post%2F1%20a/actions")
    assert content["actioned_at"] and content["actions"][0]["rules_fired"] == ["csam-to-moderation"]


def test_must_not_have_blocks_and_additional_fields_select(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    bank_with(runtime, "known", tags=["csam"])
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(
        admin,
        "escalate-vip",
        "hook",
        must_have=[{"field": "tier", "equals": "vip"}, {"label": "bank", "equals": "known"}],
        must_not_have=[{"field": "reviewed"}],
    )
    submit_hash(admin, "vip", fields=["tier:vip"])
    submit_hash(admin, "regular", fields=["tier:free"])
    submit_hash(admin, "vip-reviewed", fields=["tier:vip", "reviewed"])
    run_jobs(worker_runtime)

    assert [r.path for r in receiver.received] == ["/vip"]
    for content_id in ("regular", "vip-reviewed"):
        record = admin.ok("GET", f"/content/{content_id}/actions")
        assert record["actioned_at"] and record["actions"] == []


def test_two_rules_calling_for_one_action_deliver_once(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    bank_with(runtime, "a", tags=["csam"])
    bank_with(runtime, "b", signal=PDQ, tags=["csam"])  # a second match for the same hash
    webhook_handler(admin, "hook", receiver.url + "/", [new_secret()], method="PUT")
    rule(admin, "by-tag", "hook", [{"label": "tag", "equals": "csam"}])
    rule(admin, "by-bank", "hook", [{"label": "bank", "in": ["a", "b"]}, {"max_distance": 5}])
    rule(admin, "other-params", "hook", [{"label": "bank", "equals": "nope"}], params={"x": 1})
    submit_hash(admin, "c-1")
    run_jobs(worker_runtime)

    [got] = receiver.received
    assert got.method == "PUT"
    data = got.json()["data"]
    assert data["rules_fired"] == ["by-bank", "by-tag"]
    assert sorted(m["bank"] for m in data["matches"]) == ["a", "b"]
    [delivery] = admin.ok("GET", "/deliveries", content_id="c-1")["deliveries"]
    assert delivery["rules_fired"] == ["by-bank", "by-tag"] and delivery["matches"] == 2

    # Acting again on the same content (a retried job, retroaction) delivers nothing new.
    content_pk = ContentQueries(runtime.store).content_pk("c-1")
    assert content_pk is not None
    assert evaluate_actions(worker_runtime, content_pk) == ["by-bank", "by-tag"]
    run_jobs(worker_runtime)
    assert len(receiver.received) == 1


def test_get_webhook_has_no_body_and_a_signature(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    bank_with(runtime, "known")
    secret = new_secret()
    webhook_handler(admin, "lookup", receiver.url + "/seen/{content_id}", [secret], method="get")
    rule(admin, "all", "lookup")
    submit_hash(admin, "g-1")
    run_jobs(worker_runtime)
    [got] = receiver.received
    assert (got.method, got.path, got.body) == ("GET", "/seen/g-1", b"")
    got.verify(secret)


def test_a_handler_secret_never_appears_in_any_response(
    admin: Api, live_server: str, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    secret, header_secret = new_secret(), "Bearer hush-hush-token-7f3a"
    seen: list[str] = []

    def call(method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = admin.call(method, path, body, **params)
        seen.append(response.text)
        return response

    bank_with(runtime, "known")
    created = call(
        "POST",
        "/handlers",
        {
            "name": "hook",
            "type": "webhook",
            "config": {
                "url": receiver.url + "/",
                "signing_secrets": [secret],
                "secret_headers": {"Authorization": header_secret},
            },
        },
    ).json()
    assert created["secrets_set"] == ["secret_headers", "signing_secrets"]
    # Errors: a malformed secret, a bad field next to good secrets, a duplicate name.
    bad_secret = "whsec_" + "!" * 40
    for config in (
        {"url": receiver.url, "signing_secrets": [bad_secret]},
        {"url": "ftp://x", "signing_secrets": [secret], "secret_headers": {"A": header_secret}},
        {"url": receiver.url, "signing_secrets": secret},
        {"url": receiver.url, "signing_secrets": [secret], "bogus": header_secret},
    ):
        response = call("POST", "/handlers", {"name": "h2", "type": "webhook", "config": config})
        assert response.status_code == 400, response.text
    assert call("POST", "/handlers", {**created, "config": {}}).status_code in (400, 409)
    assert call("PUT", "/handlers/hook", {"config": {"url": "nope"}}).status_code == 400
    updated = call("PUT", "/handlers/hook", {"config": {"url": receiver.url + "/v2"}}).json()
    assert updated["secrets_set"] == ["secret_headers", "signing_secrets"], "kept on update"
    call("GET", "/handlers")
    call("GET", "/handlers/hook")
    call("GET", "/handlers/types")
    rule(admin, "all", "hook")
    call("GET", "/rules")
    receiver.echo = "authorization"  # a receiver that repeats the secret header back
    receiver.script = [(500, {}), (200, {})]
    submit_hash(admin, "s-1")
    run_jobs(worker_runtime)
    _failed, got = receiver.received
    got.verify(secret)  # the kept secret still signs
    assert got.path == "/v2" and got.headers["authorization"] == header_secret
    listing = call("GET", "/deliveries").json()["deliveries"]
    log = call("GET", f"/deliveries/{listing[0]['id']}").json()["attempt_log"]
    assert "HTTP 500" in log[0]["error"] and "[secret]" in log[0]["error"]
    call("POST", f"/deliveries/{listing[0]['id']}/redeliver")
    call("GET", "/content/s-1/actions")
    call("GET", "/content/s-1")
    call("GET", "/plugins")
    for text in seen:
        for hidden in (secret, secret.removeprefix("whsec_"), "hush-hush", bad_secret):
            assert hidden not in text, text


def test_example_plugin_log_line_handler_end_to_end(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN_DIR))
    import hma_example_plugin

    registry = registry_with_webhook(hma_example_plugin)  # the whole third-party module
    assert registry.action_handlers["log_line"].factory is hma_example_plugin.LogLineHandler
    api_runtime = build_runtime(settings, registry=registry)
    migrate.upgrade(api_runtime.store)
    worker = build_runtime(settings, registry=registry)
    try:
        client = create_app(api_runtime).test_client()
        admin = {"Authorization": "Bearer " + api_runtime.api_keys.create("o", ["admin"]).token}
        log_file = tmp_path / "actions.jsonl"
        response = client.post(
            "/handlers",
            json={"name": "audit", "type": "log_line", "config": {"path": str(log_file)}},
            headers=admin,
        )
        assert response.status_code == 201, response.json
        assert response.json["config"] == {"path": str(log_file)}
        bad = client.post(
            "/handlers",
            json={"name": "audit2", "type": "log_line", "config": {"path": 7}},
            headers=admin,
        )
        assert bad.status_code == 400 and "config.path" in bad.json["message"]
        made = client.post(
            "/rules", json={"name": "audit-all", "action": {"handler": "audit"}}, headers=admin
        )
        assert made.status_code == 201, made.json
        bank_with(api_runtime, "known")
        submitted = client.post(
            "/submit/hash/",
            json={
                "content_id": "x-1",
                "content_type": "photo",
                "signal_type": "pdq",
                "signal_value": PDQ,
            },
            headers=admin,
        )
        assert submitted.status_code == 200, submitted.json
        run_jobs(worker)
        lines = [json.loads(line) for line in log_file.read_text().splitlines()]
        assert lines == [{"content_id": "x-1", "rules": ["audit-all"], "banks": ["known"]}]
        [delivery] = client.get("/deliveries", headers=admin).json["deliveries"]
        assert delivery["status"] == "succeeded"
    finally:
        api_runtime.close()
        worker.close()
        sys.modules.pop("hma_example_plugin", None)


def test_write_back_reports_opinions_for_exchange_fed_banks(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    bank_with(runtime, "from-te", tags=["te"])
    bank_with(runtime, "local", signal=OTHER_PDQ)
    with runtime.store.transaction() as session:
        exchange = ExchangeRow(name="te-collab", api_type="fb_threatexchange", config={"p": 1})
        session.add(exchange)
        session.flush()
        session.execute(
            update(BankRow).where(BankRow.name == "from-te").values(exchange_pk=exchange.id)
        )
    recorder = RecordingExchangeWriter()
    set_exchange_writers(worker_runtime, ExchangeWriters({"fb_threatexchange": recorder}))
    webhook_handler(admin, "hook", receiver.url + "/", [new_secret()])
    rule(
        admin,
        "confirm",
        "hook",
        [{"label": "exchange", "equals": "fb_threatexchange"}],
        write_back="true_positive",
    )
    rule(
        admin,
        "local-only",
        "hook",
        [{"label": "collaboration"}],
        must_not_have=[{"label": "exchange"}],
    )
    submit_hash(admin, "te-1")
    submit_hash(admin, "local-1", signal=OTHER_PDQ)
    run_jobs(worker_runtime)

    [request] = recorder.requests
    assert request.opinion is Opinion.TRUE_POSITIVE and request.exchange == "te-collab"
    assert (request.bank, request.signal_value, request.content_id) == ("from-te", PDQ, "te-1")
    assert [r.path for r in receiver.received] == ["/"], "local-1 fires no rule"
    [delivery] = admin.ok("GET", "/deliveries", content_id="te-1")["deliveries"]
    [attempt] = admin.ok("GET", f"/deliveries/{delivery['id']}")["attempt_log"]
    assert "write-back true_positive" in attempt["detail"] and "recorded" in attempt["detail"]
