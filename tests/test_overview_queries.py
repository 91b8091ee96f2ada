"""The Overview's counts honour their windows: a day, 30 days, nothing older."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, select

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.overview_queries import Bar, OverviewQueries
from hma_framework.store.tables import BankRow, ContentRow, ContentSubmissionRow, MatchRow


def test_counts_and_matches_per_bank_by_window(runtime: Runtime) -> None:
    banks = Banks(runtime.store)
    now = dt.datetime(2026, 6, 1, 12, 30, tzinfo=dt.UTC)
    # minutes ago and retroactive?, per bank
    ages = {"a": [(1, False), (5, True), (60 * 24 * 3, False)], "b": [(60 * 24 * 40, False)]}
    for name, found in ages.items():
        banks.create_bank(name)
        member = banks.add_member(name, NewMember(signals=(("pdq", name * 64),)))
        with runtime.store.transaction() as session:
            bank_pk = session.scalar(select(BankRow.id).where(BankRow.name == name))
            for n, (age, retroactive) in enumerate(found):
                at = now - dt.timedelta(minutes=age)
                content_pk = session.execute(
                    insert(ContentRow).returning(ContentRow.id),
                    {
                        "content_id": f"{name}-{n}",
                        "content_type": "photo",
                        "submission_method": "hash",
                        "status": "failed" if n == 0 else "actioned",
                        "submitted_at": at,
                        "additional_fields": [],
                    },
                ).scalar_one()
                session.execute(
                    insert(ContentSubmissionRow),
                    {"content_pk": content_pk, "method": "hash", "submitted_at": at},
                )
                session.execute(
                    insert(MatchRow),
                    {
                        "content_pk": content_pk,
                        "bank_pk": bank_pk,
                        "member_pk": member,
                        "signal_type": "pdq",
                        "content_signal": name * 64,
                        "member_signal": name * 64,
                        "distance": 0,
                        "retroactive": retroactive,
                        "created_at": at,
                    },
                )
    queries = OverviewQueries(runtime.store)
    counts = queries.counts(now)
    assert counts["submissions"] == {"day": 2, "30 days": 3}
    assert counts["matches"] == {"day": 2, "30 days": 3}
    assert counts["live matches"] == {"day": 1, "30 days": 2}
    assert counts["retroactive matches"] == {"day": 1, "30 days": 1}
    assert counts["actions"] == {"day": 0, "30 days": 0}
    assert queries.matches_per_bank(now) == [
        {"bank": "a", "day": 2, "30 days": 3, "rate": {"day": 100.0, "30 days": 100.0}}
    ]
    assert [c["content_id"] for c in queries.failed_contents()] == ["b-0", "a-0"]
    charts = {(c.name, c.window): c for c in queries.charts(now)}
    hourly = charts[("submissions", "day")]
    assert len(hourly.bars) == 24 and hourly.bars[-1] == Bar("12:00", 2)  # both this hour
    daily = charts[("submissions", "30 days")]
    assert len(daily.bars) == 30 and daily.bars[-1] == Bar("06-01", 2)
    assert daily.bars[-4] == Bar("05-29", 1) and daily.total == 3
