"""The records' tables (SQLAlchemy 2). Alembic migrations in ``store/migrations`` create them.

The database is the source of truth; Redis only carries work. Every table works on SQLite and
PostgreSQL alike: JSON columns become JSONB on PostgreSQL, timestamps are stored in UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use UTC-aware ones")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime, dict[str, Any]: JsonType, list[Any]: JsonType}


# --- content ----------------------------------------------------------------------------------


class ContentRow(Base):
    """One piece of the platform's content, by its own ``content_id``."""

    __tablename__ = "content"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_id: Mapped[str] = mapped_column(String(255), unique=True)
    content_type: Mapped[str] = mapped_column(String(32))
    submission_method: Mapped[str] = mapped_column(String(32))
    content_url: Mapped[str | None] = mapped_column(Text)
    media_key: Mapped[str | None] = mapped_column(Text)
    media_type: Mapped[str | None] = mapped_column(String(128))
    #: SHA-256 of what was submitted, to tell an identical resubmission from a changed one.
    params_digest: Mapped[str] = mapped_column(String(64), default="")
    upload_expires_at: Mapped[dt.datetime | None]
    #: The RQ job carrying the content's current stage, so reconcile can tell work in flight.
    job_id: Mapped[str | None] = mapped_column(String(64))
    additional_fields: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(32), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Indexed for the statistics, which count content per interval of submission.
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    hashed_at: Mapped[dt.datetime | None]
    matched_at: Mapped[dt.datetime | None]
    actioned_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class ContentSubmissionRow(Base):
    """Each time content was submitted (the first time and every forced resubmission)."""

    __tablename__ = "content_submission"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_pk: Mapped[int] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitted_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


class ContentSignalRow(Base):
    """A signal computed for (or submitted with) content; quality is kept beside the hash."""

    __tablename__ = "content_signal"
    # Ids never reused (SQLite would reuse a deleted newest id): retroaction's rings copy rows
    # in id order, so a replaced reading must come after every id they have passed.
    __table_args__ = (
        UniqueConstraint("content_pk", "signal_type", "variant"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_pk: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    signal_type: Mapped[str] = mapped_column(String(64))
    #: Which reading of the media (``HashResult.variant``): "" when it has one, else e.g.
    #: "displayed" / "stored" for an EXIF-rotated photo.
    variant: Mapped[str] = mapped_column(String(32), default="", server_default="")
    signal_value: Mapped[str] = mapped_column(Text)
    quality: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), default="ok")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


# --- banks ------------------------------------------------------------------------------------


class BankRow(Base):
    """A hash list: curated locally or filled by an exchange."""

    __tablename__ = "bank"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: HMA 2.0's sampling: the share of lookups (a seeded coin flip) the bank answers while
    #: ``enabled``; 0 is stored as ``enabled = false`` so both APIs see one switch.
    matching_enabled_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    exchange_pk: Mapped[int | None] = mapped_column(ForeignKey("exchange.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SignalRow(Base):
    """A hash, stored once however many bank members share it."""

    __tablename__ = "signal"
    __table_args__ = (UniqueConstraint("signal_type", "signal_value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    signal_type: Mapped[str] = mapped_column(String(64))
    signal_value: Mapped[str] = mapped_column(Text)


class BankMemberRow(Base):
    """An entry in a bank: the platform's (or exchange's) item, with its signals."""

    __tablename__ = "bank_member"
    __table_args__ = (Index("ix_bank_member_bank_external", "bank_pk", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    bank_pk: Mapped[int] = mapped_column(ForeignKey("bank.id", ondelete="CASCADE"), index=True)
    content_id: Mapped[str | None] = mapped_column(String(255), index=True)
    external_id: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    exchange_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: A member switched off until this time (HMA 2.0's ``disable_until_ts``), checked at
    #: query time so it comes back on by itself.
    disabled_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MemberSignalRow(Base):
    __tablename__ = "member_signal"

    member_pk: Mapped[int] = mapped_column(
        ForeignKey("bank_member.id", ondelete="CASCADE"), primary_key=True
    )
    signal_pk: Mapped[int] = mapped_column(
        ForeignKey("signal.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class BankChangeRow(Base):
    """The change log indexes replay: a monotonically increasing ``seq`` per bank change."""

    __tablename__ = "bank_change"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    signal_type: Mapped[str | None] = mapped_column(String(64))
    signal_pk: Mapped[int | None] = mapped_column(BigInteger)
    member_pk: Mapped[int | None] = mapped_column(BigInteger)
    bank_pk: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --- matches and actions ----------------------------------------------------------------------


class MatchRow(Base):
    __tablename__ = "match"
    __table_args__ = (
        # "Newest matches" under each filter of the Matches page and GET /matches, read in
        # (created_at, id) order from the index with keyset paging (migration 0020).
        Index("ix_match_newest", "created_at", "id"),
        Index("ix_match_bank_newest", "bank_pk", "created_at", "id"),
        Index("ix_match_signal_type_newest", "signal_type", "created_at", "id"),
        Index("ix_match_kind_newest", "retroactive", "created_at", "id"),
        # Matching the same content again (a retried job, retroaction) records nothing twice.
        UniqueConstraint("content_pk", "member_pk", "signal_type", "content_signal"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_pk: Mapped[int] = mapped_column(
        ForeignKey("content.id", ondelete="CASCADE"), index=True
    )
    #: NULL once the bank, or the member, is deleted: a past match is a record of what
    #: happened and outlives both (migration 0022); it keeps the signals it stored.
    bank_pk: Mapped[int | None] = mapped_column(ForeignKey("bank.id", ondelete="SET NULL"))
    member_pk: Mapped[int | None] = mapped_column(ForeignKey("bank_member.id", ondelete="SET NULL"))
    signal_type: Mapped[str] = mapped_column(String(64))
    #: The reading of the content that matched (``ContentSignalRow.variant``).
    variant: Mapped[str] = mapped_column(String(32), default="", server_default="")
    content_signal: Mapped[str] = mapped_column(Text)
    member_signal: Mapped[str] = mapped_column(Text)
    distance: Mapped[int] = mapped_column(Integer)
    #: Found by retroaction (the content matched again when a bank grew), not on submission;
    #: ``created_at`` is when it was found.
    retroactive: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: Set when a forced resubmission replaced the content this match was found for; a
    #: match found again for the new submission is current again (NULL).
    superseded_at: Mapped[dt.datetime | None]


class RetroactionCursorRow(Base):
    """How far automatic retroaction got: the newest bank member whose signals it scanned."""

    __tablename__ = "retroaction_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RetroactionScanRow(Base):
    """A full rescan of stored content signals over a period, against some or all banks.

    ``cursor`` is the last ``content_signal.id`` scanned, so a killed worker resumes there.
    ``active_key`` holds the bank set while the scan is queued or running and is cleared
    when it ends: its unique constraint allows one rescan at a time per bank set.
    """

    __tablename__ = "retroaction_scan"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    banks: Mapped[list[Any]] = mapped_column(default=list)
    active_key: Mapped[str | None] = mapped_column(String(512), unique=True)
    since: Mapped[dt.datetime]
    until: Mapped[dt.datetime]
    state: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    matched: Mapped[int] = mapped_column(BigInteger, default=0)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    job_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None]


class HandlerConfigRow(Base):
    """A configured action handler (a webhook endpoint, for example)."""

    __tablename__ = "handler_config"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    handler_type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The config fields the handler type declares secret, kept apart so that nothing that
    #: shows ``config`` can show them; the API accepts them and never returns them.
    secrets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ActionRuleRow(Base):
    __tablename__ = "action_rule"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    must_have: Mapped[list[Any]] = mapped_column(default=list)
    must_not_have: Mapped[list[Any]] = mapped_column(default=list)
    handler_pk: Mapped[int] = mapped_column(ForeignKey("handler_config.id", ondelete="RESTRICT"))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: An opinion (seen, true_positive, false_positive) to report to the exchange that filled
    #: the matched bank once the action succeeded; None reports nothing.
    write_back: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveryRow(Base):
    """One action performed for one piece of content, however many rules asked for it."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("content_pk", "action_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    content_pk: Mapped[int] = mapped_column(ForeignKey("content.id", ondelete="CASCADE"))
    handler_pk: Mapped[int] = mapped_column(
        ForeignKey("handler_config.id", ondelete="CASCADE"), index=True
    )
    action_key: Mapped[str] = mapped_column(String(128))
    rules_fired: Mapped[list[Any]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: What the handler is told, frozen when the rules fired, so every retry and redelivery
    #: sends the same thing whatever happens to banks and members meanwhile.
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(32), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: Failed attempts since the delivery was created or last redelivered: the position in
    #: the retry schedule.
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: The RQ job that carries the next attempt; a job whose id is not this one does nothing.
    job_id: Mapped[str | None] = mapped_column(String(64))
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DeliveryAttemptRow(Base):
    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_pk: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    #: What the handler reported: the start of a webhook's response body, write-back results.
    detail: Mapped[str | None] = mapped_column(Text)


# --- exchanges --------------------------------------------------------------------------------


class ExchangeRow(Base):
    """A configured exchange (a collaboration on ThreatExchange, NCMEC, ...)."""

    __tablename__ = "exchange"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    api_type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    credentials: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    fetch_interval_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    last_fetch_at: Mapped[dt.datetime | None]
    last_fetch_status: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    #: The current (or last) fetch: when it started, when one last ran to the end, and what
    #: it changed so far (counted per fetch, committed with each batch).
    last_started_at: Mapped[dt.datetime | None]
    last_succeeded_at: Mapped[dt.datetime | None]
    items_added: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    items_updated: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    items_deleted: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    items_skipped: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    up_to_date: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ExchangeOpinionRow(Base):
    """An opinion written back to an exchange about one matched member, and its outcome."""

    __tablename__ = "exchange_opinion"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    match_pk: Mapped[int | None] = mapped_column(
        ForeignKey("match.id", ondelete="CASCADE"), index=True
    )
    member_pk: Mapped[int | None] = mapped_column(ForeignKey("bank_member.id", ondelete="SET NULL"))
    exchange_pk: Mapped[int | None] = mapped_column(ForeignKey("exchange.id", ondelete="SET NULL"))
    opinion: Mapped[str] = mapped_column(String(32))
    #: Who asked: ``api`` (POST /matches/<id>/opinion) or ``rule:<name>``.
    source: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExchangeCheckpointRow(Base):
    __tablename__ = "exchange_checkpoint"

    exchange_pk: Mapped[int] = mapped_column(
        ForeignKey("exchange.id", ondelete="CASCADE"), primary_key=True
    )
    checkpoint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExchangeApiCredentialsRow(Base):
    """Credentials shared by every exchange of one API that has none of its own (HMA 2.0's
    ``/c/exchanges/api/<api>``), sealed like an exchange's own."""

    __tablename__ = "exchange_api_credentials"

    api: Mapped[str] = mapped_column(String(64), primary_key=True)
    credentials: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SignalTypeSettingRow(Base):
    """HMA 2.0's per-signal-type ``enabled_ratio`` (``PUT /c/signal_type/<name>``); a type
    without a row reads as 1.0."""

    __tablename__ = "signal_type_setting"

    signal_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled_ratio: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


# --- access -----------------------------------------------------------------------------------


class ApiKeyRow(Base):
    """An API key: only a SHA-256 digest of the secret is stored (keys are high-entropy)."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]


# --- shared index snapshots -------------------------------------------------------------------


class IndexSnapshotRow(Base):
    """The newest index snapshot of a signal type shared through the database (for fleets).

    ``files`` lists ``{"name", "size", "chunks"}`` of the snapshot folder; the bytes are in
    ``IndexSnapshotChunkRow`` rows of the same ``generation``.
    """

    __tablename__ = "index_snapshot"

    signal_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[list[Any]] = mapped_column(default=list)
    written_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IndexSnapshotChunkRow(Base):
    """A piece of one file of a shared index snapshot (a few MiB, read one at a time)."""

    __tablename__ = "index_snapshot_chunk"
    __table_args__ = (UniqueConstraint("signal_type", "generation", "name", "chunk"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    signal_type: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(255))
    chunk: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)


# --- console counters (kept by database triggers: see migration 0014) --------------------------


class BankTallyRow(Base):
    """A bank's member count, kept by triggers on ``bank_member`` (never written by code)."""

    __tablename__ = "bank_tally"

    bank_pk: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("bank.id", ondelete="CASCADE"), primary_key=True
    )
    members: Mapped[int] = mapped_column(BigInteger)


class HourlyTallyRow(Base):
    """Rows written per UTC hour ('YYYY-MM-DD HH') and series.

    Series: "submissions", "matches" (live), "retro_matches" and "actions". Kept by triggers
    on the counted tables in the writing transaction; matches per bank, the rest with
    ``bank_pk`` 0.
    """

    __tablename__ = "hourly_tally"

    hour: Mapped[str] = mapped_column(String(13), primary_key=True)
    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    bank_pk: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
