"""A fetch worker killed with SIGKILL mid-fetch: the lease runs out, the next fetch resumes
from the last committed checkpoint, and the bank ends exactly as a clean fetch leaves it.

Run against ThreatExchange (a time cursor), NCMEC (time windows of several pages each, whose
checkpoint may stop mid-window on a page URL), StopNCII (a set of pages read from one start
time, continued by a short-lived page token) and Tech Against Terrorism (an ``after`` cursor
naming each page's last entry)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import attrs
import pytest
from hma_threatexchange.ncmec import utc_timestamp
from sqlalchemy import select
from threatexchange.exchanges.clients.ncmec.hash_api import NCMECEnvironment

from hma_framework.exchanges import fetching
from hma_framework.exchanges.configs import exchanges_of
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    ExchangeCheckpointRow,
    MemberSignalRow,
    SignalRow,
)
from hma_framework.testing import run_jobs
from tests.fakes import ncmec, stopncii, tat
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange

RECORDS = 1200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    exchanges = attrs.evolve(settings.exchanges, batch_size=100, lease_seconds=5)
    return attrs.evolve(settings, exchanges=exchanges)


def record_value(i: int) -> str:
    return hashlib.sha256(f"resume {i}".encode()).hexdigest()


class Feed:
    """One exchange's fake holding RECORDS records, served a page at a time with a delay."""

    api = ""
    fake: Any

    def open(self) -> AbstractContextManager[Any]:
        """The fake, served while the context lasts (empty)."""
        raise NotImplementedError

    def add(self, i: int) -> None:
        """Record ``record_value(i)`` on the fake, updated later than record ``i - 1``."""
        raise NotImplementedError

    @contextmanager
    def serve(self) -> Iterator[Any]:
        with self.open() as fake:
            self.fake = fake
            for i in range(RECORDS):
                self.add(i)
            yield fake

    def config(self) -> dict[str, Any]:
        return {"base_url": self.fake.base_url}

    def credentials(self) -> dict[str, Any]:
        raise NotImplementedError

    def slow(self, delay: float) -> None:
        self.fake.page_delay = delay

    def requests(self) -> list[dict[str, str]]:
        """The query of each page request the fake received, in order."""
        return [r["query"] for r in self.fake.requests]

    def check_resumed(self, checkpoint: dict[str, Any], first: dict[str, str]) -> None:
        """The resumed fetch's first request starts where the committed checkpoint says."""
        raise NotImplementedError


class ThreatExchangeFeed(Feed):
    api = "fb_threatexchange"

    def open(self) -> AbstractContextManager[Any]:
        return fake_threatexchange(FakeThreatExchange(page_size=50))

    def add(self, i: int) -> None:
        self.fake.add(Indicator(record_value(i), last_updated=1_700_000_000 + i))

    def config(self) -> dict[str, Any]:
        return {"privacy_group": self.fake.privacy_group, "base_url": self.fake.base_url}

    def credentials(self) -> dict[str, Any]:
        return {"api_token": TOKEN}

    def check_resumed(self, checkpoint: dict[str, Any], first: dict[str, str]) -> None:
        assert checkpoint["update_time"] > 1_700_000_000
        assert int(first["start_time"]) == checkpoint["update_time"]


class NCMECFeed(Feed):
    """NCMEC's windows hold several pages; a checkpoint may stop mid-window on a page URL."""

    api = "ncmec"

    oldest = 0

    def open(self) -> AbstractContextManager[Any]:
        self.oldest = int(time.time()) - 3600
        return ncmec.fake_ncmec(ncmec.FakeNCMEC(page_size=50))

    def add(self, i: int) -> None:
        self.fake.entries.append(ncmec.Entry(f"E{i}", self.oldest + i // 2, pdq=record_value(i)))

    def config(self) -> dict[str, Any]:
        return {"environment": NCMECEnvironment.Industry.value, "base_url": self.fake.base_url}

    def credentials(self) -> dict[str, Any]:
        return {"user": ncmec.USER, "password": ncmec.PASSWORD}

    def requests(self) -> list[dict[str, str]]:
        return list(self.fake.pages)

    def check_resumed(self, checkpoint: dict[str, Any], first: dict[str, str]) -> None:
        paging = checkpoint.get("paging_info")
        if paging:  # stopped mid-window: resumes on the page URL the checkpoint kept
            expected = dict(
                urllib.parse.parse_qsl(urllib.parse.urlsplit(paging["paging_url"]).query)
            )
            assert first == expected
        else:
            assert first["from"] == utc_timestamp(checkpoint["get_entries_max_ts"])
        assert checkpoint["get_entries_max_ts"] > 0


class StopNCIIFeed(Feed):
    """One set of pages from one start time: the kill lands mid-set."""

    api = "stop_ncii"

    def open(self) -> AbstractContextManager[Any]:
        return stopncii.fake_stopncii(stopncii.FakeStopNCII(page_size=50))

    def add(self, i: int) -> None:
        self.fake.add(record_value(i), at=1_000 + i // 2)

    def credentials(self) -> dict[str, Any]:
        return stopncii.exchange_credentials(feedback=False)

    def check_resumed(self, checkpoint: dict[str, Any], first: dict[str, str]) -> None:
        assert int(first["startTimestamp"]) == checkpoint["update_time"]
        assert "nextPageToken" not in first  # page tokens do not outlive a fetch


class TATFeed(Feed):
    api = "tat"

    def open(self) -> AbstractContextManager[Any]:
        return tat.fake_tat(tat.FakeTAT(page_size=50))

    def add(self, i: int) -> None:
        self.fake.add(record_value(i), at=1_704_085_200 + i // 2)

    def credentials(self) -> dict[str, Any]:
        return {"username": tat.USER, "password": tat.PASSWORD}

    def check_resumed(self, checkpoint: dict[str, Any], first: dict[str, str]) -> None:
        assert checkpoint["checkpoint"]
        assert first["after"] == checkpoint["checkpoint"] and "offset" not in first


@pytest.fixture(params=[ThreatExchangeFeed, NCMECFeed, StopNCIIFeed, TATFeed], ids=lambda c: c.api)
def feed(request: Any) -> Iterator[Feed]:
    chosen: Feed = request.param()
    with chosen.serve():
        chosen.slow(0.1)
        yield chosen


def bank_contents(runtime: Runtime, bank: str) -> list[tuple[str | None, str]]:
    with runtime.store.reading() as session:
        rows = session.execute(
            select(BankMemberRow.external_id, SignalRow.signal_value)
            .join(BankRow, BankRow.id == BankMemberRow.bank_pk)
            .join(MemberSignalRow, MemberSignalRow.member_pk == BankMemberRow.id)
            .join(SignalRow, SignalRow.id == MemberSignalRow.signal_pk)
            .where(BankRow.name == bank)
        ).all()
    return sorted((ext, value) for ext, value in rows)


def add_exchange(runtime: Runtime, name: str, feed: Feed) -> int:
    exchanges_of(runtime).create(
        name=name, api=feed.api, config=feed.config(), credentials=feed.credentials()
    )
    return fetching.exchange_pk(runtime, name)


def stored_checkpoint(runtime: Runtime, exchange_pk: int) -> dict[str, Any]:
    with runtime.store.reading() as session:
        row = session.get(ExchangeCheckpointRow, exchange_pk)
        assert row is not None
        return dict(row.checkpoint)


@pytest.mark.slow
def test_a_killed_fetch_resumes_without_loss_or_doubles(
    runtime: Runtime, settings: Settings, feed: Feed
) -> None:
    exchange_pk = add_exchange(runtime, "killed", feed)
    env: dict[str, Any] = {
        **os.environ,
        "HMA_DATABASE_URL": settings.database_url,
        "HMA_REDIS_URL": settings.redis_url,
        "HMA_DATA_DIR": settings.data_dir,
        "HMA_EXCHANGES_BATCH_SIZE": "100",
        "HMA_EXCHANGES_LEASE_SECONDS": "5",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "worker", "--queues", "fetch"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert fetching.trigger(runtime, exchange_pk)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            added = fetching.status(runtime, "killed")["items_added"]
            if added >= 300:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the worker never committed a batch")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()
    partial = len(bank_contents(runtime, "KILLED"))
    assert 300 <= partial < RECORDS
    checkpoint = stored_checkpoint(runtime, exchange_pk)
    # The dead worker's lease still holds: a trigger now does nothing...
    assert fetching.status(runtime, "killed")["state"] == "fetching"
    assert fetching.trigger(runtime, exchange_pk) is False
    time.sleep(5.2)  # ...until the lease runs out.
    already = len(feed.requests())
    assert fetching.trigger(runtime, exchange_pk)
    run_jobs(runtime, ["fetch"])
    status = fetching.status(runtime, "killed")
    assert status["state"] == "idle" and status["up_to_date"], status
    feed.check_resumed(checkpoint, feed.requests()[already])

    add_exchange(runtime, "clean", feed)
    fetching.trigger(runtime, fetching.exchange_pk(runtime, "clean"))
    feed.slow(0)
    run_jobs(runtime, ["fetch"])
    resumed, clean = bank_contents(runtime, "KILLED"), bank_contents(runtime, "CLEAN")
    assert len(clean) == RECORDS
    assert resumed == clean
