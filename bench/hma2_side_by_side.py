"""This project and HMA 2.0 (OpenMediaMatch) side by side: the same hashes, images and client.

    git clone https://github.com/facebook/ThreatExchange /tmp/ThreatExchange
    .venv/bin/python bench/hma2_side_by_side.py \\
        --hma2-src /tmp/ThreatExchange/hasher-matcher-actioner [--size 1000000] [--requests 30000]

``--hma2-src`` is the ``hasher-matcher-actioner/`` folder of a ThreatExchange checkout. The
first run builds a separate virtualenv for HMA 2.0 in ``.bench-cache/hma2-venv`` (never this
project's ``.venv``): ``psycopg2-binary`` in place of ``psycopg2`` (which would need compiling),
OpenMediaMatch's other dependencies from its ``pyproject.toml``, gunicorn, and OpenMediaMatch
itself with ``--no-deps``. HMA 2.0 runs its code from ``src/`` as its Dockerfile does (the
package installs no modules), so the venv gets a ``.pth`` line pointing there.

HMA 2.0 gets a fresh PostgreSQL database ``hma2_bench`` (dropped first if present) on the local
server, its own migrations, and the same SIZE random PDQ hashes as this project's bank (written
into its ``bank``/``bank_content``/``content_signal`` tables with COPY), plus the hashes of the
"known" test photos. Its index is built with its own ``flask build_indices`` command; its
matcher processes load it through their index cache task. This project gets the same hashes in
SQLite (bench/lookup.py's setup). Both run on gunicorn with 2 sync worker processes, HMA 2.0 as
its Dockerfile starts it (with jemalloc preloaded, as there), and are driven by bench/loadgen.py
(keep-alive, concurrency 16) in alternating rounds, ours then HMA 2.0, twice:

  (a) lookup by hash, half near-duplicates of banked hashes (1-31 bits), half misses:
      ours ``GET /lookup`` and ``GET /m/lookup`` (the HMA 2.0 compatible route) against
      HMA 2.0's ``GET /m/raw_lookup`` and ``GET /m/lookup``;
  (b) hash + lookup of 1024x768 JPEGs fetched from a loopback HTTP server, half of them banked:
      ours ``GET /m/lookup?url=`` and ``POST /lookup {"content_url"}`` against HMA 2.0's
      ``GET /m/lookup?url=``.

Prints requests/s, p50 and p99 per system and route, the ratios ours/HMA 2.0 per round and
overall, and the memory (RSS, PSS) of each API process. Before measuring it checks that both
find the same planted near-duplicate and the same banked photo. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
from psycopg.conninfo import conninfo_to_dict
from threatexchange.signal_type.pdq.signal import PdqSignal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from index_freshness import random_pdq_batches
from loadgen import LoadResult, flip, free_port, render, run_load
from lookup import api_processes, seeded_instance, serving

from hma_framework.testing import make_photo

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-cache" / "hma2-venv"
DATABASE = "hma2_bench"
BANK = "BENCH"
JEMALLOC = Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")  # HMA 2.0's Dockerfile preloads it

# route name -> (system, method, path template); {} is the signal or the quoted image URL
ROUTES: dict[str, tuple[str, str, str]] = {
    "ours GET /lookup": ("ours", "GET", "/lookup?signal_type=pdq&signal={}"),
    "ours GET /m/lookup": ("ours", "GET", "/m/lookup?signal_type=pdq&signal={}"),
    "hma2 GET /m/raw_lookup": ("hma2", "GET", "/m/raw_lookup?signal_type=pdq&signal={}"),
    "hma2 GET /m/lookup": ("hma2", "GET", "/m/lookup?signal_type=pdq&signal={}"),
    "ours GET /m/lookup?url": ("ours", "GET", "/m/lookup?url={}&content_type=photo"),
    "ours POST /lookup url": ("ours", "POST", "/lookup"),
    "hma2 GET /m/lookup?url": ("hma2", "GET", "/m/lookup?url={}&content_type=photo"),
}
HASH_ROUTES = [r for r in ROUTES if "url" not in r]
PHOTO_ROUTES = [r for r in ROUTES if "url" in r]
RATIOS = [  # (ours, HMA 2.0)
    ("ours GET /lookup", "hma2 GET /m/raw_lookup"),
    ("ours GET /lookup", "hma2 GET /m/lookup"),
    ("ours GET /m/lookup", "hma2 GET /m/lookup"),
    ("ours GET /m/lookup?url", "hma2 GET /m/lookup?url"),
    ("ours POST /lookup url", "hma2 GET /m/lookup?url"),
]


# --- HMA 2.0's environment ---------------------------------------------------------------------


def hma2_venv(src: Path) -> Path:
    """The cached virtualenv running HMA 2.0, built on first use; returns its bin folder."""
    pyproject = (src / "pyproject.toml").read_bytes()
    stamp = VENV / ".bench-stamp"
    wanted = hashlib.sha256(pyproject).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        shutil.rmtree(VENV, ignore_errors=True)
        print(f"building HMA 2.0's virtualenv in {VENV} (once; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        dependencies = tomllib.loads(pyproject.decode())["project"]["dependencies"]
        # psycopg2 builds from source (pg_config, a compiler); the binary wheel is the same
        # driver. gunicorn is what its Dockerfile serves with (its "prod" extra).
        others = [d for d in dependencies if d.split("[")[0].strip().lower() != "psycopg2"]
        subprocess.run([*pip, "psycopg2-binary", "gunicorn", *others], check=True)
        subprocess.run([*pip, "--no-deps", str(src)], check=True)
        stamp.write_text(wanted)
    # OpenMediaMatch's pyproject installs no modules: its Dockerfile runs the code from src/.
    site = next((VENV / "lib").glob("python3*/site-packages"))
    (site / "hma2_bench_src.pth").write_text(f"{(src / 'src').resolve()}\n")
    return VENV / "bin"


def postgres(url: str, dbname: str) -> psycopg.Connection:
    return psycopg.connect(url, dbname=dbname, autocommit=True)


def fresh_database(url: str) -> None:
    """Drop and create ``hma2_bench``; nothing else on the server is touched."""
    with postgres(url, "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")


def write_config(folder: Path, url: str) -> Path:
    """An omm_config for one node with every role, as reference_omm_configs/ shows.

    The fetcher and the periodic indexer are off: the index is built once with HMA 2.0's own
    ``build_indices`` command before serving (its Dockerfile warns against running those tasks
    in several gunicorn workers). The index cache task stays on: it is how each matcher
    process loads the index. Logging stays at Python's default (WARNING), as ours.
    """
    info = conninfo_to_dict(url)
    uri = (
        f"postgresql+psycopg2://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}"
        f":{info.get('port', 5432)}/{DATABASE}"
    )
    config = folder / "omm_config.py"
    config.write_text(
        "from OpenMediaMatch.storage.postgres.impl import DefaultOMMStore\n"
        "from threatexchange.content_type.photo import PhotoContent\n"
        "from threatexchange.content_type.video import VideoContent\n"
        "from threatexchange.signal_type.md5 import VideoMD5Signal\n"
        "from threatexchange.signal_type.pdq.signal import PdqSignal\n\n"
        f"DATABASE_URI = {uri!r}\n"
        "PRODUCTION = True\n"
        "ROLE_HASHER = True\n"
        "ROLE_MATCHER = True\n"
        "ROLE_CURATOR = True\n"
        "UI_ENABLED = False\n"
        "TASK_FETCHER = False\n"
        "TASK_INDEXER = False\n"
        "TASK_INDEX_CACHE = True\n"
        "TASK_INDEX_CACHE_INTERVAL_SECONDS = 30\n"
        "INDEX_CACHE_MAX_STALE_SEC = 0\n"
        "STORAGE_IFACE_INSTANCE = DefaultOMMStore(\n"
        "    signal_types=[PdqSignal, VideoMD5Signal],\n"
        "    content_types=[PhotoContent, VideoContent],\n"
        "    exchange_types=[],\n"
        ")\n"
    )
    return config


def hma2_flask(bin_dir: Path, src: Path, config: Path, *args: str) -> None:
    """Run HMA 2.0's flask CLI from its src/ folder, as scripts/db-migrate.sh does."""
    env = {**os.environ, "OMM_CONFIG": str(config), "MIGRATION_COMMAND": "1"}
    subprocess.run(
        [str(bin_dir / "flask"), "--app", "OpenMediaMatch.app", *args],
        cwd=src / "src",
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def seed_hma2(url: str, size: int, extra: list[str]) -> None:
    """The same hashes as ours into HMA 2.0's tables with COPY: content id = position + 1."""
    with postgres(url, DATABASE) as conn:
        bank_id = conn.execute(
            "INSERT INTO bank (name, enabled_ratio) VALUES (%s, 1.0) RETURNING id", (BANK,)
        ).fetchone()[0]  # type: ignore[index]

        def batches() -> Iterator[list[str]]:
            yield from random_pdq_batches(size)
            yield extra

        next_id = 1
        with conn.transaction():
            for hexes in batches():
                ids = range(next_id, next_id + len(hexes))
                next_id += len(hexes)
                with conn.cursor().copy(
                    "COPY bank_content (id, bank_id, disable_until_ts) FROM STDIN"
                ) as copy:
                    copy.write("".join(f"{i}\t{bank_id}\t1\n" for i in ids))
                with conn.cursor().copy(
                    "COPY content_signal (content_id, signal_type, signal_val) FROM STDIN"
                ) as copy:
                    copy.write("".join(f"{i}\tpdq\t{h}\n" for i, h in zip(ids, hexes, strict=True)))
        conn.execute("SELECT setval('bank_content_id_seq', %s)", (next_id - 1,))
        conn.execute("ANALYZE")


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


@contextmanager
def hma2_serving(
    bin_dir: Path, src: Path, config: Path, probe: str
) -> Iterator[tuple[psutil.Process, int]]:
    """HMA 2.0 on gunicorn with 2 workers, yielded once both answer ``probe`` from the index."""
    port = free_port()
    env = {**os.environ, "OMM_CONFIG": str(config)}
    if JEMALLOC.exists():
        env["LD_PRELOAD"] = str(JEMALLOC)
    command = [str(bin_dir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    server = subprocess.Popen(
        [*command, "OpenMediaMatch.app:create_app()"],
        cwd=src / "src",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        deadline = started + 900
        hits = 0  # consecutive exact-hash hits: each worker loaded the index
        while hits < 20:
            if time.monotonic() > deadline or server.poll() is not None:
                raise TimeoutError("HMA 2.0 never served its index")
            status, body = get(port, f"/m/raw_lookup?signal_type=pdq&signal={probe}")
            hits = hits + 1 if status == 200 and json.loads(body)["matches"] else 0
            time.sleep(0 if hits else 0.5)
        print(
            f"HMA 2.0: both workers served the index {time.monotonic() - started:.0f}s after start"
        )
        yield psutil.Process(server.pid), port
    finally:
        server.terminate()
        server.wait(60)


# --- the workload ------------------------------------------------------------------------------


@contextmanager
def image_server(count: int) -> Iterator[tuple[list[str], list[str]]]:
    """Serve ``count`` 1024x768 JPEGs on loopback; yields their URLs and PDQ hashes."""
    folder = Path(tempfile.mkdtemp(prefix="hma2-bench-images-"))
    hashes = []
    for i in range(count):
        data = make_photo(1024, 768, seed=1000 + i)
        (folder / f"{i}.jpg").write_bytes(data)
        hashes.append(PdqSignal.hash_from_bytes(data))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        urls = [f"http://127.0.0.1:{port}/{i}.jpg" for i in range(count)]
        while get(port, f"/{0}.jpg")[0] != 200:
            time.sleep(0.1)
        yield urls, hashes
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hash_requests(planted: list[str], count: int, seed: int) -> list[str]:
    """Half near-duplicates (1-31 bits from a banked hash), half random misses."""
    rng = random.Random(seed)
    return [
        flip(rng.choice(planted), rng.randint(1, 31), rng)
        if i % 2 == 0
        else f"{rng.getrandbits(256):064x}"
        for i in range(count)
    ]


def rendered(route: str, values: list[str], port: int, headers: dict[str, str]) -> list[bytes]:
    _, method, path = ROUTES[route]
    host = f"127.0.0.1:{port}"
    if method == "POST":
        return [
            render(
                "POST",
                path,
                host,
                {**headers, "Content-Type": "application/json"},
                json.dumps({"content_url": v, "content_type": "photo"}).encode(),
            )
            for v in values
        ]
    quote: Callable[[str], str] = lambda v: urllib.parse.quote(v, safe="")  # noqa: E731
    return [render(method, path.format(quote(v)), host, headers) for v in values]


def line(label: str, result: LoadResult) -> str:
    return (
        f"  {label:<24} {result.rate:8,.1f} req/s  p50 {result.percentile(0.5) * 1000:7.1f} ms  "
        f"p99 {result.percentile(0.99) * 1000:7.1f} ms  "
        f"statuses {dict(sorted(result.statuses.items()))}"
    )


def ratios(results: dict[str, LoadResult], indent: str = "  ") -> None:
    for ours, theirs in RATIOS:
        if ours in results and theirs in results and results[theirs].rate:
            print(
                f"{indent}ours/HMA2 {ours.removeprefix('ours ')} vs "
                f"{theirs.removeprefix('hma2 ')}: {results[ours].rate / results[theirs].rate:.2f}x"
            )


def combined(parts: list[LoadResult]) -> LoadResult:
    statuses: dict[int, int] = {}
    for part in parts:
        for code, n in part.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    return LoadResult(
        sum(p.requests for p in parts),
        sum(p.seconds for p in parts),
        tuple(x for p in parts for x in p.latencies),
        statuses,
    )


def memory(label: str, processes: list[psutil.Process]) -> None:
    for process in processes:
        info = process.memory_full_info()
        print(
            f"  {label} API process {process.pid}: RSS {info.rss / 2**20:.0f} MiB, "
            f"PSS {info.pss / 2**20:.0f} MiB"
        )


# --- the run -----------------------------------------------------------------------------------


def check_same_answers(
    ours: int,
    theirs: int,
    headers: dict[str, str],
    planted: str,
    planted_id: int,
    photos: dict[str, bool],
) -> None:
    """Both must find the planted near-duplicate, the banked photo, and not the other photo."""
    query = flip(planted, 12, random.Random(5))
    status, body = get(ours, f"/lookup?signal_type=pdq&signal={query}", headers)
    found = [m["signal"] for m in json.loads(body)["matches"]] if status == 200 else []
    assert planted in found, f"ours missed the planted near-duplicate: {status} {body[:200]!r}"
    status, body = get(theirs, f"/m/raw_lookup?signal_type=pdq&signal={query}")
    ids = json.loads(body)["matches"] if status == 200 else []
    assert planted_id in ids, f"HMA 2.0 missed the planted near-duplicate: {status} {body!r}"
    for url, expect in photos.items():
        path = f"/m/lookup?url={urllib.parse.quote(url, safe='')}&content_type=photo"
        status, body = get(ours, path, headers)
        assert status == 200, f"ours: {status} {body[:300]!r}"
        ours_found = any(json.loads(body).get("pdq", {}).values())
        status, body = get(theirs, path)
        assert status == 200, f"HMA 2.0: {status} {body[:300]!r}"
        theirs_found = any(json.loads(body).get("pdq", {}).values())
        assert ours_found == theirs_found == expect, (url, ours_found, theirs_found, expect)
    print(
        "correctness: both find the planted near-duplicate (12 bits off; HMA 2.0 content id "
        f"{planted_id}), both match the banked photo and neither the unbanked one"
    )


def prepare_hma2(bin_dir: Path, src: Path, postgres_url: str, size: int, extra: list[str]) -> Path:
    """A fresh database with HMA 2.0's schema, the seeded bank and its built index; its config."""
    config = write_config(Path(tempfile.mkdtemp(prefix="hma2-bench-")), postgres_url)
    fresh_database(postgres_url)
    started = time.perf_counter()
    hma2_flask(bin_dir, src, config, "db", "upgrade", "--directory", "OpenMediaMatch/migrations")
    seed_hma2(postgres_url, size, extra)
    print(f"HMA 2.0: migrated and seeded with COPY in {time.perf_counter() - started:.0f}s")
    started = time.perf_counter()
    hma2_flask(bin_dir, src, config, "build_indices")
    print(f"HMA 2.0: `flask build_indices` took {time.perf_counter() - started:.0f}s")
    return config


Workload = tuple[list[str], Callable[[int], list[str]], int]  # routes, values per round, warm-up


def measure(
    ports: dict[str, int],
    headers: dict[str, str],
    workloads: list[Workload],
    rounds: int,
    concurrency: int,
) -> None:
    """Alternate the systems: every route of ours, then every route of HMA 2.0, per round."""
    everything: dict[str, list[LoadResult]] = {}
    for routes, values_for, warm in workloads:
        for route in routes:  # warm every process once: imports, caches, connection pools
            port = ports[ROUTES[route][0]]
            warm_up = rendered(route, values_for(0)[:warm], port, headers)
            run_load("127.0.0.1", port, warm_up, concurrency=concurrency)
        for round_no in range(1, rounds + 1):
            values = values_for(round_no)  # the same requests for every route of the round
            results = {}
            print(f"round {round_no}:")
            for route in routes:
                port = ports[ROUTES[route][0]]
                load = rendered(route, values, port, headers)
                results[route] = run_load("127.0.0.1", port, load, concurrency=concurrency)
                everything.setdefault(route, []).append(results[route])
                print(line(route, results[route]), flush=True)
            ratios(results, "    ")
    print(f"overall ({rounds} rounds per route):")
    totals = {route: combined(parts) for route, parts in everything.items()}
    for route, result in totals.items():
        print(line(route, result))
    ratios(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hma2-src", type=Path, required=True, help="…/hasher-matcher-actioner")
    parser.add_argument("--size", type=int, default=1_000_000, help="random PDQ hashes banked")
    parser.add_argument("--requests", type=int, default=30_000, help="hash lookups per round")
    parser.add_argument("--photo-requests", type=int, default=600, help="photos per round")
    parser.add_argument("--photos", type=int, default=40, help="distinct JPEGs (half banked)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    src = args.hma2_src.resolve()
    if not (src / "src" / "OpenMediaMatch" / "app.py").exists():
        parser.error(f"{src} is not ThreatExchange's hasher-matcher-actioner folder")
    # Stopped with SIGTERM, still stop both servers and the image server on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    bin_dir = hma2_venv(src)
    print(f"{os.cpu_count()} cores; load generator on the same machine; {args.size:,} hashes")
    with image_server(args.photos) as (urls, photo_hashes):
        banked = photo_hashes[::2]  # even photos are banked, odd ones are misses
        nearest = min(distance(a, b) for a in photo_hashes[1::2] for b in banked)
        assert nearest > 31, f"an unbanked photo is {nearest} bits from a banked one"
        started = time.perf_counter()
        instance = seeded_instance(args.size, extra=banked)
        print(f"ours: seeded and snapshotted in {time.perf_counter() - started:.0f}s (SQLite)")
        config = prepare_hma2(bin_dir, src, args.postgres, args.size, banked)
        planted = instance.planted[0]  # the first random hash: HMA 2.0's content id 1

        fetch_loopback = {"HMA_FETCH_ALLOWED_NETWORKS": "127.0.0.1/32"}
        with (
            serving(instance.folder, **fetch_loopback) as (ours_server, ours_port),
            hma2_serving(bin_dir, src, config, planted) as (hma2_master, hma2_port),
        ):
            headers = {"Authorization": f"Bearer {instance.token}"}
            photos = {urls[0]: True, urls[1]: False}
            check_same_answers(ours_port, hma2_port, headers, planted, 1, photos)
            workloads: list[Workload] = [
                (HASH_ROUTES, lambda r: hash_requests(instance.planted, args.requests, r), 500),
                (PHOTO_ROUTES, lambda r: random.Random(r).choices(urls, k=args.photo_requests), 20),
            ]
            ports = {"ours": ours_port, "hma2": hma2_port}
            measure(ports, headers, workloads, args.rounds, args.concurrency)
            print("memory after the runs:")
            memory("ours", api_processes(ours_server))
            memory("HMA 2.0", hma2_master.children())


if __name__ == "__main__":
    main()
