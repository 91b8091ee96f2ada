"""stop_ncii against the loopback StopNCII API, driven by the real client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from threatexchange.exchanges.collab_config import CollaborationConfigBase
from threatexchange.exchanges.impl.stop_ncii_api import (
    StopNCIICredentials,
    StopNCIISignalExchangeAPI,
)

from hma_framework.runtime import Runtime
from hma_framework.testing import Tokens, run_jobs
from tests.fakes.stopncii import (
    FEEDBACK_KEY,
    FETCH_KEY,
    SUBSCRIPTION_KEY,
    FakeStopNCII,
    fake_stopncii,
)


def pdq(i: int) -> str:
    return hashlib.sha256(f"ncii {i}".encode()).hexdigest()


@pytest.fixture
def fake() -> Iterator[FakeStopNCII]:
    with fake_stopncii() as fake:
        for i in range(3):
            fake.add(pdq(i), at=1_000 + i)
        yield fake


def test_the_library_keeps_withdrawn_hashes_live(fake: FakeStopNCII) -> None:
    """The defect first: a withdrawn hash comes back from the library as a live record."""
    fake.add(pdq(1), at=2_000, status="Withdrawn")
    credentials = StopNCIICredentials(FETCH_KEY, SUBSCRIPTION_KEY, fake.base_url)
    collab = CollaborationConfigBase(name="ncii", api="stop_ncii", enabled=True)
    library = StopNCIISignalExchangeAPI.for_collab(collab, credentials)
    updates: dict[Any, Any] = {}
    for delta in library.fetch_iter([], None):
        updates.update(delta.updates)
    assert updates[("pdq", pdq(1))] is not None  # kept live: wrong


def test_withdrawn_hashes_are_removed_and_feedback_reaches_stopncii(
    runtime: Runtime, client: Any, tokens: Tokens, fake: FakeStopNCII
) -> None:
    admin, submit = tokens.header(tokens.admin), tokens.header(tokens.submit)
    created = client.post(
        "/exchanges",
        json={
            "name": "ncii",
            "api": "stop_ncii",
            "config": {"base_url": fake.base_url},
            "credentials": {
                "fetch_function_key": FETCH_KEY,
                "subscription_key": SUBSCRIPTION_KEY,
                "feedback_function_key": FEEDBACK_KEY,
            },
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json
    assert created.json["credentials_set"] == [
        "feedback_function_key",
        "fetch_function_key",
        "subscription_key",
    ]
    client.post("/exchanges/ncii/fetch", headers=admin)
    run_jobs(runtime, ["fetch"])
    status = client.get("/exchanges/ncii/status", headers=admin).json
    assert status["items_added"] == 3 and status["state"] == "idle", status
    assert len([r for r in fake.requests if r["path"] == "/v1/FetchHashes"]) == 2  # two pages

    client.post(
        "/submit/hash/",
        json={
            "content_id": "n-1",
            "content_type": "photo",
            "signal_type": "pdq",
            "signal_value": pdq(0),
        },
        headers=submit,
    )
    run_jobs(runtime)
    [match] = client.get("/content/n-1/matches", headers=tokens.header(tokens.read)).json["matches"]
    assert (
        client.post(
            f"/matches/{match['id']}/opinion", json={"opinion": "seen"}, headers=submit
        ).status_code
        == 409
    )
    answered = client.post(
        f"/matches/{match['id']}/opinion", json={"opinion": "false_positive"}, headers=submit
    )
    assert answered.status_code == 202, answered.json
    run_jobs(runtime, ["action"])
    assert fake.feedback == [
        {
            "count": 1,
            "hashFeedbacks": [{"tags": [], "feedbackValue": "NotBlocked", "hashValue": pdq(0)}],
        }
    ]

    fake.add(pdq(1), at=2_000, status="Withdrawn")
    client.post("/exchanges/ncii/fetch", headers=admin)
    run_jobs(runtime, ["fetch"])
    status = client.get("/exchanges/ncii/status", headers=admin).json
    assert status["items_deleted"] == 1, status
    read = tokens.header(tokens.read)
    assert (
        client.get(f"/lookup?signal_type=pdq&signal={pdq(1)}", headers=read).json["matches"] == []
    )
    assert client.get(f"/lookup?signal_type=pdq&signal={pdq(2)}", headers=read).json["matches"]
    shown = client.get("/exchanges/ncii", headers=admin).get_data(as_text=True)
    assert SUBSCRIPTION_KEY not in shown and FETCH_KEY not in shown
