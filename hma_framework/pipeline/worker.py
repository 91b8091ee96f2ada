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
    """RQ's ``SimpleWorker`` with a command listener that stops within a second.

    RQ polls its pubsub command channel with a 60 s wait, and redis-py's
    ``PubSubWorkerThread.stop()`` waits for that poll to end: a burst worker (every test's
    ``run_jobs``) or a stopping worker often sat a full minute before exiting.
    """

    PUBSUB_POLL_SECONDS = 1

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=self.PUBSUB_POLL_SECONDS,
            daemon=True,
            exception_handler=self._pubsub_exception_handler,
        )


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
