"""The write behind ``/submit/hash/``: one transaction of a few plain statements.

This is the high-throughput path (a platform calling the matcher directly), so new content,
its submission, its signal and its matches are written with pre-written SQL through the
driver instead of the ORM, which cost several times more per request. Anything unusual (the
content exists already) goes through :class:`ContentRecords`, the general path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy.orm import Session

from hma_framework.store.bulk import BulkWriter
from hma_framework.store.content import (
    MATCHED,
    NO_MATCH,
    SIGNAL_OK,
    ComputedSignal,
    ContentRecords,
    RecordedMatch,
    Submission,
    SubmitOutcome,
)
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentRow, utcnow


class HashSubmissions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._records = ContentRecords(store)

    def record(
        self,
        submission: Submission,
        signal: ComputedSignal,
        matches: Sequence[RecordedMatch],
        *,
        force: bool,
        act_job_id: str,
    ) -> tuple[SubmitOutcome, int]:
        """Record a hash submission and its matches; ``act_job_id`` is stored if it matched."""
        with self._store.transaction() as session:
            bulk = BulkWriter(session)
            existing = bulk.fetch_one(
                "SELECT id, params_digest FROM content WHERE content_id = {p}",
                (submission.content_id,),
            )
            if existing is not None:
                return self._resubmit(session, submission, signal, matches, force, act_job_id)
            now = bulk.timestamp(utcnow())
            status = MATCHED if matches else NO_MATCH
            row = bulk.fetch_one(
                "INSERT INTO content (content_id, content_type, submission_method, content_url, "
                "params_digest, additional_fields, status, attempts, submitted_at, hashed_at, "
                "matched_at, updated_at, job_id) VALUES "
                "({p}, {p}, {p}, {p}, {p}, {p}, {p}, 0, {p}, {p}, {p}, {p}, {p}) RETURNING id",
                (
                    submission.content_id,
                    submission.content_type,
                    submission.method,
                    submission.content_url,
                    submission.digest,
                    json.dumps(list(submission.additional_fields)),
                    status,
                    now,
                    now,
                    now,
                    now,
                    act_job_id if matches else None,
                ),
            )
            assert row is not None
            content_pk = int(row[0])
            bulk.insert_rows(
                "INSERT INTO content_submission (content_pk, method, parameters, submitted_at)",
                [(content_pk, submission.method, json.dumps(submission.recorded_parameters), now)],
            )
            bulk.insert_rows(
                "INSERT INTO content_signal (content_pk, signal_type, signal_value, quality, "
                "status, created_at)",
                [(content_pk, signal.signal_type, signal.value, signal.quality, SIGNAL_OK, now)],
            )
            bulk.insert_rows(
                "INSERT INTO match (content_pk, bank_pk, member_pk, signal_type, content_signal, "
                "member_signal, distance, created_at)",
                [
                    (
                        content_pk,
                        m.bank_pk,
                        m.member_pk,
                        m.signal_type,
                        m.content_signal,
                        m.member_signal,
                        m.distance,
                        now,
                    )
                    for m in matches
                ],
                "ON CONFLICT DO NOTHING",
            )
            return SubmitOutcome.CREATED, content_pk

    def _resubmit(
        self,
        session: Session,
        submission: Submission,
        signal: ComputedSignal,
        matches: Sequence[RecordedMatch],
        force: bool,
        act_job_id: str,
    ) -> tuple[SubmitOutcome, int]:
        outcome, content_pk = self._records.submit(submission, force=force, session=session)
        if outcome in (SubmitOutcome.UNCHANGED, SubmitOutcome.CONFLICT):
            return outcome, content_pk
        self._records.record_signals(content_pk, [signal], session)
        if self._records.record_matches(content_pk, matches, session) == MATCHED:
            session.get_one(ContentRow, content_pk).job_id = act_job_id
        return outcome, content_pk
