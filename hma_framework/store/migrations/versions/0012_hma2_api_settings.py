"""HMA 2.0's per-API settings: an exchange API's shared credentials, a signal type's ratio.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here, not imported from the models, so this file never changes.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "exchange_api_credentials",
        sa.Column("api", sa.String(length=64), nullable=False),
        sa.Column("credentials", JSON_TYPE, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("api", name=op.f("pk_exchange_api_credentials")),
    )
    op.create_table(
        "signal_type_setting",
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("enabled_ratio", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signal_type", name=op.f("pk_signal_type_setting")),
    )


def downgrade() -> None:
    op.drop_table("signal_type_setting")
    op.drop_table("exchange_api_credentials")
