"""Housekeeping jobs on the ``maintenance`` queue."""

from __future__ import annotations

import time
from typing import Any

from hma_framework.pipeline.context import current_runtime

HEARTBEAT_KEY = "hma:scheduler:heartbeat"


def heartbeat() -> dict[str, Any]:
    """Record that the scheduler and a maintenance worker are both alive.

    ``GET /status/ready`` reports the age of the last heartbeat, so an operator sees a stopped
    scheduler (or no worker on the maintenance queue) before periodic work silently stops.
    """
    runtime = current_runtime()
    now = time.time()
    runtime.redis.set(HEARTBEAT_KEY, repr(now))
    return {"at": now, "pid": runtime.pid, "runtime": runtime.instance_id}


def last_heartbeat_age(runtime: Any) -> float | None:
    raw = runtime.redis.get(HEARTBEAT_KEY)
    if raw is None:
        return None
    return max(0.0, time.time() - float(raw))


def snapshot_indexes() -> dict[str, int]:
    """Write index snapshots to the data folder, so processes that start later load fast.

    The worker's own index manager (kept warm between jobs) is caught up from the change log
    first, so a snapshot never lags the records by more than one refresh.
    """
    return current_runtime().indexes.save_snapshots()
