"""Deliveries that do not go right the first time: retries, Retry-After, 410, redelivery.

Real receiver, real RQ workers with their scheduler; the retry schedule is shortened by the
``actions`` settings so nothing here sleeps for long.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from redis import Redis
from sqlalchemy import update

from hma_framework.actions.delivering import reconcile_deliveries_runtime
from hma_framework.pipeline.acting import evaluate_actions
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import DeliveryRow, utcnow
from hma_framework.testing import run_jobs
from tests.test_actions_support import (
    Api,
    Receiver,
    bank_with,
    drain,
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


@pytest.fixture
def hooked(admin: Api, runtime: Runtime, receiver: Receiver) -> str:
    """A bank, a webhook to the receiver and a rule for every match; returns the secret."""
    secret = new_secret()
    bank_with(runtime, "known")
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [secret])
    rule(admin, "all", "hook")
    return secret


def only_delivery(admin: Api, content_id: str) -> dict[str, Any]:
    [delivery] = admin.ok("GET", "/deliveries", content_id=content_id)["deliveries"]
    detail: dict[str, Any] = admin.ok("GET", f"/deliveries/{delivery['id']}")
    return detail


def test_fails_twice_then_succeeds_once(
    admin: Api, hooked: str, worker_runtime: Runtime, receiver: Receiver
) -> None:
    receiver.script = [(500, {}), (503, {}), (200, {})]
    submit_hash(admin, "r-1")
    run_jobs(worker_runtime)  # retries are due at once: one burst runs all three attempts

    assert len(receiver.received) == 3
    for got in receiver.received:
        got.verify(hooked)
    assert len({got.headers["webhook-id"] for got in receiver.received}) == 1, "same message id"
    delivery = only_delivery(admin, "r-1")
    assert delivery["status"] == "succeeded" and delivery["attempts"] == 3
    assert delivery["last_error"] is None and delivery["gave_up"] is False
    log = delivery["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 503, 200]
    assert [a["error"] is None for a in log] == [False, False, True]
    assert "HTTP 500" in log[0]["error"]
    assert (
        admin.ok("GET", "/deliveries", status="succeeded")["deliveries"][0]["id"]
        == (delivery["id"])
    )


def test_retry_after_is_honoured(
    admin: Api, hooked: str, worker_runtime: Runtime, receiver: Receiver
) -> None:
    receiver.script = [(429, {"Retry-After": "1"}), (200, {})]
    submit_hash(admin, "r-2")
    run_jobs(worker_runtime)
    pending = only_delivery(admin, "r-2")
    assert pending["status"] == "pending" and pending["next_attempt_at"]
    drain(worker_runtime, lambda: len(receiver.received) == 2)
    first, second = receiver.received
    assert second.at - first.at >= 0.9, "waited for the receiver's Retry-After"
    assert only_delivery(admin, "r-2")["status"] == "succeeded"


def test_gives_up_after_the_schedule_and_says_so(
    admin: Api, hooked: str, worker_runtime: Runtime, receiver: Receiver
) -> None:
    receiver.script = [(502, {})] * 4
    submit_hash(admin, "r-3")
    run_jobs(worker_runtime)
    assert len(receiver.received) == 4  # the first attempt and three retries
    [failed] = admin.ok("GET", "/deliveries", status="failed")["deliveries"]
    assert failed["gave_up"] is True and failed["attempts"] == 4
    assert failed["last_error"].startswith("gave up after 4 attempts: HTTP 502")
    assert admin.ok("GET", "/content/r-3")["status"] == "actioned"


def test_a_410_disables_the_handler_and_holds_its_deliveries(
    admin: Api, hooked: str, worker_runtime: Runtime, receiver: Receiver
) -> None:
    receiver.script = [(410, {})]
    submit_hash(admin, "g-1")
    run_jobs(worker_runtime)
    handler = admin.ok("GET", "/handlers/hook")
    assert handler["enabled"] is False and "410" in handler["disabled_reason"]
    held = only_delivery(admin, "g-1")
    assert held["status"] == "held" and "handler disabled" in held["last_error"]

    submit_hash(admin, "g-2")  # while disabled: recorded and held, nothing sent
    run_jobs(worker_runtime)
    assert len(receiver.received) == 1
    assert only_delivery(admin, "g-2")["status"] == "held"
    refused = admin.post(f"/deliveries/{held['id']}/redeliver")
    assert refused.status_code == 409 and "disabled" in refused.json()["message"]
    admin.delete("/rules/all")
    kept = admin.delete("/handlers/hook")
    assert kept.status_code == 409 and "2 deliveries still to make" in kept.json()["message"]
    rule(admin, "all", "hook")

    enabled = admin.ok("PUT", "/handlers/hook", {"enabled": True})
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    for content_id in ("g-1", "g-2"):
        delivery = only_delivery(admin, content_id)
        assert admin.post(f"/deliveries/{delivery['id']}/redeliver").status_code == 202
    run_jobs(worker_runtime)
    assert sorted(r.path for r in receiver.received[1:]) == ["/g-1", "/g-2"]
    assert only_delivery(admin, "g-1")["status"] == "succeeded"


def test_redeliver_sends_again_with_the_same_message_id(
    admin: Api, hooked: str, worker_runtime: Runtime, receiver: Receiver, runtime: Runtime
) -> None:
    submit_hash(admin, "d-1")
    run_jobs(worker_runtime)
    delivery = only_delivery(admin, "d-1")
    reader = Api(admin.base, runtime.api_keys.create("r", ["read"]).token)
    assert reader.post(f"/deliveries/{delivery['id']}/redeliver").status_code == 403
    answer = admin.post(f"/deliveries/{delivery['id']}/redeliver")
    assert answer.status_code == 202 and answer.json()["status"] == "pending"
    again = admin.post(f"/deliveries/{delivery['id']}/redeliver")
    assert again.status_code == 409 and "already pending" in again.json()["message"]
    run_jobs(worker_runtime)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    second.verify(hooked)
    assert only_delivery(admin, "d-1")["attempts"] == 2
    assert admin.post("/deliveries/999999/redeliver").status_code == 404


def test_no_answer_in_time_is_a_failed_attempt(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    bank_with(runtime, "known")
    webhook_handler(admin, "slow", receiver.url + "/", [new_secret()], timeout_seconds=0.3)
    rule(admin, "all", "slow")
    receiver.delay = 0.6
    receiver.script = [(200, {})] * 4
    submit_hash(admin, "t-1")
    run_jobs(worker_runtime)
    delivery = only_delivery(admin, "t-1")
    assert delivery["status"] == "failed" and delivery["attempts"] == 4
    assert all(
        "no answer" in a["error"] and a["status_code"] is None for a in delivery["attempt_log"]
    )


@pytest.mark.parametrize("allowed", [()], ids=["nothing-private-allowed"])
def test_private_addresses_are_refused_unless_allowed(
    allowed: tuple[str, ...],
    settings: Settings,
    registry: Registry,
    admin: Api,
    runtime: Runtime,
    receiver: Receiver,
) -> None:
    from hma_framework.runtime import build_runtime

    strict = attrs.evolve(settings, fetch=attrs.evolve(settings.fetch, allowed_networks=allowed))
    worker = build_runtime(strict, registry=registry)
    try:
        bank_with(runtime, "known")
        webhook_handler(admin, "inside", receiver.url + "/", [new_secret()])
        rule(admin, "all", "inside")
        submit_hash(admin, "p-1")
        run_jobs(worker)
    finally:
        worker.close()
    assert receiver.received == [], "nothing was sent"
    delivery = only_delivery(admin, "p-1")
    assert delivery["status"] == "failed" and delivery["attempts"] == 1, "not retried"
    assert delivery["last_error"].startswith("gave up as retrying cannot help: refusing")
    assert "loopback" in delivery["last_error"] and "ALLOWED_NETWORKS" in delivery["last_error"]


def test_reconcile_re_enqueues_a_delivery_whose_job_was_lost(
    admin: Api, hooked: str, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    submit_hash(admin, "lost-1")
    redis = Redis.from_url(runtime.settings.redis_url)
    redis.flushdb()  # the act job is lost (the content reconcile re-runs it; do it here)
    content_pk = ContentQueries(runtime.store).content_pk("lost-1")
    assert content_pk is not None
    assert evaluate_actions(runtime, content_pk) == ["all"]
    redis.flushdb()  # and now the delivery's job is lost too
    assert reconcile_deliveries_runtime(worker_runtime)["requeued_deliveries"] == 0, "not late"
    with runtime.store.transaction() as session:
        session.execute(update(DeliveryRow).values(next_attempt_at=utcnow().replace(year=2000)))
    assert reconcile_deliveries_runtime(worker_runtime)["requeued_deliveries"] == 1
    assert reconcile_deliveries_runtime(worker_runtime)["requeued_deliveries"] == 0, "queued"
    run_jobs(worker_runtime)
    assert [r.path for r in receiver.received] == ["/lost-1"]
    assert only_delivery(admin, "lost-1")["status"] == "succeeded"
