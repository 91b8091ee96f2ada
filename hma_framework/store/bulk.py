"""Driver-level bulk statements for the hot write paths (bank imports).

SQLAlchemy's per-row parameter processing costs several times more than the database's own
work when a million rows arrive; here rows go to the driver's ``executemany`` as plain tuples,
with JSON and timestamps prepared once. Only a few fixed statements use it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.sqlite import DATETIME
from sqlalchemy.orm import Session

from hma_framework.store.tables import BankMemberRow

# Under SQLite's default limit on bound variables (32766) and PostgreSQL's (65535).
_MAX_PARAMETERS = 30_000


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
        width = len(rows[0])
        per_statement = max(1, _MAX_PARAMETERS // width)
        group = "(" + ", ".join([self.mark] * width) + ")"
        connection = self.session.connection()
        returned: list[Any] = []
        for start in range(0, len(rows), per_statement):
            batch = rows[start : start + per_statement]
            sql = f"{head} VALUES {', '.join([group] * len(batch))} {tail}"
            result = connection.exec_driver_sql(sql, tuple(v for row in batch for v in row))
            if result.returns_rows:
                returned.extend(result.all())
        return returned

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
