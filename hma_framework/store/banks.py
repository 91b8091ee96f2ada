"""Banks, their members and the change log that keeps every index fresh.

Every change that can alter a match (a signal added to or gone from the banks, a member or
bank switched on or off) appends a row to ``bank_change`` in the same transaction. Indexes
replay the rows past their own ``seq``. Writers of the change log are serialized (SQLite by
its write lock, PostgreSQL by an advisory lock) so ``seq`` values become visible in order and
a reader that has seen ``seq = n`` can never later find a smaller one appear.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from typing import Any, cast

import attrs
from sqlalchemy import Table, case, delete, exists, func, insert, select, text, update
from sqlalchemy.orm import Session

from hma_framework.store.bulk import BulkWriter, refresh_statistics_after
from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankChangeRow,
    BankMemberRow,
    BankRow,
    MemberSignalRow,
    SignalRow,
    utcnow,
)

# Core tables for bulk statements (ORM bulk inserts cost several times more per row).
SIGNAL_TABLE = cast(Table, SignalRow.__table__)
MEMBER_TABLE = cast(Table, BankMemberRow.__table__)
MEMBER_SIGNAL_TABLE = cast(Table, MemberSignalRow.__table__)
CHANGE_TABLE = cast(Table, BankChangeRow.__table__)

CHANGE_LOG_LOCK_ID = 0x484D41  # "HMA": the advisory lock that orders change-log writers

#: Change kinds. Only the first two change what an index holds; the rest act at query time.
SIGNAL_ADDED = "signal_added"
SIGNAL_REMOVED = "signal_removed"
MEMBER_ENABLED = "member_enabled"
MEMBER_DISABLED = "member_disabled"
BANK_ENABLED = "bank_enabled"
BANK_DISABLED = "bank_disabled"
BANK_UPDATED = "bank_updated"
MEMBERS_ADDED = "members_added"
MEMBER_UPDATED = "member_updated"
MEMBER_REMOVED = "member_removed"


class BankNotFoundError(LookupError):
    pass


@attrs.frozen
class NewMember:
    """A member to add: its signals as ``(signal_type, validated value)`` pairs."""

    signals: tuple[tuple[str, str], ...]
    content_id: str | None = None
    notes: str = ""
    tags: tuple[str, ...] = ()
    external_id: str | None = None
    exchange_metadata: dict[str, Any] = attrs.field(factory=dict)
    #: An id to keep (a migration keeping another system's ids); None takes a fresh one.
    member_id: int | None = None


@attrs.frozen
class SignalChange:
    """One change-log entry as an index sees it."""

    seq: int
    kind: str
    signal_type: str | None
    signal_pk: int | None


def lock_change_log(session: Session) -> None:
    """Serialize change-log writers until this transaction ends (PostgreSQL only).

    SQLite write transactions already run one at a time (``BEGIN IMMEDIATE``).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": CHANGE_LOG_LOCK_ID})


def _signal_ids(session: Session, signals: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of ``signals``, inserting the ones not stored yet; new ones are logged as added.

    New rows are told apart by id: the change-log lock (or SQLite's write lock) is held, so
    every id above the maximum seen before inserting belongs to a row inserted here.
    """
    wanted = sorted(set(signals))
    ids: dict[tuple[str, str], int] = {}
    if not wanted:
        return ids
    bulk = BulkWriter(session)
    newest_before = int(session.scalar(select(func.max(SignalRow.id))) or 0)
    now = bulk.timestamp(utcnow())
    for signal_type in sorted({t for t, _ in wanted}):
        values = [v for t, v in wanted if t == signal_type]
        per_call = bulk.rows_per_call
        for chunk_start in range(0, len(values), per_call):
            chunk = values[chunk_start : chunk_start + per_call]
            # A no-op update on conflict makes RETURNING give existing rows' ids as well, in
            # the same statement (a separate IN-list lookup is slow on a fresh PostgreSQL
            # table whose statistics lag behind a bulk import).
            found = dict(
                bulk.insert_rows(
                    "INSERT INTO signal (signal_type, signal_value)",
                    [(signal_type, value) for value in chunk],
                    "ON CONFLICT (signal_type, signal_value) "
                    "DO UPDATE SET signal_value = excluded.signal_value "
                    "RETURNING signal_value, id",
                )
            )
            created = sorted(pk for pk in found.values() if pk > newest_before)
            bulk.insert_rows(
                "INSERT INTO bank_change (kind, signal_type, signal_pk, created_at)",
                [(SIGNAL_ADDED, signal_type, pk, now) for pk in created],
            )
            ids.update({(signal_type, v): pk for v, pk in found.items()})
    return ids


def _insert_members(session: Session, bank_pk: int, members: Sequence[NewMember]) -> list[int]:
    """Insert member rows with ids reserved up front; returns the ids in order."""
    bulk = BulkWriter(session)
    kept = [m.member_id for m in members]
    keep = bool(kept) and all(pk is not None for pk in kept)
    if keep:
        member_pks = [pk for pk in kept if pk is not None]
    else:
        member_pks = bulk.reserve_member_ids(len(members))
    now = bulk.timestamp(utcnow())
    bulk.insert_rows(
        "INSERT INTO bank_member (id, bank_pk, content_id, external_id, notes, tags, "
        "exchange_metadata, enabled, created_at, updated_at)",
        [
            (
                pk,
                bank_pk,
                m.content_id,
                m.external_id,
                m.notes,
                json.dumps(list(m.tags)),
                json.dumps(m.exchange_metadata),
                True,
                now,
                now,
            )
            for pk, m in zip(member_pks, members, strict=True)
        ],
    )
    if keep:
        bulk.advance_member_ids()
    return member_pks


def _remove_orphaned_signals(session: Session, signal_pks: Iterable[int]) -> None:
    """Delete signals no member holds any more, logging each removal for the indexes."""
    candidates = sorted(set(signal_pks))
    if not candidates:
        return
    still_held = exists().where(MemberSignalRow.signal_pk == SignalRow.id)
    orphans = session.execute(
        select(SignalRow.id, SignalRow.signal_type).where(SignalRow.id.in_(candidates), ~still_held)
    ).all()
    if not orphans:
        return
    session.execute(
        insert(BankChangeRow),
        [{"kind": SIGNAL_REMOVED, "signal_type": t, "signal_pk": pk} for pk, t in orphans],
    )
    session.execute(delete(SignalRow).where(SignalRow.id.in_([pk for pk, _ in orphans])))


class Banks:
    """The bank repository: the only writer of banks, members and the change log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # --- banks ---------------------------------------------------------------------------

    def create_bank(
        self,
        name: str,
        *,
        description: str = "",
        tags: Sequence[str] = (),
        thresholds: dict[str, int] | None = None,
        enabled: bool = True,
        matching_enabled_ratio: float = 1.0,
    ) -> int:
        """A new bank; a ``matching_enabled_ratio`` of 0 creates it switched off."""
        with self._store.transaction() as session:
            bank = BankRow(
                name=name,
                description=description,
                tags=list(tags),
                thresholds=dict(thresholds or {}),
                enabled=enabled and matching_enabled_ratio > 0,
                matching_enabled_ratio=matching_enabled_ratio,
            )
            session.add(bank)
            session.flush()
            return bank.id

    def bank_id(self, session: Session, name: str) -> int:
        bank_pk = session.scalar(select(BankRow.id).where(BankRow.name == name))
        if bank_pk is None:
            raise BankNotFoundError(f"no bank named {name!r}")
        return bank_pk

    def set_bank_enabled(self, name: str, enabled: bool) -> None:
        """The bank's kill switch: acts on the next query everywhere."""
        self.update_bank(name, enabled=enabled)

    def update_bank(
        self,
        name: str,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        enabled: bool | None = None,
        thresholds: dict[str, int] | None = None,
        matching_enabled_ratio: float | None = None,
    ) -> None:
        """Change what is given; logged so every index re-reads thresholds and switches.

        The ratio and the switch are one setting seen two ways: a ratio of 0 switches the
        bank off, a positive one on; switching on a bank whose ratio is 0 makes it 1.
        """
        values: dict[str, Any] = {}
        if matching_enabled_ratio is not None:
            values["matching_enabled_ratio"] = matching_enabled_ratio
            if enabled is None:
                enabled = matching_enabled_ratio > 0
        elif enabled:
            values["matching_enabled_ratio"] = case(
                (BankRow.matching_enabled_ratio <= 0, 1.0), else_=BankRow.matching_enabled_ratio
            )
        if description is not None:
            values["description"] = description
        if tags is not None:
            values["tags"] = list(tags)
        if enabled is not None:
            values["enabled"] = enabled
        if thresholds is not None:
            values["thresholds"] = dict(thresholds)
        with self._store.transaction() as session:
            lock_change_log(session)
            bank_pk = self.bank_id(session, name)
            if not values:
                return
            values["updated_at"] = utcnow()
            session.execute(update(BankRow).where(BankRow.id == bank_pk).values(values))
            kind = BANK_UPDATED
            if enabled is not None:
                kind = BANK_ENABLED if enabled else BANK_DISABLED
            session.add(BankChangeRow(kind=kind, bank_pk=bank_pk))

    def rename_bank(self, name: str, new_name: str) -> None:
        """Rename a bank (an ``IntegrityError`` if the new name is taken); members stay."""
        with self._store.transaction() as session:
            lock_change_log(session)
            bank_pk = self.bank_id(session, name)
            session.execute(
                update(BankRow)
                .where(BankRow.id == bank_pk)
                .values(name=new_name, updated_at=utcnow())
            )
            session.add(BankChangeRow(kind=BANK_UPDATED, bank_pk=bank_pk))

    def set_member_disabled_until(self, member_pk: int, until: dt.datetime | None) -> None:
        """Switch a member off until ``until`` (checked at query time); None clears it."""
        with self._store.transaction() as session:
            lock_change_log(session)
            result = session.execute(
                update(BankMemberRow)
                .where(BankMemberRow.id == member_pk)
                .values(disabled_until=until, updated_at=utcnow())
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LookupError(f"no bank member {member_pk}")
            session.add(BankChangeRow(kind=MEMBER_UPDATED, member_pk=member_pk))

    def update_member(
        self,
        member_pk: int,
        *,
        notes: str | None = None,
        tags: Sequence[str] | None = None,
        enabled: bool | None = None,
    ) -> None:
        values: dict[str, Any] = {}
        if notes is not None:
            values["notes"] = notes
        if tags is not None:
            values["tags"] = list(tags)
        if enabled is not None:
            values["enabled"] = enabled
        with self._store.transaction() as session:
            lock_change_log(session)
            exists_now = session.scalar(
                select(BankMemberRow.id).where(BankMemberRow.id == member_pk)
            )
            if exists_now is None:
                raise LookupError(f"no bank member {member_pk}")
            if not values:
                return
            values["updated_at"] = utcnow()
            session.execute(
                update(BankMemberRow).where(BankMemberRow.id == member_pk).values(values)
            )
            kind = MEMBER_UPDATED
            if enabled is not None:
                kind = MEMBER_ENABLED if enabled else MEMBER_DISABLED
            session.add(BankChangeRow(kind=kind, member_pk=member_pk))

    def delete_bank(self, name: str) -> None:
        with self._store.transaction() as session:
            lock_change_log(session)
            bank_pk = self.bank_id(session, name)
            held = session.scalars(
                select(MemberSignalRow.signal_pk)
                .join(BankMemberRow, BankMemberRow.id == MemberSignalRow.member_pk)
                .where(BankMemberRow.bank_pk == bank_pk)
            ).all()
            session.add(BankChangeRow(kind=BANK_DISABLED, bank_pk=bank_pk))
            session.execute(
                delete(MemberSignalRow).where(
                    MemberSignalRow.member_pk.in_(
                        select(BankMemberRow.id).where(BankMemberRow.bank_pk == bank_pk)
                    )
                )
            )
            session.execute(delete(BankMemberRow).where(BankMemberRow.bank_pk == bank_pk))
            session.execute(delete(BankRow).where(BankRow.id == bank_pk))
            _remove_orphaned_signals(session, held)

    # --- members -------------------------------------------------------------------------

    def add_members(self, bank_name: str, members: Sequence[NewMember]) -> list[int]:
        """Add members (one transaction); returns their ids in order."""
        member_pks = self._add_members(bank_name, members)
        refresh_statistics_after(self._store, len(members))
        return member_pks

    def _add_members(self, bank_name: str, members: Sequence[NewMember]) -> list[int]:
        with self._store.transaction() as session:
            lock_change_log(session)
            bank_pk = self.bank_id(session, bank_name)
            signal_ids = _signal_ids(session, (s for m in members for s in m.signals))
            member_pks = _insert_members(session, bank_pk, members)
            links = {
                (member_pk, signal_ids[s])
                for member_pk, m in zip(member_pks, members, strict=True)
                for s in m.signals
            }
            BulkWriter(session).insert_rows(
                "INSERT INTO member_signal (member_pk, signal_pk)", sorted(links)
            )
            # One entry per call, so readers caching "who holds this hash" know to re-read.
            session.add(BankChangeRow(kind=MEMBERS_ADDED, bank_pk=bank_pk))
            return member_pks

    def add_member(self, bank_name: str, member: NewMember) -> int:
        return self.add_members(bank_name, [member])[0]

    def set_member_enabled(self, member_pk: int, enabled: bool) -> None:
        """A member's kill switch: acts on the next query everywhere."""
        self.update_member(member_pk, enabled=enabled)

    def remove_member(self, member_pk: int) -> None:
        with self._store.transaction() as session:
            lock_change_log(session)
            held = session.scalars(
                select(MemberSignalRow.signal_pk).where(MemberSignalRow.member_pk == member_pk)
            ).all()
            session.execute(delete(MemberSignalRow).where(MemberSignalRow.member_pk == member_pk))
            result = session.execute(delete(BankMemberRow).where(BankMemberRow.id == member_pk))
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LookupError(f"no bank member {member_pk}")
            session.add(BankChangeRow(kind=MEMBER_REMOVED, member_pk=member_pk))
            _remove_orphaned_signals(session, held)

    # --- the change log, as indexes read it ----------------------------------------------

    def latest_seq(self) -> int:
        with self._store.reading() as session:
            return int(session.scalar(select(func.max(BankChangeRow.seq))) or 0)

    def signal_changes_after(self, seq: int, limit: int = 50_000) -> list[SignalChange]:
        """Index-relevant changes past ``seq``, oldest first (at most ``limit``).

        Asked as a bounded range of ``seq``, which every process runs on each refresh tick:
        an open ``seq > x ORDER BY seq LIMIT n`` made PostgreSQL sort the whole log (a parallel
        scan, >100 ms at 1M entries) whenever its statistics lagged behind a bulk import. A
        gap in the sequence wider than the range (rolled-back writers) is skipped over.
        """
        change = BankChangeRow
        columns = select(change.seq, change.kind, change.signal_type, change.signal_pk)
        with self._store.reading() as session:
            rows = session.execute(
                columns.where(BankChangeRow.seq > seq, BankChangeRow.seq <= seq + limit).order_by(
                    BankChangeRow.seq
                )
            ).all()
            if not rows:
                following = session.scalar(
                    select(func.min(BankChangeRow.seq)).where(BankChangeRow.seq > seq)
                )
                if following is None:
                    return []
                rows = session.execute(
                    columns.where(
                        BankChangeRow.seq >= following, BankChangeRow.seq < following + limit
                    ).order_by(BankChangeRow.seq)
                ).all()
        return [SignalChange(*row) for row in rows]
