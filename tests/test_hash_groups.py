"""Concurrent ``/submit/hash/`` requests of one process share a transaction (group commit).

On the real store (SQLite and, when configured, PostgreSQL): requests that arrive while
another is writing are written together by one of them; each still gets its own outcome,
in arrival order, only after its item is committed; a failed write fails its whole group
and no other. Then the same through real HTTP with concurrent clients.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.content import ComputedSignal, Submission, SubmitOutcome
from hma_framework.store.hash_groups import HashSubmissionGroups
from hma_framework.store.hash_submissions import HashItem, HashSubmissions
from hma_framework.store.tables import ContentRow
from hma_framework.testing import Tokens, run_jobs

MATCHING = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
WAITERS = 5


def hash_item(content_id: str, fields: tuple[str, ...] = ()) -> HashItem:
    value = "ab" * 32
    submission = Submission(
        content_id,
        "photo",
        "hash",
        list(fields),
        parameters={"signal_type": "pdq", "signal_value": value},
    )
    return HashItem(submission, ComputedSignal("pdq", value), [])


class FirstGroupHeld:
    """Holds the first group's write until ``expected`` more requests are waiting behind it."""

    def __init__(self, expected: int, fail_first: bool = False) -> None:
        self.expected = expected
        self.fail_first = fail_first
        self.sizes: list[int] = []
        self.groups: HashSubmissionGroups | None = None

    def __call__(self, size: int) -> None:
        self.sizes.append(size)
        if len(self.sizes) == 1:
            assert self.groups is not None
            deadline = time.monotonic() + 10
            while len(self.groups._waiting) < self.expected:
                assert time.monotonic() < deadline, "the other requests never arrived"
                time.sleep(0.005)
            if self.fail_first:
                raise RuntimeError("the first group's write failed")


def groups_for(runtime: Runtime, held: FirstGroupHeld) -> HashSubmissionGroups:
    groups = HashSubmissionGroups(HashSubmissions(runtime.store), on_group=held)
    held.groups = groups
    return groups


def run_concurrently(
    groups: HashSubmissionGroups, first: HashItem, rest: list[HashItem]
) -> tuple[Any, list[Any]]:
    """``first`` starts writing alone; ``rest`` arrive while it writes, one after another."""

    def record(item: HashItem) -> Any:
        try:
            return groups.record(item, act_job_id=f"act-{item.submission.content_id}")
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(rest) + 1) as pool:
        leading = pool.submit(record, first)
        while not groups._writing:
            time.sleep(0.001)
        others = []
        for item in rest:  # in order: each is waiting before the next is sent
            others.append(pool.submit(record, item))
            deadline = time.monotonic() + 10
            while len(groups._waiting) < len(others):
                assert time.monotonic() < deadline
                time.sleep(0.001)
        return leading.result(30), [future.result(30) for future in others]


def stored_count(runtime: Runtime) -> int:
    with runtime.store.reading() as session:
        return int(session.scalar(select(func.count()).select_from(ContentRow)) or 0)


def test_requests_waiting_on_a_write_are_written_together(runtime: Runtime) -> None:
    held = FirstGroupHeld(WAITERS)
    groups = groups_for(runtime, held)
    first, (*results,) = run_concurrently(
        groups, hash_item("lead"), [hash_item(f"c{n}") for n in range(WAITERS)]
    )
    assert held.sizes == [1, WAITERS]
    assert first[0] is SubmitOutcome.CREATED
    assert [outcome for outcome, _ in results] == [SubmitOutcome.CREATED] * WAITERS
    assert len({first[1], *(pk for _, pk in results)}) == WAITERS + 1
    assert stored_count(runtime) == WAITERS + 1


def test_a_repeated_content_id_in_a_group_is_a_resubmission_in_arrival_order(
    runtime: Runtime,
) -> None:
    held = FirstGroupHeld(3)
    groups = groups_for(runtime, held)
    _, results = run_concurrently(
        groups,
        hash_item("lead"),
        [hash_item("same", ("a",)), hash_item("same", ("a",)), hash_item("same", ("b",))],
    )
    assert held.sizes == [1, 3]
    created, again, different = results
    assert created[0] is SubmitOutcome.CREATED
    assert again == (SubmitOutcome.UNCHANGED, created[1])
    assert different[0] is SubmitOutcome.CONFLICT
    assert stored_count(runtime) == 2


def test_a_failed_write_fails_its_group_only(runtime: Runtime) -> None:
    held = FirstGroupHeld(2, fail_first=True)
    groups = groups_for(runtime, held)
    first, results = run_concurrently(
        groups, hash_item("lead"), [hash_item("next-1"), hash_item("next-2")]
    )
    assert isinstance(first, RuntimeError)
    assert [outcome for outcome, _ in results] == [SubmitOutcome.CREATED] * 2
    assert stored_count(runtime) == 2
    assert groups.record(hash_item("lead"), act_job_id="act-again")[0] is SubmitOutcome.CREATED


def test_concurrent_http_submissions_are_each_recorded_matched_and_acted_on(
    live_server: str, runtime: Runtime, worker_runtime: Runtime
) -> None:
    Banks(runtime.store).create_bank("banked")
    Banks(runtime.store).add_member("banked", NewMember(signals=(("pdq", MATCHING),)))
    headers = Tokens.header(runtime.api_keys.create("platform", ["submit", "read"]).token)
    sizes: list[int] = []
    runtime.hash_submissions._on_group = sizes.append
    bodies = [
        {
            "content_id": f"http-{n}",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": MATCHING if n % 5 == 0 else f"{n:064x}",
        }
        for n in range(120)
    ]

    def post(body: dict[str, Any]) -> int:
        return requests.post(
            live_server + "/submit/hash/", json=body, headers=headers, timeout=30
        ).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, bodies)) == {200}
    assert sum(sizes) == len(bodies)
    assert stored_count(runtime) == len(bodies)

    def status(n: int) -> str:
        url = f"{live_server}/content/http-{n}"
        return str(requests.get(url, headers=headers, timeout=10).json()["status"])

    assert {status(n) for n in range(0, 120, 5)} == {"matched"}
    assert {status(n) for n in range(1, 120, 5)} == {"no_match"}
    run_jobs(worker_runtime, ["action"])
    assert {status(n) for n in range(0, 120, 5)} == {"actioned"}


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Any:
    yield
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]
