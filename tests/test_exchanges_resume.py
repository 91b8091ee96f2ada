"""A fetch worker killed with SIGKILL mid-fetch: the lease runs out, the next fetch resumes
from the last committed checkpoint, and the bank ends exactly as a clean fetch leaves it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from sqlalchemy import select

from hma_framework.exchanges import fetching
from hma_framework.exchanges.configs import exchanges_of
from hma_framework.runtime import Runtime
from hma_framework.settings import Settings
from hma_framework.store.tables import BankMemberRow, BankRow, MemberSignalRow, SignalRow
from hma_framework.testing import run_jobs
from tests.fakes.threatexchange import TOKEN, FakeThreatExchange, Indicator, fake_threatexchange

RECORDS = 1200


@pytest.fixture
def settings(settings: Settings) -> Settings:
    exchanges = attrs.evolve(settings.exchanges, batch_size=100, lease_seconds=5)
    return attrs.evolve(settings, exchanges=exchanges)


@pytest.fixture
def fake() -> Iterator[FakeThreatExchange]:
    with fake_threatexchange(FakeThreatExchange(page_size=50)) as fake:
        for i in range(RECORDS):
            value = hashlib.sha256(f"resume {i}".encode()).hexdigest()
            fake.add(Indicator(value, last_updated=1_700_000_000 + i))
        fake.page_delay = 0.1
        yield fake


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


def add_exchange(runtime: Runtime, name: str, fake: FakeThreatExchange) -> int:
    exchanges_of(runtime).create(
        name=name,
        api="fb_threatexchange",
        config={"privacy_group": fake.privacy_group, "base_url": fake.base_url},
        credentials={"api_token": TOKEN},
    )
    return fetching.exchange_pk(runtime, name)


@pytest.mark.slow
def test_a_killed_fetch_resumes_without_loss_or_doubles(
    runtime: Runtime, settings: Settings, fake: FakeThreatExchange
) -> None:
    exchange_pk = add_exchange(runtime, "killed", fake)
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
        deadline = time.monotonic() + 60
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
    # The dead worker's lease still holds: a trigger now does nothing...
    assert fetching.status(runtime, "killed")["state"] == "fetching"
    assert fetching.trigger(runtime, exchange_pk) is False
    time.sleep(5.2)  # ...until the lease runs out.
    fake.requests.clear()
    assert fetching.trigger(runtime, exchange_pk)
    run_jobs(runtime, ["fetch"])
    status = fetching.status(runtime, "killed")
    assert status["state"] == "idle" and status["up_to_date"], status
    resumed_from = int(fake.requests[0]["query"]["start_time"])
    assert resumed_from >= 1_700_000_000 + partial - 100  # from the checkpoint, not the start

    add_exchange(runtime, "clean", fake)
    fetching.trigger(runtime, fetching.exchange_pk(runtime, "clean"))
    fake.page_delay = 0
    run_jobs(runtime, ["fetch"])
    resumed, clean = bank_contents(runtime, "KILLED"), bank_contents(runtime, "CLEAN")
    assert len(clean) == RECORDS
    assert resumed == clean
