"""Fault injection: the webhook receiver down for a simulated day, then back.

The retry schedule is the default one (about a day in all) shortened to seconds; the
receiver's port refuses connections for most of it while matching submissions keep coming.
When it is back every delivery must arrive, once per ``webhook-id``, with each failed try
recorded as an attempt, and none given up on. Prints the figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import attrs
import pytest
from sqlalchemy import func, select

from hma_framework.actions import deliveries as delivery_records
from hma_framework.registry import Registry
from hma_framework.settings import Settings
from hma_framework.store.tables import DeliveryAttemptRow, DeliveryRow
from tests.fault_support import (
    assert_nothing_lost,
    impatient,
    one_database,
    rig,
)
from tests.test_actions_support import Receiver

pytestmark = pytest.mark.slow

#: The default schedule (10 s ... 8 h, 23.7 h in all) with an hour taken as a second, at
#: least one: 28 s in all. The receiver is down for 12 "hours".
SHORT_DAY = (1, 1, 1, 1, 1, 1, 2, 4, 8, 8)
DOWN_SECONDS = 12
STUCK_AFTER = 3


@one_database()
def test_receiver_down_for_a_day_then_back_gets_every_delivery_once(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    own = impatient(settings, STUCK_AFTER)
    own = attrs.evolve(
        own,
        actions=attrs.evolve(
            own.actions, retry_intervals_seconds=SHORT_DAY, webhook_timeout_seconds=2
        ),
    )
    assert sum(SHORT_DAY) > DOWN_SECONDS + 10, "back well before the schedule gives up"
    receiver = Receiver()
    received = []
    try:
        with rig(own, registry, receiver, tmp_path, "rd-") as test:
            test.load.submit(4)
            test.fixer.until(lambda: len(receiver.received) >= 3, timeout=30)
            received += receiver.received
            receiver.close()  # down: connections to its port are refused or dropped
            down_at = time.monotonic()
            while time.monotonic() - down_at < DOWN_SECONDS:
                test.load.submit(2)
                test.fixer.run()
                time.sleep(1)
            receiver = Receiver(receiver.server.server_port)  # back on the same address
            test.settle(60)
    finally:
        receiver.close()
    receiver.received[:0] = received
    with test.runtime.store.reading() as session:
        tries = dict(
            session.execute(
                select(DeliveryRow.id, func.count(DeliveryAttemptRow.id))
                .join(DeliveryAttemptRow, DeliveryAttemptRow.delivery_pk == DeliveryRow.id)
                .group_by(DeliveryRow.id)
            ).all()
        )
        recorded = dict(session.execute(select(DeliveryRow.id, DeliveryRow.attempts)).all())
        failed_tries = session.scalar(
            select(func.count()).where(DeliveryAttemptRow.error.is_not(None))
        )
    result = test.finish(
        receiver,
        {"receiver down (s)": DOWN_SECONDS},
        f"failed attempts recorded {failed_tries}, most tries for one delivery "
        f"{max(tries.values(), default=0)}; ",
    )
    assert_nothing_lost(result, test.load.sent, test.load.expected_deliveries)
    assert result.deliveries[delivery_records.FAILED] == 0, "nothing given up on"
    assert tries == recorded, "each try is an attempt row, and counted on its delivery"
    assert failed_tries and failed_tries == sum(tries.values()) - len(tries), (
        "one success per delivery, every other attempt a recorded failure"
    )
    assert sum(1 for n in tries.values() if n > 1) >= test.load.expected_deliveries // 2
