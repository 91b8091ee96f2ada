"""Objects created in subscribed buckets become content, exactly once per object version.

Each object is recorded as content (``content_url`` ``s3://bucket/key``, the subscription's
content type and id template, ``s3_bucket:``/``s3_key:`` fields) before its hash job is
enqueued, as the submission API does. The object's ETag is part of the submission's
parameters, so the same object reported twice is one content (an unchanged resubmission), and
a new version under the same key (a new ETag) is processed again.

Events are not delivered in order: S3's ``sequencer`` (per key) says which write came last. The
newest sequencer seen is kept in the content's latest submission record (outside the
parameters' digest, so an identical object re-put stays unchanged); an event older than it is
stale and changes nothing, however its ETag differs. Equal sequencers (or none: MinIO
webhooks without one, test servers) leave the decision to the ETag as before.
"""

from __future__ import annotations

import logging
import posixpath

import attrs
from rq.job import Job
from sqlalchemy.orm import Session

from hma_framework.pipeline.stages import advance, enqueue_stage, new_job_id
from hma_framework.runtime import Runtime
from hma_framework.store import content as records
from hma_framework.store.content import Submission, SubmitOutcome
from hma_framework.store.tables import ContentRow, ContentSubmissionRow
from hma_s3_source.events import ObjectCreated, sequencer_order
from hma_s3_source.objects import ObjectLocation
from hma_s3_source.s3_settings import BucketSubscription, S3Settings

log = logging.getLogger(__name__)

SUBMISSION_METHOD = "s3_event"
SEQUENCER_PARAMETER = "s3_sequencer"
PHOTO_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


@attrs.define
class IntakeTally:
    """What one batch of events came to."""

    recorded: int = 0
    unchanged: int = 0
    skipped: int = 0


def content_type_for(key: str) -> str | None:
    extension = posixpath.splitext(key)[1].lower()
    if extension in PHOTO_EXTENSIONS:
        return "photo"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    return None


def subscription_for(s3: S3Settings, bucket: str, key: str) -> BucketSubscription | None:
    return next((sub for sub in s3.buckets if sub.covers(bucket, key)), None)


def submission_for(s3: S3Settings, event: ObjectCreated) -> Submission | None:
    """The submission an object-created event amounts to, or None when it is not content."""
    if event.size == 0:
        return None  # folder markers, placeholders: nothing to hash
    subscription = subscription_for(s3, event.bucket, event.key)
    if subscription is None:
        return None
    content_type = subscription.content_type or content_type_for(event.key)
    if content_type is None:
        return None
    fields = (
        f"s3_bucket:{event.bucket}",
        f"s3_key:{event.key}",
        *subscription.additional_fields,
    )
    return Submission(
        content_id=subscription.content_id.format(bucket=event.bucket, key=event.key),
        content_type=content_type,
        method=SUBMISSION_METHOD,
        additional_fields=fields,
        content_url=ObjectLocation(event.bucket, event.key).url,
        parameters={"etag": event.etag, "version_id": event.version_id},
    )


def record_events(runtime: Runtime, s3: S3Settings, events: list[ObjectCreated]) -> IntakeTally:
    """Record every event's content and enqueue its hashing; raises if the records cannot be
    written (the caller then keeps the message for redelivery)."""
    tally = IntakeTally()
    for event in events:
        if s3.media_bucket and event.bucket == s3.media_bucket:
            media_key = _media_key(s3, event.key)
            if media_key is not None and event.size != 0:
                if record_upload(runtime, media_key):
                    tally.recorded += 1
                else:
                    tally.unchanged += 1
                continue
        submission = submission_for(s3, event)
        if submission is None:
            log.debug("skipping s3://%s/%s: not subscribed content", event.bucket, event.key)
            tally.skipped += 1
            continue
        if record_submission(runtime, submission, event.sequencer):
            tally.recorded += 1
        else:
            tally.unchanged += 1
    return tally


def _media_key(s3: S3Settings, object_key: str) -> str | None:
    key = object_key.removeprefix(s3.media_prefix)
    if (key == object_key and s3.media_prefix) or not key or "/" in key:
        return None
    return key


def record_upload(runtime: Runtime, media_key: str) -> bool:
    """An upload to a presigned URL arrived: hash its content. False if nothing waits for it
    (media written by ``/submit/bytes/``, a repeated event, an unknown key)."""
    number, _, _ = media_key.partition("-")
    if not number.isdigit():
        return False
    row = runtime.content.get_row(int(number))
    if row is None or row.media_key != media_key or row.status != records.AWAITING_UPLOAD:
        return False
    # S3 itself refused uploads once the presigned URL expired: what arrived was in time.
    if not runtime.content.claim_upload(row.id, media_key, check_expiry=False):
        return False
    advance(runtime, "hash", row.id)
    return True


def record_submission(runtime: Runtime, submission: Submission, sequencer: str = "") -> bool:
    """Record one object's content and enqueue its hash job; False if it was known already
    or the event is older than one already recorded for the object."""
    job_id = None
    with runtime.store.transaction() as session:
        outcome, content_pk = runtime.content.submit(submission, force=False, session=session)
        if outcome is not SubmitOutcome.CREATED and sequencer:
            latest = _latest_submission(runtime, session, content_pk)
            known = str((latest.parameters or {}).get(SEQUENCER_PARAMETER, "")) if latest else ""
            order = sequencer_order(sequencer, known) if known else 0
            if order < 0:
                log.info("stale event for %s: a newer write was recorded", submission.content_url)
                return False
            if order > 0 and latest is not None and outcome is SubmitOutcome.UNCHANGED:
                _remember_sequencer(latest, sequencer)  # the same object, written again
        if outcome is SubmitOutcome.CONFLICT:  # a new version of the object: process it again
            outcome, content_pk = runtime.content.submit(submission, force=True, session=session)
        if outcome is not SubmitOutcome.UNCHANGED and sequencer:
            newest = _pending_submission(session, content_pk) or _latest_submission(
                runtime, session, content_pk
            )
            if newest is not None:
                _remember_sequencer(newest, sequencer)
        row = session.get_one(ContentRow, content_pk)
        if outcome is not SubmitOutcome.UNCHANGED or _hash_job_lost(runtime, row):
            job_id = new_job_id("hash", content_pk)
            row.job_id = job_id
    if job_id is not None:
        enqueue_stage(runtime, "hash", content_pk, job_id)
    return outcome is not SubmitOutcome.UNCHANGED


def _hash_job_lost(runtime: Runtime, row: ContentRow) -> bool:
    """A redelivered event for content recorded by a listener killed before it enqueued."""
    if row.status != records.SUBMITTED:
        return False
    return not row.job_id or not Job.exists(row.job_id, connection=runtime.redis)


def _latest_submission(
    runtime: Runtime, session: Session, content_pk: int
) -> ContentSubmissionRow | None:
    pk = runtime.content.latest_submission_pk(content_pk, session)
    return None if pk is None else session.get(ContentSubmissionRow, pk)


def _pending_submission(session: Session, content_pk: int) -> ContentSubmissionRow | None:
    """The submission record ``submit`` just added, not yet written: found in the session
    rather than queried, so the sequencer goes out with its INSERT (no extra statement).
    None if ``submit`` already flushed it (the caller then queries)."""
    for pending in session.new:
        if isinstance(pending, ContentSubmissionRow) and pending.content_pk == content_pk:
            return pending
    return None


def _remember_sequencer(submission: ContentSubmissionRow, sequencer: str) -> None:
    # A new dict, so the JSON column is seen as changed.
    submission.parameters = {**(submission.parameters or {}), SEQUENCER_PARAMETER: sequencer}
