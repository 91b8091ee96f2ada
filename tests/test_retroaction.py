"""Automatic retroaction end to end: content submitted first, banked later, acted on once.

Real HTTP on loopback, real Redis and RQ workers, a real webhook receiver; SQLite and (when
configured) PostgreSQL.
"""

from __future__ import annotations

import datetime as dt

import attrs
import pytest
from sqlalchemy import text, update

from hma_framework.registry import Registry
from hma_framework.retroaction.automatic import request_retroaction, run_pass
from hma_framework.retroaction.ring_sync import open_ring
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content import ComputedSignal, Submission
from hma_framework.store.content_queries import ContentQueries
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentSignalRow, RetroactionCursorRow
from hma_framework.testing import run_jobs
from tests.test_actions_support import (
    OTHER_PDQ,
    PDQ,
    Api,
    Receiver,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    submit_hash,
    webhook_handler,
)

NEAR_PDQ = PDQ[:-2] + "dd"  # a few bits from PDQ: within the default threshold


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def admin(live_server: str, runtime: Runtime) -> Api:
    return Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)


def add_member(admin: Api, bank: str, value: str = PDQ) -> int:
    body = {"signals": [{"signal_type": "pdq", "signal_value": value}]}
    member: int = admin.ok("POST", f"/banks/{bank}/members", body)["id"]
    return member


def test_content_banked_after_submission_is_matched_and_acted_on_once(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    secret = new_secret()
    webhook_handler(admin, "moderation", receiver.url + "/hooks/{content_id}", [secret])
    rule(admin, "late-bank", "moderation", [{"label": "bank", "equals": "late"}])
    admin.ok("POST", "/banks", {"name": "late", "tags": ["csam"]})
    submit_hash(admin, "early-post", NEAR_PDQ)
    submit_hash(admin, "unrelated", "0" * 64)
    run_jobs(worker_runtime)
    assert admin.ok("GET", "/content/early-post")["status"] == "no_match"
    assert receiver.received == []

    first = add_member(admin, "late")
    assert runtime.queues["retroact"].count == 1
    run_jobs(worker_runtime)

    [got] = receiver.received
    assert got.path == "/hooks/early-post"
    body = got.verify(secret)
    assert body["data"]["rules_fired"] == ["late-bank"]
    assert body["data"]["matches"][0]["member_id"] == first
    [match] = admin.ok("GET", "/content/early-post/matches")["matches"]
    assert match["retroactive"] is True and match["bank"] == "late"
    assert match["distance"] > 0 and match["matched_at"]
    assert admin.ok("GET", "/content/early-post")["status"] == "actioned"
    assert admin.ok("GET", "/content/unrelated/matches")["matches"] == []

    second = add_member(admin, "late")  # the same hash banked again: a new member
    run_jobs(worker_runtime)
    matches = admin.ok("GET", "/content/early-post/matches")["matches"]
    assert {m["member_id"] for m in matches} == {first, second}
    assert all(m["retroactive"] for m in matches)
    assert len(receiver.received) == 1, "the action was performed once for the content"
    [delivery] = admin.ok("GET", "/deliveries")["deliveries"]
    assert delivery["status"] == "succeeded"

    live = "live-after-banking"
    runtime.indexes.refresh(force=True)  # the API's index may lag the bank by 250 ms
    submit_hash(admin, live, PDQ)  # matched live, not retroactively
    run_jobs(worker_runtime)
    assert {m["retroactive"] for m in admin.ok("GET", f"/content/{live}/matches")["matches"]} == {
        False
    }


def test_content_resubmitted_with_a_new_hash_is_matched_retroactively_by_it(
    admin: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    """The rings copy content signals by id: a new hash must not hide under the old row's id."""
    admin.ok("POST", "/banks", {"name": "late"})
    submit_hash(admin, "edited", "0" * 64)
    add_member(admin, "late", "f" * 64)  # a pass runs: the ring holds the first reading
    run_jobs(worker_runtime)
    resubmitted = {
        "content_id": "edited",
        "content_type": "photo",
        "signal_type": "pdq",
        "signal_value": NEAR_PDQ,
        "force_resubmit": True,
    }
    admin.ok("POST", "/submit/hash/", resubmitted)
    run_jobs(worker_runtime)
    assert admin.ok("GET", "/content/edited/matches")["matches"] == []
    add_member(admin, "late")  # PDQ: near the resubmitted hash
    run_jobs(worker_runtime)
    [match] = admin.ok("GET", "/content/edited/matches")["matches"]
    assert match["retroactive"] is True and match["bank"] == "late"


def test_a_signal_committed_after_a_higher_id_still_reaches_the_ring(
    admin: Api, runtime: Runtime, worker_runtime: Runtime, receiver: Receiver
) -> None:
    """PostgreSQL takes an id at INSERT but shows the row at COMMIT: a lower id can appear
    after the ring feed has copied a higher one, and must still be matched retroactively."""
    if runtime.store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: its ids become visible in order")
    secret = new_secret()
    webhook_handler(admin, "moderation", receiver.url + "/hooks/{content_id}", [secret])
    rule(admin, "late-bank", "moderation", [{"label": "bank", "equals": "late"}])
    admin.ok("POST", "/banks", {"name": "late"})
    submit_hash(admin, "earlier", "0" * 64)
    run_pass(worker_runtime)  # the ring is warm: its feed has a cursor
    content = runtime.content
    _, slow_pk = content.submit(Submission("slow", "photo", "url"), force=False)
    with runtime.store.transaction() as slow:  # its hash job, whose commit comes late
        content.record_signals(slow_pk, [ComputedSignal("pdq", NEAR_PDQ)], slow)
        content.record_matches(slow_pk, [], slow)
        submit_hash(admin, "fast", OTHER_PDQ)  # a higher id, committed first
        run_pass(worker_runtime)  # the feed copies what it sees
        ring = open_ring(worker_runtime.settings, worker_runtime.registry, "pdq")
        assert len(ring) == 2
    run_jobs(worker_runtime)

    member = add_member(admin, "late")
    run_jobs(worker_runtime)
    [match] = admin.ok("GET", "/content/slow/matches")["matches"]
    assert match["retroactive"] is True and match["member_id"] == member
    [got] = receiver.received
    assert got.path == "/hooks/slow" and got.verify(secret)["data"]["rules_fired"] == ["late-bank"]

    add_member(admin, "late")  # banked again: recorded, not acted on again
    run_jobs(worker_runtime)
    assert len(admin.ok("GET", "/content/slow/matches")["matches"]) == 2
    assert len(receiver.received) == 1
    assert len(ring) == 3, "each content signal entered the ring once"


def test_content_outside_the_window_is_not_matched(
    admin: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    admin.ok("POST", "/banks", {"name": "late"})
    submit_hash(admin, "old-post", PDQ)
    submit_hash(admin, "new-post", PDQ)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=73)
    with runtime.store.transaction() as session:
        session.execute(
            update(ContentSignalRow)
            .where(
                ContentSignalRow.content_pk == ContentQueries(runtime.store).content_pk("old-post")
            )
            .values(created_at=old)
        )
    add_member(admin, "late")
    run_jobs(worker_runtime)
    assert admin.ok("GET", "/content/old-post/matches")["matches"] == []
    assert len(admin.ok("GET", "/content/new-post/matches")["matches"]) == 1


def test_additions_in_a_burst_are_coalesced_and_window_zero_turns_it_off(
    admin: Api, runtime: Runtime
) -> None:
    admin.ok("POST", "/banks", {"name": "b"})
    for n in range(5):
        add_member(admin, "b", f"{n:064x}")
    assert runtime.queues["retroact"].count == 1
    off = attrs.evolve(
        runtime, settings=attrs.evolve(
            runtime.settings,
            retroaction=attrs.evolve(runtime.settings.retroaction, window_hours=0),
        )
    )  # fmt: skip
    runtime.redis.flushdb()
    assert request_retroaction(off) is False
    assert runtime.queues["retroact"].count == 0
    assert run_pass(off)["skipped"]


def test_signal_types_without_a_fast_index_fall_back(runtime: Runtime) -> None:
    """video_md5 has no vectorised index: its probe is the generic one, found all the same."""
    md5 = "d41d8cd98f00b204e9800998ecf8427e"
    content = runtime.content
    _, pk = content.submit(Submission("clip", "video", "hash"), force=False)
    content.record_signals(pk, [ComputedSignal("video_md5", md5)])
    content.record_matches(pk, [])
    banks = Banks(runtime.store)
    banks.create_bank("videos")
    member = banks.add_member("videos", NewMember(signals=(("video_md5", md5),)))
    report = run_pass(runtime)
    assert report["matched_content"] == 1 and report["members"] == 1
    assert run_pass(runtime)["members"] == 0, "the cursor moved past the member"
    [match] = ContentQueries(runtime.store).matches(content_pk=pk)
    assert match["member_id"] == member and match["retroactive"] is True


def test_upgrading_starts_automatic_retroaction_after_existing_members(database_url: str) -> None:
    """Members banked before retroaction existed were matched live: no pass rescans them."""
    store = Store(database_url)
    try:
        migrate.upgrade(store, "0005")  # the revision before retroaction's
        # Rows as that schema had them (the models describe the newest schema).
        with store.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO bank (id, name, description, tags, enabled, thresholds, "
                    "created_at, updated_at) VALUES (7, 'old', '', '[]', :yes, '{}', :now, :now)"
                ),
                {"yes": True, "now": dt.datetime.now(dt.UTC)},
            )
            session.execute(
                text(
                    "INSERT INTO bank_member (id, bank_pk, notes, tags, exchange_metadata, "
                    "enabled, created_at, updated_at) "
                    "VALUES (41, 7, '', '[]', '{}', :yes, :now, :now)"
                ),
                {"yes": True, "now": dt.datetime.now(dt.UTC)},
            )
        member = 41
        migrate.upgrade(store)
        with store.reading() as session:
            cursor = session.get(RetroactionCursorRow, "automatic")
        assert cursor is not None and cursor.position == member
    finally:
        store.close()
