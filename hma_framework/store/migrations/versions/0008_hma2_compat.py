"""HMA 2.0 compatibility: a bank's matching ratio, a member's disable-until time.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("bank", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("matching_enabled_ratio", sa.Float(), nullable=False, server_default="1.0")
        )
    with op.batch_alter_table("bank_member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_until", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_member", schema=None) as batch_op:
        batch_op.drop_column("disabled_until")
    with op.batch_alter_table("bank", schema=None) as batch_op:
        batch_op.drop_column("matching_enabled_ratio")
