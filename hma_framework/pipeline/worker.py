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


class HmaWorker(SimpleWorker):
    """RQ's in-process worker, stopping its command listener without a minute's wait.

    RQ unsubscribes and then joins the pubsub thread; when that thread is between messages
    it waits up to 60 s for a subscription that will never come back (redis-py's
    ``get_message``), so a burst worker could hang for a minute on exit. Waking the thread
    first and letting the unsubscribe reply end its read makes exit immediate.
    """

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if thread is not None:
            thread._running.clear()
            self.pubsub.subscribed_event.set()
        super().unsubscribe()


def make_worker(runtime: Runtime, roles: Sequence[str], name: str | None = None) -> SimpleWorker:
    return HmaWorker(
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
    worker = make_worker(runtime, roles, name=name)
    log.info("worker %s serving queues %s", worker.name, ", ".join(roles))
    try:
        return worker.work(
            burst=burst, with_scheduler=True, logging_level=runtime.settings.log_level
        )
    finally:
        set_current_runtime(None)
