"""The records store: one SQLAlchemy engine per process, SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
_WRITE_OPTION = "hma_write"


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets API processes read while a worker writes; foreign keys are off by default.
    # isolation_level=None hands transaction control to the "begin" listener below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _begin_sqlite(connection: Connection) -> None:
    # A write transaction takes SQLite's write lock when it starts, not on its first write:
    # otherwise two processes that both read and then write can deadlock, and SQLite fails
    # one of them at once with "database is locked" instead of waiting.
    if connection.get_execution_options().get(_WRITE_OPTION):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.exec_driver_sql("BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and WAL mode."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
            # libpq waits for the kernel's TCP timeout (minutes) on an unreachable server; a
            # request (or a lookup on the API's event loop) should get its 503 sooner.
            connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
        return create_engine(
            url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=connect_args
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


class WriterTurns:
    """Writers to one SQLite file wait for their turn on a file lock, not in SQLite's busy loop.

    SQLite's busy handler retries a locked write after sleeping 1, 2, 5 ... up to 100 ms, so
    under steady writes from several processes a waiter can keep missing the moment the lock
    is free: batch submissions saw single transactions wait seconds behind ones that came
    later. An ``flock`` waiter is woken by the kernel as soon as the holder releases it, and a
    killed holder releases it too. A thread that already holds a turn (a nested write) does not
    take it again; it meets SQLite's own lock as before.
    """

    def __init__(self, lock_path: Path) -> None:
        self._lock_path = lock_path
        self._held = threading.local()

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        if getattr(self._held, "depth", 0):
            self._held.depth += 1
            try:
                yield
            finally:
                self._held.depth -= 1
            return
        descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)  # closing the descriptor releases it
            self._held.depth = 1
            try:
                yield
            finally:
                self._held.depth = 0
        finally:
            os.close(descriptor)


def _writer_turns(url: str) -> WriterTurns | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return WriterTurns(Path(f"{parsed.database}.writer-lock"))


class Store:
    """The database: sessions for repositories, health checks, and disposal after fork."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._turns = _writer_turns(url)
        write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def transaction(self, *, take_turn: bool = False) -> Iterator[Session]:
        """A write session: committed on success, rolled back on error.

        ``take_turn`` (hash submissions, written in groups or batches) waits for the SQLite
        file's writer turn first (see :class:`WriterTurns`). Batches of 1,000 went from a p99
        of 1.7 s to 0.24 s with it, and grouped `/submit/hash/` writes from 148-228 ms to
        58-65 ms. A transaction of one small write does better without it: when each
        `/submit/hash/` wrote alone, the handoff between processes cost more than SQLite's
        busy loop (520 against 631 req/s).
        """
        waiting = self._turns.turn() if take_turn and self._turns else contextlib.nullcontext()
        with waiting, self._write_sessions.begin() as session:
            yield session

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session (SQLite readers never wait for the write lock)."""
        with self._read_sessions() as session:
            yield session

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def after_fork(self) -> None:
        """Drop pooled connections inherited from a parent process without closing them."""
        self.engine.dispose(close=False)

    def close(self) -> None:
        self.engine.dispose()
