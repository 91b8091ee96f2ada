"""Filling a process's indexes off the request path, and saying how far along they are.

An API process starts loading at start-up (``web/wsgi.py``); a health check that finds the
indexes empty starts the load too (tests and embedded apps skip the WSGI start-up) and waits
only briefly, so a probe never holds a thread for the minutes a large index may take.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hma_framework.runtime import Runtime
from hma_framework.store.banks import Banks

log = logging.getLogger(__name__)

_LOADER_KEY = "_index_loader"
_loading_lock = threading.Lock()


def load_in_background(runtime: Runtime) -> threading.Thread:
    """Start filling the indexes once per process; a failed load may be started again."""
    with _loading_lock:
        thread: threading.Thread | None = runtime.__dict__.get(_LOADER_KEY)
        if thread is None:

            def load() -> None:
                try:
                    runtime.indexes.refresh()
                except Exception:
                    log.exception("loading the indexes failed")
                    runtime.__dict__.pop(_LOADER_KEY, None)  # let a later probe retry

            thread = threading.Thread(target=load, name="index-load", daemon=True)
            runtime.__dict__[_LOADER_KEY] = thread
            thread.start()
    return thread


def wait_until_loaded(runtime: Runtime, seconds: float) -> bool:
    """Start the load if needed and wait up to ``seconds`` for it; True once loaded."""
    if not runtime.indexes.loaded:
        load_in_background(runtime).join(seconds)
    return runtime.indexes.loaded


def index_state(runtime: Runtime) -> dict[str, Any]:
    """This process's indexes: loaded, the change-log position applied, and the lag behind."""
    indexes = runtime.indexes
    state: dict[str, Any] = {"loaded": indexes.loaded, "seq": indexes.seq}
    if indexes.loaded:
        latest = Banks(runtime.store).latest_seq()
        state["latest_seq"] = latest
        state["lag"] = max(0, latest - indexes.seq)
        state["refreshed_seconds_ago"] = round(max(0.0, time.time() - indexes.refreshed_at), 3)
    return state
