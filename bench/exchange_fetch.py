"""Fetching PDQ records from the fake ThreatExchange into a bank, through a real worker.

    .venv/bin/python bench/exchange_fetch.py --records 1000000 [--database-url URL]
        [--redis-url redis://127.0.0.1:6379/1] [--py-spy OUT.txt]

Serves RECORDS generated PDQ indicators from the loopback Graph API fake (in its own
process, pages of 1,000), configures a ``fb_threatexchange``
exchange, and runs one ``hma worker --queues fetch --burst`` process. Prints records/s over
the whole fetch, the worker's CPU time (the figure to compare on a shared machine), its peak
resident memory, and the time from the commit of the last record to that record matching in
an index kept fresh the way an API process keeps it: this process watches for the record in
the database and then looks it up, both every POLL seconds, while the fetch runs.
Default database: SQLite in a temporary folder. ``--py-spy`` runs the worker under py-spy
(if installed) and writes its collapsed stacks, every thread's, to OUT.txt.
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import psutil
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hma_framework.exchanges import fetching  # noqa: E402
from hma_framework.exchanges.configs import exchanges_of  # noqa: E402
from hma_framework.runtime import build_runtime  # noqa: E402
from hma_framework.settings import Settings  # noqa: E402
from hma_framework.store import migrate  # noqa: E402
from hma_framework.store.tables import ExchangeRow, SignalRow  # noqa: E402
from tests.fakes.threatexchange import (  # noqa: E402
    TOKEN,
    FakeThreatExchange,
    Indicator,
    fake_threatexchange,
)

BASE_TIME = 1_700_000_000
POLL = 0.005


def pdq(i: int) -> str:
    return hashlib.sha256(i.to_bytes(8, "big")).hexdigest()


class GeneratedUpdates(Sequence[Indicator]):
    """``count`` indicators made on demand (a million objects would distort the figures)."""

    def __init__(self, count: int, first: int = 0) -> None:
        self.count, self.first = count, first

    def __len__(self) -> int:
        return self.count - self.first

    @overload
    def __getitem__(self, index: int) -> Indicator: ...
    @overload
    def __getitem__(self, index: slice) -> list[Indicator]: ...
    def __getitem__(self, index: int | slice) -> Indicator | list[Indicator]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = self.first + index
        return Indicator(pdq(i), last_updated=BASE_TIME + i, id=i + 1, descriptor_id=10_000_000 + i)


class GeneratedFake(FakeThreatExchange):
    count: int = 0

    def updates_since(self, start: int | None) -> Any:
        first = 0 if start is None else max(0, start - BASE_TIME)
        return GeneratedUpdates(self.count, first)


def serve(count: int, ready: Any) -> None:
    # Pages of 1,000 whatever the client asks: the fake must not be what is measured.
    fake = GeneratedFake(page_size=1000, honour_limit=False)
    fake.count = count
    with fake_threatexchange(fake):
        fake.requests = _Discard()
        ready.send(fake.base_url)
        while True:
            time.sleep(3600)


class _Discard(list[Any]):
    def append(self, _item: Any) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--redis-url", default=os.environ.get("HMA_REDIS_URL", "redis://127.0.0.1:6379/1")
    )
    parser.add_argument("--py-spy", default="", help="write the worker's stacks to this file")
    args = parser.parse_args()

    receive, send = mp.Pipe(duplex=False)
    server = mp.Process(target=serve, args=(args.records, send), daemon=True)
    server.start()
    base_url = receive.recv()
    data_dir = tempfile.mkdtemp(prefix="hma-bench-exchange-")
    settings = Settings(data_dir=data_dir, database_url=args.database_url, redis_url=args.redis_url)
    runtime = build_runtime(settings)
    migrate.upgrade(runtime.store)
    exchanges_of(runtime).create(
        name="bench",
        api="fb_threatexchange",
        config={"privacy_group": 303, "base_url": base_url},
        credentials={"api_token": TOKEN},
    )
    exchange_pk = fetching.exchange_pk(runtime, "bench")
    runtime.indexes.match("pdq", pdq(0))  # an API process's index, warm before the fetch
    env = {
        **os.environ,
        "HMA_DATA_DIR": data_dir,
        "HMA_DATABASE_URL": settings.effective_database_url,
        "HMA_REDIS_URL": args.redis_url,
    }
    if not fetching.trigger(runtime, exchange_pk):
        raise SystemExit(
            "a fetch job of exchange 1 is already queued or leased in this Redis database "
            "(left by an interrupted run?); use an unused --redis-url"
        )
    command = [sys.executable, "-m", "hma_framework", "worker", "--queues", "fetch", "--burst"]
    if args.py_spy:
        spy = ["py-spy", "record", "--format", "raw", "--threads", "--nonblocking"]
        command = [*spy, "--output", args.py_spy, "--", *command]
    started = time.monotonic()
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    process = psutil.Process(worker.pid)
    last = pdq(args.records - 1)
    peak, cpu, sampled, committed, matchable = 0, 0.0, 0.0, 0.0, 0.0
    while not matchable:
        if time.monotonic() - sampled > 0.05:
            sampled = time.monotonic()
            with contextlib.suppress(psutil.NoSuchProcess):
                watched = _workers(process)
                peak = max(peak, *(each.memory_info().rss for each in watched))
                cpu = sum(sum(each.cpu_times()[:2]) for each in watched)
        if not committed:
            runtime.indexes.refresh()  # keep the index fresh, as lookups would
            if _stored(runtime, last):
                committed = time.monotonic()
            elif worker.poll() is not None:
                break  # failed: reported below
        elif runtime.indexes.match("pdq", last):
            matchable = time.monotonic()
        elif time.monotonic() - committed > 60:
            break
        time.sleep(POLL)
    worker.wait()
    elapsed = time.monotonic() - started
    with runtime.store.reading() as session:
        row = session.get(ExchangeRow, exchange_pk)
        assert row is not None
        added, error = row.items_added, row.last_error
    if error or not matchable:
        raise SystemExit(f"fetch failed: {error}")
    print(f"database: {runtime.store.engine.dialect.name}; records: {args.records}; added {added}")
    print(f"fetch + commit: {elapsed:.1f} s, {args.records / elapsed:,.0f} records/s")
    print(f"worker CPU: {cpu:.1f} s ({args.records / max(cpu, 1e-9):,.0f} records per CPU second)")
    print(f"worker peak RSS: {peak / 2**20:.0f} MiB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(
        f"last record committed -> matchable: {(matchable - committed) * 1000:.0f} ms "
        f"(polled every {POLL * 1000:.0f} ms; index refresh interval "
        f"{runtime.indexes.refresh_interval * 1000:.0f} ms)"
    )
    server.terminate()


def _workers(process: psutil.Process) -> list[psutil.Process]:
    """The worker process (under py-spy, py-spy's child), not py-spy itself."""
    children = process.children(recursive=True)
    return children if children and process.name().startswith("py-spy") else [process]


def _stored(runtime: Any, value: str) -> bool:
    """Whether ``value`` is committed as a PDQ signal (visible to a new read)."""
    with runtime.store.reading() as session:
        found = session.scalar(
            select(SignalRow.id).where(
                SignalRow.signal_type == "pdq", SignalRow.signal_value == value
            )
        )
    return found is not None


if __name__ == "__main__":
    main()
