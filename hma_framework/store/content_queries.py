"""Read-side queries over content and matches, shaped for the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select

from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankRow,
    ContentRow,
    ContentSignalRow,
    ContentSubmissionRow,
    DeliveryRow,
    MatchRow,
)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def variant_field(variant: str) -> dict[str, str]:
    """``{"variant": ...}`` for a reading of media read more than one way, else nothing.

    Most media reads one way; only then-ambiguous answers (an EXIF-rotated photo's
    "displayed" and "stored" hashes) carry the key, so other answers keep their shape.
    """
    return {"variant": variant} if variant else {}


def _match_json(match: MatchRow, bank: str | None, content_id: str) -> dict[str, Any]:
    """One match as the API shows it.

    A match outlives its member and its bank (a past event stays answerable): then
    ``member_id`` (and ``bank``, once the bank is deleted) is null and ``member_removed``
    true, and the stored signals and distance still say what matched.
    """
    return {
        "id": match.id,
        "content_id": content_id,
        "bank": bank,
        "member_id": match.member_pk,
        "member_removed": match.member_pk is None,
        "signal_type": match.signal_type,
        **variant_field(match.variant),
        "content_signal": match.content_signal,
        "member_signal": match.member_signal,
        "distance": match.distance,
        "matched_at": _iso(match.created_at),
        "superseded": match.superseded_at is not None,
        "superseded_at": _iso(match.superseded_at),
        "retroactive": match.retroactive,
    }


def _older_than(session: Any, before_id: int) -> ColumnElement[bool] | None:
    """Matches after the cursor match in newest-first order; None when nothing is.

    A cursor whose match is gone (its content deleted since) continues from the next older
    match by id, whose ``(created_at, id)`` it then includes.
    """
    at = session.scalar(select(MatchRow.created_at).where(MatchRow.id == before_id))
    inclusive = False
    if at is None:
        nearest = session.execute(
            select(MatchRow.created_at, MatchRow.id)
            .where(MatchRow.id < before_id)
            .order_by(MatchRow.id.desc())
            .limit(1)
        ).first()
        if nearest is None:
            return None
        at, before_id = nearest
        inclusive = True
    # Spelled as a range on created_at plus a tie-break, which both planners turn into an
    # index range (a row-value comparison is not one on every SQLite).
    tie = MatchRow.id <= before_id if inclusive else MatchRow.id < before_id
    return and_(MatchRow.created_at <= at, or_(MatchRow.created_at < at, tie))


class ContentQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def describe(self, content_id: str) -> dict[str, Any] | None:
        with self._store.reading() as session:
            row = session.scalars(
                select(ContentRow).where(ContentRow.content_id == content_id)
            ).one_or_none()
            if row is None:
                return None
            submissions = session.scalars(
                select(ContentSubmissionRow)
                .where(ContentSubmissionRow.content_pk == row.id)
                .order_by(ContentSubmissionRow.id)
            ).all()
            signals = session.scalars(
                select(ContentSignalRow)
                .where(ContentSignalRow.content_pk == row.id)
                .order_by(ContentSignalRow.signal_type, ContentSignalRow.variant)
            ).all()
            match_count = len(  # current matches; superseded ones stay listed in /matches
                session.scalars(
                    select(MatchRow.id).where(
                        MatchRow.content_pk == row.id, MatchRow.superseded_at.is_(None)
                    )
                ).all()
            )
            return {
                "content_id": row.content_id,
                "content_type": row.content_type,
                "submission_method": row.submission_method,
                "content_url": row.content_url,
                "additional_fields": list(row.additional_fields),
                "status": row.status,
                "error": row.error,
                "stages": {
                    "submitted": _iso(row.submitted_at),
                    "hashed": _iso(row.hashed_at),
                    "matched": _iso(row.matched_at),
                    "actioned": _iso(row.actioned_at),
                },
                "upload_expires_at": _iso(row.upload_expires_at),
                "updated_at": _iso(row.updated_at),
                "submissions": [
                    {"submitted_at": _iso(s.submitted_at), "method": s.method} for s in submissions
                ],
                "signals": [
                    {
                        "signal_type": s.signal_type,
                        **variant_field(s.variant),
                        "signal_value": s.signal_value,
                        "quality": s.quality,
                        "status": s.status,
                    }
                    for s in signals
                ],
                "match_count": match_count,
            }

    def media_key(self, content_id: str) -> str | None:
        """Where the content's retained media is, if any (``pipeline.retain_media``)."""
        with self._store.reading() as session:
            key: str | None = session.scalar(
                select(ContentRow.media_key).where(ContentRow.content_id == content_id)
            )
            return key or None

    def content_pk(self, content_id: str) -> int | None:
        with self._store.reading() as session:
            return session.scalar(select(ContentRow.id).where(ContentRow.content_id == content_id))

    def matches(
        self,
        *,
        content_pk: int | None = None,
        bank: str | None = None,
        signal_type: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        before_id: int | None = None,
        retroactive: bool | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Matches newest first; ``before_id`` is the cursor (the last id of the prior page).

        ``retroactive`` keeps only matches found on submission (False) or by retroaction (True).

        Newest means ``(created_at, id)`` descending, the key of the ``ix_match_*_newest``
        indexes (migration 0020): under any filter one of them hands the rows over already
        in page order, from the window's newest end, so a page reads about ``limit`` index
        entries instead of sorting every match of a bank or of a period (ordering by ``id``
        alone took a second at 1M matches with a bank filter). The cursor stays a match id:
        its ``(created_at, id)`` is looked up by primary key. The bank is resolved to its key
        first, so both planners see ``bank_pk = constant`` and walk that bank's index.
        """
        query = (
            select(MatchRow, BankRow.name, ContentRow.content_id)
            .outerjoin(BankRow, BankRow.id == MatchRow.bank_pk)
            .join(ContentRow, ContentRow.id == MatchRow.content_pk)
            .order_by(MatchRow.created_at.desc(), MatchRow.id.desc())
            .limit(limit)
        )
        if content_pk is not None:
            query = query.where(MatchRow.content_pk == content_pk)
        if signal_type is not None:
            query = query.where(MatchRow.signal_type == signal_type)
        if since is not None:
            query = query.where(MatchRow.created_at >= since)
        if until is not None:
            query = query.where(MatchRow.created_at < until)
        if retroactive is not None:
            query = query.where(MatchRow.retroactive.is_(retroactive))
        with self._store.reading() as session:
            if bank is not None:
                bank_pk = session.scalar(select(BankRow.id).where(BankRow.name == bank))
                if bank_pk is None:
                    return []
                query = query.where(MatchRow.bank_pk == bank_pk)
            if before_id is not None:
                older = _older_than(session, before_id)
                if older is None:
                    return []
                query = query.where(older)
            return [_match_json(m, bank_name, cid) for m, bank_name, cid in session.execute(query)]

    def actions(self, content_pk: int) -> list[dict[str, Any]]:
        with self._store.reading() as session:
            rows = session.scalars(
                select(DeliveryRow).where(DeliveryRow.content_pk == content_pk)
            ).all()
            return [
                {
                    "id": d.id,
                    "action": d.action_key,
                    "rules_fired": list(d.rules_fired),
                    "status": d.status,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "created_at": _iso(d.created_at),
                }
                for d in rows
            ]
