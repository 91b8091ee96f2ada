"""A separate process for the cold-start tests: loads the indexes when told to, reports how."""

from __future__ import annotations

import sys

from hma_framework.runtime import build_runtime
from hma_framework.settings import Settings


def main() -> None:
    database_url, redis_url, data_dir, signal = sys.argv[1:5]
    runtime = build_runtime(
        Settings(database_url=database_url, redis_url=redis_url, data_dir=data_dir)
    )
    print("ready", flush=True)
    sys.stdin.readline()  # "go": processes started together load at the same moment
    runtime.indexes.load()
    matched = [m.stored_signal for m in runtime.indexes.match("pdq", signal)]
    print(runtime.indexes.loaded_from["pdq"], runtime.indexes.size("pdq"), matched, flush=True)
    sys.stdin.readline()  # stay alive while the test reads /proc/<pid>/smaps


if __name__ == "__main__":
    main()
