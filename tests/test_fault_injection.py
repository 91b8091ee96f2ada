"""Fault injection on the real services: workers SIGKILLed at random points under load.

Every submission must reach a terminal state and every delivery must reach the receiver
under its ``webhook-id`` (at least once; a repeat after a kill mid-send carries the same id,
so a receiver that deduplicates by it acts exactly once). Prints the figures.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import attrs
import pytest
from rq import Worker
from sqlalchemy import func, select

from hma_framework.actions import deliveries as delivery_records
from hma_framework.actions.delivering import reconcile_deliveries_runtime
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.store import content as records
from hma_framework.store.tables import ContentRow, DeliveryRow
from tests.test_actions_support import (
    OTHER_PDQ,
    Api,
    Receiver,
    bank_with,
    new_secret,
    rule,
    submit_hash,
    webhook_handler,
)

pytestmark = pytest.mark.slow

SUBMISSIONS = 40
BATCH = 5
WORKERS = 2
KILLS = 6
STUCK_AFTER = 3
TERMINAL = {records.ACTIONED, records.NO_MATCH, records.FAILED}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.delay = 0.3  # a delivery is in flight long enough to be killed mid-send
    yield server
    server.close()


def _worker(runtime: Runtime) -> subprocess.Popen[bytes]:
    settings = runtime.settings
    env = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
        "HMA_PIPELINE_STUCK_AFTER_SECONDS": str(STUCK_AFTER),
        "HMA_ACTIONS_STUCK_AFTER_SECONDS": str(STUCK_AFTER),
        "HMA_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "hash,match,action"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _busy(runtime: Runtime, workers: list[subprocess.Popen[bytes]]) -> list[int]:
    """Indexes of our workers that RQ says are running a job right now."""
    pids = {worker.pid: number for number, worker in enumerate(workers)}
    return [
        pids[rq_worker.pid]
        for rq_worker in Worker.all(connection=runtime.redis)
        if rq_worker.pid in pids and rq_worker.get_state() == "busy"
    ]


def _counts(runtime: Runtime) -> tuple[Counter[str], Counter[str]]:
    with runtime.store.reading() as session:
        content = Counter(
            dict(
                session.execute(
                    select(ContentRow.status, func.count()).group_by(ContentRow.status)
                ).all()
            )
        )
        deliveries = Counter(
            dict(
                session.execute(
                    select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
                ).all()
            )
        )
    return content, deliveries


def test_workers_killed_at_random_lose_nothing(
    runtime: Runtime, live_server: str, receiver: Receiver
) -> None:
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)
    bank_with(runtime, "known")
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")
    impatient = build_runtime(
        attrs.evolve(
            runtime.settings,
            pipeline=attrs.evolve(runtime.settings.pipeline, stuck_after_seconds=STUCK_AFTER),
            actions=attrs.evolve(runtime.settings.actions, stuck_after_seconds=STUCK_AFTER),
        ),
        registry=runtime.registry,
    )
    rng = random.Random(10)
    workers = [_worker(runtime) for _ in range(WORKERS)]
    kills = requeued = redelivered = 0
    started = time.monotonic()
    try:
        submitted = 0
        deadline = time.monotonic() + 120
        last_kill = 0.0
        while time.monotonic() < deadline:
            for number in range(submitted, min(submitted + BATCH, SUBMISSIONS)):
                # three in four match and are delivered; the rest miss
                submit_hash(admin, f"fi-{number}", **({} if number % 4 else {"signal": OTHER_PDQ}))
            submitted = min(submitted + BATCH, SUBMISSIONS)
            now = time.monotonic()
            busy = _busy(runtime, workers)
            if kills < KILLS and busy and now - last_kill > rng.uniform(0.3, 1.0):
                victim = rng.choice(busy)  # mid-job: at whatever point of match/act/deliver
                workers[victim].send_signal(signal.SIGKILL)
                workers[victim].wait(10)
                workers[victim] = _worker(runtime)
                kills += 1
                last_kill = time.monotonic()
            requeued += reconcile_runtime(impatient)["requeued"]
            redelivered += reconcile_deliveries_runtime(impatient)["requeued_deliveries"]
            content, deliveries = _counts(runtime)
            settled = sum(content[s] for s in TERMINAL) == SUBMISSIONS
            delivered = set(deliveries) <= {delivery_records.SUCCEEDED, delivery_records.FAILED}
            if kills >= KILLS and settled and delivered:
                break
            time.sleep(0.3)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait(10)
        impatient.close()
    content, deliveries = _counts(runtime)
    ids = Counter(got.headers.get("webhook-id") for got in receiver.received)
    doubled = sum(count - 1 for count in ids.values() if count > 1)
    print(
        f"\nworkers SIGKILLed {kills} times; {SUBMISSIONS} submissions -> {dict(content)}; "
        f"deliveries {dict(deliveries)}; webhook-ids received {len(ids)}, "
        f"repeated sends {doubled}; reconcile re-enqueued {requeued} stages and "
        f"{redelivered} deliveries; {time.monotonic() - started:.1f}s"
    )
    assert kills == KILLS
    assert sum(content[s] for s in TERMINAL) == SUBMISSIONS, content
    assert content[records.FAILED] == 0, content
    assert deliveries[delivery_records.SUCCEEDED] == sum(deliveries.values()) > 0, deliveries
    assert len(ids) == deliveries[delivery_records.SUCCEEDED], "every delivery, under its own id"
    assert None not in ids
