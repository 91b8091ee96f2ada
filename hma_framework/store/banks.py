"""Banks, their members and the change log that keeps every index fresh.

Every change that can alter a match (a signal added to or gone from the banks, a member or
bank switched on or off) appends a row to ``bank_change`` in the same transaction. Indexes
replay the rows past their own ``seq``. Writers of the change log are serialized (SQLite by
its write lock, PostgreSQL by an advisory lock) so ``seq`` values become visible in order and
a reader that has seen ``seq = n`` can never later find a smaller one appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

import attrs
from sqlalchemy import Table, delete, exists, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

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


def _insert_new_signals(session: Session, signal_type: str, values: list[str]) -> dict[str, int]:
    """Insert the values not stored yet; returns only the rows this call created."""
    dialect = session.get_bind().dialect.name
    insert_for = pg_insert if dialect == "postgresql" else sqlite_insert
    table = SIGNAL_TABLE
    statement = (
        insert_for(table)
        .on_conflict_do_nothing(index_elements=["signal_type", "signal_value"])
        .returning(table.c.signal_value, table.c.id)
    )
    rows = session.execute(
        statement, [{"signal_type": signal_type, "signal_value": v} for v in values]
    ).all()
    return {value: pk for value, pk in rows}


def _signal_ids(session: Session, signals: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of ``signals``, inserting the ones not stored yet; new ones are logged as added."""
    wanted = sorted(set(signals))
    ids: dict[tuple[str, str], int] = {}
    for signal_type in sorted({t for t, _ in wanted}):
        values = [v for t, v in wanted if t == signal_type]
        for chunk_start in range(0, len(values), 900):  # stay under SQLite's variable limit
            chunk = values[chunk_start : chunk_start + 900]
            created = _insert_new_signals(session, signal_type, chunk)
            if created:
                session.execute(
                    insert(CHANGE_TABLE),
                    [
                        {
                            "kind": SIGNAL_ADDED,
                            "signal_type": signal_type,
                            "signal_pk": pk,
                            "created_at": utcnow(),
                        }
                        for pk in sorted(created.values())
                    ],
                )
            existing = [v for v in chunk if v not in created]
            if existing:
                created.update(
                    session.execute(
                        select(SignalRow.signal_value, SignalRow.id).where(
                            SignalRow.signal_type == signal_type,
                            SignalRow.signal_value.in_(existing),
                        )
                    ).all()
                )
            ids.update({(signal_type, v): pk for v, pk in created.items()})
    return ids


def _insert_members(session: Session, bank_pk: int, members: Sequence[NewMember]) -> list[int]:
    """Insert member rows; returns their ids in order.

    On SQLite, RETURNING with ordered rows would cost one statement per row, so ids are
    assigned here instead: the write transaction holds SQLite's only write lock, so nothing
    else can take them. PostgreSQL returns ordered ids from batched statements.
    """
    table = MEMBER_TABLE
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "bank_pk": bank_pk,
            "content_id": m.content_id,
            "notes": m.notes,
            "tags": list(m.tags),
            "external_id": m.external_id,
            "exchange_metadata": dict(m.exchange_metadata),
            "enabled": True,
            "created_at": now,
            "updated_at": now,
        }
        for m in members
    ]
    if session.get_bind().dialect.name == "sqlite":
        first = int(session.scalar(select(func.max(BankMemberRow.id))) or 0) + 1
        for offset, row in enumerate(rows):
            row["id"] = first + offset
        session.execute(insert(table), rows)
        return [row["id"] for row in rows]
    returning = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(session.execute(returning, rows).scalars())


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
    ) -> int:
        with self._store.transaction() as session:
            bank = BankRow(
                name=name,
                description=description,
                tags=list(tags),
                thresholds=dict(thresholds or {}),
                enabled=enabled,
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
    ) -> None:
        """Change what is given; logged so every index re-reads thresholds and switches."""
        values: dict[str, Any] = {}
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
            if links:
                session.execute(
                    insert(MEMBER_SIGNAL_TABLE),
                    [{"member_pk": member, "signal_pk": signal} for member, signal in links],
                )
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
            _remove_orphaned_signals(session, held)

    # --- the change log, as indexes read it ----------------------------------------------

    def latest_seq(self) -> int:
        with self._store.reading() as session:
            return int(session.scalar(select(func.max(BankChangeRow.seq))) or 0)

    def signal_changes_after(self, seq: int, limit: int = 50_000) -> list[SignalChange]:
        """Index-relevant changes past ``seq``, oldest first (at most ``limit``)."""
        with self._store.reading() as session:
            rows = session.execute(
                select(
                    BankChangeRow.seq,
                    BankChangeRow.kind,
                    BankChangeRow.signal_type,
                    BankChangeRow.signal_pk,
                )
                .where(BankChangeRow.seq > seq)
                .order_by(BankChangeRow.seq)
                .limit(limit)
            ).all()
        return [SignalChange(*row) for row in rows]
