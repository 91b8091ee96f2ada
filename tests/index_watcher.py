"""A separate process for the freshness test: waits until a hash matches, prints when."""

from __future__ import annotations

import sys
import time

from hma_framework.runtime import build_runtime
from hma_framework.settings import Settings


def main() -> None:
    database_url, redis_url, data_dir, signal = sys.argv[1:5]
    runtime = build_runtime(
        Settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir)
    )
    runtime.indexes.load()
    print("ready", flush=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        if runtime.indexes.match("pdq", signal):
            print(time.time(), flush=True)
            return
        time.sleep(0.005)
    sys.exit("never matched")


if __name__ == "__main__":
    main()
