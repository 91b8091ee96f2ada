"""``hma worker``: RQ workers that build the runtime once and run every job in-process.

The worker is an ``rq.SimpleWorker``: it does not fork per job, so per-process state (the
database pool, the index a match worker keeps warm) is built once and reused. Jobs reach it
through :func:`hma_framework.pipeline.context.current_runtime`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rq import SimpleWorker
from rq.serializers import JSONSerializer

from hma_framework.pipeline.context import set_current_runtime
from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)


class BurstWorker(SimpleWorker):
    """A worker that exits once the queues are empty, and so takes no remote commands.

    It does not subscribe to RQ's command channel: RQ's listener thread sleeps up to 60 s in
    a read, and closing it at exit could wait that long (seen as burst runs taking a minute).
    """

    def subscribe(self) -> None:
        pass


def make_worker(
    runtime: Runtime, roles: Sequence[str], name: str | None = None, *, burst: bool = False
) -> SimpleWorker:
    worker_class = BurstWorker if burst else SimpleWorker
    return worker_class(
        runtime.queues.select(roles),
        connection=runtime.redis,
        serializer=JSONSerializer,
        name=name,
    )


def run_worker(
    runtime: Runtime, roles: Sequence[str], *, burst: bool = False, name: str | None = None
) -> bool:
    """Serve ``roles`` until stopped (or, with ``burst``, until the queues are empty)."""
    runtime.roles = tuple(roles)
    set_current_runtime(runtime)
    worker = make_worker(runtime, roles, name=name, burst=burst)
    log.info("worker %s serving queues %s", worker.name, ", ".join(roles))
    try:
        return worker.work(
            burst=burst, with_scheduler=True, logging_level=runtime.settings.log_level
        )
    finally:
        set_current_runtime(None)
