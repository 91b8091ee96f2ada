"""The Matches listing at scale: read newest-first from an index under every filter.

With a bank filter the listing used to walk ``ix_match_bank_created`` and sort every match of
the bank (a second at 1M matches); a period did the same through the created_at index, and a
quiet last hour scanned the whole table. Now each filter has an index ending in the listing's
order, ``(created_at, id)``: SQLite's plan is checked for it below, and PostgreSQL's at 20,000
matches with statistics (its costs mean little on a near-empty table). The paging contract
(newest first by time, the cursor a match id, no row lost or repeated) is checked on both
databases, as is the Exchanges page's member count, read from the trigger-kept tally.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import delete, event, func, insert, select, update

from hma_framework.exchanges.configs import exchanges_of
from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    BankTallyRow,
    ContentRow,
    MatchRow,
)
from hma_framework.testing import Tokens
from tests.test_console import sign_in

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def members(n: int, seed: int) -> list[NewMember]:
    return [NewMember(signals=(("pdq", f"{seed:02x}{i:062x}"),)) for i in range(n)]


def seed_matches(runtime: Runtime, count: int = 90) -> list[dict[str, Any]]:
    """``count`` matches in banks "big" and "small", of both kinds and two signal types.

    Times are not in id order: every fifth match was found a day before the ones around it
    (as when records come from an import), so time order and id order disagree.
    """
    banks = Banks(runtime.store)
    for name, seed in (("big", 1), ("small", 2)):
        banks.create_bank(name)
        banks.add_members(name, members(3, seed))
    with runtime.store.transaction() as session:
        bank_pks = dict(session.execute(select(BankRow.name, BankRow.id)).all())
        member_of = {
            bank: session.scalars(
                select(BankMemberRow.id).where(BankMemberRow.bank_pk == pk).limit(1)
            ).one()
            for bank, pk in bank_pks.items()
        }
        session.execute(
            insert(ContentRow),
            [
                {
                    "content_id": f"c-{n}",
                    "content_type": "photo",
                    "submission_method": "hash",
                    "status": "actioned",
                    "submitted_at": NOW,
                    "additional_fields": [],
                }
                for n in range(count)
            ],
        )
        content_pks = dict(session.execute(select(ContentRow.content_id, ContentRow.id)).all())
        rows = []
        for n in range(count):
            bank = "small" if n % 7 == 3 else "big"
            rows.append(
                {
                    "content_pk": content_pks[f"c-{n}"],
                    "bank_pk": bank_pks[bank],
                    "member_pk": member_of[bank],
                    "signal_type": "video_md5" if n % 4 == 1 else "pdq",
                    "content_signal": f"{n:064x}",
                    "member_signal": "0" * 64,
                    "distance": 0,
                    "retroactive": n % 3 == 0,
                    "created_at": NOW
                    - dt.timedelta(minutes=10 * (count - n))
                    - (dt.timedelta(days=1) if n % 5 == 2 else dt.timedelta()),
                }
            )
        session.execute(insert(MatchRow), rows)
    with runtime.store.reading() as session:
        bank_names = {pk: name for name, pk in bank_pks.items()}
        return [
            {
                "id": m.id,
                "bank": bank_names[m.bank_pk],
                "signal_type": m.signal_type,
                "retroactive": m.retroactive,
                "created_at": m.created_at.replace(tzinfo=dt.UTC)
                if m.created_at.tzinfo is None
                else m.created_at,
            }
            for m in session.scalars(select(MatchRow))
        ]


FILTERS: dict[str, dict[str, Any]] = {
    "all": {},
    "bank": {"bank": "big"},
    "rare bank": {"bank": "small"},
    "signal type": {"signal_type": "video_md5"},
    "retroactive": {"retroactive": True},
    "live": {"retroactive": False},
    "since": {"since": NOW - dt.timedelta(hours=5)},
    "range": {"since": NOW - dt.timedelta(hours=12), "until": NOW - dt.timedelta(hours=4)},
    "bank and since": {"bank": "big", "since": NOW - dt.timedelta(hours=8)},
    "bank and kind": {"bank": "small", "retroactive": True},
    "everything": {
        "bank": "big",
        "signal_type": "pdq",
        "retroactive": False,
        "since": NOW - dt.timedelta(days=2),
        "until": NOW - dt.timedelta(hours=2),
    },
}


def expected(matches: list[dict[str, Any]], query: dict[str, Any]) -> list[int]:
    """The ids a newest-first listing under ``query`` must give, computed from the rows."""
    kept = [
        m
        for m in matches
        if query.get("bank") in (None, m["bank"])
        and query.get("signal_type") in (None, m["signal_type"])
        and query.get("retroactive") in (None, m["retroactive"])
        and ("since" not in query or m["created_at"] >= query["since"])
        and ("until" not in query or m["created_at"] < query["until"])
    ]
    return [m["id"] for m in sorted(kept, key=lambda m: (m["created_at"], m["id"]), reverse=True)]


def test_pages_of_newest_matches_follow_time_under_every_filter(runtime: Runtime) -> None:
    matches = seed_matches(runtime)
    queries = ContentQueries(runtime.store)
    for name, query in FILTERS.items():
        want = expected(matches, query)
        assert want, name
        got: list[int] = []
        page = queries.matches(**query, limit=7)
        while page:
            got += [m["id"] for m in page]
            page = (
                queries.matches(**query, before_id=page[-1]["id"], limit=7)
                if len(page) == 7
                else []
            )
        assert got == want, name
    assert queries.matches(bank="nobody") == []


def test_a_cursor_whose_match_is_gone_continues_from_the_next_older_id(runtime: Runtime) -> None:
    matches = seed_matches(runtime)
    queries = ContentQueries(runtime.store)
    first = queries.matches(limit=10)
    gone = first[-1]["id"]
    with runtime.store.transaction() as session:
        session.execute(delete(MatchRow).where(MatchRow.id == gone))
    rest = [m for m in matches if m["id"] != gone]
    ordered = expected(rest, {})
    # the next older id's row and everything after it in time order
    nearest = max(m["id"] for m in rest if m["id"] < gone)
    after = queries.matches(before_id=gone, limit=100)
    assert [m["id"] for m in after] == ordered[ordered.index(nearest) :]
    assert queries.matches(before_id=ordered[-1]) == []  # the oldest: nothing after it


def test_the_matches_page_pages_by_its_older_link(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    matches = seed_matches(runtime, count=120)
    sign_in(client, tokens.read)
    url: str | None = "/ui/matches?bank=big&period=week&kind=live"
    seen: list[int] = []
    while url:
        html = client.get(url).text
        seen += [int(i) for i in re.findall(r'<tr class="match" id="match-(\d+)">', html)]
        found = re.search(r'<a rel="next" href="([^"]+)">Older</a>', html)
        url = found.group(1).replace("&amp;", "&") if found else None
    week = {"bank": "big", "retroactive": False, "since": NOW - dt.timedelta(days=7)}
    assert seen == expected(matches, week) and len(seen) > 50


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[tuple[str, Any]]]:
    """The SQL the store sends meanwhile (observed on the engine, nothing replaced)."""
    sent: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(runtime.store.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(runtime.store.engine, "before_cursor_execute", seen)


def listing_plan(runtime: Runtime, query: dict[str, Any]) -> str:
    """SQLite's plan for the page query ``matches(**query)`` sends (the one that reads pages)."""
    with statements(runtime) as sent:
        ContentQueries(runtime.store).matches(**query, limit=50)
    listing = [(s, p) for s, p in sent if "ORDER BY" in s and "JOIN content" in s]
    assert len(listing) == 1, sent
    with runtime.store.engine.connect() as connection:
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + listing[0][0], listing[0][1])
        return "\n".join(row[3] for row in rows)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_reads_each_filtered_listing_from_its_index_without_sorting(
    runtime: Runtime,
) -> None:
    matches = seed_matches(runtime)
    assert_indexed_plans(runtime, expected(matches, {})[20])
    with runtime.store.engine.connect() as connection:  # the statistics a live database has
        connection.exec_driver_sql("ANALYZE")
        connection.commit()
    assert_indexed_plans(runtime, expected(matches, {})[20])


def assert_indexed_plans(runtime: Runtime, cursor: int) -> None:
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "bank": ({"bank": "big"}, "ix_match_bank_newest (bank_pk=?)"),
        "bank, next page": (
            {"bank": "big", "before_id": cursor},
            "ix_match_bank_newest (bank_pk=? AND created_at<?)",
        ),
        "bank and period": (
            {"bank": "big", "since": NOW - dt.timedelta(days=1)},
            "ix_match_bank_newest (bank_pk=? AND created_at>?)",
        ),
        "signal type": (
            {"signal_type": "video_md5"},
            "ix_match_signal_type_newest (signal_type=?)",
        ),
        "kind": ({"retroactive": True}, "ix_match_kind_newest (retroactive=?)"),
        "period": ({"since": NOW - dt.timedelta(hours=1)}, "ix_match_newest (created_at>?)"),
        "range": (
            {"since": NOW - dt.timedelta(days=3), "until": NOW - dt.timedelta(days=1)},
            "ix_match_newest (created_at>? AND created_at<?)",
        ),
    }
    for name, (query, index) in cases.items():
        plan = listing_plan(runtime, query)
        assert f"SEARCH match USING INDEX {index}" in plan, (name, plan)
        assert "TEMP B-TREE" not in plan, (name, plan)
    for query in (
        {"bank": "small", "retroactive": True, "since": NOW - dt.timedelta(days=1)},
        {"bank": "big", "signal_type": "video_md5", "retroactive": False},
    ):
        plan = listing_plan(runtime, query)
        assert re.search(r"SEARCH match USING INDEX ix_match_\w+_newest", plan), (query, plan)
        assert "TEMP B-TREE" not in plan, (query, plan)
    unfiltered = listing_plan(runtime, {})
    assert "SCAN match USING INDEX ix_match_newest" in unfiltered
    assert "TEMP B-TREE" not in unfiltered


def test_exchanges_page_shows_the_tallied_member_count(
    client: Any, runtime: Runtime, tokens: Tokens
) -> None:
    root = runtime.settings.exchange_file_root
    root.mkdir(parents=True, exist_ok=True)
    exchanges_of(runtime).create(name="files", api="local_file", config={"filename": "list.txt"})
    banks = Banks(runtime.store)
    sign_in(client, tokens.admin)

    def shown() -> int:
        html = client.get("/ui/exchanges").text
        row = html.split('id="exchange-files"')[1].split("</tr>")[0]
        return int(re.search(r"\((\d+) members\)", row).group(1))  # type: ignore[union-attr]

    def tallied() -> int:
        with runtime.store.reading() as session:
            counted = session.scalar(
                select(func.count())
                .select_from(BankMemberRow)
                .join(BankRow)
                .where(BankRow.name == "FILES")
            )
            kept = session.scalar(
                select(BankTallyRow.members).join(BankRow).where(BankRow.name == "FILES")
            )
        assert kept == counted
        return int(kept)

    assert shown() == 0
    banks.add_members("FILES", members(25, 7))
    assert shown() == tallied() == 25
    with runtime.store.transaction() as session:
        gone = session.scalars(select(BankMemberRow.id).limit(10)).all()
    for pk in gone:
        banks.remove_member(pk)
    assert shown() == tallied() == 15
    # The page reads the counter, not the rows: a counter off by 1000 shows through.
    with runtime.store.transaction() as session:
        session.execute(update(BankTallyRow).values(members=BankTallyRow.members + 1000))
    assert shown() == 1015


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.slow
def test_postgresql_reads_each_filtered_listing_from_its_index_without_sorting(
    runtime: Runtime,
) -> None:
    if runtime.store.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan; SQLite's is checked above")
    seed_matches(runtime, count=20_000)
    with runtime.store.engine.connect() as connection:
        for table in ("match", "bank", "content"):
            connection.exec_driver_sql(f'ANALYZE "{table}"')
        connection.commit()
    for query in (
        {"bank": "big"},
        {"bank": "small"},
        {"bank": "small", "before_id": 15_000},
        {"bank": "big", "since": NOW - dt.timedelta(days=30)},
        {"signal_type": "video_md5"},
        {"retroactive": True},
        {"since": NOW - dt.timedelta(hours=1)},
        {"since": NOW - dt.timedelta(days=60), "until": NOW - dt.timedelta(days=1)},
        {"bank": "small", "retroactive": True, "signal_type": "pdq"},
    ):
        with statements(runtime) as sent:
            ContentQueries(runtime.store).matches(**query, limit=50)
        [(sql, params)] = [(s, p) for s, p in sent if "ORDER BY" in s and "JOIN content" in s]
        with runtime.store.engine.connect() as connection:
            plan = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + sql, params).scalar()
        nodes = list(_nodes(plan[0]["Plan"]))
        kinds = [n["Node Type"] for n in nodes]
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, (query, kinds)
        on_match = [n for n in nodes if n.get("Relation Name") == "match"]
        assert [n["Node Type"] for n in on_match] == ["Index Scan"], (query, on_match)
        assert re.fullmatch(r"ix_match_(\w+_)?newest", on_match[0]["Index Name"]), query
        assert on_match[0]["Scan Direction"] == "Backward", query
