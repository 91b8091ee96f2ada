"""Content waiting in a Redis set for its stage; one RQ job takes many at once.

Each job costs RQ a few dozen Redis round trips, which next to a cheap stage (acting on a
match, hashing an uploaded photo) was much of the work. Instead, whoever moves content to
such a stage adds its id to the stage's set and makes sure a job is on its way: ``job_key``
holds the id of the one waiting in the queue, so a burst enqueues a single job. The job,
once started, clears ``job_key`` (content added after that starts another job, which another
worker can take) and takes ids off the set ``batch`` at a time until it is empty or the job
has run for ``budget_seconds``; then it leaves the rest to a new job at the back of the
queue, so other work queued meanwhile is not held up behind a long backlog.

Nothing is lost with Redis: the database says which stage content is in. Reconcile leaves
content waiting in a set to the set's job (starting one if none is coming, ``kick``) and
re-enqueues other content that stopped moving as it does for every stage.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Collection

import attrs
from rq import Retry

from hma_framework.pipeline.liveness import job_in_flight
from hma_framework.runtime import Runtime

log = logging.getLogger(__name__)

# Clear the job key only if it still names this job (another may be waiting already).
_CLEAR_IF_MINE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


@attrs.frozen
class WaitingSet:
    """The waiting set of one stage, and how its jobs take from it."""

    stage: str
    role: str  # the queue its jobs go to
    job: Callable[[str], object]  # the RQ job function; takes its own job id
    batch: int
    budget_seconds: float

    @property
    def pending_key(self) -> str:
        return f"hma:{self.stage}-pending"

    @property
    def job_key(self) -> str:
        return f"hma:{self.stage}-job"

    def _enqueue(self, runtime: Runtime, job_id: str) -> None:
        intervals = list(runtime.settings.pipeline.retry_intervals_seconds)
        runtime.queues[self.role].enqueue(
            self.job,
            job_id,
            job_id=job_id,
            retry=Retry(max=len(intervals), interval=intervals),
            result_ttl=300,
            failure_ttl=7 * 24 * 3600,
        )

    def _new_job_id(self) -> str:
        return f"{self.stage}-{secrets.token_hex(4)}"  # like the stages' job ids

    def add(self, runtime: Runtime, content_pks: Collection[int]) -> None:
        """Have a job take these contents; call after the database records their stage."""
        job_id = self._new_job_id()
        pipe = runtime.redis.pipeline(transaction=True)
        if content_pks:
            pipe.sadd(self.pending_key, *content_pks)
        pipe.set(self.job_key, job_id, nx=True)
        if pipe.execute()[-1]:  # no job was waiting: this one is
            self._enqueue(runtime, job_id)

    def take(
        self,
        runtime: Runtime,
        job_id: str,
        handle: Callable[[list[int]], dict[str, int]],
    ) -> dict[str, int]:
        """The job's work: ``handle`` each batch taken off the set; returns summed counts."""
        runtime.redis.eval(_CLEAR_IF_MINE, 1, self.job_key, job_id)
        started = time.monotonic()
        totals: dict[str, int] = {}
        while popped := runtime.redis.spop(self.pending_key, self.batch):
            content_pks = sorted(int(pk) for pk in popped)
            try:
                counts = handle(content_pks)
            except Exception:
                runtime.redis.sadd(self.pending_key, *content_pks)  # for the retry, or another
                raise
            for name, count in counts.items():
                totals[name] = totals.get(name, 0) + count
            if len(popped) == self.batch:  # more may wait: let an idle worker share them
                self.add(runtime, ())
            if time.monotonic() - started > self.budget_seconds:
                self.add(runtime, ())  # the rest to a job at the back of the queue
                break
        return totals

    def waiting(self, runtime: Runtime, content_pk: int) -> bool:
        """Whether the content waits in the set (a job takes it; see ``kick``)."""
        return bool(runtime.redis.sismember(self.pending_key, str(content_pk)))

    def kick(self, runtime: Runtime, now: dt.datetime) -> bool:
        """Reconcile: start a job if contents wait in the set and none is coming."""
        if not runtime.redis.scard(self.pending_key):
            return False
        queued = runtime.redis.get(self.job_key)
        if queued is not None and job_in_flight(runtime, queued.decode(), now):  # type: ignore[union-attr]
            return False
        job_id = self._new_job_id()
        runtime.redis.set(self.job_key, job_id)
        log.warning(
            "contents wait for a %s job and none is coming; enqueueing %s", self.stage, job_id
        )
        self._enqueue(runtime, job_id)
        return True
