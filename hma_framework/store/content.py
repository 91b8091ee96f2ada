"""Content records: submissions, stages, signals and matches.

Each stage writes its outcome here before the next stage's job is enqueued, so the database
always says how far content got; reconcile re-enqueues whatever stops moving.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import attrs
from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from hma_framework.store.db import Store
from hma_framework.store.tables import (
    ContentRow,
    ContentSignalRow,
    ContentSubmissionRow,
    MatchRow,
    utcnow,
)

AWAITING_UPLOAD = "awaiting_upload"
SUBMITTED = "submitted"
HASHED = "hashed"
MATCHED = "matched"
ACTIONED = "actioned"
NO_MATCH = "no_match"
FAILED = "failed"
TERMINAL_STATUSES = (ACTIONED, NO_MATCH, FAILED)

SIGNAL_OK = "ok"
SIGNAL_LOW_QUALITY = "quality_too_low"


class SubmitOutcome(enum.Enum):
    CREATED = "created"
    UNCHANGED = "unchanged"  # identical resubmission: nothing to do
    CONFLICT = "conflict"  # different parameters without force_resubmit
    RESUBMITTED = "resubmitted"


@attrs.frozen
class Submission:
    """What a platform sent, normalized; ``parameters`` decide whether a resubmission differs."""

    content_id: str
    content_type: str
    method: str
    additional_fields: tuple[str, ...] = ()
    content_url: str | None = None
    parameters: dict[str, Any] = attrs.field(factory=dict)
    initial_status: str = SUBMITTED
    upload_expires_at: dt.datetime | None = None
    media_type: str | None = None

    @property
    def recorded_parameters(self) -> dict[str, Any]:
        """What a submission row keeps of this submission."""
        return {
            "content_type": self.content_type,
            "additional_fields": list(self.additional_fields),
            "content_url": self.content_url,
            **self.parameters,
        }

    @property
    def digest(self) -> str:
        payload = {
            "content_type": self.content_type,
            "method": self.method,
            "additional_fields": list(self.additional_fields),
            "content_url": self.content_url,
            **self.parameters,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@attrs.frozen
class ComputedSignal:
    """One reading of content under one signal type; ``variant`` as in ``HashResult``."""

    signal_type: str
    value: str
    quality: int | None = None
    quality_ok: bool = True
    variant: str = ""


@attrs.frozen
class RecordedMatch:
    bank_pk: int
    member_pk: int
    signal_type: str
    content_signal: str
    member_signal: str
    distance: int
    variant: str = ""  # the content signal's reading that matched


@functools.cache
def _upsert_statement(
    dialect: str, table: type[Any], keys: tuple[str, ...], update_columns: tuple[str, ...]
) -> Any:
    """Built once per shape: building the statement cost more than running it."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    if update_columns:
        return statement.on_conflict_do_update(
            index_elements=list(keys), set_={c: statement.excluded[c] for c in update_columns}
        )
    return statement.on_conflict_do_nothing(index_elements=list(keys))


def _upsert(
    session: Session,
    table: type[Any],
    rows: list[dict[str, Any]],
    keys: list[str],
    update_columns: Sequence[str] = (),
) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    statement = _upsert_statement(dialect, table, tuple(keys), tuple(update_columns))  # type: ignore[arg-type]
    session.execute(statement, rows)


def _forget_other_readings(
    session: Session, content_pk: int, signals: Sequence[ComputedSignal]
) -> None:
    """Delete readings of the recomputed signal types that this computation no longer has.

    Re-hashing replaces a signal type's readings as a whole: a resubmitted photo that lost its
    EXIF rotation must not keep matching by its old "stored" hash.
    """
    if not signals:
        return
    kept = [(s.signal_type, s.variant) for s in signals]
    session.execute(
        delete(ContentSignalRow).where(
            ContentSignalRow.content_pk == content_pk,
            ContentSignalRow.signal_type.in_({s.signal_type for s in signals}),
            tuple_(ContentSignalRow.signal_type, ContentSignalRow.variant).not_in(kept),
        )
    )


def _drop_changed_readings(
    session: Session, content_pk: int, signals: Sequence[ComputedSignal]
) -> None:
    """Delete readings whose value this computation changes, so the new ones get new ids.

    Retroaction's rings copy ``content_signal`` rows in id order: a value updated in place
    under its old id would never reach them, and content resubmitted with a new hash would
    escape retroactive matching. A reading recomputed to the same value keeps its row (a
    retried hash job adds nothing to the rings).
    """
    for s in signals:
        session.execute(
            delete(ContentSignalRow).where(
                ContentSignalRow.content_pk == content_pk,
                ContentSignalRow.signal_type == s.signal_type,
                ContentSignalRow.variant == s.variant,
                ContentSignalRow.signal_value != s.value,
            )
        )


class ContentRecords:
    """The content repository."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # --- submissions ---------------------------------------------------------------------

    def submit(
        self, submission: Submission, *, force: bool, session: Session | None = None
    ) -> tuple[SubmitOutcome, int]:
        """Create or resubmit content; idempotent for identical parameters."""
        if session is None:
            with self._store.transaction() as own:
                return self.submit(submission, force=force, session=own)
        digest = submission.digest
        row = session.scalars(
            select(ContentRow).where(ContentRow.content_id == submission.content_id)
        ).one_or_none()
        if row is not None and not force:
            if row.params_digest == digest:
                return SubmitOutcome.UNCHANGED, row.id
            return SubmitOutcome.CONFLICT, row.id
        now = utcnow()
        if row is None:
            row = ContentRow(content_id=submission.content_id)
            session.add(row)
            outcome = SubmitOutcome.CREATED
        else:
            outcome = SubmitOutcome.RESUBMITTED
            session.execute(  # kept as history, no longer what this content matches
                update(MatchRow)
                .where(MatchRow.content_pk == row.id, MatchRow.superseded_at.is_(None))
                .values(superseded_at=now)
            )
        row.content_type = submission.content_type
        row.submission_method = submission.method
        row.content_url = submission.content_url
        row.additional_fields = list(submission.additional_fields)
        row.params_digest = digest
        row.status = submission.initial_status
        row.error = None
        row.media_key = None
        row.media_type = submission.media_type
        row.upload_expires_at = submission.upload_expires_at
        row.job_id = None
        row.submitted_at = now
        row.hashed_at = row.matched_at = row.actioned_at = None
        session.flush()
        session.add(
            ContentSubmissionRow(
                content_pk=row.id,
                method=submission.method,
                parameters=submission.recorded_parameters,
                submitted_at=now,
            )
        )
        return outcome, row.id

    # --- stages ----------------------------------------------------------------------------

    def get_row(self, content_pk: int) -> ContentRow | None:
        with self._store.reading() as session:
            return session.get(ContentRow, content_pk)

    def set_media(self, content_pk: int, media_key: str, media_type: str | None = None) -> None:
        with self._store.transaction() as session:
            values: dict[str, Any] = {"media_key": media_key}
            if media_type:
                values["media_type"] = media_type
            session.execute(update(ContentRow).where(ContentRow.id == content_pk).values(values))

    def set_job(self, content_pk: int, job_id: str) -> None:
        with self._store.transaction() as session:
            session.execute(
                update(ContentRow).where(ContentRow.id == content_pk).values(job_id=job_id)
            )

    def latest_submission_pk(self, content_pk: int, session: Session) -> int | None:
        """The id of the content's newest submission: what an upload URL is bound to."""
        return session.scalar(
            select(func.max(ContentSubmissionRow.id)).where(
                ContentSubmissionRow.content_pk == content_pk
            )
        )

    def claim_upload(
        self,
        content_pk: int,
        media_key: str,
        submission_pk: int | None = None,
        *,
        check_expiry: bool = True,
    ) -> bool:
        """Move content from awaiting_upload to submitted once; False if already used/expired.

        With ``submission_pk`` (an upload URL of this API), only for that submission: a URL
        issued before a forced resubmission is refused in the same statement that would claim
        it, so no race lets it through. ``check_expiry`` off: an object store refused uploads
        after the URL expired itself, so media found there later (its event lost) arrived in
        time.
        """
        conditions = [ContentRow.id == content_pk, ContentRow.status == AWAITING_UPLOAD]
        if check_expiry:
            conditions.append(ContentRow.upload_expires_at > utcnow())
        if submission_pk is not None:
            newest = (
                select(func.max(ContentSubmissionRow.id))
                .where(ContentSubmissionRow.content_pk == content_pk)
                .scalar_subquery()
            )
            conditions.append(newest == submission_pk)
        with self._store.transaction() as session:
            result = session.execute(
                update(ContentRow)
                .where(*conditions)
                .values(status=SUBMITTED, media_key=media_key, upload_expires_at=None)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def awaiting_direct_uploads(
        self, older_than: dt.datetime, limit: int = 1000
    ) -> list[ContentRow]:
        """Content waiting for an upload straight to the media store (its key is known) that
        has waited past ``older_than`` or whose upload URL has expired."""
        with self._store.reading() as session:
            return list(
                session.scalars(
                    select(ContentRow)
                    .where(
                        ContentRow.status == AWAITING_UPLOAD,
                        ContentRow.media_key.is_not(None),
                        (ContentRow.updated_at < older_than)
                        | (ContentRow.upload_expires_at <= utcnow()),
                    )
                    .order_by(ContentRow.updated_at)
                    .limit(limit)
                )
            )

    def record_signals(
        self, content_pk: int, signals: Sequence[ComputedSignal], session: Session | None = None
    ) -> None:
        if session is None:
            with self._store.transaction() as own:
                self.record_signals(content_pk, signals, own)
            return
        _drop_changed_readings(session, content_pk, signals)
        _upsert(
            session,
            ContentSignalRow,
            [
                {
                    "content_pk": content_pk,
                    "signal_type": s.signal_type,
                    "variant": s.variant,
                    "signal_value": s.value,
                    "quality": s.quality,
                    "status": SIGNAL_OK if s.quality_ok else SIGNAL_LOW_QUALITY,
                    "created_at": utcnow(),
                }
                for s in signals
            ],
            ["content_pk", "signal_type", "variant"],
            update_columns=("signal_value", "quality", "status", "created_at"),
        )
        _forget_other_readings(session, content_pk, signals)
        session.execute(
            update(ContentRow)
            .where(ContentRow.id == content_pk)
            .values(status=HASHED, hashed_at=utcnow(), error=None)
        )

    def usable_signals(self, content_pk: int) -> list[ComputedSignal]:
        with self._store.reading() as session:
            rows = session.scalars(
                select(ContentSignalRow).where(
                    ContentSignalRow.content_pk == content_pk,
                    ContentSignalRow.status == SIGNAL_OK,
                )
            ).all()
        return [
            ComputedSignal(r.signal_type, r.signal_value, r.quality, variant=r.variant)
            for r in rows
        ]

    def record_matches(
        self, content_pk: int, matches: Sequence[RecordedMatch], session: Session | None = None
    ) -> str:
        """Record the match stage's outcome; returns the new status (matched or no_match)."""
        if session is None:
            with self._store.transaction() as own:
                return self.record_matches(content_pk, matches, own)
        now = utcnow()
        _upsert(
            session,
            MatchRow,
            [
                {"content_pk": content_pk, "created_at": now, "superseded_at": None}
                | attrs.asdict(m)
                for m in matches
            ],
            ["content_pk", "member_pk", "signal_type", "content_signal"],
            update_columns=("superseded_at",),  # found again after a resubmission: current
        )
        status = MATCHED if matches else NO_MATCH
        session.execute(
            update(ContentRow)
            .where(ContentRow.id == content_pk)
            .values(status=status, matched_at=now)
        )
        return status

    def record_actioned(self, content_pk: int) -> None:
        with self._store.transaction() as session:
            session.execute(
                update(ContentRow)
                .where(ContentRow.id == content_pk)
                .values(status=ACTIONED, actioned_at=utcnow())
            )

    def mark_failed(self, content_pk: int, reason: str) -> None:
        with self._store.transaction() as session:
            session.execute(
                update(ContentRow)
                .where(ContentRow.id == content_pk)
                .values(status=FAILED, error=reason[:4000])
            )

    def touch(self, content_pk: int) -> None:
        with self._store.transaction() as session:
            session.execute(
                update(ContentRow).where(ContentRow.id == content_pk).values(updated_at=utcnow())
            )

    # --- reconcile -------------------------------------------------------------------------

    def stalled(self, older_than: dt.datetime, limit: int = 1000) -> list[ContentRow]:
        """Non-terminal content not updated since ``older_than``."""
        with self._store.reading() as session:
            return list(
                session.scalars(
                    select(ContentRow)
                    .where(
                        ContentRow.status.in_([SUBMITTED, HASHED, MATCHED, AWAITING_UPLOAD]),
                        ContentRow.updated_at < older_than,
                    )
                    .order_by(ContentRow.updated_at)
                    .limit(limit)
                )
            )

    def expire_uploads(self) -> int:
        with self._store.transaction() as session:
            result = session.execute(
                update(ContentRow)
                .where(
                    ContentRow.status == AWAITING_UPLOAD, ContentRow.upload_expires_at <= utcnow()
                )
                .values(status=FAILED, error="the upload URL expired before any upload arrived")
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def count_by_status(self) -> dict[str, int]:
        with self._store.reading() as session:
            return dict(
                session.execute(
                    select(ContentRow.status, func.count()).group_by(ContentRow.status)
                ).all()
            )
