"""Fetched records into an exchange's bank: one transaction per batch, checkpoint included.

A batch maps each record's ``external_id`` to the member it should be (an upsert) or None (a
delete). New members go through the bank repository's bulk insert; existing ones get their
exchange metadata and tags replaced; deleted ones are removed with change-log entries, so
every index drops their signals. The checkpoint and the fetch counters are written in the
same transaction, so a worker killed mid-fetch resumes exactly after the last batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hma_framework.store.banks import (
    MEMBER_REMOVED,
    MEMBERS_ADDED,
    NewMember,
    _insert_members,
    _remove_orphaned_signals,
    _signal_ids,
    lock_change_log,
)
from hma_framework.store.bulk import BulkWriter
from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankChangeRow,
    BankMemberRow,
    ExchangeCheckpointRow,
    ExchangeRow,
    MemberSignalRow,
    utcnow,
)

_CHUNK = 900  # under SQLite's limit on bound variables per IN list


@attrs.define
class BatchCounts:
    added: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _existing(session: Session, bank_pk: int, external_ids: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for chunk in _chunks(external_ids):
        rows = session.execute(
            select(BankMemberRow.external_id, BankMemberRow.id).where(
                BankMemberRow.bank_pk == bank_pk, BankMemberRow.external_id.in_(chunk)
            )
        )
        found.update({str(ext): pk for ext, pk in rows})
    return found


def remove_members(session: Session, member_pks: Sequence[int]) -> None:
    """Remove members in bulk, logging each removal and dropping orphaned signals."""
    held: list[int] = []
    for chunk in _chunks(sorted(member_pks)):
        held.extend(
            session.scalars(
                select(MemberSignalRow.signal_pk).where(MemberSignalRow.member_pk.in_(chunk))
            )
        )
        session.execute(delete(MemberSignalRow).where(MemberSignalRow.member_pk.in_(chunk)))
        session.execute(delete(BankMemberRow).where(BankMemberRow.id.in_(chunk)))
    now = BulkWriter(session).timestamp(utcnow())
    BulkWriter(session).insert_rows(
        "INSERT INTO bank_change (kind, member_pk, created_at)",
        [(MEMBER_REMOVED, pk, now) for pk in member_pks],
    )
    _remove_orphaned_signals(session, held)


def _add_members(session: Session, bank_pk: int, members: Sequence[NewMember]) -> None:
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


def _update_members(session: Session, updates: Sequence[tuple[int, NewMember]]) -> None:
    bulk = BulkWriter(session)
    mark = "?" if bulk.dialect.name == "sqlite" else "%s"
    now = bulk.timestamp(utcnow())
    session.connection().exec_driver_sql(
        f"UPDATE bank_member SET exchange_metadata = {mark}, tags = {mark}, "
        f"updated_at = {mark} WHERE id = {mark}",
        [(json.dumps(m.exchange_metadata), json.dumps(list(m.tags)), now, pk) for pk, m in updates],
    )


def save_checkpoint(session: Session, exchange_pk: int, checkpoint: Mapping[str, Any]) -> None:
    row = session.get(ExchangeCheckpointRow, exchange_pk)
    if row is None:
        session.add(ExchangeCheckpointRow(exchange_pk=exchange_pk, checkpoint=dict(checkpoint)))
    else:
        row.checkpoint = dict(checkpoint)
        row.updated_at = utcnow()


def apply_batch(
    store: Store,
    exchange_pk: int,
    bank_pk: int,
    batch: Mapping[str, NewMember | None],
    checkpoint: Mapping[str, Any] | None,
    skipped: int = 0,
) -> BatchCounts:
    """Upserts and deletes of one batch, the checkpoint and the counters: one transaction."""
    counts = BatchCounts(skipped=skipped)
    with store.transaction() as session:
        lock_change_log(session)
        existing = _existing(session, bank_pk, list(batch))
        gone = [existing[ext] for ext, m in batch.items() if m is None and ext in existing]
        changed = [(existing[ext], m) for ext, m in batch.items() if m and ext in existing]
        new = [m for ext, m in batch.items() if m is not None and ext not in existing]
        if gone:
            remove_members(session, gone)
        if changed:
            _update_members(session, changed)
        if new:
            _add_members(session, bank_pk, new)
        if new or changed:
            # One entry per batch tells readers caching "who holds this hash" to re-read.
            session.add(BankChangeRow(kind=MEMBERS_ADDED, bank_pk=bank_pk))
        counts.added, counts.updated, counts.deleted = len(new), len(changed), len(gone)
        if checkpoint is not None:
            save_checkpoint(session, exchange_pk, checkpoint)
        add_counts(session, exchange_pk, counts)
    return counts


def add_counts(session: Session, exchange_pk: int, counts: BatchCounts) -> None:
    session.execute(
        update(ExchangeRow)
        .where(ExchangeRow.id == exchange_pk)
        .values(
            items_added=ExchangeRow.items_added + counts.added,
            items_updated=ExchangeRow.items_updated + counts.updated,
            items_deleted=ExchangeRow.items_deleted + counts.deleted,
            items_skipped=ExchangeRow.items_skipped + counts.skipped,
        )
    )


def remove_unseen(store: Store, exchange_pk: int, bank_pk: int, seen: set[str]) -> int:
    """After a full-snapshot fetch: remove the members the snapshot no longer lists."""
    with store.transaction() as session:
        lock_change_log(session)
        rows = session.execute(
            select(BankMemberRow.id, BankMemberRow.external_id).where(
                BankMemberRow.bank_pk == bank_pk
            )
        ).all()
        gone = [pk for pk, ext in rows if ext not in seen]
        if gone:
            remove_members(session, gone)
            add_counts(session, exchange_pk, BatchCounts(deleted=len(gone)))
    return len(gone)
