"""Index snapshots shared through the database, for hosts with an empty data folder.

Revision ID: 0011
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from the models, so this file never changes.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "index_snapshot",
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("files", JSON_TYPE, nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signal_type", name=op.f("pk_index_snapshot")),
    )
    op.create_table(
        "index_snapshot_chunk",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_snapshot_chunk")),
        sa.UniqueConstraint(
            "signal_type",
            "generation",
            "name",
            "chunk",
            name=op.f("uq_index_snapshot_chunk_signal_type"),
        ),
    )


def downgrade() -> None:
    op.drop_table("index_snapshot_chunk")
    op.drop_table("index_snapshot")
