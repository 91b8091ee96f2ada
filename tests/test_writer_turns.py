"""SQLite writers taking turns on a file lock: order, nesting, killed holders, file mode."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

from hma_framework.store.db import Store, WriterTurns


def test_a_second_writer_waits_for_the_first_to_finish(tmp_path: Path) -> None:
    turns = WriterTurns(tmp_path / "db.writer-lock")
    events: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with turns.turn():
            holding.set()
            events.append("first in")
            time.sleep(0.3)
            events.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(5)
    with turns.turn():
        events.append("second in")
    thread.join(5)
    assert events == ["first in", "first out", "second in"]


def test_a_nested_write_in_the_same_thread_does_not_wait_for_itself(tmp_path: Path) -> None:
    turns = WriterTurns(tmp_path / "db.writer-lock")
    done = threading.Event()

    def nested() -> None:
        with turns.turn(), turns.turn():
            pass
        with turns.turn():  # released after the nested exit: taken again at once
            done.set()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    assert done.wait(5), "a nested turn deadlocked"


def test_a_killed_holder_frees_the_turn(tmp_path: Path) -> None:
    lock = tmp_path / "db.writer-lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from hma_framework.store.db import WriterTurns\n"
            f"with WriterTurns(Path({str(lock)!r})).turn():\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    acquired = threading.Event()

    def wait_for_turn() -> None:
        with WriterTurns(lock).turn():
            acquired.set()

    threading.Thread(target=wait_for_turn, daemon=True).start()
    assert not acquired.wait(0.3), "the turn was taken while another process held it"
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    assert acquired.wait(5), "a killed holder kept the turn"


def test_batch_transactions_take_turns_on_an_owner_only_lock_file(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'hma.sqlite3'}")
    try:
        with store.transaction(take_turn=True) as session:
            session.execute(text("SELECT 1"))
        lock = tmp_path / "hma.sqlite3.writer-lock"
        assert lock.exists()
        assert stat.S_IMODE(os.stat(lock).st_mode) & 0o077 == 0
    finally:
        store.close()
