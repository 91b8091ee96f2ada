"""The whole loop through the public surface, against each exchange's fake server.

POST /exchanges -> the scheduler's tick fetches -> /submit/hash/ matches with exchange labels
and tags -> a rule on the ``exchange`` label fires a webhook to a loopback receiver (and, on
ThreatExchange, writes ``seen`` back) -> a ``false_positive`` opinion reaches the fake -> a
withdrawn record stops matching within a second of the next fetch. No response, log line or
job payload carries a credential. The same test runs for ThreatExchange, NCMEC, StopNCII and
``local_file`` (a file under the exchange file root, whose lines carry no tags and which takes
only ``true_positive``, so ``false_positive`` must be refused with a 409 and nothing changed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select
from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

from hma_framework.actions.labels import load_labeled_matches
from hma_framework.exchanges import fetching
from hma_framework.registry import Registry
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import MatchRow
from hma_framework.testing import run_jobs
from tests.fakes import ncmec, stopncii
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange
from tests.test_actions_support import (
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
SECOND_PDQ = "a" * 64


class Source:
    """One exchange API's fake and what the loop expects of it; subclasses per API."""

    api = ""
    #: What the match's ``tag`` label must include (the exchange's tags for the record).
    tags: frozenset[str] = frozenset()
    #: The rule's write_back, where the exchange takes one.
    rule_write_back: str | None = None
    fake: Any
    #: Where ``local_file`` keeps its list (set by the fixture before :meth:`serve`).
    settings: Settings
    #: Whether the API takes ``false_positive``; if not, the request must be refused (409).
    takes_false_positive = True

    def config(self) -> dict[str, Any]:
        return {"base_url": self.fake.base_url}

    def credentials(self) -> dict[str, Any]:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Credential strings that must appear nowhere (whole, or the secret part of one)."""
        return [str(v) for v in self.credentials().values()]

    def serve(self) -> Any:
        """A context manager serving the fake holding PDQ and SECOND_PDQ."""
        raise NotImplementedError

    def withdraw(self) -> None:
        raise NotImplementedError

    def false_positives(self) -> list[Any]:
        """What the fake received for the false_positive opinion on the PDQ record."""
        raise NotImplementedError

    expected_false_positive: list[Any] = []

    def after_rules(self) -> None:
        """Checks of what the rule's write_back sent (only where there is one)."""


class ThreatExchangeSource(Source):
    api = "fb_threatexchange"
    tags = frozenset({"csam", "violent"})
    rule_write_back = "seen"
    expected_false_positive = [
        {
            "descriptor_id": 10_001,
            "reactions": "DISAGREE_WITH_TAGS",
            "reactions_to_remove": "HELPFUL",
        }
    ]

    @contextmanager
    def serve(self) -> Iterator[Any]:
        with fake_threatexchange(FakeThreatExchange(page_size=2)) as fake:
            fake.add(Indicator(PDQ, tags=("csam", "violent"), last_updated=1_700_000_001))
            fake.add(Indicator(SECOND_PDQ, last_updated=1_700_000_002))
            self.fake = fake
            yield fake

    def config(self) -> dict[str, Any]:
        return {"privacy_group": self.fake.privacy_group, "base_url": self.fake.base_url}

    def credentials(self) -> dict[str, Any]:
        return {"api_token": TOKEN}

    def secrets(self) -> list[str]:
        return [SECRET_PART]

    def withdraw(self) -> None:
        self.fake.withdraw(PDQ, at=1_700_000_100)

    def false_positives(self) -> list[Any]:
        return [r for r in self.fake.reactions if r.get("reactions") == "DISAGREE_WITH_TAGS"]

    def after_rules(self) -> None:
        # The rule's write_back (seen) reached the fake as a reaction on the descriptor.
        assert {r["reactions"] for r in self.fake.reactions if "reactions" in r} == {"SAW_THIS_TOO"}


class NCMECSource(Source):
    api = "ncmec"
    tags = frozenset({"A1"})
    expected_false_positive = [
        {
            "member": 42,
            "entry": "E1",
            "fingerprint": "PDQ",
            "vote": "negative",
            "reasons": [ncmec.REASON_GUID],
        }
    ]

    @contextmanager
    def serve(self) -> Iterator[Any]:
        now = int(time.time())
        with ncmec.fake_ncmec() as fake:
            fake.entries += [
                ncmec.Entry("E1", now - 3600, pdq=PDQ, classification="A1"),
                ncmec.Entry("E2", now - 60, pdq=SECOND_PDQ, classification="B1"),
            ]
            self.fake = fake
            yield fake

    def config(self) -> dict[str, Any]:
        return {
            "environment": NCMECEnvironment.Industry.value,
            "base_url": self.fake.base_url,
        }

    def credentials(self) -> dict[str, Any]:
        return {"user": ncmec.USER, "password": ncmec.PASSWORD}

    def secrets(self) -> list[str]:
        return [ncmec.PASSWORD]

    def withdraw(self) -> None:
        # NCMEC's next window starts where the last ended (5 s before it ran): the tombstone
        # must fall after that and before the next window's end.
        self.fake.entries.append(ncmec.Entry("E1", int(time.time()) - 4, deleted=True))
        time.sleep(1.5)

    def false_positives(self) -> list[Any]:
        return list(self.fake.feedback)


class StopNCIISource(Source):
    api = "stop_ncii"
    tags = frozenset({"ncii"})
    expected_false_positive = [
        {
            "count": 1,
            "hashFeedbacks": [{"tags": [], "feedbackValue": "NotBlocked", "hashValue": PDQ}],
        }
    ]

    @contextmanager
    def serve(self) -> Iterator[Any]:
        with stopncii.fake_stopncii() as fake:
            fake.add(PDQ, at=1_000)
            fake.add(SECOND_PDQ, at=1_001)
            self.fake = fake
            yield fake

    def credentials(self) -> dict[str, Any]:
        return stopncii.exchange_credentials()

    def withdraw(self) -> None:
        self.fake.add(PDQ, at=2_000, status="Withdrawn")

    def false_positives(self) -> list[Any]:
        return list(self.fake.feedback)


class LocalFileSource(Source):
    """A list file under the exchange file root; withdrawing a record is deleting its line."""

    api = "local_file"
    takes_false_positive = False
    path: Path

    @contextmanager
    def serve(self) -> Iterator[Path]:
        root = self.settings.exchange_file_root
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "shared.txt"
        self.path.write_text(f"pdq {PDQ}\npdq {SECOND_PDQ}\n")
        yield self.path

    def config(self) -> dict[str, Any]:
        return {"filename": self.path.name}

    def credentials(self) -> dict[str, Any]:
        return {}

    def withdraw(self) -> None:
        self.path.write_text(f"pdq {SECOND_PDQ}\n")

    def false_positives(self) -> list[Any]:
        # The library's only write-back appends a line; nothing may have been appended.
        return [line for line in self.path.read_text().splitlines() if PDQ in line]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return quick_retries(settings)


@pytest.fixture
def registry() -> Registry:
    return registry_with_webhook()


@pytest.fixture(
    params=[ThreatExchangeSource, NCMECSource, StopNCIISource, LocalFileSource],
    ids=lambda c: c.api,
)
def source(request: Any, settings: Settings) -> Iterator[Source]:
    chosen: Source = request.param()
    chosen.settings = settings
    with chosen.serve():
        yield chosen


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
    source: Source,
    caplog: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
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
            "name": "shared",
            "api": source.api,
            "config": source.config(),
            "credentials": source.credentials(),
            "fetch_interval_seconds": 60,
        },
    )
    assert created.status_code == 201, created.text
    signing_secret = new_secret()
    webhook_handler(admin, "hook", receiver.url + "/x", [signing_secret])
    rule(
        admin,
        "exchange-hits",
        "hook",
        [{"label": "exchange", "equals": source.api}],
        **({"write_back": source.rule_write_back} if source.rule_write_back else {}),
    )

    # The schedule: the scheduler's tick enqueues the due fetch; a worker runs it.
    runtime.queues["maintenance"].enqueue(fetching.enqueue_due_fetches)
    payloads = queued_payloads(runtime)
    run_jobs(worker_runtime, ["maintenance"])
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime, ["fetch"])
    status = call(admin, "GET", "/exchanges/shared/status").json()
    assert status["items_added"] == 2 and status["up_to_date"], status

    submit_hash(submitter, "c-1")
    bank_with(runtime, "local")  # a bank of our own holding the same hash
    submit_hash(submitter, "c-2")
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime)

    matches = call(submitter, "GET", "/content/c-1/matches").json()["matches"]
    [fed_match] = [m for m in matches if m["bank"] == "SHARED"]
    with runtime.store.reading() as session:
        match_content = session.scalar(
            select(MatchRow.content_pk).where(MatchRow.id == fed_match["id"])
        )
    _, labeled = load_labeled_matches(runtime.store, match_content)
    [labels] = [m for m in labeled if m.match_pk == fed_match["id"]]
    assert labels.values("exchange") == {source.api}
    assert labels.values("collaboration") == {"shared"}
    assert source.tags <= labels.values("tag")
    assert [r.path for r in receiver.received] == ["/x", "/x"]  # c-1 and c-2 each once
    for delivery in receiver.received:  # signed, as the standardwebhooks library checks
        assert delivery.verify(signing_secret)["type"] == "hma.content.matched"
    source.after_rules()

    # An operator says the match was a false positive.
    before = call(submitter, "GET", f"/matches/{fed_match['id']}").json()
    answered = call(
        submitter, "POST", f"/matches/{fed_match['id']}/opinion", {"opinion": "false_positive"}
    )
    if source.takes_false_positive:
        assert answered.status_code == 202, answered.text
        payloads += queued_payloads(runtime)
        run_jobs(worker_runtime, ["action"])
        assert source.false_positives() == source.expected_false_positive
        shown = call(submitter, "GET", f"/matches/{fed_match['id']}").json()
        assert shown["exchange"]["name"] == "shared"
        outcomes = {(w["opinion"], w["source"], w["status"]) for w in shown["write_backs"]}
        assert ("false_positive", "api", "sent") in outcomes
    else:
        # Refused at request time, saying so; nothing queued, sent or changed.
        assert answered.status_code == 409, answered.text
        message = answered.json()["message"]
        assert f"({source.api}) cannot take the opinion 'false_positive'" in message, message
        assert queued_payloads(runtime) == ""
        run_jobs(worker_runtime, ["action"])
        assert source.false_positives() == [f"pdq {PDQ}"]  # only the fetched line
        assert call(submitter, "GET", f"/matches/{fed_match['id']}").json() == before
        assert before["write_backs"] == [] and before["exchange"]["name"] == "shared"
        assert call(submitter, "GET", "/content/c-1/matches").json()["matches"] == matches

    # A match from a bank no exchange fills: nobody to tell, so 409 now, not a silent skip.
    local = [
        m
        for m in call(submitter, "GET", "/content/c-2/matches").json()["matches"]
        if m["bank"] == "local"
    ]
    refused = call(submitter, "POST", f"/matches/{local[0]['id']}/opinion", {"opinion": "seen"})
    assert refused.status_code == 409 and "not filled by an exchange" in refused.json()["message"]
    bad = call(submitter, "POST", f"/matches/{fed_match['id']}/opinion", {"opinion": "maybe"})
    assert bad.status_code == 400
    assert (
        call(submitter, "POST", "/matches/999999/opinion", {"opinion": "seen"}).status_code == 404
    )

    # The exchange withdraws the record: the next fetch removes it, and within a second of
    # that fetch's commit a lookup through the API no longer finds it.
    source.withdraw()
    assert call(admin, "POST", "/exchanges/shared/fetch").status_code == 202
    payloads += queued_payloads(runtime)
    run_jobs(worker_runtime, ["fetch"])
    assert call(admin, "GET", "/exchanges/shared/status").json()["items_deleted"] == 1
    committed = time.monotonic()
    while True:
        looked = call(submitter, "GET", f"/lookup?signal_type=pdq&signal={PDQ}").json()
        if [m["bank"] for m in looked["matches"]] == ["local"]:
            break
        assert time.monotonic() - committed < 1.0, looked
        time.sleep(0.05)
    still = call(submitter, "GET", f"/lookup?signal_type=pdq&signal={SECOND_PDQ}").json()
    assert [m["bank"] for m in still["matches"]] == ["SHARED"]

    everything = "\n".join([*seen_bodies, caplog.text, payloads])
    assert "c-1" in everything  # the haystack is real
    for secret in source.secrets():
        assert secret not in everything
        assert secret not in json.dumps(call(admin, "GET", "/exchanges").json())


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
