"""Retroaction: retroactive matches, the automatic pass's cursor, rescans; stats indexes.

Revision ID: 0007
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from the models, so this file never changes.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("retroactive", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index("ix_content_submitted_at", "content", ["submitted_at"])
    op.create_index("ix_content_submission_submitted_at", "content_submission", ["submitted_at"])
    op.create_table(
        "retroaction_cursor",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_retroaction_cursor"),
    )
    # Members banked before this upgrade were matched live against the content of their
    # time: the first automatic pass starts after them, not with the whole bank history.
    op.execute(
        "INSERT INTO retroaction_cursor (name, position, updated_at) "
        "SELECT 'automatic', COALESCE(MAX(id), 0), CURRENT_TIMESTAMP FROM bank_member"
    )
    op.create_table(
        "retroaction_scan",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("banks", JSON_TYPE, nullable=False),
        sa.Column("active_key", sa.String(length=512), nullable=True),
        sa.Column("since", TIMESTAMP, nullable=False),
        sa.Column("until", TIMESTAMP, nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("scanned", sa.BigInteger(), nullable=False),
        sa.Column("matched", sa.BigInteger(), nullable=False),
        sa.Column("cursor", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_retroaction_scan"),
        sa.UniqueConstraint("active_key", name="uq_retroaction_scan_active_key"),
    )


def downgrade() -> None:
    op.drop_table("retroaction_scan")
    op.drop_table("retroaction_cursor")
    op.drop_index("ix_content_submission_submitted_at", table_name="content_submission")
    op.drop_index("ix_content_submitted_at", table_name="content")
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.drop_column("retroactive")
