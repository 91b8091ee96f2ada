"""Counters for the console: members per bank and hourly counts, kept by triggers.

The Overview and the Banks pages used ``count(*)`` over the content, match, delivery and
bank-member tables; at a million rows that alone took longer than a page may. These two
tables hold the same numbers, and database triggers keep them right in the same transaction
as every write, whichever code path writes (the API, bulk import, exchange sync, cascading
deletes), so no writer can forget them. On PostgreSQL the triggers run once per statement
over its transition table, so a 10,000-row bulk insert costs one counter update, not 10,000.

Invariant (tests/test_console_tallies.py checks it): every counter equals the ``count(*)``
it replaces.

Revision ID: 0014
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (series, table, timestamp column, bank column or None, condition) -> hourly_tally rows.
#: Matches are kept per bank (bank_pk) and split live / retroactive; the rest use bank_pk 0.
SERIES = [
    ("submissions", "content_submission", "submitted_at", None, None),
    ("matches", "match", "created_at", "bank_pk", "NOT {row}.retroactive"),
    ("retro_matches", "match", "created_at", "bank_pk", "{row}.retroactive"),
    ("actions", "delivery", "created_at", None, None),
]


def _hour(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24')"
    return f"substr({column}, 1, 13)"  # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'


def _bank(bank: str | None, row: str) -> str:
    return f"{row}.{bank}" if bank else "0"


def _sqlite_triggers() -> list[str]:
    statements = [
        """CREATE TRIGGER tally_member_added AFTER INSERT ON bank_member BEGIN
             INSERT INTO bank_tally (bank_pk, members) VALUES (NEW.bank_pk, 1)
             ON CONFLICT (bank_pk) DO UPDATE SET members = members + 1;
           END""",
        """CREATE TRIGGER tally_member_removed AFTER DELETE ON bank_member BEGIN
             UPDATE bank_tally SET members = members - 1 WHERE bank_pk = OLD.bank_pk;
           END""",
    ]
    for series, table, column, bank, condition in SERIES:
        when_new = f" WHEN {condition.format(row='NEW')}" if condition else ""
        when_old = f" WHEN {condition.format(row='OLD')}" if condition else ""
        statements += [
            f"""CREATE TRIGGER tally_{series}_added AFTER INSERT ON "{table}"{when_new} BEGIN
                 INSERT INTO hourly_tally (hour, series, bank_pk, n)
                 VALUES ({_hour("sqlite", "NEW." + column)}, '{series}', {_bank(bank, "NEW")}, 1)
                 ON CONFLICT (hour, series, bank_pk) DO UPDATE SET n = n + 1;
               END""",
            f"""CREATE TRIGGER tally_{series}_removed AFTER DELETE ON "{table}"{when_old} BEGIN
                 UPDATE hourly_tally SET n = n - 1
                 WHERE hour = {_hour("sqlite", "OLD." + column)} AND series = '{series}'
                   AND bank_pk = {_bank(bank, "OLD")};
               END""",
        ]
    return statements


def _postgres_triggers() -> list[str]:
    statements = [
        """CREATE FUNCTION tally_members_added() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO bank_tally (bank_pk, members)
             SELECT bank_pk, count(*) FROM added GROUP BY bank_pk ORDER BY bank_pk
             ON CONFLICT (bank_pk) DO UPDATE SET members = bank_tally.members + EXCLUDED.members;
             RETURN NULL;
           END $$""",
        """CREATE FUNCTION tally_members_removed() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             UPDATE bank_tally SET members = bank_tally.members - gone.n
             FROM (SELECT bank_pk, count(*) AS n FROM removed GROUP BY bank_pk) AS gone
             WHERE bank_tally.bank_pk = gone.bank_pk;
             RETURN NULL;
           END $$""",
        """CREATE TRIGGER tally_member_added AFTER INSERT ON bank_member
           REFERENCING NEW TABLE AS added FOR EACH STATEMENT
           EXECUTE FUNCTION tally_members_added()""",
        """CREATE TRIGGER tally_member_removed AFTER DELETE ON bank_member
           REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
           EXECUTE FUNCTION tally_members_removed()""",
    ]
    for series, table, column, bank, condition in SERIES:
        where = f"WHERE {condition.format(row='r')}" if condition else ""
        grouped = (
            f"SELECT {_hour('postgresql', 'r.' + column)} AS hour, {_bank(bank, 'r')} AS bank_pk, "
            f"count(*) AS n FROM {{rows}} AS r {where} GROUP BY 1, 2"
        )
        statements += [
            f"""CREATE FUNCTION tally_{series}_added() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 INSERT INTO hourly_tally (hour, series, bank_pk, n)
                 SELECT hour, '{series}', bank_pk, n FROM ({grouped.format(rows="added")}) AS g
                 ORDER BY hour, bank_pk
                 ON CONFLICT (hour, series, bank_pk) DO UPDATE SET n = hourly_tally.n + EXCLUDED.n;
                 RETURN NULL;
               END $$""",
            f"""CREATE FUNCTION tally_{series}_removed() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                 UPDATE hourly_tally SET n = hourly_tally.n - g.n
                 FROM ({grouped.format(rows="removed")}) AS g
                 WHERE hourly_tally.hour = g.hour AND hourly_tally.series = '{series}'
                   AND hourly_tally.bank_pk = g.bank_pk;
                 RETURN NULL;
               END $$""",
            f"""CREATE TRIGGER tally_{series}_added AFTER INSERT ON "{table}"
               REFERENCING NEW TABLE AS added FOR EACH STATEMENT
               EXECUTE FUNCTION tally_{series}_added()""",
            f"""CREATE TRIGGER tally_{series}_removed AFTER DELETE ON "{table}"
               REFERENCING OLD TABLE AS removed FOR EACH STATEMENT
               EXECUTE FUNCTION tally_{series}_removed()""",
        ]
    return statements


def _backfill(dialect: str) -> list[str]:
    statements = [
        "INSERT INTO bank_tally (bank_pk, members) "
        "SELECT bank_pk, count(*) FROM bank_member GROUP BY bank_pk"
    ]
    for series, table, column, bank, condition in SERIES:
        where = f"WHERE {condition.format(row='r')}" if condition else ""
        statements.append(
            f"INSERT INTO hourly_tally (hour, series, bank_pk, n) "
            f"SELECT {_hour(dialect, 'r.' + column)}, '{series}', {_bank(bank, 'r')}, count(*) "
            f'FROM "{table}" AS r {where} GROUP BY 1, 3'
        )
    return statements


def upgrade() -> None:
    op.create_table(
        "bank_tally",
        sa.Column("bank_pk", sa.BigInteger(), nullable=False),
        sa.Column("members", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_pk"], ["bank.id"], name=op.f("fk_bank_tally_bank_pk_bank"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("bank_pk", name=op.f("pk_bank_tally")),
    )
    op.create_table(
        "hourly_tally",
        sa.Column("hour", sa.String(length=13), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("bank_pk", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour", "series", "bank_pk", name=op.f("pk_hourly_tally")),
    )
    dialect = op.get_bind().dialect.name
    for statement in _backfill(dialect):
        op.execute(statement)
    triggers = _postgres_triggers() if dialect == "postgresql" else _sqlite_triggers()
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    names = ["member"] + [series for series, *_ in SERIES]
    tables = {"member": "bank_member"} | {series: table for series, table, *_ in SERIES}
    for name in names:
        for event in ("added", "removed"):
            if dialect == "postgresql":
                op.execute(f'DROP TRIGGER tally_{name}_{event} ON "{tables[name]}"')
            else:
                op.execute(f"DROP TRIGGER tally_{name}_{event}")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION tally_members_added()")
        op.execute("DROP FUNCTION tally_members_removed()")
        for series, *_ in SERIES:
            op.execute(f"DROP FUNCTION tally_{series}_added()")
            op.execute(f"DROP FUNCTION tally_{series}_removed()")
    op.drop_table("hourly_tally")
    op.drop_table("bank_tally")
