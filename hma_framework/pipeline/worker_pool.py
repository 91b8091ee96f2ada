"""``hma worker --processes N``: N workers forked from one process that imported everything.

Separately started workers each import Flask, SQLAlchemy, numpy, faiss, Pillow and every
plugin: ~85 MiB of private memory apiece. Forked from a parent that imported them once (and
froze those objects out of the collector's reach), the workers share those pages. Each child
still builds its own runtime after the fork: connections and indexes are never shared.

The parent only watches: a child that exits is forked again (at once if it had run a while,
with growing backoff if it keeps dying), SIGTERM/SIGINT stop every child the way a single
worker stops (the job in hand finishes), and the children die with the parent if it is
killed outright.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Sequence
from types import FrameType

from hma_framework.process_tools import set_parent_death_signal
from hma_framework.serve import STABLE_AFTER_SECONDS, restart_delay
from hma_framework.settings import Settings

log = logging.getLogger(__name__)

#: The pool's own loop: how often it looks for exited children and due restarts.
POLL_SECONDS = 0.2
#: After a stop request, children still running this long are killed (a stuck job).
STOP_TIMEOUT_SECONDS = 30.0


def _import_what_workers_share(settings: Settings) -> None:
    from hma_framework.pipeline import stages  # noqa: F401  (the jobs and what they use)
    from hma_framework.registry import make_registry

    make_registry(settings)  # imports every plugin's modules; the registry itself is dropped
    gc.freeze()


def _child(settings: Settings, roles: Sequence[str], name: str | None) -> int:
    """In a forked child: one worker with its own runtime, until it is told to stop."""
    set_parent_death_signal(signal.SIGTERM)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)  # run_worker installs the worker's own
    from hma_framework.pipeline.worker import run_worker
    from hma_framework.runtime import build_runtime

    runtime = build_runtime(settings)
    try:
        run_worker(runtime, roles, name=name)
    finally:
        runtime.close()
    return 0


class WorkerPool:
    def __init__(self, settings: Settings, roles: Sequence[str], processes: int) -> None:
        self.settings = settings
        self.roles = list(roles)
        self.processes = processes
        self.children: dict[int, int] = {}  # pid -> slot
        self.started_at: dict[int, float] = {}  # slot -> when its current child started
        self.restarts: dict[int, int] = dict.fromkeys(range(processes), 0)
        self.restart_at: dict[int, float] = {}  # slot -> when to fork it again
        self.stopping = False
        self.stop_requested_at: float | None = None

    def _fork(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child never returns into the pool's loop
            code = 1
            try:
                code = _child(self.settings, self.roles, None)
            except BaseException:
                log.exception("worker %d of the pool failed", slot + 1)
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = slot
        self.started_at[slot] = time.monotonic()
        log.info("forked worker %d of %d (pid %d)", slot + 1, self.processes, pid)

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            name = signal.Signals(signum).name
            log.info("received %s; stopping %d worker(s)", name, len(self.children))
        self.stopping = True
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            slot = self.children.pop(pid, None)
            if slot is None or self.stopping:
                continue
            now = time.monotonic()
            if now - self.started_at[slot] > STABLE_AFTER_SECONDS:
                self.restarts[slot] = 0
            self.restarts[slot] += 1
            delay = restart_delay(self.restarts[slot])
            self.restart_at[slot] = now + delay
            log.warning(
                "worker %d (pid %d) exited with %s; forking it again in %.0fs",
                slot + 1,
                pid,
                os.waitstatus_to_exitcode(status),
                delay,
            )

    def _kill_stragglers(self) -> None:
        started = self.stop_requested_at
        if started is None or time.monotonic() - started < STOP_TIMEOUT_SECONDS:
            return
        for pid, slot in list(self.children.items()):
            log.warning("worker %d (pid %d) did not stop in time; killing it", slot + 1, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.stop_requested_at = time.monotonic()  # kill again later if need be

    def run(self) -> int:
        _import_what_workers_share(self.settings)
        previous = {
            signum: signal.signal(signum, self._request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            for slot in range(self.processes):
                self._fork(slot)
            while not self.stopping or self.children:
                time.sleep(POLL_SECONDS)
                self._reap()
                self._kill_stragglers()
                now = time.monotonic()
                for slot, when in list(self.restart_at.items()):
                    if not self.stopping and now >= when:
                        del self.restart_at[slot]
                        self._fork(slot)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0
