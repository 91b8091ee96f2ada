"""Migration 0022 on a store holding matches, their write-backs and counters (both databases).

SQLite rebuilds ``match``: with foreign keys on, dropping the old table would cascade to
``exchange_opinion`` and drop the counter triggers, so the rows and triggers must survive.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, insert, select

from hma_framework.store import migrate
from hma_framework.store.db import Store
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    ExchangeOpinionRow,
    ExchangeRow,
    HourlyTallyRow,
    MatchRow,
)
from tests.test_console_tallies import _content

AT = dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC)


def _match(session: object, content_pk: int, bank_pk: int, member_pk: int) -> int:
    pk: int = session.execute(  # type: ignore[attr-defined]
        insert(MatchRow).returning(MatchRow.id),
        {
            "content_pk": content_pk,
            "bank_pk": bank_pk,
            "member_pk": member_pk,
            "signal_type": "pdq",
            "content_signal": "f" * 64,
            "member_signal": "f" * 64,
            "distance": 0,
            "created_at": AT,
        },
    ).scalar_one()
    return pk


def _matches_counted(store: Store) -> int:
    with store.reading() as session:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(HourlyTallyRow.n), 0)).where(
                    HourlyTallyRow.series == "matches"
                )
            )
        )


def test_0022_keeps_write_backs_and_counters_and_lets_matches_outlive_members(
    database_url: str,
) -> None:
    store = Store(database_url)
    try:
        migrate.upgrade(store, "0020")
        with store.transaction() as session:
            exchange = session.execute(
                insert(ExchangeRow).returning(ExchangeRow.id),
                {"name": "x", "api_type": "local_file"},
            ).scalar_one()
            bank = session.execute(
                insert(BankRow).returning(BankRow.id), {"name": "b", "exchange_pk": exchange}
            ).scalar_one()
            member = session.execute(
                insert(BankMemberRow).returning(BankMemberRow.id), {"bank_pk": bank}
            ).scalar_one()
            match = _match(session, _content(session, "c-1", AT), bank, member)
            session.execute(
                insert(ExchangeOpinionRow),
                {
                    "match_pk": match,
                    "member_pk": member,
                    "exchange_pk": exchange,
                    "opinion": "true_positive",
                    "source": "api",
                    "status": "sent",
                },
            )
        assert _matches_counted(store) == 1

        migrate.upgrade(store)
        with store.reading() as session:
            assert session.scalars(select(ExchangeOpinionRow.match_pk)).all() == [match]
        with store.transaction() as session:  # the counter triggers are still there
            _match(session, _content(session, "c-2", AT), bank, member)
        assert _matches_counted(store) == 2
        with store.transaction() as session:
            session.execute(delete(BankMemberRow).where(BankMemberRow.id == member))
        with store.reading() as session:
            kept = session.execute(select(MatchRow.member_pk, MatchRow.bank_pk)).all()
            assert sorted(kept) == [(None, bank), (None, bank)]
            assert session.scalars(select(ExchangeOpinionRow.match_pk)).all() == [match]
        with store.transaction() as session:
            session.execute(delete(BankRow).where(BankRow.id == bank))
        assert _matches_counted(store) == 2  # moved to bank 0, not lost
        with store.reading() as session:
            counted_under = session.scalars(
                select(HourlyTallyRow.bank_pk).where(
                    HourlyTallyRow.series == "matches", HourlyTallyRow.n > 0
                )
            ).all()
            assert counted_under == [0]

        migrate.downgrade(store, "0020")  # the old schema cannot hold them: they go
        with store.reading() as session:
            assert session.scalar(select(func.count()).select_from(MatchRow)) == 0
        assert _matches_counted(store) == 0
        migrate.upgrade(store)
        assert migrate.is_up_to_date(store)
    finally:
        store.close()
