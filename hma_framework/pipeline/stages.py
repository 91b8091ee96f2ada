"""The pipeline's jobs: hash -> match -> act, each taking a content id.

A stage first checks the content is still at the stage it handles (a retried or duplicated
job is then a no-op), records its outcome, and only then enqueues the next stage. Transient
failures raise so RQ retries them with backoff; once retries run out, and for permanent
failures at once, the content is marked failed with the reason: nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from rq import Retry, get_current_job

from hma_framework import metrics
from hma_framework.errors import PermanentMediaError, TransientFetchError
from hma_framework.media_hashing import compute_signals, fetched
from hma_framework.pipeline.act_queue import queue_for_action
from hma_framework.pipeline.acting import act_many
from hma_framework.pipeline.context import current_runtime
from hma_framework.pipeline.waiting_sets import WaitingSet
from hma_framework.runtime import Runtime
from hma_framework.store import content as records
from hma_framework.store.content import ComputedSignal, RecordedMatch
from hma_framework.store.tables import ContentRow

log = logging.getLogger(__name__)

STAGE_ROLES = {"hash": "hash", "match": "match", "act": "action"}


def new_job_id(stage: str, content_pk: int | None = None) -> str:
    """A job id naming its stage (and content, when the id is known before the job is)."""
    middle = f"-{content_pk}" if content_pk is not None else ""
    return f"{stage}{middle}-{secrets.token_hex(4)}"


def enqueue_stage(runtime: Runtime, stage: str, content_pk: int, job_id: str) -> None:
    """Put a stage's job on its queue; call only after the database records the stage."""
    func = {"hash": hash_content, "match": match_content, "act": act_content}[stage]
    intervals = list(runtime.settings.pipeline.retry_intervals_seconds)
    runtime.queues[STAGE_ROLES[stage]].enqueue(
        func,
        content_pk,
        job_id=job_id,
        retry=Retry(max=len(intervals), interval=intervals),
        result_ttl=300,
        failure_ttl=7 * 24 * 3600,
    )


def advance(runtime: Runtime, stage: str, content_pk: int) -> None:
    """Record which job carries the content next, then enqueue it."""
    job_id = new_job_id(stage, content_pk)
    runtime.content.set_job(content_pk, job_id)
    enqueue_stage(runtime, stage, content_pk, job_id)


def _retries_left() -> int:
    job = get_current_job()
    return int(job.retries_left or 0) if job is not None else 0


# --- hash ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _media_file(runtime: Runtime, row: ContentRow) -> Iterator[Path]:
    """A local file with the content's media: the stored upload, or a fresh download."""
    if row.media_key:
        with runtime.media.local_file(row.media_key) as path:
            yield path
    elif row.content_url:
        with fetched(runtime, row.content_url) as path:
            yield path
    else:
        raise PermanentMediaError("content has neither uploaded media nor a URL to fetch")


def _forget_media(runtime: Runtime, row: ContentRow) -> None:
    if row.media_key and not runtime.settings.pipeline.retain_media:
        runtime.media.delete(row.media_key)


def _resubmitted_since(runtime: Runtime, row: ContentRow) -> bool:
    """Whether a forced resubmission replaced ``row`` (and deleted its media) meanwhile."""
    current = runtime.content.get_row(row.id)
    return current is not None and (
        current.submitted_at != row.submitted_at or current.media_key != row.media_key
    )


def hash_content(content_pk: int) -> str:
    """Fetch the media, compute every signal type for its content type, record them."""
    return _hash(current_runtime(), content_pk, may_retry=_retries_left() > 0)


def hash_pending(job_id: str) -> dict[str, int]:
    """The hash job of uploaded media: hash the contents waiting in the set, a few at a time."""
    runtime = current_runtime()
    return HASH.take(runtime, job_id, lambda pks: _hash_each(runtime, pks))


#: Uploaded media (``/submit/bytes/``) waits here for hashing; a job hashes several per RQ
#: round, two or three to a batch so that every idle worker gets a share of a burst.
HASH = WaitingSet("hash", "hash", hash_pending, batch=3, budget_seconds=2.0)


def _hash_each(runtime: Runtime, content_pks: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for content_pk in content_pks:
        try:
            outcome = _hash(runtime, content_pk, may_retry=True)
        except Exception as exc:
            # A job of its own then retries it on RQ's schedule, as for any hash job.
            log.warning("hashing content %d failed (%s); retrying it alone", content_pk, exc)
            advance(runtime, "hash", content_pk)
            outcome = "retrying"
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _hash(runtime: Runtime, content_pk: int, *, may_retry: bool) -> str:
    """The hash stage for one content; raises a failure worth retrying if ``may_retry``."""
    row = runtime.content.get_row(content_pk)
    if row is None or row.status != records.SUBMITTED:
        return "skipped: not awaiting hashing"
    try:
        with _media_file(runtime, row) as path:
            signals = compute_signals(runtime, row.content_type, path)
    except PermanentMediaError as exc:
        if _resubmitted_since(runtime, row):
            return "skipped: resubmitted while hashing"
        runtime.content.mark_failed(content_pk, f"hashing failed: {exc}")
        _forget_media(runtime, row)
        return "failed"
    except Exception as exc:
        # Transient failures (and unexpected errors: bugs, a full disk) are retried; once
        # retries run out the content is marked failed with the reason, never left silent.
        if may_retry:
            runtime.content.touch(content_pk)
            raise
        what = "fetching" if isinstance(exc, TransientFetchError) else "hashing"
        runtime.content.mark_failed(content_pk, f"{what} failed after retries: {exc}")
        return "failed"
    if "match" in runtime.roles:
        # This worker keeps an index warm: match now and record both stages in one
        # transaction, instead of a round trip through the match queue.
        status = _record_hashed_and_matched(runtime, content_pk, signals)
        metrics.observe_stage("matched", row.submitted_at)
    else:
        runtime.content.record_signals(content_pk, signals)
        advance(runtime, "match", content_pk)
        status = records.HASHED
    metrics.observe_stage("hashed", row.submitted_at)
    _forget_media(runtime, row)
    return status


def _record_hashed_and_matched(
    runtime: Runtime, content_pk: int, signals: list[ComputedSignal]
) -> str:
    matches = find_matches(runtime, [s for s in signals if s.quality_ok])
    with runtime.store.transaction() as session:
        runtime.content.record_signals(content_pk, signals, session)
        status = runtime.content.record_matches(content_pk, matches, session)
    if status == records.MATCHED:
        queue_for_action(runtime, [content_pk])
    return status


# --- match ---------------------------------------------------------------------------------


def find_matches(runtime: Runtime, signals: list[ComputedSignal]) -> list[RecordedMatch]:
    """The matches of one content's signals."""
    return [match for per_signal in find_matches_many(runtime, signals) for match in per_signal]


def find_matches_many(
    runtime: Runtime, signals: Sequence[ComputedSignal]
) -> list[list[RecordedMatch]]:
    """Each signal's matches, in order: one batched index query per signal type."""
    found: list[list[RecordedMatch]] = [[] for _ in signals]
    by_type: dict[str, list[int]] = {}
    for position, signal in enumerate(signals):
        by_type.setdefault(signal.signal_type, []).append(position)
    for signal_type, positions in by_type.items():
        values = [signals[p].value for p in positions]
        for position, matches in zip(
            positions, runtime.indexes.match_many(signal_type, values), strict=True
        ):
            signal = signals[position]
            found[position] = [
                RecordedMatch(
                    bank_pk=match.bank_pk,
                    member_pk=match.member_pk,
                    signal_type=signal_type,
                    variant=signal.variant,
                    content_signal=signal.value,
                    member_signal=match.stored_signal,
                    distance=match.distance,
                )
                for match in matches
            ]
    return found


def match_content(content_pk: int) -> str:
    """Query the indexes with the content's signals and record the matches."""
    runtime = current_runtime()
    row = runtime.content.get_row(content_pk)
    if row is None or row.status != records.HASHED:
        return "skipped: not awaiting matching"
    matches = find_matches(runtime, runtime.content.usable_signals(content_pk))
    status = runtime.content.record_matches(content_pk, matches)
    metrics.observe_stage("matched", row.submitted_at)
    if status == records.MATCHED:
        queue_for_action(runtime, [content_pk])
    return status


# --- act -----------------------------------------------------------------------------------


def act_contents(content_pks: list[int]) -> dict[str, int]:
    """An act job for a list of contents (queued by an earlier version): one batch."""
    acted = act_many(current_runtime(), content_pks)
    return {records.ACTIONED: acted.actioned, "skipped": acted.skipped}


def act_content(content_pk: int) -> str:
    """The act stage for one content (reconcile's re-enqueued job): a batch of one."""
    acted = act_many(current_runtime(), [content_pk])
    return records.ACTIONED if acted.actioned else "skipped: not awaiting actions"
