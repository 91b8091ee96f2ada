"""The one accessor jobs use to reach the runtime their worker built before the first job."""

from __future__ import annotations

from hma_framework.runtime import Runtime

_current: Runtime | None = None


def set_current_runtime(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current_runtime() -> Runtime:
    if _current is None:
        raise RuntimeError(
            "no runtime in this process: jobs run inside `hma worker`, which builds one"
        )
    return _current
