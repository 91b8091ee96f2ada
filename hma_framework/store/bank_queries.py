"""Read-side queries over banks and members, shaped for the API and the exporter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select

from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    BankTallyRow,
    ExchangeRow,
    MemberSignalRow,
    SignalRow,
)


def bank_json(bank: BankRow, members: int, exchange: str | None) -> dict[str, Any]:
    return {
        "name": bank.name,
        "description": bank.description,
        "tags": list(bank.tags),
        "enabled": bank.enabled,
        "matching_enabled_ratio": bank.matching_enabled_ratio if bank.enabled else 0.0,
        "thresholds": dict(bank.thresholds),
        "exchange": exchange,
        "member_count": members,
        "created_at": bank.created_at.isoformat(),
        "updated_at": bank.updated_at.isoformat(),
    }


class BankQueries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def banks(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every bank (or the one named) with its member count.

        The count is ``bank_tally.members``, kept by triggers as members come and go
        (migration 0014): a ``count(*)`` of a million-member bank took longer than a page may.
        """
        query = (
            select(BankRow, func.coalesce(BankTallyRow.members, 0), ExchangeRow.name)
            .outerjoin(BankTallyRow, BankTallyRow.bank_pk == BankRow.id)
            .outerjoin(ExchangeRow, ExchangeRow.id == BankRow.exchange_pk)
            .order_by(BankRow.name)
        )
        if name is not None:
            query = query.where(BankRow.name == name)
        with self._store.reading() as session:
            return [bank_json(bank, int(n), ex) for bank, n, ex in session.execute(query)]

    def bank(self, name: str) -> dict[str, Any] | None:
        found = self.banks(name)
        return found[0] if found else None

    def names(self) -> list[str]:
        """Every bank's name, for filter menus: no member count (a scan at 1M members)."""
        with self._store.reading() as session:
            return list(session.scalars(select(BankRow.name).order_by(BankRow.name)))

    def matching_ratios(self, names: list[str]) -> dict[str, float]:
        """Each named bank's share of lookups it answers (0 for a bank switched off)."""
        if not names:
            return {}
        with self._store.reading() as session:
            rows = session.execute(
                select(BankRow.name, BankRow.enabled, BankRow.matching_enabled_ratio).where(
                    BankRow.name.in_(sorted(set(names)))
                )
            ).all()
        return {name: (ratio if enabled else 0.0) for name, enabled, ratio in rows}

    def _signals_of(self, session: Any, member_pks: list[int]) -> dict[int, list[dict[str, str]]]:
        signals: dict[int, list[dict[str, str]]] = {pk: [] for pk in member_pks}
        rows = session.execute(
            select(MemberSignalRow.member_pk, SignalRow.signal_type, SignalRow.signal_value)
            .join(SignalRow, SignalRow.id == MemberSignalRow.signal_pk)
            .where(MemberSignalRow.member_pk.in_(member_pks))
            .order_by(SignalRow.signal_type)
        )
        for member_pk, signal_type, value in rows:
            signals[member_pk].append({"signal_type": signal_type, "signal_value": value})
        return signals

    def members(
        self,
        bank_name: str,
        *,
        after_id: int | None = None,
        limit: int = 100,
        signal_type: str | None = None,
        tag: str | None = None,
        enabled: bool | None = None,
        member_pk: int | None = None,
        member_pks: list[int] | None = None,
        signal_value: str | None = None,
    ) -> list[dict[str, Any]]:
        """Members in id order; ``after_id`` is the cursor.

        ``signal_value`` finds the members holding a hash; give ``signal_type`` with it, or
        the value alone is looked up without the index.
        """
        query = (
            select(BankMemberRow)
            .join(BankRow, BankRow.id == BankMemberRow.bank_pk)
            .where(BankRow.name == bank_name)
            .order_by(BankMemberRow.id)
        )
        if after_id is not None:
            query = query.where(BankMemberRow.id > after_id)
        if member_pk is not None:
            query = query.where(BankMemberRow.id == member_pk)
        if member_pks is not None:
            query = query.where(BankMemberRow.id.in_(member_pks))
        if enabled is not None:
            query = query.where(BankMemberRow.enabled.is_(enabled))
        if signal_type is not None or signal_value is not None:
            holders = select(MemberSignalRow.member_pk).join(
                SignalRow, SignalRow.id == MemberSignalRow.signal_pk
            )
            if signal_type is not None:
                holders = holders.where(SignalRow.signal_type == signal_type)
            if signal_value is not None:
                # With the type too, this is one probe of the (type, value) unique index.
                holders = holders.where(SignalRow.signal_value == signal_value)
            query = query.where(BankMemberRow.id.in_(holders))
        with self._store.reading() as session:
            rows: list[BankMemberRow] = []
            # Tags live in a JSON list; filter them here so both databases behave alike.
            batch_query = query.limit(limit if tag is None else limit * 20)
            for row in session.scalars(batch_query):
                if tag is None or tag in row.tags:
                    rows.append(row)
                if len(rows) == limit:
                    break
            signals = self._signals_of(session, [r.id for r in rows])
            return [member_json(row, bank_name, signals[row.id]) for row in rows]

    def tagged_members(
        self, bank_name: str, tag: str, *, after_id: int | None, limit: int, window: int = 5000
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Members carrying ``tag`` among the next ``window`` members past ``after_id``.

        Tags live in a JSON list that neither database indexes alike, so a search reads a
        bounded window (ids and tags only) and returns the cursor to go on from: the last
        member shown when the page is full, else the end of the window, None at the end of
        the bank. A rare tag in a million members costs many cheap pages, never one slow one.
        """
        query = (
            select(BankMemberRow.id, BankMemberRow.tags)
            .join(BankRow, BankRow.id == BankMemberRow.bank_pk)
            .where(BankRow.name == bank_name)
            .order_by(BankMemberRow.id)
            .limit(window)
        )
        if after_id is not None:
            query = query.where(BankMemberRow.id > after_id)
        with self._store.reading() as session:
            scanned = session.execute(query).all()
        found = [pk for pk, tags in scanned if tag in tags][:limit]
        if len(found) == limit:
            cursor: int | None = found[-1]
        else:
            cursor = scanned[-1][0] if len(scanned) == window else None
        rows = self.members(bank_name, member_pks=found, limit=limit) if found else []
        return rows, cursor

    def iter_members(self, bank_name: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
        after = None
        while True:
            page = self.members(bank_name, after_id=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1]["id"]


def member_json(row: BankMemberRow, bank: str, signals: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "id": row.id,
        "bank": bank,
        "content_id": row.content_id,
        "external_id": row.external_id,
        "notes": row.notes,
        "tags": list(row.tags),
        "enabled": row.enabled,
        "disabled_until": row.disabled_until.isoformat() if row.disabled_until else None,
        "signals": signals,
        "exchange_metadata": dict(row.exchange_metadata) or None,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
