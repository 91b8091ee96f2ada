"""Signal variants: a photo with an EXIF orientation keeps its displayed and stored hashes.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The naming convention names unique constraints after their first column only.
CONTENT_SIGNAL_UNIQUE = "uq_content_signal_content_pk"


def upgrade() -> None:
    with op.batch_alter_table("content_signal", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("variant", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.drop_constraint(CONTENT_SIGNAL_UNIQUE, type_="unique")
        batch_op.create_unique_constraint(
            CONTENT_SIGNAL_UNIQUE, ["content_pk", "signal_type", "variant"]
        )
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("variant", sa.String(length=32), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.drop_column("variant")
    # Keep one reading per content and signal type: the one a single-reading hasher records.
    op.execute("DELETE FROM content_signal WHERE variant = 'stored'")
    with op.batch_alter_table("content_signal", schema=None) as batch_op:
        batch_op.drop_constraint(CONTENT_SIGNAL_UNIQUE, type_="unique")
        batch_op.create_unique_constraint(CONTENT_SIGNAL_UNIQUE, ["content_pk", "signal_type"])
        batch_op.drop_column("variant")
