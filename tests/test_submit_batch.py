"""``POST /submit/hashes/``: many hash submissions per request, each item as ``/submit/hash/``.

Real HTTP on loopback, real Redis and RQ workers, SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks, NewMember
from hma_framework.testing import Tokens, run_jobs

MATCHING = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.headers = Tokens.header(token)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(self.base + path, json=body, headers=self.headers, timeout=30)

    def get(self, path: str) -> Any:
        response = requests.get(self.base + path, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def api(live_server: str, runtime: Runtime) -> Api:
    return Api(live_server, runtime.api_keys.create("platform", ["submit", "read"]).token)


def item(content_id: str, value: str = "a" * 64, **extra: Any) -> dict[str, Any]:
    return {
        "content_id": content_id,
        "content_type": "photo",
        "signal_type": "pdq",
        "signal_value": value,
        **extra,
    }


def test_each_item_is_answered_in_order_and_one_bad_item_fails_alone(
    api: Api, runtime: Runtime
) -> None:
    api.post("/submit/hash/", item("old", additional_fields=["x"]))
    items: list[Any] = [
        item("ok-1"),
        item("bad-hash", "not-a-hash"),
        "not an object",
        item("old", additional_fields=["y"]),  # differs from what is stored: a conflict
        item("old", additional_fields=["x"]),  # identical to what is stored: accepted, no-op
        item("twice", additional_fields=["1"]),
        item("twice", additional_fields=["2"]),  # differs from the item before it
        item("twice", additional_fields=["3"], force_resubmit=True),
        {"content_type": "photo", "signal_type": "pdq", "signal_value": "a" * 64},
        item("video-pdq", content_type="video"),
    ]
    response = api.post("/submit/hashes/", {"items": items})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["content_id"] for r in results] == [
        "ok-1", "bad-hash", None, "old", "old", "twice", "twice", "twice", None, "video-pdq",
    ]  # fmt: skip
    assert [r["submit_successful"] for r in results] == [
        True, False, False, False, True, True, False, True, False, False,
    ]  # fmt: skip
    assert "message" not in results[0] and results[0]["matched"] is False
    assert "signal_value is not a valid pdq hash" in results[1]["message"]
    assert "JSON object" in results[2]["message"]
    assert "force_resubmit" in results[3]["message"] and "force_resubmit" in results[6]["message"]
    assert "missing required field 'content_id'" in results[8]["message"]
    assert "does not apply to video content" in results[9]["message"]

    assert api.get("/content/ok-1")["status"] == "no_match"
    assert api.get("/content/old")["additional_fields"] == ["x"]
    assert len(api.get("/content/old")["submissions"]) == 1
    twice = api.get("/content/twice")
    assert twice["additional_fields"] == ["3"] and len(twice["submissions"]) == 2
    for missing in ("bad-hash", "video-pdq"):
        assert (
            requests.get(
                api.base + f"/content/{missing}", headers=api.headers, timeout=10
            ).status_code
            == 404
        )


def test_matches_are_recorded_before_the_answer_and_acted_on_in_one_job(
    api: Api, runtime: Runtime, worker_runtime: Runtime
) -> None:
    banks = Banks(runtime.store)
    banks.create_bank("known")
    banks.add_member("known", NewMember(signals=(("pdq", MATCHING),)))
    items = [item(f"c-{n}", MATCHING if n % 20 == 0 else f"{n:064x}") for n in range(200)]
    response = api.post("/submit/hashes/", {"items": items})
    assert response.status_code == 200
    results = response.json()["results"]
    assert all(r["submit_successful"] for r in results)
    assert [n for n, r in enumerate(results) if r["matched"]] == list(range(0, 200, 20))
    assert api.get("/content/c-0")["status"] == "matched"
    assert len(api.get("/content/c-0/matches")["matches"]) == 1
    assert api.get("/content/c-1")["status"] == "no_match"
    assert runtime.queues["action"].count == 1, "ten matched items share one act job"

    run_jobs(worker_runtime, ["action"])
    statuses = {api.get(f"/content/c-{n}")["status"] for n in range(0, 200, 20)}
    assert statuses == {"actioned"}

    again = api.post("/submit/hashes/", {"items": items})  # identical again: nothing to do
    assert all(r["submit_successful"] for r in again.json()["results"])
    assert runtime.queues["action"].count == 0


def test_batch_limits_and_scope(api: Api, live_server: str, runtime: Runtime) -> None:
    empty = api.post("/submit/hashes/", {"items": []})
    assert empty.status_code == 400 and "must not be empty" in empty.json()["message"]
    assert api.post("/submit/hashes/", {"items": "x"}).status_code == 400
    assert api.post("/submit/hashes/", [item("a")]).status_code == 400
    too_many = api.post("/submit/hashes/", {"items": [item(f"{n}") for n in range(1001)]})
    assert too_many.status_code == 413 and "1000" in too_many.json()["message"]
    full = api.post("/submit/hashes/", {"items": [item(f"{n}") for n in range(1000)]})
    assert full.status_code == 200 and len(full.json()["results"]) == 1000
    reader = Tokens.header(runtime.api_keys.create("reader", ["read"]).token)
    denied = requests.post(
        live_server + "/submit/hashes/", json={"items": [item("z")]}, headers=reader, timeout=10
    )
    assert denied.status_code == 403
