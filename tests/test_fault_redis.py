"""Fault injection: the Redis server stopped, restarted empty, and flushed, under load.

A private redis-server of the test's own (never the shared one) carries the queues of an API
and two workers while submissions arrive. While it is down, submissions that need the queue
answer 503 with ``Retry-After`` (their content is recorded already) and the client sends them
again later; a restart without persistence and a FLUSHALL lose every queued and running job.
Reconcile must find all of that work again from the database: every submission terminal,
every delivery received once under its ``webhook-id``. Prints the figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest
from redis import Redis

from hma_framework.registry import Registry
from hma_framework.settings import Settings
from tests.fault_support import (
    assert_nothing_lost,
    impatient,
    one_database,
    receiver,
    rig,
)
from tests.test_actions_support import Receiver
from tests.test_redis_lost import PrivateRedis, private_redis

__all__ = ["private_redis", "receiver"]  # fixtures, used by name

pytestmark = pytest.mark.slow

STUCK_AFTER = 2
ROUND = 6  # submissions per phase
OUTAGE_SECONDS = 3


@one_database()
def test_redis_stopped_restarted_and_flushed_under_load_loses_nothing(
    settings: Settings,
    registry: Registry,
    private_redis: PrivateRedis,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    own = impatient(attrs.evolve(settings, redis_url=private_redis.url), STUCK_AFTER)
    faults = {"Redis stopped, restarted empty": 0, "Redis flushed": 0}
    with rig(own, registry, receiver, tmp_path, "fr-") as test:
        load = test.load
        load.submit(ROUND)

        private_redis.stop()
        faults["Redis stopped, restarted empty"] += 1
        outage_ends = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < outage_ends:
            load.submit(2)
            time.sleep(0.2)
        refused_while_down = len(load.refused)
        ready = test.admin.get("/status/ready")
        assert ready.status_code == 503, ready.text
        private_redis.start()  # empty: no persistence, as a lost Redis comes back

        load.submit(ROUND)
        test.fixer.run()
        Redis.from_url(private_redis.url).flushall()
        faults["Redis flushed"] += 1
        load.submit(ROUND)
        load.retry_refused()
        test.settle()
    result = test.finish(receiver, faults, f"{refused_while_down} refused while down; ")
    assert refused_while_down > 0, "submissions while Redis was down answer 503"
    assert set(load.statuses) <= {200, 503}, load.statuses
    assert_nothing_lost(result, load.sent, load.expected_deliveries)
