"""Actions at volume: act and deliver jobs that carry many contents and deliveries.

Real receivers on loopback, real Redis and RQ workers, SQLite and PostgreSQL. What must hold
with batches as it did with one job per action: one delivery per content and action key,
every attempt recorded, a 410 holding the rest of its handler's deliveries, lost jobs found
by reconcile. And what batching adds: a slow receiver does not hold up a fast one.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

import attrs
import pytest
from redis import Redis
from sqlalchemy import func, select, update

from hma_framework.actions import deliveries as records
from hma_framework.actions.delivering import reconcile_deliveries_runtime
from hma_framework.pipeline import act_queue
from hma_framework.pipeline.acting import act_many
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import (
    ContentRow,
    DeliveryAttemptRow,
    DeliveryRow,
    HandlerConfigRow,
    utcnow,
)
from hma_framework.testing import run_jobs
from tests.test_actions_support import (
    Api,
    Receiver,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    webhook_handler,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    first, second = Receiver(), Receiver()
    yield first, second
    first.close()
    second.close()


@pytest.fixture
def admin(live_server: str, runtime: Runtime) -> Api:
    return Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)


def pdq(i: int) -> str:
    """Distinct hashes ~128 bits apart: each matches only its own bank member."""
    return hashlib.sha256(f"batch-{i}".encode()).hexdigest()


def bank_of(runtime: Runtime, count: int) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("known")
    banks.add_members("known", [NewMember(signals=(("pdq", pdq(i)),)) for i in range(count)])


def submit_many(admin: Api, count: int, prefix: str = "c") -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(count)]
    items = [
        {"content_id": cid, "content_type": "photo", "signal_type": "pdq", "signal_value": pdq(i)}
        for i, cid in enumerate(ids)
    ]
    results = admin.ok("POST", "/submit/hashes/", {"items": items})["results"]
    assert all(r["matched"] for r in results)
    return ids


def content_pks(runtime: Runtime, ids: list[str]) -> list[int]:
    queries = ContentQueries(runtime.store)
    pks = [queries.content_pk(cid) for cid in ids]
    assert None not in pks
    return [pk for pk in pks if pk is not None]


def delivery_statuses(runtime: Runtime) -> dict[str, int]:
    with runtime.store.reading() as session:
        rows = session.execute(
            select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
        ).all()
    return {status: count for status, count in rows}


def attempts_recorded(runtime: Runtime) -> int:
    with runtime.store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryAttemptRow)) or 0)


def test_a_burst_is_acted_on_and_delivered_in_batches_each_action_once(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver, _ = receivers
    secret = new_secret()
    bank_of(runtime, 150)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [secret])
    rule(admin, "all", "hook")
    ids = submit_many(admin, 150)
    queue = runtime.queues["action"]
    assert queue.count == 1, "150 matched contents wait for one act job"

    pks = content_pks(runtime, ids)
    acted = act_many(runtime, pks)
    assert (acted.actioned, acted.deliveries) == (150, 150)
    with runtime.store.reading() as session:
        per_job = Counter(session.scalars(select(DeliveryRow.job_id)))
    assert sorted(per_job.values()) == [50, 100], "one handler's deliveries, 100 a job"
    assert queue.count == 1 + 2, "the act job still queued, and two deliver jobs"
    again = act_many(runtime, pks)  # a duplicated batch: acted on already, nothing twice
    assert (again.actioned, again.skipped, again.deliveries) == (0, 150, 0)

    run_jobs(worker_runtime)
    assert sorted(r.path for r in receiver.received) == sorted(f"/{cid}" for cid in ids)
    for got in receiver.received:
        got.verify(secret)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 150
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 150}
    assert attempts_recorded(runtime) == 150, "every attempt recorded"
    with runtime.store.reading() as session:
        statuses = Counter(session.scalars(select(ContentRow.status)))
    assert statuses == {"actioned": 150}


def test_the_act_job_takes_every_matched_content_waiting(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver, _ = receivers
    bank_of(runtime, 30)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    for i in range(30):  # one at a time, as /submit/hash/ callers do
        admin.ok(
            "POST",
            "/submit/hash/",
            {
                "content_id": f"one-{i}",
                "content_type": "photo",
                "signal_type": "pdq",
                "signal_value": pdq(i),
            },
        )
    assert runtime.queues["action"].count == 1, "thirty matches, one act job waiting"
    run_jobs(worker_runtime)
    assert len(receiver.received) == 30
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 30}


def test_a_slow_receiver_does_not_hold_up_a_fast_one(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    slow, fast = receivers
    slow.delay = 0.7  # six deliveries to it take 4.2 s one after another
    bank_of(runtime, 6)
    webhook_handler(admin, "a-slow", slow.url + "/{content_id}", [new_secret()])
    webhook_handler(admin, "b-fast", fast.url + "/{content_id}", [new_secret()])
    rule(admin, "a-slow", "a-slow")
    rule(admin, "b-fast", "b-fast")
    ids = submit_many(admin, 6)
    act_many(runtime, content_pks(runtime, ids))
    with runtime.store.reading() as session:
        handler_of_job = dict(
            session.execute(select(DeliveryRow.job_id, DeliveryRow.handler_pk).distinct()).all()
        )
        slow_pk = session.scalar(
            select(HandlerConfigRow.id).where(HandlerConfigRow.name == "a-slow")
        )
    queued = [j for j in runtime.queues["action"].job_ids if j in handler_of_job]
    assert len(queued) == 2, "one deliver job per handler"
    assert handler_of_job[queued[0]] == slow_pk, "the slow receiver's job is first in line"

    run_jobs(worker_runtime)  # one worker: jobs run one after another
    assert len(slow.received) == len(fast.received) == 6
    slow_times = sorted(r.at for r in slow.received)
    assert max(r.at for r in fast.received) < slow_times[3], (
        "the fast receiver had every delivery before the slow one had four",
        [round(t - slow_times[0], 2) for t in slow_times],
        [round(r.at - slow_times[0], 2) for r in fast.received],
    )
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 12}
    assert attempts_recorded(runtime) == 12, "one attempt each, none lost in the hand-over"


def test_a_410_mid_batch_holds_the_rest_and_retries_stay_per_delivery(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver, _ = receivers
    bank_of(runtime, 5)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    receiver.script = [(503, {}), (200, {}), (410, {})]
    ids = submit_many(admin, 5)
    act_many(runtime, content_pks(runtime, ids))
    run_jobs(worker_runtime)

    assert [r.path for r in receiver.received] == ["/c-0", "/c-1", "/c-2"], "none after 410"
    handler = admin.ok("GET", "/handlers/hook")
    assert handler["enabled"] is False and "410" in handler["disabled_reason"]
    by_content = {
        d["content_id"]: d for d in admin.ok("GET", "/deliveries", handler="hook")["deliveries"]
    }
    assert by_content["c-1"]["status"] == "succeeded"
    # c-0's retry was due, but its handler is disabled now: held with the rest.
    assert {cid: by_content[cid]["status"] for cid in ("c-0", "c-2", "c-3", "c-4")} == {
        "c-0": "held",
        "c-2": "held",
        "c-3": "held",
        "c-4": "held",
    }
    assert [by_content[cid]["attempts"] for cid in ids] == [1, 1, 1, 0, 0]
    assert attempts_recorded(runtime) == 3


def test_retries_in_a_batch_go_on_alone_until_they_succeed(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver, _ = receivers
    bank_of(runtime, 4)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    receiver.script = [(500, {}), (200, {}), (502, {}), (200, {}), (500, {})]
    ids = submit_many(admin, 4)
    run_jobs(worker_runtime)  # retries are due at once: the burst runs them all
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 4}
    attempts = {
        d["content_id"]: d["attempts"]
        for d in admin.ok("GET", "/deliveries", handler="hook")["deliveries"]
    }
    assert attempts == {"c-0": 3, "c-1": 1, "c-2": 2, "c-3": 1}
    assert attempts_recorded(runtime) == 7 == len(receiver.received)
    assert len({r.headers["webhook-id"] for r in receiver.received}) == len(ids)


def test_reconcile_restarts_a_lost_batch_as_one_job(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver, _ = receivers
    bank_of(runtime, 5)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    ids = submit_many(admin, 5)
    act_many(runtime, content_pks(runtime, ids))
    Redis.from_url(runtime.settings.redis_url).flushdb()  # every job is lost
    with runtime.store.transaction() as session:
        [first] = session.scalars(select(DeliveryRow.id).order_by(DeliveryRow.id).limit(1))
        session.execute(update(DeliveryRow).values(next_attempt_at=utcnow().replace(year=2000)))
        # One delivery was being attempted by a worker that died; the rest were waiting.
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == first)
            .values(status=records.DELIVERING, updated_at=utcnow().replace(year=2000))
        )

    assert reconcile_deliveries_runtime(worker_runtime)["requeued_deliveries"] == 5
    assert runtime.queues["action"].count == 1, "the lost batch goes on as one job"
    assert reconcile_deliveries_runtime(worker_runtime)["requeued_deliveries"] == 0, "queued"
    run_jobs(worker_runtime)
    assert sorted(r.path for r in receiver.received) == sorted(f"/{cid}" for cid in ids)
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 5}


@pytest.mark.parametrize("lost", ["the act job", "the act job and the waiting set"])
def test_reconcile_acts_on_matched_content_whose_act_job_was_lost(
    lost: str,
    admin: Api,
    settings: Settings,
    registry: Registry,
    runtime: Runtime,
    worker_runtime: Runtime,
    receivers: tuple[Receiver, Receiver],
) -> None:
    receiver, _ = receivers
    bank_of(runtime, 3)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    ids = submit_many(admin, 3)
    redis = Redis.from_url(runtime.settings.redis_url)
    waiting = redis.smembers(act_queue.PENDING_KEY)
    job_key = redis.get(act_queue.JOB_KEY)
    redis.flushdb()
    if lost == "the act job":  # the queue lost its job; the key naming it and the set remain
        redis.sadd(act_queue.PENDING_KEY, *waiting)
        assert job_key is not None
        redis.set(act_queue.JOB_KEY, job_key)
    with runtime.store.transaction() as session:
        session.execute(update(ContentRow).values(updated_at=utcnow().replace(year=2000)))
    impatient = build_runtime(
        attrs.evolve(settings, pipeline=attrs.evolve(settings.pipeline, stuck_after_seconds=1)),
        registry=registry,
    )
    try:
        requeued = reconcile_runtime(impatient)["requeued"]
        assert reconcile_runtime(impatient)["requeued"] == 0, "nothing twice"
    finally:
        impatient.close()
    assert requeued == (0 if lost == "the act job" else 3), "waiting content is the act job's"
    assert runtime.queues["action"].count == (1 if lost == "the act job" else 3)
    run_jobs(worker_runtime)
    assert sorted(r.path for r in receiver.received) == sorted(f"/{cid}" for cid in ids)
    assert delivery_statuses(runtime) == {records.SUCCEEDED: 3}
