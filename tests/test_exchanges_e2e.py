"""The whole loop through the public surface, against the fake ThreatExchange.

POST /exchanges -> the scheduler's tick fetches -> /submit/hash/ matches with exchange labels ->
a rule on the ``exchange`` label fires a webhook and writes ``seen`` back -> a
``false_positive`` opinion reaches the fake -> a withdrawn record stops matching. No response,
log line or job payload carries the credential.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select

from hma_framework.actions.labels import load_labeled_matches
from hma_framework.exchanges import fetching
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import MatchRow
from hma_framework.testing import run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange
from tests.test_actions_support import (
    OTHER_PDQ,
    PDQ,
    Api,
    Receiver,
    bank_with,
    new_secret,
    quick_retries,
    registry_with_webhook,
    rule,
    submit_hash,
    webhook_handler,
)

SECRET_PART = TOKEN.partition("|")[2]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange(page_size=2)) as fake:
        fake.add(Indicator(PDQ, tags=("csam", "violent"), last_updated=1_700_000_001))
        fake.add(Indicator("a" * 64, last_updated=1_700_000_002))
        yield fake


def queued_payloads(runtime: Runtime) -> str:
    """Every job waiting on any queue, as stored in Redis."""
    payloads = []
    for queue in runtime.queues.all():
        for job_id in queue.job_ids:
            job = Job.fetch(job_id, connection=runtime.redis, serializer=JSONSerializer)
            payloads.append(repr(job.args) + repr(job.kwargs) + repr(job.data))
    return "\n".join(payloads)


def test_exchange_loop_end_to_end(
    live_server: str,
    runtime: Runtime,
    worker_runtime: Runtime,
    receiver: Receiver,
    fake: FakeThreatExchange,
    caplog: Any,
) -> None:
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin"]).token)
    submitter = Api(live_server, runtime.api_keys.create("app", ["submit", "read"]).token)
    seen_bodies: list[str] = []

    def call(api: Api, method: str, path: str, body: Any = None) -> Any:
        response = api.call(method, path, body)
        seen_bodies.append(response.text)
        return response

    created = call(
        admin,
        "POST",
        "/exchanges",
        {
            "name": "te_csam",
            "api": "fb_threatexchange",
            "config": {"privacy_group": fake.privacy_group, "base_url": fake.base_url},
            "credentials": {"api_token": TOKEN},
            "fetch_interval_seconds": 60,
        },
    )
    assert created.status_code == 201, created.text
    webhook_handler(admin, "hook", receiver.url + "/te", [new_secret()])
    rule(
        admin,
        "te-hits",
        "hook",
        [{"label": "exchange", "equals": "fb_threatexchange"}],
        write_back="seen",
    )

    # The schedule: the scheduler's tick enqueues the due fetch; a worker runs it.
    runtime.queues["maintenance"].enqueue(fetching.enqueue_due_fetches)
    payloads = queued_payloads(runtime)
    run_jobs(worker_runtime, ["maintenance"])
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime, ["fetch"])
    status = call(admin, "GET", "/exchanges/te_csam/status").json()
    assert status["items_added"] == 2 and status["up_to_date"], status

    submit_hash(submitter, "c-1")
    bank_with(runtime, "local")  # a bank of our own holding the same hash
    submit_hash(submitter, "c-2")
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime)

    matches = call(submitter, "GET", "/content/c-1/matches").json()["matches"]
    [te_match] = [m for m in matches if m["bank"] == "TE_CSAM"]
    with runtime.store.reading() as session:
        match_content = session.scalar(
            select(MatchRow.content_pk).where(MatchRow.id == te_match["id"])
        )
    _, labeled = load_labeled_matches(runtime.store, match_content)
    [labels] = [m for m in labeled if m.match_pk == te_match["id"]]
    assert labels.values("exchange") == {"fb_threatexchange"}
    assert labels.values("collaboration") == {"te_csam"}
    assert {"csam", "violent"} <= labels.values("tag")
    assert [r.path for r in receiver.received] == ["/te", "/te"]  # c-1 and c-2 each once
    # The rule's write_back (seen) reached the fake as a reaction on the descriptor.
    assert {r["reactions"] for r in fake.reactions if "reactions" in r} == {"SAW_THIS_TOO"}

    # An operator says the match was a false positive.
    answered = call(
        submitter, "POST", f"/matches/{te_match['id']}/opinion", {"opinion": "false_positive"}
    )
    assert answered.status_code == 202, answered.text
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime, ["action"])
    disagree = [r for r in fake.reactions if r.get("reactions") == "DISAGREE_WITH_TAGS"]
    assert disagree == [
        {
            "descriptor_id": 10_001,
            "reactions": "DISAGREE_WITH_TAGS",
            "reactions_to_remove": "HELPFUL",
        }
    ]
    shown = call(submitter, "GET", f"/matches/{te_match['id']}").json()
    assert shown["exchange"]["name"] == "te_csam"
    assert shown["exchange"]["metadata"]["opinions"][0]["tags"] == ["csam", "violent"]
    outcomes = {(w["opinion"], w["source"], w["status"]) for w in shown["write_backs"]}
    assert ("false_positive", "api", "sent") in outcomes
    assert ("seen", "rule", "sent") in outcomes

    # A match from a bank no exchange fills: nobody to tell, so 409 now, not a silent skip.
    local = [
        m
        for m in call(submitter, "GET", "/content/c-2/matches").json()["matches"]
        if m["bank"] == "local"
    ]
    refused = call(submitter, "POST", f"/matches/{local[0]['id']}/opinion", {"opinion": "seen"})
    assert refused.status_code == 409 and "not filled by an exchange" in refused.json()["message"]
    bad = call(submitter, "POST", f"/matches/{te_match['id']}/opinion", {"opinion": "maybe"})
    assert bad.status_code == 400
    assert (
        call(submitter, "POST", "/matches/999999/opinion", {"opinion": "seen"}).status_code == 404
    )

    # The exchange withdraws the record: the next fetch removes it and it stops matching.
    fake.withdraw(PDQ, at=1_700_000_100)
    assert call(admin, "POST", "/exchanges/te_csam/fetch").status_code == 202
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime, ["fetch"])
    looked = call(submitter, "GET", f"/lookup?signal_type=pdq&signal={PDQ}").json()
    assert [m["bank"] for m in looked["matches"]] == ["local"]
    assert call(submitter, "GET", f"/lookup?signal_type=pdq&signal={OTHER_PDQ}").status_code == 200

    everything = "\n".join([*seen_bodies, caplog.text, payloads])
    assert "c-1" in everything  # the haystack is real
    assert SECRET_PART not in everything
    assert TOKEN not in json.dumps(call(admin, "GET", "/exchanges").json())


def test_an_exchange_that_takes_no_such_opinion_answers_409(
    live_server: str, runtime: Runtime, worker_runtime: Runtime
) -> None:
    admin = Api(live_server, runtime.api_keys.create("ops", ["admin", "submit", "read"]).token)
    root = runtime.settings.exchange_file_root
    root.mkdir(parents=True, exist_ok=True)
    (root / "list.txt").write_text(f"pdq {PDQ}\n")
    admin.ok(
        "POST",
        "/exchanges",
        {"name": "files", "api": "local_file", "config": {"filename": "list.txt"}},
    )
    admin.ok("POST", "/exchanges/files/fetch")
    run_jobs(worker_runtime, ["fetch"])
    submit_hash(admin, "f-1")
    run_jobs(worker_runtime)
    [match] = admin.ok("GET", "/content/f-1/matches")["matches"]
    refused = admin.post(f"/matches/{match['id']}/opinion", {"opinion": "false_positive"})
    assert refused.status_code == 409
    assert "cannot take the opinion 'false_positive'" in refused.json()["message"]
    accepted = admin.post(f"/matches/{match['id']}/opinion", {"opinion": "true_positive"})
    assert accepted.status_code == 202
    run_jobs(worker_runtime, ["action"])
    assert (root / "list.txt").read_text().count(PDQ) == 2  # the library appends positives
    [written] = admin.ok("GET", f"/matches/{match['id']}")["write_backs"]
    assert written["status"] == "sent"
