"""Past matches outlive their bank member and their bank (ON DELETE SET NULL, not CASCADE).

A match is the record that content matched and was acted on. Deleting a member (an
exchange withdrawing a record, an admin removing it) or a whole bank used to delete its
matches and their write-back history with them, so ``GET /matches/<id>`` answered 404 for
content whose record still said it had matched. Now ``match.member_pk`` and
``match.bank_pk`` become NULL instead, and the match keeps what it stored (signals,
distance, time).

The console's hourly match counters are keyed by bank; a bank's deletion no longer deletes
its matches, so a trigger moves that bank's counters to bank 0 ("no bank"), keeping the
invariant that every counter equals the ``count(*)`` it replaces.

SQLite rebuilds ``match`` to change its foreign keys. With foreign keys on (they are, in
this transaction), dropping the old table would cascade to ``exchange_opinion`` and drops
the table's counter triggers, so both are saved first and put back after.

Revision ID: 0022
Revises: 0020
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: (column, parent table, constraint name) of each reference from a match.
REFERENCES = [
    ("member_pk", "bank_member", "fk_match_member_pk_bank_member"),
    ("bank_pk", "bank", "fk_match_bank_pk_bank"),
]
MATCH_SERIES = "('matches', 'retro_matches')"

SQLITE_BANK_TRIGGER = f"""CREATE TRIGGER tally_bank_deleted AFTER DELETE ON bank BEGIN
     INSERT INTO hourly_tally (hour, series, bank_pk, n)
     SELECT hour, series, 0, n FROM hourly_tally
     WHERE bank_pk = OLD.id AND series IN {MATCH_SERIES}
     ON CONFLICT (hour, series, bank_pk) DO UPDATE SET n = n + excluded.n;
     DELETE FROM hourly_tally WHERE bank_pk = OLD.id AND series IN {MATCH_SERIES};
   END"""
POSTGRES_BANK_TRIGGER = [
    f"""CREATE FUNCTION tally_bank_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN
         INSERT INTO hourly_tally (hour, series, bank_pk, n)
         SELECT hour, series, 0, n FROM hourly_tally
         WHERE bank_pk = OLD.id AND series IN {MATCH_SERIES}
         ORDER BY hour, series
         ON CONFLICT (hour, series, bank_pk) DO UPDATE SET n = hourly_tally.n + EXCLUDED.n;
         DELETE FROM hourly_tally WHERE bank_pk = OLD.id AND series IN {MATCH_SERIES};
         RETURN NULL;
       END $$""",
    """CREATE TRIGGER tally_bank_deleted AFTER DELETE ON bank
       FOR EACH ROW EXECUTE FUNCTION tally_bank_deleted()""",
]


def _alter(ondelete: str, nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    triggers: list[str] = []
    if sqlite:
        triggers = [
            sql
            for (sql,) in op.get_bind().execute(
                sa.text(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'match'"
                )
            )
        ]
        op.execute("CREATE TEMP TABLE keep_exchange_opinion AS SELECT * FROM exchange_opinion")
    with op.batch_alter_table("match", schema=None) as batch_op:
        for column, parent, name in REFERENCES:
            batch_op.drop_constraint(name, type_="foreignkey")
            batch_op.alter_column(column, existing_type=ID_TYPE, nullable=nullable)
            batch_op.create_foreign_key(name, parent, [column], ["id"], ondelete=ondelete)
    if sqlite:
        op.execute(
            "INSERT INTO exchange_opinion SELECT * FROM keep_exchange_opinion "
            "WHERE id NOT IN (SELECT id FROM exchange_opinion) "
            "AND (match_pk IS NULL OR match_pk IN (SELECT id FROM match))"
        )
        op.execute("DROP TABLE keep_exchange_opinion")
        for sql in triggers:
            op.execute(sql)


def upgrade() -> None:
    _alter("SET NULL", nullable=True)
    if op.get_bind().dialect.name == "postgresql":
        for statement in POSTGRES_BANK_TRIGGER:
            op.execute(statement)
    else:
        op.execute(SQLITE_BANK_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER tally_bank_deleted ON bank")
        op.execute("DROP FUNCTION tally_bank_deleted()")
    else:
        op.execute("DROP TRIGGER tally_bank_deleted")
    # The old schema cannot hold a match without its member or bank: they go, as they
    # would have when the member was deleted (their counters with them, by trigger).
    op.execute("DELETE FROM match WHERE member_pk IS NULL OR bank_pk IS NULL")
    op.execute(f"DELETE FROM hourly_tally WHERE bank_pk = 0 AND series IN {MATCH_SERIES}")
    _alter("CASCADE", nullable=False)
