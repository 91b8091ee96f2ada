"""``tat`` against a loopback Tech Against Terrorism hash list, and ``sample`` (no server)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from threatexchange.signal_type.pdq.signal import PdqSignal

from hma_framework.testing import Tokens, run_jobs
from tests.fakes.tat import PASSWORD, TOKEN, USER, FakeTAT, fake_tat


def pdq(i: int) -> str:
    return hashlib.sha256(f"tat {i}".encode()).hexdigest()


def video_md5(i: int) -> str:
    return hashlib.md5(f"tat video {i}".encode()).hexdigest()


@pytest.fixture
def fake() -> Iterator[FakeTAT]:
    with fake_tat() as fake:
        fake.add(pdq(0), at=1_704_085_200.5)
        fake.add(pdq(1), at=1_704_085_201.0)
        fake.add(video_md5(0), at=1_704_085_202.0, algorithm="MD5", file_type="mp4")
        fake.add(video_md5(1), at=1_704_085_203.0, algorithm="MD5", file_type="jpg")  # not video
        fake.add(pdq(2), at=1_704_085_204.0)
        yield fake


def fetch(client: Any, runtime: Any, admin: dict[str, str], name: str) -> dict[str, Any]:
    assert client.post(f"/exchanges/{name}/fetch", headers=admin).status_code == 202
    run_jobs(runtime, ["fetch"])
    status: dict[str, Any] = client.get(f"/exchanges/{name}/status", headers=admin).json
    return status


def lookup(client: Any, tokens: Tokens, signal_type: str, value: str) -> list[dict[str, Any]]:
    found = client.get(
        f"/lookup?signal_type={signal_type}&signal={value}", headers=tokens.header(tokens.read)
    )
    assert found.status_code == 200, found.json
    matches: list[dict[str, Any]] = found.json["matches"]
    return matches


def test_tat_fetches_pages_resumes_after_its_checkpoint_and_removes_deleted_hashes(
    runtime: Any, client: Any, tokens: Tokens, fake: FakeTAT
) -> None:
    admin = tokens.header(tokens.admin)
    created = client.post(
        "/exchanges",
        json={
            "name": "tat",
            "api": "tat",
            "config": {"base_url": fake.base_url},
            "credentials": {"username": USER, "password": PASSWORD},
        },
        headers=admin,
    )
    assert created.status_code == 201, created.json
    assert PASSWORD not in created.get_data(as_text=True)
    status = fetch(client, runtime, admin, "tat")
    assert status["state"] == "idle" and status["last_error"] is None, status
    assert status["items_added"] == 4, status  # the JPEG's MD5 is no video signal: left out
    assert len(fake.requests) == 3  # five entries, two to a page
    assert status["checkpoint_time"] == "2024-01-01T05:00:04+00:00"
    assert [m["bank"] for m in lookup(client, tokens, "pdq", pdq(1))] == ["TAT"]
    assert lookup(client, tokens, "video_md5", video_md5(0))

    fake.add(pdq(1), at=1_704_085_300.0, deleted=True)
    fake.requests.clear()
    status = fetch(client, runtime, admin, "tat")
    assert status["items_deleted"] == 1 and status["items_added"] == 0, status
    assert fake.requests[0]["query"]["after"].startswith("1704085204")  # from the checkpoint
    assert lookup(client, tokens, "pdq", pdq(1)) == []
    assert lookup(client, tokens, "pdq", pdq(2))
    shown = client.get("/exchanges/tat", headers=admin).get_data(as_text=True)
    assert PASSWORD not in shown and TOKEN not in shown


def test_sample_fills_its_bank_with_the_librarys_examples(
    runtime: Any, client: Any, tokens: Tokens
) -> None:
    admin = tokens.header(tokens.admin)
    created = client.post(
        "/exchanges", json={"name": "sample", "api": "sample", "config": {}}, headers=admin
    )
    assert created.status_code == 201, created.json
    status = fetch(client, runtime, admin, "sample")
    assert status["state"] == "idle" and status["last_error"] is None, status
    examples = PdqSignal.get_examples()
    assert status["items_added"] >= len(set(examples)), status
    for example in examples[:3]:
        assert {m["bank"] for m in lookup(client, tokens, "pdq", example)} == {"SAMPLE"}
    again = fetch(client, runtime, admin, "sample")  # the same list again: nothing new
    assert again["items_added"] == 0 and again["items_deleted"] == 0, again
