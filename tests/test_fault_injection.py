"""Fault injection on the real services: workers SIGKILLed at random points under load.

Submissions of both kinds run at once: ``/submit/bytes/`` photos (hashed by a hash-only
worker, then matched by another: the hash and match stages are separate jobs) and
``/submit/hash/`` (matched in the API, acted on by workers). A killer thread SIGKILLs a
worker whenever one is busy in the stage with the fewest kills so far, until every stage
(hash, match, act, deliver) has had its share, and starts a replacement. Every submission
must reach a terminal state and every delivery must reach the receiver under its
``webhook-id`` (a repeat after a kill mid-send carries the same id, so a receiver that
deduplicates by it acts exactly once). Prints the figures.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hma_framework.runtime import Runtime
from tests.fault_support import (
    Load,
    arm,
    assert_nothing_lost,
    audit,
    busy_stages,
    describe_stuck,
    impatient,
    reconciler,
    settled,
    start_worker,
    stop_workers,
    wait_for_workers,
)
from tests.test_actions_support import Api, Receiver

pytestmark = pytest.mark.slow

SUBMISSIONS = 30  # at least: half /submit/hash/, half /submit/bytes/, in batches
#: More load is sent while a stage still lacks its kills (a slow machine can drain the first
#: 30 before the killer catches a delivery in flight), up to this many.
MAX_SUBMISSIONS = 120
BATCH = 6
#: Roles of the worker processes: hash-only ones hand their content to the match queue.
WORKER_QUEUES = ("hash", "hash", "match,action", "match,action")
STAGES = ("hash", "match", "act", "deliver")
KILLS_PER_STAGE = 2
STUCK_AFTER = 3


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.delay = 1.0  # a delivery is in flight long enough to be killed mid-send
    yield server
    server.close()


class Killer:
    """SIGKILLs busy workers, the stage with the fewest kills first, and replaces them."""

    def __init__(self, runtime: Runtime, tmp_path: Path) -> None:
        self.runtime = runtime
        self.settings = impatient(runtime.settings, STUCK_AFTER)
        self.logs = tmp_path
        self.workers = [self._start(number) for number in range(len(WORKER_QUEUES))]
        self.kills: Counter[str] = Counter({stage: 0 for stage in STAGES})
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _start(self, number: int) -> subprocess.Popen[bytes]:
        return start_worker(
            self.settings, self.logs / f"worker-{number}.log", queues=WORKER_QUEUES[number]
        )

    @property
    def done(self) -> bool:
        return min(self.kills.values()) >= KILLS_PER_STAGE

    def _run(self) -> None:
        while not self.stop.is_set() and not self.done:
            busy = busy_stages(self.runtime, self.workers)
            wanted = [s for s in sorted(STAGES, key=self.kills.__getitem__) if s in busy.values()]
            if wanted and self.kills[wanted[0]] < KILLS_PER_STAGE:
                victim = next(n for n, s in busy.items() if s == wanted[0])
                worker = self.workers[victim]
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                self.workers[victim] = self._start(victim)
                self.kills[wanted[0]] += 1
            time.sleep(0.02)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        stop_workers(self.workers)


def test_workers_killed_at_random_in_every_stage_lose_nothing(
    runtime: Runtime, live_server: str, receiver: Receiver, tmp_path: Path
) -> None:
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)
    arm(runtime, admin, receiver, tmp_path)
    load = Load(admin, "fi-")
    fixer = reconciler(runtime.settings, runtime, STUCK_AFTER)
    killer = Killer(runtime, tmp_path)
    started = time.monotonic()
    try:
        wait_for_workers(runtime, killer.workers)
        killer.thread.start()
        while load.sent < SUBMISSIONS or (not killer.done and load.sent < MAX_SUBMISSIONS):
            load.submit(BATCH)
            fixer.run()
            time.sleep(0.5)
        fixer.until(lambda: killer.done and settled(runtime, load.sent, "fi-"), timeout=150)
    finally:
        killer.close()
        fixer.runtime.close()
    result = audit(runtime, receiver, "fi-")
    print(
        result.line(
            {f"SIGKILL at {stage}": n for stage, n in killer.kills.items()},
            time.monotonic() - started,
            f"reconcile re-enqueued {fixer.requeued} stages and {fixer.redelivered} deliveries; ",
        )
    )
    assert killer.done, f"kills per stage {dict(killer.kills)}"
    stuck = describe_stuck(runtime, "fi-")
    assert not stuck, stuck
    assert load.statuses == {200: load.sent}
    assert_nothing_lost(result, load.sent, load.expected_deliveries)
