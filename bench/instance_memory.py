"""The memory of a whole default `hma serve` instance, and its first start, at a bank size.

    .venv/bin/python bench/instance_memory.py --size 1000000

Seeds a bank with SIZE random PDQ hashes (SQLite, no index snapshot yet: a first start after
an import), starts `hma serve` with its default processes (API, workers, scheduler, embedded
Redis), sends lookups until every API process answers, has the scheduler run the snapshot job
(so a worker holds the index too), then prints the proportional set size (PSS: shared pages
divided among the processes mapping them) of every process of the instance and their sum, and
how long the first start took until lookups were answered. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_freshness import seed
from loadgen import flip, free_port, ready, render, run_load

from hma_framework.settings import Settings
from hma_framework.store import migrate
from hma_framework.store.api_keys import ApiKeys
from hma_framework.store.db import Store


def describe(process: psutil.Process) -> str:
    command = " ".join(process.cmdline())
    for role in ("redis", "gunicorn", "worker", "scheduler", "serve"):
        if role in command:
            return role
    return process.name()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=3000)
    parser.add_argument("--verbose-maps", action="store_true")
    parser.add_argument("--reuse", help="a data folder an earlier run seeded (its index is reset)")
    args = parser.parse_args()

    folder = Path(args.reuse or tempfile.mkdtemp(prefix="hma-memory-"))
    settings = Settings(data_dir=str(folder))
    store = Store(settings.effective_database_url)
    migrate.upgrade(store)
    started = time.perf_counter()
    if args.reuse:
        shutil.rmtree(folder / "index", ignore_errors=True)
        planted = [f"{random.Random(i).getrandbits(256):064x}" for i in range(2000)]
        print(f"reusing {folder} (lookups are misses)")
    else:
        planted = seed(store, args.size, bank="bench", sample=2000)
        print(f"seeded {args.size:,} PDQ hashes in {time.perf_counter() - started:.1f}s (SQLite)")
    token = ApiKeys(store).create("bench", ["read"]).token
    store.close()

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(
        HMA_DATA_DIR=str(folder),
        HMA_WEB_PORT=str(port),
        HMA_LOG_LEVEL="WARNING",
        HMA_INDEX_SNAPSHOT_INTERVAL_SECONDS="10",
    )
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert server.stdout is not None
    threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
    try:
        while not ready(port):
            if time.perf_counter() - started > 600:
                raise TimeoutError("the API never became ready")
            time.sleep(0.2)
        rng = random.Random(3)
        host = f"127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        requests = [
            render(
                "GET",
                f"/lookup?signal_type=pdq&signal={flip(rng.choice(planted), 5, rng)}",
                host,
                headers,
            )
            for _ in range(args.lookups)
        ]
        result = run_load("127.0.0.1", port, requests, concurrency=8)
        print(
            f"first start (no snapshot): lookups answered {time.perf_counter() - started:.1f}s "
            f"after `hma serve` started; {result.summary()}"
        )
        snapshot = folder / "index" / "pdq" / "snapshot.json"
        time.sleep(25)  # two snapshot-job rounds: a worker has loaded and saved the index
        run_load("127.0.0.1", port, requests[:500], concurrency=8)
        print(f"index snapshot present: {snapshot.exists()}")
        processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(True)]
        total = 0
        for process in processes:
            try:
                memory = process.memory_full_info()
            except psutil.Error:
                continue
            total += memory.pss
            print(
                f"  pid {process.pid:>7} {describe(process):<10} PSS {memory.pss / 2**20:6.1f} "
                f"MiB, RSS {memory.rss / 2**20:6.1f} MiB, private {memory.uss / 2**20:6.1f} MiB"
            )
        print(f"whole instance: PSS {total / 2**20:.0f} MiB over {len(processes)} processes")
        if args.verbose_maps:
            for process in processes:
                maps = Path(f"/proc/{process.pid}/maps").read_text()
                mapped = sorted({line.split()[-1] for line in maps.splitlines() if ".npy" in line})
                print(f"  pid {process.pid} maps {mapped}")
    finally:
        server.terminate()
        server.wait(60)


if __name__ == "__main__":
    main()
