"""Index content.submitted_at: the console's Overview counts submissions over a day and 30 days.

Without it each count reads the whole content table (a full scan at a million contents).

Revision ID: 0012
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_submitted_at"), ["submitted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_submitted_at"))
