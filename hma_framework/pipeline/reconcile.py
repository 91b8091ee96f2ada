"""Reconcile: re-enqueue content that stopped moving, expire uploads that never came.

The database says which stage content is in and which job carries it. Content that has not
changed for ``pipeline.stuck_after_seconds`` and whose job is neither waiting in a queue nor
running on a live worker (Redis lost it, or the worker was killed: its heartbeat is gone) gets
a fresh job for its stage. Stages are idempotent, so a job that turns out to be merely slow
costs a no-op, never a double result.
"""

from __future__ import annotations

import datetime as dt
import logging

from hma_framework.pipeline import act_queue
from hma_framework.pipeline.context import current_runtime
from hma_framework.pipeline.liveness import job_in_flight
from hma_framework.pipeline.media_sweep import sweep_media
from hma_framework.pipeline.stages import HASH, advance
from hma_framework.runtime import Runtime
from hma_framework.store import content as records

log = logging.getLogger(__name__)

NEXT_STAGE = {records.SUBMITTED: "hash", records.HASHED: "match", records.MATCHED: "act"}


def _claim_arrived_uploads(runtime: Runtime, cutoff: dt.datetime) -> int:
    """Uploads made straight to the media store whose arrival event never came."""
    claimed = 0
    for row in runtime.content.awaiting_direct_uploads(cutoff):
        key = row.media_key
        try:
            arrived = key is not None and runtime.media.exists(key)
        except Exception:
            log.exception("checking the media store for %s failed", row.content_id)
            continue
        if arrived and key and runtime.content.claim_upload(row.id, key, check_expiry=False):
            log.warning("upload of %s arrived without its event; hashing it", row.content_id)
            advance(runtime, "hash", row.id)
            claimed += 1
    return claimed


def reconcile_runtime(runtime: Runtime) -> dict[str, int]:
    now = dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(seconds=runtime.settings.pipeline.stuck_after_seconds)
    claimed = _claim_arrived_uploads(runtime, cutoff)
    expired = runtime.content.expire_uploads()
    sets = {"act": act_queue.ACT, "hash": HASH}
    # A waiting set whose job was lost gets a new one (its contents are not "requeued").
    restarted = sum(1 for waiting_set in sets.values() if waiting_set.kick(runtime, now))
    requeued = 0
    for row in runtime.content.stalled(cutoff):
        stage = NEXT_STAGE.get(row.status)
        if stage is None or job_in_flight(runtime, row.job_id, now):
            continue
        if stage in sets and sets[stage].waiting(runtime, row.id):
            continue
        log.warning(
            "content %s stuck in %s since %s; re-enqueueing %s",
            row.content_id,
            row.status,
            row.updated_at,
            stage,
        )
        advance(runtime, stage, row.id)
        requeued += 1
    return {
        "requeued": requeued,
        "restarted_batch_jobs": restarted,
        "expired_uploads": expired,
        "claimed_uploads": claimed,
        **sweep_media(runtime),
    }


def reconcile() -> dict[str, int]:
    """The periodic job (maintenance queue)."""
    return reconcile_runtime(current_runtime())
