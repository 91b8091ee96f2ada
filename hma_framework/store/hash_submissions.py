"""The write behind ``/submit/hash/``: one transaction of a few plain statements.

This is the high-throughput path (a platform calling the matcher directly), so new content,
its submission, its signal and its matches are written with pre-written SQL through the
driver instead of the ORM, which cost several times more per request. Anything unusual (the
content exists already) goes through :class:`ContentRecords`, the general path.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
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


@attrs.frozen
class HashItem:
    """One validated item of a batch: what ``/submit/hash/`` would record for it."""

    submission: Submission
    signal: ComputedSignal
    matches: Sequence[RecordedMatch]
    force: bool = False


class HashSubmissions:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._records = ContentRecords(store)

    def record_many(
        self, items: Sequence[HashItem], *, act_job_id: str
    ) -> list[tuple[SubmitOutcome, int]]:
        """Record a batch in one transaction, each item exactly as it would be recorded alone.

        Content ids new to the store (the common case) are written with a few multi-row
        statements; items naming stored content, or content an earlier item of the same
        batch created, go through the general path one by one, in batch order, so a
        repeated id in a batch behaves like a resubmission. Matched content carries
        ``act_job_id``: one act job serves the whole batch.
        """
        with self._store.transaction(take_turn=True) as session:
            bulk = BulkWriter(session)
            stored = _stored_content_ids(bulk, [i.submission.content_id for i in items])
            fresh: list[int] = []
            later: list[int] = []
            seen: set[str] = set()
            for position, item in enumerate(items):
                content_id = item.submission.content_id
                (later if content_id in stored or content_id in seen else fresh).append(position)
                seen.add(content_id)
            results: list[tuple[SubmitOutcome, int] | None] = [None] * len(items)
            pks = _insert_new(bulk, [items[p] for p in fresh], act_job_id)
            for position, content_pk in zip(fresh, pks, strict=True):
                results[position] = (SubmitOutcome.CREATED, content_pk)
            for position in later:
                item = items[position]
                results[position] = self._resubmit(
                    session, item.submission, item.signal, item.matches, item.force, act_job_id
                )
            return [r for r in results if r is not None]

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


def _stored_content_ids(bulk: BulkWriter, content_ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    unique = sorted(set(content_ids))
    connection = bulk.session.connection()
    for start in range(0, len(unique), 900):  # under SQLite's bound-variable limit
        chunk = unique[start : start + 900]
        marks = ", ".join([bulk.mark] * len(chunk))
        rows = connection.exec_driver_sql(
            f"SELECT content_id FROM content WHERE content_id IN ({marks})", tuple(chunk)
        )
        found.update(str(row[0]) for row in rows)
    return found


def _insert_new(bulk: BulkWriter, items: Sequence[HashItem], act_job_id: str) -> list[int]:
    """Insert content new to the store with its submission, signal and matches; pks in order."""
    if not items:
        return []
    now = bulk.timestamp(utcnow())
    content_rows: list[tuple[Any, ...]] = []
    for item in items:
        submission = item.submission
        content_rows.append(
            (
                submission.content_id,
                submission.content_type,
                submission.method,
                submission.content_url,
                submission.digest,
                json.dumps(list(submission.additional_fields)),
                MATCHED if item.matches else NO_MATCH,
                0,
                now,
                now,
                now,
                now,
                act_job_id if item.matches else None,
            )
        )
    returned = bulk.insert_rows(
        "INSERT INTO content (content_id, content_type, submission_method, content_url, "
        "params_digest, additional_fields, status, attempts, submitted_at, hashed_at, "
        "matched_at, updated_at, job_id)",
        content_rows,
        "RETURNING id, content_id",
    )
    by_content_id = {str(content_id): int(pk) for pk, content_id in returned}
    pks = [by_content_id[item.submission.content_id] for item in items]
    bulk.insert_rows(
        "INSERT INTO content_submission (content_pk, method, parameters, submitted_at)",
        [
            (pk, i.submission.method, json.dumps(i.submission.recorded_parameters), now)
            for pk, i in zip(pks, items, strict=True)
        ],
    )
    bulk.insert_rows(
        "INSERT INTO content_signal (content_pk, signal_type, signal_value, quality, "
        "status, created_at)",
        [
            (pk, i.signal.signal_type, i.signal.value, i.signal.quality, SIGNAL_OK, now)
            for pk, i in zip(pks, items, strict=True)
        ],
    )
    bulk.insert_rows(
        "INSERT INTO match (content_pk, bank_pk, member_pk, signal_type, content_signal, "
        "member_signal, distance, created_at)",
        [
            (
                pk,
                m.bank_pk,
                m.member_pk,
                m.signal_type,
                m.content_signal,
                m.member_signal,
                m.distance,
                now,
            )
            for pk, i in zip(pks, items, strict=True)
            for m in i.matches
        ],
        "ON CONFLICT DO NOTHING",
    )
    return pks
