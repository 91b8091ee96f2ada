"""The act stage's waiting set: one act job acts on many matched contents at once.

Acting on each matched content in a job of its own cost two RQ jobs and two database
transactions per action, which at a flood of matches was most of the work. Whoever records
content as matched adds it to this set (see :mod:`~hma_framework.pipeline.waiting_sets`); the
act job takes up to ``BATCH`` at a time and acts on each batch in one transaction
(:func:`~hma_framework.pipeline.acting.act_many`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import attrs

from hma_framework.pipeline.acting import act_many
from hma_framework.pipeline.context import current_runtime
from hma_framework.pipeline.waiting_sets import WaitingSet
from hma_framework.runtime import Runtime

#: Contents acted on per transaction.
BATCH = 200


def act_pending(job_id: str) -> dict[str, int]:
    """The act job: act on the contents waiting in the set, a batch at a time."""
    runtime = current_runtime()
    return ACT.take(runtime, job_id, lambda pks: attrs.asdict(act_many(runtime, pks)))


ACT = WaitingSet("act", "action", act_pending, batch=BATCH, budget_seconds=2.0)
PENDING_KEY = ACT.pending_key
JOB_KEY = ACT.job_key


def queue_for_action(runtime: Runtime, content_pks: Collection[int]) -> None:
    """Have an act job take these contents; call after the database records them matched."""
    ACT.add(runtime, content_pks)


def waiting(runtime: Runtime, content_pk: int) -> bool:
    return ACT.waiting(runtime, content_pk)


def kick(runtime: Runtime, now: dt.datetime) -> bool:
    return ACT.kick(runtime, now)
