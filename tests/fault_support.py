"""Shared by the fault-injection tests: real worker processes, load, and the final audit.

No tests here. Each fault test starts ``hma worker`` processes on the test's services, sends
submissions while it injects its fault, runs reconcile as the maintenance queue would, and
then audits with :func:`audit`: every submission reached a terminal state, and the webhook
receiver got every delivery under its own ``webhook-id`` (a receiver deduplicates by that
id, so a repeat of an id is counted as a doubled send, and an id never received is lost).
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from rq import Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import func, select
from werkzeug.serving import make_server

from hma_framework.actions import deliveries as delivery_records
from hma_framework.actions.delivering import reconcile_deliveries_runtime
from hma_framework.media_hashing import compute_signals
from hma_framework.pipeline.reconcile import reconcile_runtime
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime, build_runtime
from hma_framework.settings import Settings
from hma_framework.store import content as records
from hma_framework.store import migrate
from hma_framework.store.tables import ContentRow, DeliveryAttemptRow, DeliveryRow
from hma_framework.testing import TEST_DATABASE_ENV, make_photo
from hma_framework.web.app import create_app
from tests.test_actions_support import (
    OTHER_PDQ,
    PDQ,
    Api,
    Receiver,
    bank_with,
    new_secret,
    rule,
    webhook_handler,
)

TERMINAL = frozenset({records.ACTIONED, records.NO_MATCH, records.FAILED})
DELIVERY_FINAL = frozenset({delivery_records.SUCCEEDED, delivery_records.FAILED})
#: What an RQ job's function says about the stage a worker running it is in.
STAGE_OF_FUNCTION = {
    "hash_content": "hash",
    "hash_pending": "hash",  # a batch of uploaded media waiting in the hash set
    "match_content": "match",
    "act_content": "act",
    "act_contents": "act",
    "act_pending": "act",  # a batch of matched content waiting in the act set
    "deliver": "deliver",
    "deliver_batch": "deliver",
}


def impatient(settings: Settings, stuck_after: int) -> Settings:
    """Settings whose reconcile treats work as stuck after ``stuck_after`` seconds."""
    return attrs.evolve(
        settings,
        pipeline=attrs.evolve(
            settings.pipeline,
            stuck_after_seconds=stuck_after,
            retry_intervals_seconds=(1, 2, 2, 5, 5),  # a database outage outlasts one retry
        ),
        actions=attrs.evolve(settings.actions, stuck_after_seconds=stuck_after),
    )


def start_worker(
    settings: Settings,
    log_file: Path,
    queues: str = "hash,match,action",
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """An ``hma worker`` process on ``settings``' services; its log goes to ``log_file``."""
    environment = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32",
        "HMA_PIPELINE_STUCK_AFTER_SECONDS": str(settings.pipeline.stuck_after_seconds),
        "HMA_ACTIONS_STUCK_AFTER_SECONDS": str(settings.actions.stuck_after_seconds),
        "HMA_PIPELINE_RETRY_INTERVALS_SECONDS": _listed(settings.pipeline.retry_intervals_seconds),
        "HMA_ACTIONS_RETRY_INTERVALS_SECONDS": _listed(settings.actions.retry_intervals_seconds),
        "HMA_ACTIONS_RETRY_JITTER_PERCENT": str(settings.actions.retry_jitter_percent),
        "HMA_LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hma_framework", "worker", "--queues", queues],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _listed(values: tuple[int, ...]) -> str:
    return ",".join(str(value) for value in values)


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.kill()
        worker.wait(10)


def wait_for_workers(
    runtime: Runtime, workers: list[subprocess.Popen[bytes]], timeout: float = 60
) -> None:
    """Until RQ lists every one of ``workers``: a fault before they serve would test nothing."""
    deadline = time.monotonic() + timeout
    pids = {worker.pid for worker in workers}
    while pids - {w.pid for w in Worker.all(connection=runtime.redis, serializer=JSONSerializer)}:
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(worker.poll() is None for worker in workers), "a worker exited"
        time.sleep(0.2)


def busy_stages(runtime: Runtime, workers: list[subprocess.Popen[bytes]]) -> dict[int, str]:
    """Which of our workers RQ says run a job now, and the stage of that job."""
    pids = {worker.pid: number for number, worker in enumerate(workers)}
    found: dict[int, str] = {}
    for rq_worker in Worker.all(connection=runtime.redis, serializer=JSONSerializer):
        if rq_worker.pid not in pids or rq_worker.get_state() != "busy":
            continue
        job_id = rq_worker.get_current_job_id()
        if not job_id:
            continue
        try:
            job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
            name = (job.func_name or "").rsplit(".", 1)[-1]
        except Exception:  # the job ended (and expired) while we looked
            continue
        if name in STAGE_OF_FUNCTION:
            found[pids[rq_worker.pid]] = STAGE_OF_FUNCTION[name]
    return found


def counts(runtime: Runtime, prefix: str = "") -> tuple[Counter[str], Counter[str]]:
    """Content by status (ids starting with ``prefix``) and deliveries by status."""
    with runtime.store.reading() as session:
        content = Counter(
            dict(
                session.execute(
                    select(ContentRow.status, func.count())
                    .where(ContentRow.content_id.startswith(prefix))
                    .group_by(ContentRow.status)
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


def settled(runtime: Runtime, expected: int, prefix: str = "") -> bool:
    content, deliveries = counts(runtime, prefix)
    done = sum(content[s] for s in TERMINAL) == expected
    return done and set(deliveries) <= DELIVERY_FINAL


@attrs.define
class Reconciler:
    """Runs both reconcile jobs as the maintenance queue would, and counts what they did."""

    runtime: Runtime
    requeued: int = 0
    redelivered: int = 0

    def run(self) -> None:
        result = reconcile_runtime(self.runtime)
        self.requeued += result["requeued"] + result["restarted_batch_jobs"]
        self.redelivered += reconcile_deliveries_runtime(self.runtime)["requeued_deliveries"]

    def until(self, done: Callable[[], bool], timeout: float, every: float = 0.5) -> float:
        """Reconcile until ``done()``; the seconds it took (the caller asserts ``done()``)."""
        started = time.monotonic()
        while not done() and time.monotonic() - started < timeout:
            self.run()
            time.sleep(every)
        return time.monotonic() - started


def reconciler(settings: Settings, runtime: Runtime, stuck_after: int) -> Reconciler:
    return Reconciler(build_runtime(impatient(settings, stuck_after), registry=runtime.registry))


@attrs.frozen
class Audit:
    content: Counter[str]
    deliveries: Counter[str]
    ids: Counter[str]
    attempts: int

    @property
    def terminal(self) -> int:
        return sum(self.content[s] for s in TERMINAL)

    @property
    def doubled(self) -> int:
        """Sends of a webhook-id the receiver had seen already (it acts on the first)."""
        return sum(count - 1 for count in self.ids.values() if count > 1)

    @property
    def lost(self) -> int:
        """Deliveries recorded as succeeded whose webhook-id the receiver never saw, plus
        deliveries that did not end."""
        unfinished = sum(n for status, n in self.deliveries.items() if status not in DELIVERY_FINAL)
        return max(0, self.deliveries[delivery_records.SUCCEEDED] - len(self.ids)) + unfinished

    def line(self, faults: Mapping[str, int], seconds: float, extra: str = "") -> str:
        return (
            f"\nfaults injected {dict(faults)}; contents checked {sum(self.content.values())} "
            f"-> {dict(self.content)}; deliveries checked {sum(self.deliveries.values())} "
            f"-> {dict(self.deliveries)}, attempts {self.attempts}; webhook-ids received "
            f"{len(self.ids)}, lost {self.lost}, doubled {self.doubled} (repeat sends a "
            f"deduplicating receiver drops); {extra}{seconds:.1f}s"
        )


def audit(runtime: Runtime, receiver: Receiver, prefix: str = "") -> Audit:
    content, deliveries = counts(runtime, prefix)
    with runtime.store.reading() as session:
        attempts = int(session.scalar(select(func.count()).select_from(DeliveryAttemptRow)) or 0)
    ids = Counter(str(got.headers.get("webhook-id")) for got in receiver.received)
    return Audit(content, deliveries, ids, attempts)


def assert_nothing_lost(result: Audit, expected: int, deliveries_expected: int) -> None:
    """Every submission terminal and not failed; every delivery received once by id."""
    assert result.terminal == expected, result.content
    assert result.content[records.FAILED] == 0, result.content
    succeeded = result.deliveries[delivery_records.SUCCEEDED]
    assert succeeded == sum(result.deliveries.values()) == deliveries_expected, result.deliveries
    assert "None" not in result.ids, "every delivery carries a webhook-id"
    assert len(result.ids) == succeeded, "every delivery arrived, under its own webhook-id"
    assert result.lost == 0


def describe_stuck(runtime: Runtime, prefix: str = "") -> str:
    """What a failed run left unfinished, with its job's state in Redis: for the message."""
    lines = []
    with runtime.store.reading() as session:
        rows = session.execute(
            select(ContentRow.content_id, ContentRow.status, ContentRow.job_id).where(
                ContentRow.content_id.startswith(prefix), ContentRow.status.not_in(TERMINAL)
            )
        ).all()
        deliveries = session.execute(
            select(DeliveryRow.id, DeliveryRow.status, DeliveryRow.job_id).where(
                DeliveryRow.status.not_in(DELIVERY_FINAL)
            )
        ).all()
    for name, status, job_id in [*rows, *deliveries]:
        try:
            job = Job.fetch(str(job_id), connection=runtime.redis, serializer=JSONSerializer)
            state = f"{job.get_status()} on {job.worker_name}"
        except Exception as exc:
            state = f"no job ({type(exc).__name__})"
        lines.append(f"{name}: {status}, job {job_id} {state}")
    return "; ".join(lines[:20])


# --- the load ---------------------------------------------------------------------------------


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    """``app`` on a loopback werkzeug server in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def arm(runtime: Runtime, admin: Api, receiver: Receiver, folder: Path) -> None:
    """Banks that hash submissions (PDQ) and one photo match, a webhook, a rule for all."""
    (folder / "banked.jpg").write_bytes(make_photo(320, 240, seed=1))
    banked_pdq = next(
        s.value
        for s in compute_signals(runtime, "photo", folder / "banked.jpg")
        if s.signal_type == "pdq"
    )
    bank_with(runtime, "known")
    bank_with(runtime, "photos", signal=banked_pdq)
    webhook_handler(admin, "hook", receiver.url + "/{content_id}", [new_secret()])
    rule(admin, "all", "hook")


class Load:
    """Submissions of both kinds, three in four matching; a 503 is retried later as a client
    told ``Retry-After`` would. Counts answers by status and the deliveries to expect."""

    def __init__(self, admin: Api, prefix: str) -> None:
        self.admin = admin
        self.prefix = prefix
        self.sent = 0
        self.expected_deliveries = 0
        self.statuses: Counter[int] = Counter()
        self.refused: list[tuple[str, dict[str, Any]]] = []
        self.photos = {
            hits: base64.b64encode(make_photo(320, 240, seed=1 if hits else 2)).decode()
            for hits in (True, False)
        }

    def body(self, number: int) -> tuple[str, dict[str, Any]]:
        hits = number % 4 != 0
        content_id = f"{self.prefix}{number}"
        if number % 2:
            return "/submit/hash/", {
                "content_id": content_id,
                "content_type": "photo",
                "signal_type": "pdq",
                "signal_value": PDQ if hits else OTHER_PDQ,
            }
        return "/submit/bytes/", {
            "content_id": content_id,
            "content_type": "photo",
            "content_bytes": self.photos[hits],
        }

    def submit(self, count: int) -> None:
        for _ in range(count):
            path, body = self.body(self.sent)
            self.expected_deliveries += self.sent % 4 != 0
            self.sent += 1
            self.send(path, body)

    def send(self, path: str, body: dict[str, Any]) -> int:
        response = self.admin.post(path, body)
        self.statuses[response.status_code] += 1
        if response.status_code in (503, 507):  # unavailable, or out of disk: retry later
            assert int(response.headers["Retry-After"]) > 0, response.headers
            assert response.json()["message"]
            self.refused.append((path, body))
        else:
            assert response.status_code == 200, (response.status_code, response.text)
        return response.status_code

    def retry_refused(self, timeout: float = 30) -> None:
        """Send every refused submission again until it is accepted."""
        deadline = time.monotonic() + timeout
        while self.refused:
            assert time.monotonic() < deadline, f"still refused: {len(self.refused)}"
            path, body = self.refused.pop(0)
            if self.send(path, body) == 503:
                time.sleep(0.5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The webhook endpoint; each delivery takes a moment, so a fault can catch it mid-send."""
    server = Receiver()
    server.delay = 0.2
    yield server
    server.close()


def one_database() -> pytest.MarkDecorator:
    """Run on PostgreSQL when the suite has one, else SQLite: a fault test is long enough once."""
    name = "postgresql" if os.environ.get(TEST_DATABASE_ENV) else "sqlite"
    return pytest.mark.parametrize("database_url", [name], indirect=True)


# --- the rig: an API on a werkzeug server, worker processes, the load, the audit --------------


@attrs.define
class Rig:
    """One fault test's instance: its runtime (and API), workers, load and reconcile."""

    runtime: Runtime
    admin: Api
    load: Load
    fixer: Reconciler
    workers: list[subprocess.Popen[bytes]]
    started: float = attrs.field(factory=time.monotonic)

    def settle(self, timeout: float = 90) -> None:
        """Reconcile until every submission so far is terminal (the audit asserts it)."""
        self.fixer.until(lambda: settled(self.runtime, self.load.sent, self.load.prefix), timeout)

    def finish(self, receiver: Receiver, faults: Mapping[str, int], figures: str = "") -> Audit:
        """Audit, print the figures, close the runtime; fails on anything left unfinished."""
        prefix = self.load.prefix
        result = audit(self.runtime, receiver, prefix)
        print(
            result.line(
                faults,
                time.monotonic() - self.started,
                f"{figures}answers {dict(self.load.statuses)}; reconcile re-enqueued "
                f"{self.fixer.requeued} stages and {self.fixer.redelivered} deliveries; ",
            )
        )
        stuck = describe_stuck(self.runtime, prefix)
        self.runtime.close()
        assert not stuck, stuck
        return result


@contextlib.contextmanager
def rig(
    settings: Settings, registry: Registry, receiver: Receiver, folder: Path, prefix: str
) -> Iterator[Rig]:
    """A migrated runtime on ``settings``, its API served, two workers ready, banks armed."""
    runtime = build_runtime(settings, registry=registry)
    migrate.upgrade(runtime.store)
    workers = [start_worker(settings, folder / f"worker-{n}.log") for n in range(2)]
    try:
        with served(create_app(runtime)) as base:
            admin = Api(base, runtime.api_keys.create("ops", ["admin"]).token)
            arm(runtime, admin, receiver, folder)
            wait_for_workers(runtime, workers)
            yield Rig(runtime, admin, Load(admin, prefix), Reconciler(runtime), workers)
    finally:
        stop_workers(workers)
