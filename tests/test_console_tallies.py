"""The console's counters stay equal to the ``count(*)`` they replace, whatever writes.

Triggers (migration 0014) keep ``bank_tally`` and ``hourly_tally``; these tests drive the
real writers (the bank store, the submission pipeline, retroaction's insert, cascading
deletes) on SQLite and PostgreSQL and compare every counter with a fresh count after each.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import delete, func, insert, select

from hma_framework.runtime import Runtime
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.overview_queries import hour_key
from hma_framework.store.tables import (
    BankMemberRow,
    BankTallyRow,
    ContentRow,
    ContentSubmissionRow,
    DeliveryRow,
    HandlerConfigRow,
    HourlyTallyRow,
    MatchRow,
)
from hma_framework.testing import Tokens, run_jobs


def members(n: int, seed: str) -> list[NewMember]:
    return [NewMember(signals=(("pdq", f"{seed}{i:063x}"[-64:]),)) for i in range(n)]


def submit_hash(client: Any, tokens: Tokens, content_id: str, signal: str) -> None:
    """A photo's PDQ hash submitted through the API, as a platform would."""
    answer = client.post(
        "/submit/hash/",
        json={
            "content_id": content_id,
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": signal,
        },
        headers=Tokens.header(tokens.submit),
    )
    assert answer.status_code < 300, answer.text


def assert_tallies_match(runtime: Runtime) -> None:
    """Every counter equals a count of the rows it stands for (zero rows may linger)."""
    with runtime.store.reading() as session:
        counted = Counter(session.scalars(select(BankMemberRow.bank_pk)))
        kept = {
            pk: n for pk, n in session.execute(select(BankTallyRow.bank_pk, BankTallyRow.members))
        }
        expected: Counter[tuple[str, str, int]] = Counter()
        for at in session.scalars(select(ContentSubmissionRow.submitted_at)):
            expected[(hour_key(at), "submissions", 0)] += 1
        for at in session.scalars(select(DeliveryRow.created_at)):
            expected[(hour_key(at), "actions", 0)] += 1
        for at, bank_pk, retro in session.execute(
            select(MatchRow.created_at, MatchRow.bank_pk, MatchRow.retroactive)
        ):
            # a match whose bank was deleted outlives it and counts under bank 0 ("no bank")
            series = "retro_matches" if retro else "matches"
            expected[(hour_key(at), series, bank_pk or 0)] += 1
        hourly = {
            (h, s, b): n
            for h, s, b, n in session.execute(
                select(
                    HourlyTallyRow.hour,
                    HourlyTallyRow.series,
                    HourlyTallyRow.bank_pk,
                    HourlyTallyRow.n,
                )
            )
        }
    assert {pk: n for pk, n in kept.items() if n} == dict(counted)
    assert {key: n for key, n in hourly.items() if n} == dict(expected)


def test_member_counts_follow_add_remove_readd_and_bank_delete(runtime: Runtime) -> None:
    banks = Banks(runtime.store)
    queries = BankQueries(runtime.store)
    banks.create_bank("one")
    banks.create_bank("two")
    assert queries.bank("one")["member_count"] == 0  # type: ignore[index]
    added = banks.add_members("one", members(30, "a"))
    banks.add_members("two", members(5, "a"))  # the same hashes, shared signals
    assert_tallies_match(runtime)
    assert queries.bank("one")["member_count"] == 30  # type: ignore[index]
    banks.remove_member(added[0])
    banks.remove_member(added[1])
    assert queries.bank("one")["member_count"] == 28  # type: ignore[index]
    (readded,) = banks.add_members("one", members(1, "a"))
    assert queries.bank("one")["member_count"] == 29  # type: ignore[index]
    banks.set_member_enabled(readded, False)  # switching off is not removing
    assert queries.bank("one")["member_count"] == 29  # type: ignore[index]
    assert_tallies_match(runtime)
    banks.delete_bank("one")
    assert [b["name"] for b in queries.banks()] == ["two"]
    assert queries.bank("two")["member_count"] == 5  # type: ignore[index]
    assert_tallies_match(runtime)
    banks.create_bank("one")  # a new bank of an old name starts from nothing
    assert queries.bank("one")["member_count"] == 0  # type: ignore[index]


def _content(session: Any, content_id: str, at: dt.datetime) -> int:
    pk: int = session.execute(
        insert(ContentRow).returning(ContentRow.id),
        {
            "content_id": content_id,
            "content_type": "photo",
            "submission_method": "hash",
            "status": "matched",
            "submitted_at": at,
            "additional_fields": [],
        },
    ).scalar_one()
    session.execute(
        insert(ContentSubmissionRow), {"content_pk": pk, "method": "hash", "submitted_at": at}
    )
    return pk


def test_daily_counts_follow_submissions_matches_and_deletes(
    runtime: Runtime, client: Any, tokens: Tokens
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("watch")
    banks.create_bank("other")
    (member,) = banks.add_members("watch", [NewMember(signals=(("pdq", "f" * 64),))])
    (other_member,) = banks.add_members("other", [NewMember(signals=(("pdq", "e" * 64),))])
    # Through the API and the workers: submissions, a live match, no action (no rule).
    for n in range(3):
        submit_hash(client, tokens, f"live-{n}", "f" * 64)
    run_jobs(runtime)
    assert_tallies_match(runtime)
    with runtime.store.reading() as session:
        assert session.scalar(select(MatchRow.id).limit(1)) is not None
    # Written directly, as retroaction and the exchanges do: old hours, retroactive rows.
    long_ago = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    with runtime.store.reading() as session:
        watch, other = (banks.bank_id(session, name) for name in ("watch", "other"))
    with runtime.store.transaction() as session:
        pks = [_content(session, f"old-{n}", long_ago - dt.timedelta(hours=n)) for n in range(4)]
        session.execute(
            insert(MatchRow),
            [
                {
                    "content_pk": pk,
                    "bank_pk": bank,
                    "member_pk": mem,
                    "signal_type": "pdq",
                    "content_signal": "f" * 64,
                    "member_signal": "f" * 64,
                    "distance": 0,
                    "retroactive": n % 2 == 0,
                    "created_at": long_ago,
                }
                for n, pk in enumerate(pks)
                for bank, mem in ((watch, member), (other, other_member))
            ],
        )
        handler = session.execute(
            insert(HandlerConfigRow).returning(HandlerConfigRow.id),
            {"name": "h", "handler_type": "webhook", "config": {}, "secrets": {}},
        ).scalar_one()
        session.execute(
            insert(DeliveryRow),
            [
                {
                    "content_pk": pk,
                    "handler_pk": handler,
                    "action_key": "h",
                    "status": "succeeded",
                    "created_at": long_ago + dt.timedelta(minutes=50 * n),
                }
                for n, pk in enumerate(pks)
            ],
        )
    assert_tallies_match(runtime)
    # Deleting content cascades to its submissions and matches; a deleted bank's matches stay
    # (a past event), counted under bank 0.
    with runtime.store.transaction() as session:
        session.execute(delete(ContentRow).where(ContentRow.content_id.in_(["old-0", "live-1"])))
    assert_tallies_match(runtime)
    banks.delete_bank("other")
    assert_tallies_match(runtime)
    with runtime.store.reading() as session:
        series = Counter(
            dict(
                session.execute(
                    select(HourlyTallyRow.series, func.sum(HourlyTallyRow.n)).group_by(
                        HourlyTallyRow.series
                    )
                ).all()
            )
        )
    # 3 live + 4 old submitted, 2 of them deleted; 3 live matches less live-1's, so 2; the
    # old rows' matches of old-1..3 remain in both banks, "other" deleted or not (old-2's
    # retroactive): 2 + 2 * 2 live, 2 retroactive; 4 actions less old-0's.
    assert series == {"submissions": 5, "matches": 6, "retro_matches": 2, "actions": 3}
