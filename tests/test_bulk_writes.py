"""Bulk bank writes: large batches (COPY on PostgreSQL) store exactly what small ones do."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select, text

from hma_framework.runtime import Runtime
from hma_framework.store import bulk
from hma_framework.store.bank_queries import BankQueries
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.bulk import COPY_FROM
from hma_framework.store.tables import BankChangeRow, MemberSignalRow, SignalRow

# What COPY's text format must escape: tabs, newlines, backslashes, and a \N look-alike.
NOTES = 'tab\there\nnew line, back\\slash \\N, quote\' and "json"'


def test_large_batches_with_shared_and_existing_signals(runtime: Runtime) -> None:
    rng = random.Random(3)
    banks = Banks(runtime.store)
    banks.create_bank("first")
    banks.create_bank("second")
    pdq = [f"{rng.getrandbits(256):064x}" for _ in range(3 * COPY_FROM)]
    md5 = [f"{rng.getrandbits(128):032x}" for _ in range(3 * COPY_FROM)]
    existing = pdq[:COPY_FROM]  # stored before: the big batch must reuse their ids
    banks.add_members("first", [NewMember(signals=(("pdq", h),)) for h in existing])
    with runtime.store.reading() as session:
        old_ids = dict(session.execute(select(SignalRow.signal_value, SignalRow.id)).all())
    members = [
        NewMember(
            signals=(("pdq", p), ("video_md5", m)),
            content_id=f"c{i}",
            tags=("t", f"n{i}"),
            notes=NOTES,
            exchange_metadata={"k": [i, None]},
        )
        for i, (p, m) in enumerate(zip(pdq, md5, strict=True))
    ]
    member_pks = banks.add_members("second", members)
    assert len(member_pks) == len(set(member_pks)) == len(members)

    with runtime.store.reading() as session:
        ids = dict(session.execute(select(SignalRow.signal_value, SignalRow.id)).all())
        assert len(ids) == len(pdq) + len(md5)  # no hash stored twice
        assert all(ids[h] == old_ids[h] for h in existing)
        links = session.scalar(select(func.count()).select_from(MemberSignalRow))
        assert links == len(existing) + 2 * len(members)
        new_signals = session.scalar(
            select(func.count())
            .select_from(BankChangeRow)
            .where(BankChangeRow.kind == "signal_added")
        )
        assert new_signals == len(pdq) + len(md5)  # each new hash logged once
    stored = list(BankQueries(runtime.store).iter_members("second"))
    assert [m["id"] for m in stored] == sorted(member_pks)
    by_content = {m["content_id"]: m for m in stored}
    for i, (p, m) in enumerate(zip(pdq, md5, strict=True)):
        member = by_content[f"c{i}"]
        assert member["tags"] == ["t", f"n{i}"]
        assert member["notes"] == NOTES
        assert member["exchange_metadata"] == {"k": [i, None]}
        assert {s["signal_value"] for s in member["signals"]} == {p, m}
    matched = runtime.indexes.match("pdq", pdq[5])
    assert sorted(x.bank_name for x in matched) == ["first", "second"]


def test_large_imports_refresh_postgresql_statistics(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    if runtime.store.dialect != "postgresql":
        pytest.skip("PostgreSQL plans from statistics that ANALYZE refreshes")
    monkeypatch.setattr(bulk, "ANALYZE_EVERY", 300)
    banks = Banks(runtime.store)
    banks.create_bank("a")
    rng = random.Random(4)

    def estimated_signals() -> float:
        with runtime.store.reading() as session:
            return float(
                session.execute(
                    text("SELECT reltuples FROM pg_class WHERE oid = 'signal'::regclass")
                ).scalar_one()
            )

    before = estimated_signals()
    banks.add_member("a", NewMember(signals=(("pdq", f"{rng.getrandbits(256):064x}"),)))
    banks.add_members(
        "a",
        [NewMember(signals=(("pdq", f"{rng.getrandbits(256):064x}"),)) for _ in range(250)],
    )
    assert estimated_signals() == before  # 251 rows so far: not yet
    banks.add_members(
        "a",
        [NewMember(signals=(("pdq", f"{rng.getrandbits(256):064x}"),)) for _ in range(100)],
    )
    assert estimated_signals() == 351  # analyzed: the planner knows the table's size
    for expected in (351, 351, 651):  # the next ANALYZE waits for max(300, 351 // 2) more rows
        banks.add_members(
            "a",
            [NewMember(signals=(("pdq", f"{rng.getrandbits(256):064x}"),)) for _ in range(100)],
        )
        assert estimated_signals() == expected
