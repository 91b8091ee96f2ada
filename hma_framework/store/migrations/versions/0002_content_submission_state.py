"""Content submission state: digests, upload expiry, media type, stage job; unique matches.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_type", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("params_digest", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("upload_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("job_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_match_content_pk"),
            ["content_pk", "member_pk", "signal_type", "content_signal"],
        )


def downgrade() -> None:
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_match_content_pk"), type_="unique")
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.drop_column("job_id")
        batch_op.drop_column("upload_expires_at")
        batch_op.drop_column("params_digest")
        batch_op.drop_column("media_type")
