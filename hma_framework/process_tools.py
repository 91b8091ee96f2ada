"""Process plumbing shared by ``hma serve`` and the workers (Linux-specific where it must be)."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
_forks_die_with_parent = False


def set_parent_death_signal(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``signum`` to this process when its parent dies (Linux only).

    Without it a SIGKILLed parent leaves its children running: an embedded redis-server on
    the append-only file the next start wants, or RQ's scheduler process holding the lock
    that enqueues retries.
    """
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)
    except OSError:
        pass  # not Linux: a killed parent may leave children behind


def forks_die_with_parent() -> None:
    """Make every process this one forks from now on (RQ's scheduler) die with it."""
    global _forks_die_with_parent
    if not _forks_die_with_parent:
        os.register_at_fork(after_in_child=set_parent_death_signal)
        _forks_die_with_parent = True


def give_back_freed_memory() -> None:
    """Return the heap's freed memory to the system (glibc's ``malloc_trim``; else a no-op).

    After a large build (an index from a million records) glibc keeps the freed temporaries
    in its heap: they stay resident and private to the process, tens to hundreds of MiB,
    until the process exits.
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
