"""Actions: handler secrets, rule write-back, delivery snapshots and jobs, attempt details.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from the models, so this file never changes.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
EMPTY_OBJECT = sa.text("'{}'")


def upgrade() -> None:
    with op.batch_alter_table("handler_config", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("secrets", JSON_TYPE, nullable=False, server_default=EMPTY_OBJECT)
        )
    with op.batch_alter_table("action_rule", schema=None) as batch_op:
        batch_op.add_column(sa.Column("write_back", sa.String(length=32), nullable=True))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("params", JSON_TYPE, nullable=False, server_default=EMPTY_OBJECT)
        )
        batch_op.add_column(
            sa.Column("request", JSON_TYPE, nullable=False, server_default=EMPTY_OBJECT)
        )
        batch_op.add_column(
            sa.Column("round_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("job_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_column("detail")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("job_id")
        batch_op.drop_column("round_attempts")
        batch_op.drop_column("request")
        batch_op.drop_column("params")
    with op.batch_alter_table("action_rule", schema=None) as batch_op:
        batch_op.drop_column("write_back")
    with op.batch_alter_table("handler_config", schema=None) as batch_op:
        batch_op.drop_column("secrets")
