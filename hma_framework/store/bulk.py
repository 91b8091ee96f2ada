"""Driver-level bulk statements for the hot write paths (bank imports).

SQLAlchemy's per-row parameter processing costs several times more than the database's own
work when a million rows arrive; here rows go to the driver as plain tuples, with JSON and
timestamps prepared once. Only a few fixed statements use it. On PostgreSQL, batches of
``COPY_FROM`` rows or more travel through ``COPY ... FROM STDIN`` (psycopg's very wide
multi-row statements cost more than the database's work); a statement with a tail
(``ON CONFLICT ... RETURNING``) copies into a temporary table and inserts from it.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import weakref
from collections.abc import Sequence
from itertools import chain
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.orm import Session

from hma_framework.store.db import Store
from hma_framework.store.tables import BankMemberRow

# Under SQLite's default limit on bound variables (32766) and PostgreSQL's (65535).
_MAX_PARAMETERS = 30_000

#: PostgreSQL batches from this many rows go through COPY (below it, one statement is quicker).
COPY_FROM = 200

_INSERT_HEAD = re.compile(r"\s*INSERT INTO (\w+) \(([\w, ]+)\)\s*$", re.IGNORECASE)


class BulkWriter:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect
        self.mark = "?" if self.dialect.name == "sqlite" else "%s"

    def insert_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> list[Any]:
        """``head VALUES (...), (...) tail`` in as few statements as the driver allows.

        One multi-row statement per batch beats ``executemany`` on both drivers: psycopg
        would otherwise pay a round trip per row.
        """
        if not rows:
            return []
        if self.dialect.name == "postgresql" and len(rows) >= COPY_FROM:
            return self._copy_rows(head, rows, tail)
        width = len(rows[0])
        per_statement = max(1, _MAX_PARAMETERS // width)
        group = "(" + ", ".join([self.mark] * width) + ")"
        connection = self.session.connection()
        returned: list[Any] = []
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            sql = f"{head} VALUES {', '.join([group] * len(batch))} {tail}"
            result = connection.exec_driver_sql(sql, tuple(chain.from_iterable(batch)))
            if result.returns_rows:
                returned.extend(result.all())
        return returned

    @property
    def rows_per_call(self) -> int:
        """How many rows a caller should hand ``insert_rows`` at once (COPY takes any number)."""
        return 100_000 if self.dialect.name == "postgresql" else 900

    def _copy_rows(self, head: str, rows: Sequence[Sequence[Any]], tail: str) -> list[Any]:
        """``insert_rows`` through ``COPY``: straight into the table, or via a temp table."""
        parsed = _INSERT_HEAD.match(head)
        if parsed is None:
            raise ValueError(f"not a plain INSERT INTO table (columns) head: {head!r}")
        table, columns = parsed.group(1), parsed.group(2)
        driver = self.session.connection().connection.driver_connection
        assert driver is not None
        target = table
        if tail:
            # Dropped at commit; emptied after use, for the next call in this transaction.
            target = f"hma_copy_{table}"
            driver.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {target} ON COMMIT DROP AS "
                f"SELECT {columns} FROM {table} WITH NO DATA"
            )
        with driver.cursor() as cursor:
            with cursor.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if not tail:
                return []
            cursor.execute(f"{head} SELECT {columns} FROM {target} {tail}")
            returned = cursor.fetchall() if cursor.description is not None else []
            cursor.execute(f"TRUNCATE {target}")
        return list(returned)

    def fetch_one(self, statement: str, parameters: Sequence[Any]) -> Any:
        """The first row of ``statement`` (``{p}`` marks each parameter), or None."""
        sql = statement.replace("{p}", self.mark)
        return self.session.connection().exec_driver_sql(sql, tuple(parameters)).first()

    def timestamp(self, value: dt.datetime) -> Any:
        """A UTC timestamp as this driver stores it (SQLite keeps naive UTC text)."""
        if self.dialect.name != "sqlite":
            return value
        processor = DATETIME().bind_processor(self.dialect)
        naive = value.astimezone(dt.UTC).replace(tzinfo=None)
        return processor(naive) if processor else naive

    def reserve_member_ids(self, count: int) -> list[int]:
        """``count`` fresh bank_member ids, taken before inserting rows that carry them.

        PostgreSQL hands them out from the table's sequence. SQLite allocates after the
        current maximum, which is safe because the write transaction holds its only lock.
        """
        if self.dialect.name == "postgresql":
            rows = self.session.execute(
                text(
                    "SELECT nextval(pg_get_serial_sequence('bank_member', 'id')) "
                    "FROM generate_series(1, :n)"
                ),
                {"n": count},
            )
            return [int(r[0]) for r in rows]
        first = int(self.session.scalar(select(func.max(BankMemberRow.id))) or 0) + 1
        return list(range(first, first + count))

    def advance_member_ids(self) -> None:
        """After inserting rows with ids given: move PostgreSQL's sequence past them."""
        if self.dialect.name == "postgresql":
            self.session.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('bank_member', 'id'), "
                    "GREATEST((SELECT MAX(id) FROM bank_member), 1))"
                )
            )


#: Rows a process writes through bulk paths before it first refreshes PostgreSQL's statistics;
#: later refreshes wait for half as many rows again as had been written at the previous one, so
#: a 10M import analyzes ~12 times, not 100.
ANALYZE_EVERY = 100_000

#: The tables a bank import grows, whose plans every index refresh and lookup depends on.
_ANALYZED_TABLES = "signal, member_signal, bank_member, bank_change"

# Per store: (rows written through bulk paths, rows written when last analyzed).
_written: weakref.WeakKeyDictionary[Store, tuple[int, int]] = weakref.WeakKeyDictionary()
_written_lock = threading.Lock()


def refresh_statistics_after(store: Store, rows: int) -> None:
    """``ANALYZE`` the bank tables as an import grows them (PostgreSQL only).

    Autovacuum can take minutes to notice an import; until then PostgreSQL plans the holder
    join and the change-log read as if the tables were still small (whole-table scans and
    sorts, in every process that matches: a hash added after a 1M import took 1-2.6 s to match
    instead of ~0.2 s, measured). Sampling costs a fraction of a second.
    """
    if store.dialect != "postgresql":
        return
    with _written_lock:
        total, analyzed_at = _written.get(store, (0, 0))
        total += rows
        due = total - analyzed_at >= max(ANALYZE_EVERY, analyzed_at // 2)
        _written[store] = (total, total if due else analyzed_at)
    if due:
        with store.engine.connect() as connection:
            connection.exec_driver_sql(f"ANALYZE {_ANALYZED_TABLES}")
            connection.commit()
