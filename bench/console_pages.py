"""Console page times at N bank members and N contents (each with a match).

    .venv/bin/python bench/console_pages.py --size 100000 --redis-url redis://127.0.0.1:6379/10
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--rounds 20]

Seeds one bank with ``--size`` random PDQ members (the bulk import path), filled by an
exchange, a small second bank, and ``--size`` contents (each with its submission record)
spread over 60 days, each with a match (``--match-every N``: every Nth), newest matches
newest ids as the pipeline writes them. One match in 200 is in the small bank, one in 100
is retroactive, one in 300 is a video_md5 match, so the filtered Matches pages have rare
values to look for. Then times each console page through the Flask app in process (the
WSGI stack without sockets; the session check included) and prints the median and the worst
of ``--rounds`` requests per page. On PostgreSQL it uses a schema of its own, dropped at
the end. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_freshness import seed
from sqlalchemy import JSON, func, insert, literal, select, text, update

from hma_framework.exchanges.configs import exchanges_of
from hma_framework.registry import make_registry
from hma_framework.runtime import build_runtime
from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.tables import (
    BankMemberRow,
    BankRow,
    Base,
    ContentRow,
    ContentSubmissionRow,
    ExchangeRow,
    MatchRow,
)
from hma_framework.testing import postgres_schema
from hma_framework.web.app import create_app

BATCH = 10_000


def seed_exchange(runtime) -> None:  # type: ignore[no-untyped-def]
    """Bind the seeded bank to an exchange, so the Exchanges page shows its member count."""
    (Path(runtime.settings.exchange_file_root) / "list.txt").parent.mkdir(
        parents=True, exist_ok=True
    )
    exchanges_of(runtime).create(name="feed", api="local_file", config={"filename": "list.txt"})
    with runtime.store.transaction() as session:
        exchange_pk = session.scalar(select(ExchangeRow.id).where(ExchangeRow.name == "feed"))
        session.execute(update(BankRow).where(BankRow.name == "FEED").values(exchange_pk=None))
        session.execute(
            update(BankRow).where(BankRow.name == "seeded").values(exchange_pk=exchange_pk)
        )


def seed_contents(runtime, size: int, every: int) -> None:  # type: ignore[no-untyped-def]
    now = dt.datetime.now(dt.UTC)
    matched = size // every
    spacing = dt.timedelta(days=60) / max(matched, 1)
    with runtime.store.reading() as session:
        bank_pks = {name: pk for name, pk in session.execute(select(BankRow.name, BankRow.id))}
        member_pks = {
            name: list(
                session.scalars(
                    select(BankMemberRow.id).where(BankMemberRow.bank_pk == pk).limit(1000)
                )
            )
            for name, pk in bank_pks.items()
        }
    seen = 0
    for start in range(0, size, BATCH):
        count = min(BATCH, size - start)
        rows = [
            {
                "content_id": f"c-{start + i}",
                "content_type": "photo",
                "submission_method": "hash",
                "status": "failed" if (start + i) % 997 == 0 else "actioned",
                "submitted_at": now - dt.timedelta(minutes=(start + i) % (60 * 24 * 60)),
                "additional_fields": [],
            }
            for i in range(count)
        ]
        with runtime.store.transaction() as session:
            session.execute(insert(ContentRow), rows)
            # Each content's submission record, as the API writes it (the Overview counts these).
            session.execute(
                insert(ContentSubmissionRow).from_select(
                    ["content_pk", "method", "parameters", "submitted_at"],
                    select(
                        ContentRow.id,
                        ContentRow.submission_method,
                        literal({}, JSON),
                        ContentRow.submitted_at,
                    ).where(ContentRow.content_id.in_([r["content_id"] for r in rows])),
                )
            )
            pks = list(
                session.scalars(
                    select(ContentRow.id)
                    .where(ContentRow.content_id.in_([r["content_id"] for r in rows[::every]]))
                    .order_by(ContentRow.id)
                )
            )
            numbered = list(enumerate(pks, start=seen))
            seen += len(pks)
            session.execute(
                insert(MatchRow),
                [
                    {
                        "content_pk": pk,
                        "bank_pk": bank_pks[bank],
                        "member_pk": member_pks[bank][n % len(member_pks[bank])],
                        "signal_type": "video_md5" if n % 300 == 7 else "pdq",
                        "content_signal": "0" * 64,
                        "member_signal": "0" * 64,
                        "distance": 3,
                        "retroactive": n % 100 == 3,
                        "created_at": now - spacing * (matched - n),
                    }
                    for n, pk in numbered
                    for bank in ["other" if n % 200 == 5 else "seeded"]
                ],
            )


def time_pages(runtime, rounds: int, profile: str = "") -> None:  # type: ignore[no-untyped-def]
    client = create_app(runtime).test_client()
    token = runtime.api_keys.create("bench", ["admin"]).token
    form = client.get("/ui/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    assert client.post("/ui/login", data={"csrf_token": csrf, "api_key": token}).status_code == 303
    member = "c-500"
    with runtime.store.reading() as session:
        middle = (session.scalar(select(func.max(MatchRow.id))) or 0) // 2

    def days_ago(days: int) -> str:
        return (dt.datetime.now(dt.UTC) - dt.timedelta(days=days)).date().isoformat()

    pages = [
        "/ui/",
        "/ui/banks",
        "/ui/banks/seeded",
        "/ui/banks/seeded?q=tag:none",
        "/ui/banks/seeded?q=" + "ab" * 32,
        "/ui/banks/seeded?after=50000",
        "/ui/matches",
        "/ui/matches?bank=seeded",
        "/ui/matches?bank=seeded&period=day",
        "/ui/matches?bank=seeded&period=30+days",
        f"/ui/matches?bank=seeded&before={middle}",
        "/ui/matches?bank=other",
        "/ui/matches?bank=FEED",
        "/ui/matches?signal_type=video_md5",
        "/ui/matches?kind=retroactive",
        "/ui/matches?kind=live&period=week",
        "/ui/matches?period=hour",
        f"/ui/matches?from={days_ago(45)}&to={days_ago(40)}",
        f"/ui/matches?bank=other&kind=retroactive&from={days_ago(45)}",
        "/ui/matches?bank=seeded&signal_type=video_md5&kind=live",
        f"/ui/content?content_id={member}",
        "/ui/deliveries",
        "/ui/lookup",
        "/ui/exchanges",
    ]
    # CPU ms is this process's CPU time per request (SQLite runs in it; PostgreSQL's server
    # time is not in it): on a shared, loaded machine it moves far less than the wall time.
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'page':62} {'median ms':>10} {'max ms':>8} {'CPU ms':>8}")
    for path in pages:
        times, cpu = [], []
        for _ in range(rounds):
            started, cpu_started = time.perf_counter(), time.process_time()
            answer = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            assert answer.status_code in (200, 404), (path, answer.status_code)
        median = statistics.median(times)
        print(f"{path:62} {median:10.1f} {max(times):8.1f} {statistics.median(cpu):8.1f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(client.get, profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--match-every", type=int, default=1, help="every Nth content has a match (1: each)"
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--profile", default="", help="a page to profile once, e.g. /ui/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.database_url:
            with postgres_schema(args.database_url) as url:
                run(Settings(data_dir=tmp, database_url=url, redis_url=args.redis_url), args)
        else:
            run(Settings(data_dir=tmp, redis_url=args.redis_url), args)


def run(settings: Settings, args: argparse.Namespace) -> None:
    runtime = build_runtime(settings, registry=make_registry(settings, strict=True))
    try:
        migrate.upgrade(runtime.store)
        started = time.perf_counter()
        seed(runtime.store, args.size)
        seed(runtime.store, 1000, bank="other")
        seed_exchange(runtime)
        seed_contents(runtime, args.size, max(1, args.match_every))
        if args.database_url:
            # What autovacuum would have done by the time anyone opens the console: without
            # planner statistics PostgreSQL plans the fresh tables as if they were empty.
            # Only this run's tables (its schema): a bare ANALYZE would visit every schema.
            with runtime.store.engine.connect() as connection:
                for table in Base.metadata.sorted_tables:
                    connection.execute(text(f'ANALYZE "{table.name}"'))
                connection.commit()
        where = "PostgreSQL" if args.database_url else "SQLite"
        print(
            f"{where}: seeded {args.size} members and {args.size} contents "
            f"in {time.perf_counter() - started:.0f} s"
        )
        time_pages(runtime, args.rounds, args.profile)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
