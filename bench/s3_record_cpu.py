"""CPU per object of the S3 listener's own work: events -> content records + hash jobs.

    .venv/bin/python bench/s3_record_cpu.py [--objects 300] [--per-message 1] [--profile]

The listener's share of `bench/s3_intake.py` measured alone, without moto, SQS or workers:
``record_events`` on SQLite (a temporary data folder) and a private embedded Redis, timed in
process CPU seconds (the machine is shared, so wall time says little). ``--per-message`` is
how many records one SQS message carries (S3 sends one). ``--profile`` prints cProfile's top
functions. Prints figures; it is not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

from hma_s3_source.events import ObjectCreated
from hma_s3_source.intake import record_events
from hma_s3_source.s3_settings import s3_settings

from hma_framework.embedded_redis import EmbeddedRedis
from hma_framework.runtime import build_runtime
from hma_framework.settings import load_settings
from hma_framework.store import migrate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        redis = EmbeddedRedis(Path(folder) / "redis", persist=False)
        environ = {
            "HMA_DATA_DIR": folder,
            "HMA_REDIS_URL": redis.start(),
            "HMA_S3_BUCKETS": json.dumps([{"bucket": "uploads"}]),
        }
        settings = load_settings(environ)
        runtime = build_runtime(settings)
        migrate.upgrade(runtime.store)
        s3 = s3_settings(settings)
        events = [
            ObjectCreated("uploads", f"p/{n}.jpg", 1000, f"e{n}", sequencer=f"{n:016X}")
            for n in range(args.objects)
        ]
        batches = [
            events[i : i + args.per_message] for i in range(0, len(events), args.per_message)
        ]
        record_events(runtime, s3, [ObjectCreated("uploads", "warm.jpg", 1, "w")])
        profiler = cProfile.Profile() if args.profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        for batch in batches:
            record_events(runtime, s3, batch)
        if profiler:
            profiler.disable()
        cpu = time.process_time() - started
        print(
            f"{args.objects} objects, {args.per_message} per message: "
            f"{cpu / args.objects * 1000:.2f} ms CPU per object (listener process)"
        )
        if profiler:
            pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
        runtime.close()
        redis.stop()


if __name__ == "__main__":
    main()
