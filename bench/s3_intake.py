"""Objects put into a bucket -> matched, with no API call: `hma serve` with the S3 listener.

    .venv/bin/python bench/s3_intake.py [--objects 400] [--idle 20] [--workers 2]

Starts moto's S3/SQS server on loopback (in this process), a bucket that notifies an SQS
queue of every created object, and a complete instance with `hma serve` (SQLite, embedded
Redis, gunicorn, workers and the `hma s3 listen` listener, all on this machine's cores along
with moto and this script). Every photo is banked, so each object ends matched. Then:

1. Idle latency: objects put one at a time, each waited for: put -> matched p50/p99.
2. Throughput: ``--objects`` 1024x768 JPEGs put as fast as 8 threads can; objects/s from the
   first put until every object is matched, put -> matched p50/p99, and the rate as a share
   of the hashing ceiling (PDQ alone, one process per core, measured in the same run).
Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psutil
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import free_port, ready
from submit_pipeline import hashing_ceiling, wait_until

from hma_framework.registry import make_registry
from hma_framework.settings import Settings
from hma_framework.store.banks import Banks, NewMember
from hma_framework.store.db import Store
from hma_framework.store.tables import ContentRow
from hma_framework.testing import make_photo

AWS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def matched_times(store: Store, prefix: str) -> dict[str, dt.datetime]:
    with store.reading() as session:
        rows = session.execute(
            select(ContentRow.content_id, ContentRow.matched_at).where(
                ContentRow.content_id.like(f"{prefix}%"), ContentRow.matched_at.is_not(None)
            )
        ).all()
    return {cid: (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) for cid, at in rows}


def count_done(store: Store, prefix: str) -> int:
    with store.reading() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(ContentRow)
                .where(
                    ContentRow.content_id.like(f"{prefix}%"),
                    ContentRow.status.in_(("matched", "actioned", "no_match", "failed")),
                )
            )
            or 0
        )


def percentiles(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=400)
    parser.add_argument("--idle", type=int, default=20, help="objects put one at a time")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    os.environ.update(AWS)

    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    endpoint = f"http://{host}:{moto_port}"
    s3 = boto3.client("s3", endpoint_url=endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    s3.create_bucket(Bucket="bench-uploads")
    queue = sqs.create_queue(QueueName="bench-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    s3.put_bucket_notification_configuration(
        Bucket="bench-uploads",
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )

    folder = Path(tempfile.mkdtemp(prefix="hma-bench-s3-"))
    photos = [make_photo(1024, 768, seed=i) for i in range(20)]
    photo_paths = []
    for i, photo in enumerate(photos):
        path = folder / f"{i}.jpg"
        path.write_bytes(photo)
        photo_paths.append(path)
    ceiling = hashing_ceiling(photo_paths, 100, os.cpu_count() or 1)
    print(f"{os.cpu_count()} cores; hashing ceiling (PDQ alone): {ceiling:.1f} images/s")

    settings = Settings()
    hasher = make_registry(settings, strict=True).signal_types["pdq"].make_hasher(settings)
    hashes = [hasher.hash_file(path).value for path in photo_paths]

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMA_")}
    env.update(
        HMA_DATA_DIR=str(folder / "data"),
        HMA_WEB_PORT=str(port),
        HMA_LOG_LEVEL="WARNING",
        HMA_WORKERS_PROCESSES=str(args.workers),
        HMA_S3_ENDPOINT_URL=endpoint,
        HMA_S3_SQS_ENDPOINT_URL=endpoint,
        HMA_S3_PATH_STYLE="true",
        HMA_S3_BUCKETS='[{"bucket": "bench-uploads"}]',
        HMA_S3_QUEUE_URLS=queue,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "hma_framework", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if re.search(r"hma_[0-9a-f]{12}_\S+", line):
                break
        threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
        wait_until(lambda: ready(port), 60)
        store = Store(f"sqlite:///{folder / 'data' / 'hma.sqlite3'}")
        Banks(store).create_bank("bench")
        Banks(store).add_members("bench", [NewMember(signals=(("pdq", h),)) for h in hashes])

        # 1. idle: one object at a time
        idle: list[float] = []
        for i in range(args.idle):
            put_at = dt.datetime.now(dt.UTC)
            s3.put_object(Bucket="bench-uploads", Key=f"idle/{i}.jpg", Body=photos[i % 20])
            wait_until(
                lambda i=i: (
                    f"bench-uploads/idle/{i}.jpg" in matched_times(store, "bench-uploads/idle/")
                ),
                60,
                0.01,
            )  # type: ignore[misc]
            idle.append(
                (
                    matched_times(store, "bench-uploads/idle/")[f"bench-uploads/idle/{i}.jpg"]
                    - put_at
                ).total_seconds()
            )
        print(f"idle instance, put -> matched over {args.idle} objects: {percentiles(idle)}")

        # 2. throughput
        put_times: dict[str, dt.datetime] = {}

        def put(number: int) -> None:
            key = f"load/{number}.jpg"
            put_times[f"bench-uploads/{key}"] = dt.datetime.now(dt.UTC)
            s3.put_object(Bucket="bench-uploads", Key=key, Body=photos[number % 20])

        started = time.perf_counter()
        cpu_started = time.process_time()  # this process: moto's S3/SQS and the putters
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(args.objects)))
        put_seconds = time.perf_counter() - started
        wait_until(lambda: count_done(store, "bench-uploads/load/") >= args.objects, 1200, 0.05)
        elapsed = time.perf_counter() - started
        moto_cpu = time.process_time() - cpu_started
        rate = args.objects / elapsed
        done = matched_times(store, "bench-uploads/load/")
        latencies = [(done[cid] - put_times[cid]).total_seconds() for cid in done]
        print(
            f"{args.objects} objects put in {put_seconds:.1f}s, all matched after {elapsed:.1f}s: "
            f"{rate:.1f} objects/s ({rate / ceiling:.0%} of the hashing ceiling); "
            f"{len(done)} matched; put -> matched {percentiles(latencies)}"
        )
        available = elapsed * (os.cpu_count() or 1)
        print(
            f"  moto (S3 + SQS) and the putters used {moto_cpu:.1f} CPU-s of the "
            f"{available:.1f} this machine had in that time ({moto_cpu / available:.0%})"
        )

        # 3. backlog: objects queued while the listener is stopped, then drained
        drain_rate = drain_backlog(server, s3, store, photos, args.objects)
        print(
            f"  the instance drained that backlog at {drain_rate:.1f} objects/s "
            f"({drain_rate / ceiling:.0%} of the hashing ceiling)"
        )
    finally:
        server.terminate()
        server.wait(60)
        moto.stop()


def drain_backlog(
    server: subprocess.Popen[str], s3: Any, store: Store, photos: list[bytes], objects: int
) -> float:
    """Objects put while the listener is stopped (SIGSTOP), then timed until all are final.

    The throughput phase is bounded by how fast moto, in this process, accepts puts; with the
    queue already full, the window measures the listener and workers draining it (moto still
    answers their SQS receives and S3 GETs, and its CPU share is printed).
    """
    listener = next(
        child
        for child in psutil.Process(server.pid).children(recursive=True)
        if "listen" in child.cmdline()
    )
    listener.suspend()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda n: s3.put_object(
                        Bucket="bench-uploads", Key=f"backlog/{n}.jpg", Body=photos[n % 20]
                    ),
                    range(objects),
                )
            )
    finally:
        listener.resume()
    started, cpu_started = time.perf_counter(), time.process_time()
    wait_until(lambda: count_done(store, "bench-uploads/backlog/") >= objects, 1200, 0.05)
    elapsed = time.perf_counter() - started
    moto_cpu = time.process_time() - cpu_started
    available = elapsed * (os.cpu_count() or 1)
    print(
        f"backlog of {objects} objects queued while the listener was stopped: all final "
        f"{elapsed:.1f}s after it resumed; moto used {moto_cpu:.1f} CPU-s of the "
        f"{available:.1f} ({moto_cpu / available:.0%})"
    )
    return objects / elapsed


if __name__ == "__main__":
    main()
