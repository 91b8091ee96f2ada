"""Banks, their members and the change log that keeps every index fresh.

Every change that can alter a match (a signal added to or gone from the banks, a member or
bank switched on or off) appends a row to ``bank_change`` in the same transaction. Indexes
replay the rows past their own ``seq``. Writers of the change log are serialized (SQLite by
its write lock, PostgreSQL by an advisory lock) so ``seq`` values become visible in order and
a reader that has seen ``seq = n`` can never later find a smaller one appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import attrs
from sqlalchemy import delete, exists, func, insert, select, text, update
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
)

CHANGE_LOG_LOCK_ID = 0x484D41  # "HMA": the advisory lock that orders change-log writers

#: Change kinds. Only the first two change what an index holds; the rest act at query time.
SIGNAL_ADDED = "signal_added"
SIGNAL_REMOVED = "signal_removed"
MEMBER_ENABLED = "member_enabled"
MEMBER_DISABLED = "member_disabled"
BANK_ENABLED = "bank_enabled"
BANK_DISABLED = "bank_disabled"


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


def _insert_ignoring_conflicts(session: Session, rows: list[dict[str, Any]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(SignalRow).on_conflict_do_nothing(
        index_elements=["signal_type", "signal_value"]
    )
    session.execute(statement, rows)


def _signal_ids(session: Session, signals: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Ids of ``signals``, inserting the ones not stored yet; new ones are logged as added."""
    wanted = sorted(set(signals))
    if not wanted:
        return {}
    ids: dict[tuple[str, str], int] = {}
    for signal_type in {t for t, _ in wanted}:
        values = [v for t, v in wanted if t == signal_type]
        for chunk_start in range(0, len(values), 900):  # stay under SQLite's variable limit
            chunk = values[chunk_start : chunk_start + 900]
            existing = dict(
                session.execute(
                    select(SignalRow.signal_value, SignalRow.id).where(
                        SignalRow.signal_type == signal_type, SignalRow.signal_value.in_(chunk)
                    )
                ).all()
            )
            missing = [v for v in chunk if v not in existing]
            if missing:
                _insert_ignoring_conflicts(
                    session, [{"signal_type": signal_type, "signal_value": v} for v in missing]
                )
                created = dict(
                    session.execute(
                        select(SignalRow.signal_value, SignalRow.id).where(
                            SignalRow.signal_type == signal_type,
                            SignalRow.signal_value.in_(missing),
                        )
                    ).all()
                )
                session.execute(
                    insert(BankChangeRow),
                    [
                        {"kind": SIGNAL_ADDED, "signal_type": signal_type, "signal_pk": pk}
                        for pk in sorted(created.values())
                    ],
                )
                existing.update(created)
            ids.update({(signal_type, v): pk for v, pk in existing.items()})
    return ids


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
        with self._store.transaction() as session:
            lock_change_log(session)
            bank_pk = self.bank_id(session, name)
            session.execute(update(BankRow).where(BankRow.id == bank_pk).values(enabled=enabled))
            session.add(
                BankChangeRow(kind=BANK_ENABLED if enabled else BANK_DISABLED, bank_pk=bank_pk)
            )

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
            member_pks = list(
                session.scalars(
                    insert(BankMemberRow).returning(BankMemberRow.id, sort_by_parameter_order=True),
                    [
                        {
                            "bank_pk": bank_pk,
                            "content_id": m.content_id,
                            "notes": m.notes,
                            "tags": list(m.tags),
                            "external_id": m.external_id,
                            "exchange_metadata": dict(m.exchange_metadata),
                        }
                        for m in members
                    ],
                )
            )
            links = {
                (member_pk, signal_ids[s])
                for member_pk, m in zip(member_pks, members, strict=True)
                for s in m.signals
            }
            if links:
                session.execute(
                    insert(MemberSignalRow),
                    [{"member_pk": member, "signal_pk": signal} for member, signal in links],
                )
            return member_pks

    def add_member(self, bank_name: str, member: NewMember) -> int:
        return self.add_members(bank_name, [member])[0]

    def set_member_enabled(self, member_pk: int, enabled: bool) -> None:
        with self._store.transaction() as session:
            lock_change_log(session)
            result = session.execute(
                update(BankMemberRow).where(BankMemberRow.id == member_pk).values(enabled=enabled)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise LookupError(f"no bank member {member_pk}")
            session.add(
                BankChangeRow(
                    kind=MEMBER_ENABLED if enabled else MEMBER_DISABLED, member_pk=member_pk
                )
            )

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
