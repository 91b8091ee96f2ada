"""CPU time per `GET /lookup` request, for a shared machine where req/s is noisy.

    .venv/bin/python bench/lookup_cpu.py --size 200000 [--requests 20000] [--folder DIR]
        [--profile-seconds 20]

Seeds (or reuses ``--folder``) a bank as bench/lookup.py does, starts `hma serve` the same way
(2 API processes, no workers), warms it up, then sends a fixed number of lookups and reads the
API processes' utime+stime from /proc before and after, and the load generator's own. Prints
CPU ms per request for the API processes, the load generator and both, plus req/s and latency
(noisy when other work shares the cores). ``--profile-seconds`` runs py-spy on one API
process during a second load, writing /tmp/lookup-profile.txt (needs py-spy on PATH).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import flip, render, run_load
from lookup import ROUTES, Seeded, api_processes, seeded_instance, serving

from hma_framework.settings import Settings
from hma_framework.store.api_keys import ApiKeys
from hma_framework.store.db import Store

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def system_seconds(pid: int) -> float:
    """stime of ``pid``: the kernel's share (sockets, polling)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12]) / TICKS


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def reuse(folder: Path) -> Seeded:
    """A folder seeded earlier: its planted sample is lost, so near-duplicates come from the DB."""
    settings = Settings(data_dir=str(folder))
    store = Store(settings.effective_database_url)
    with store.engine.connect() as conn:
        from sqlalchemy import text

        rows = conn.execute(text("SELECT signal_value FROM signal LIMIT 5000")).all()
    token = ApiKeys(store).create("bench-cpu", ["read"]).token
    store.close()
    return Seeded(folder, [r[0] for r in rows], token)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--folder", help="reuse a folder seeded by an earlier run")
    parser.add_argument("--profile-seconds", type=int, default=0)
    args = parser.parse_args()
    instance = reuse(Path(args.folder)) if args.folder else seeded_instance(args.size)
    print(f"data folder {instance.folder}")
    with serving(instance.folder) as (server, port):
        host = f"127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {instance.token}"}
        rng = random.Random(11)

        def request(i: int) -> bytes:
            if i % 2 == 0:
                signal = flip(rng.choice(instance.planted), rng.randint(1, 31), rng)
            else:
                signal = f"{rng.getrandbits(256):064x}"
            return render("GET", ROUTES["lookup"].format(signal), host, headers)

        run_load("127.0.0.1", port, [request(i) for i in range(3000)], concurrency=args.concurrency)
        load = [request(i) for i in range(args.requests)]
        workers = [p.pid for p in api_processes(server)]
        before = [cpu_seconds(pid) for pid in workers]
        system_before = sum(system_seconds(pid) for pid in workers)
        own_before = own_cpu()
        result = run_load("127.0.0.1", port, load, concurrency=args.concurrency)
        own = own_cpu() - own_before
        api = sum(cpu_seconds(pid) for pid in workers) - sum(before)
        n = result.requests
        print(result.summary())
        each = ", ".join(
            f"{(cpu_seconds(pid) - b) / n * 1000:.3f}"
            for pid, b in zip(workers, before, strict=True)
        )
        print(
            f"CPU per request: API processes {api / n * 1000:.3f} ms ({each}), "
            f"load generator {own / n * 1000:.3f} ms, total {(api + own) / n * 1000:.3f} ms; "
            f"of the API's, in the kernel: "
            f"{(sum(system_seconds(pid) for pid in workers) - system_before) / n * 1000:.3f} ms"
        )
        if args.profile_seconds:
            busiest = max(workers, key=lambda pid: cpu_seconds(pid) - before[workers.index(pid)])
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(busiest),
                    "-d",
                    str(args.profile_seconds),
                    "--format",
                    "raw",
                    "-o",
                    "/tmp/lookup-profile.txt",
                    "--nonblocking",
                ],
            )
            more = [request(i) for i in range(args.requests * 3)]
            run_load("127.0.0.1", port, more, concurrency=args.concurrency)
            spy.wait()


if __name__ == "__main__":
    main()
