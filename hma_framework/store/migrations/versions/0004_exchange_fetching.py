"""Exchanges: fetch status and counters, members found by external id, opinion write-backs.

Handler secrets are not rewritten here: a migration has no secrets key, so the code reads
plain (older) and sealed secrets alike and seals them on the next write.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("exchange", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("last_succeeded_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("items_added", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("items_updated", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("items_deleted", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("items_skipped", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("up_to_date", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_bank_member_bank_external", "bank_member", ["bank_pk", "external_id"])
    op.create_table(
        "exchange_opinion",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("match_pk", BIG_ID, nullable=True),
        sa.Column("member_pk", BIG_ID, nullable=True),
        sa.Column("exchange_pk", BIG_ID, nullable=True),
        sa.Column("opinion", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["match_pk"], ["match.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["member_pk"], ["bank_member.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["exchange_pk"], ["exchange.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exchange_opinion_match_pk", "exchange_opinion", ["match_pk"])


def downgrade() -> None:
    op.drop_index("ix_exchange_opinion_match_pk", table_name="exchange_opinion")
    op.drop_table("exchange_opinion")
    op.drop_index("ix_bank_member_bank_external", table_name="bank_member")
    with op.batch_alter_table("exchange", schema=None) as batch_op:
        for column in (
            "up_to_date",
            "items_skipped",
            "items_deleted",
            "items_updated",
            "items_added",
            "last_succeeded_at",
            "last_started_at",
        ):
            batch_op.drop_column(column)
