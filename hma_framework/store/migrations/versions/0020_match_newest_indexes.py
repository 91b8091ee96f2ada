"""Indexes that hand over "the newest matches" under each filter, already in page order.

The Matches page (and ``GET /matches``) listed matches by ``id`` descending. With a bank
filter both planners walked ``ix_match_bank_created`` (bank, created_at) and sorted every
match of the bank to find the newest 50: about a second at 1M matches. A period filter did
the same through ``ix_match_created_at``, and a quiet last hour scanned the whole table.
The listing now orders by ``(created_at, id)`` descending, and each index below leads with
one filter's column and ends with that key, so a page reads about 50 index entries from the
newest end of its window, and the keyset cursor is an index range. They replace the two
indexes they extend (same leading columns, so the per-period statistics still use them).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEWEST = {
    "ix_match_newest": ["created_at", "id"],
    "ix_match_bank_newest": ["bank_pk", "created_at", "id"],
    "ix_match_signal_type_newest": ["signal_type", "created_at", "id"],
    "ix_match_kind_newest": ["retroactive", "created_at", "id"],
}


def upgrade() -> None:
    for name, columns in NEWEST.items():
        op.create_index(name, "match", columns)
    op.drop_index("ix_match_bank_created", table_name="match")
    op.drop_index("ix_match_created_at", table_name="match")


def downgrade() -> None:
    op.create_index("ix_match_created_at", "match", ["created_at"])
    op.create_index("ix_match_bank_created", "match", ["bank_pk", "created_at"])
    for name in NEWEST:
        op.drop_index(name, table_name="match")
