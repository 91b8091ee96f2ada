"""Initial schema: content, banks, matches, actions, exchanges and API keys.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Column types spelled out here, not imported from the models, so this file never changes.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("scopes", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_api_key_key_digest")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_key_key_id")),
    )
    op.create_table(
        "bank_change",
        sa.Column("seq", ID_TYPE, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=True),
        sa.Column("signal_pk", sa.BigInteger(), nullable=True),
        sa.Column("member_pk", sa.BigInteger(), nullable=True),
        sa.Column("bank_pk", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bank_change")),
    )
    op.create_table(
        "content",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("submission_method", sa.String(length=32), nullable=False),
        sa.Column("content_url", sa.Text(), nullable=True),
        sa.Column("media_key", sa.Text(), nullable=True),
        sa.Column("additional_fields", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hashed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actioned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content")),
        sa.UniqueConstraint("content_id", name=op.f("uq_content_content_id")),
    )
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_content_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_content_updated_at"), ["updated_at"], unique=False)

    op.create_table(
        "exchange",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("api_type", sa.String(length=64), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("credentials", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("fetch_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("last_fetch_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_fetch_status", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange")),
        sa.UniqueConstraint("name", name=op.f("uq_exchange_name")),
    )
    op.create_table(
        "handler_config",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("handler_type", sa.String(length=64), nullable=False),
        sa.Column("config", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handler_config")),
        sa.UniqueConstraint("name", name=op.f("uq_handler_config_name")),
    )
    op.create_table(
        "signal",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("signal_value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signal")),
        sa.UniqueConstraint("signal_type", "signal_value", name=op.f("uq_signal_signal_type")),
    )
    op.create_table(
        "action_rule",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("must_have", JSON_TYPE, nullable=False),
        sa.Column("must_not_have", JSON_TYPE, nullable=False),
        sa.Column("handler_pk", ID_TYPE, nullable=False),
        sa.Column("params", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["handler_pk"],
            ["handler_config.id"],
            name=op.f("fk_action_rule_handler_pk_handler_config"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_rule")),
        sa.UniqueConstraint("name", name=op.f("uq_action_rule_name")),
    )
    op.create_table(
        "bank",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("thresholds", JSON_TYPE, nullable=False),
        sa.Column("exchange_pk", ID_TYPE, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_pk"],
            ["exchange.id"],
            name=op.f("fk_bank_exchange_pk_exchange"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank")),
        sa.UniqueConstraint("name", name=op.f("uq_bank_name")),
    )
    op.create_table(
        "content_signal",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("content_pk", ID_TYPE, nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("signal_value", sa.Text(), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_pk"],
            ["content.id"],
            name=op.f("fk_content_signal_content_pk_content"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_signal")),
        sa.UniqueConstraint("content_pk", "signal_type", name=op.f("uq_content_signal_content_pk")),
    )
    with op.batch_alter_table("content_signal", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_content_signal_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "content_submission",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("content_pk", ID_TYPE, nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("parameters", JSON_TYPE, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_pk"],
            ["content.id"],
            name=op.f("fk_content_submission_content_pk_content"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_submission")),
    )
    with op.batch_alter_table("content_submission", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_content_submission_content_pk"), ["content_pk"], unique=False
        )

    op.create_table(
        "delivery",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("content_pk", ID_TYPE, nullable=False),
        sa.Column("handler_pk", ID_TYPE, nullable=False),
        sa.Column("action_key", sa.String(length=128), nullable=False),
        sa.Column("rules_fired", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["content_pk"],
            ["content.id"],
            name=op.f("fk_delivery_content_pk_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["handler_pk"],
            ["handler_config.id"],
            name=op.f("fk_delivery_handler_pk_handler_config"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery")),
        sa.UniqueConstraint("content_pk", "action_key", name=op.f("uq_delivery_content_pk")),
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_handler_pk"), ["handler_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_delivery_status"), ["status"], unique=False)

    op.create_table(
        "exchange_checkpoint",
        sa.Column("exchange_pk", ID_TYPE, nullable=False),
        sa.Column("checkpoint", JSON_TYPE, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["exchange_pk"],
            ["exchange.id"],
            name=op.f("fk_exchange_checkpoint_exchange_pk_exchange"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("exchange_pk", name=op.f("pk_exchange_checkpoint")),
    )
    op.create_table(
        "bank_member",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("bank_pk", ID_TYPE, nullable=False),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("tags", JSON_TYPE, nullable=False),
        sa.Column("exchange_metadata", JSON_TYPE, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_pk"], ["bank.id"], name=op.f("fk_bank_member_bank_pk_bank"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_member")),
    )
    with op.batch_alter_table("bank_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bank_member_bank_pk"), ["bank_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_bank_member_content_id"), ["content_id"], unique=False)

    op.create_table(
        "delivery_attempt",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("delivery_pk", ID_TYPE, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_pk"],
            ["delivery.id"],
            name=op.f("fk_delivery_attempt_delivery_pk_delivery"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempt")),
    )
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempt_delivery_pk"), ["delivery_pk"], unique=False
        )

    op.create_table(
        "match",
        sa.Column("id", ID_TYPE, nullable=False),
        sa.Column("content_pk", ID_TYPE, nullable=False),
        sa.Column("bank_pk", ID_TYPE, nullable=False),
        sa.Column("member_pk", ID_TYPE, nullable=False),
        sa.Column("signal_type", sa.String(length=64), nullable=False),
        sa.Column("content_signal", sa.Text(), nullable=False),
        sa.Column("member_signal", sa.Text(), nullable=False),
        sa.Column("distance", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["bank_pk"], ["bank.id"], name=op.f("fk_match_bank_pk_bank"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["content_pk"],
            ["content.id"],
            name=op.f("fk_match_content_pk_content"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_pk"],
            ["bank_member.id"],
            name=op.f("fk_match_member_pk_bank_member"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match")),
    )
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.create_index("ix_match_bank_created", ["bank_pk", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_match_content_pk"), ["content_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_match_created_at"), ["created_at"], unique=False)

    op.create_table(
        "member_signal",
        sa.Column("member_pk", ID_TYPE, nullable=False),
        sa.Column("signal_pk", ID_TYPE, nullable=False),
        sa.ForeignKeyConstraint(
            ["member_pk"],
            ["bank_member.id"],
            name=op.f("fk_member_signal_member_pk_bank_member"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["signal_pk"],
            ["signal.id"],
            name=op.f("fk_member_signal_signal_pk_signal"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_pk", "signal_pk", name=op.f("pk_member_signal")),
    )
    with op.batch_alter_table("member_signal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_signal_signal_pk"), ["signal_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("member_signal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_signal_signal_pk"))

    op.drop_table("member_signal")
    with op.batch_alter_table("match", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_created_at"))
        batch_op.drop_index(batch_op.f("ix_match_content_pk"))
        batch_op.drop_index("ix_match_bank_created")

    op.drop_table("match")
    with op.batch_alter_table("delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempt_delivery_pk"))

    op.drop_table("delivery_attempt")
    with op.batch_alter_table("bank_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bank_member_content_id"))
        batch_op.drop_index(batch_op.f("ix_bank_member_bank_pk"))

    op.drop_table("bank_member")
    op.drop_table("exchange_checkpoint")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_status"))
        batch_op.drop_index(batch_op.f("ix_delivery_handler_pk"))
        batch_op.drop_index(batch_op.f("ix_delivery_created_at"))

    op.drop_table("delivery")
    with op.batch_alter_table("content_submission", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_submission_content_pk"))

    op.drop_table("content_submission")
    with op.batch_alter_table("content_signal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_signal_created_at"))

    op.drop_table("content_signal")
    op.drop_table("bank")
    op.drop_table("action_rule")
    op.drop_table("signal")
    op.drop_table("handler_config")
    op.drop_table("exchange")
    with op.batch_alter_table("content", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_content_updated_at"))
        batch_op.drop_index(batch_op.f("ix_content_status"))

    op.drop_table("content")
    op.drop_table("bank_change")
    op.drop_table("api_key")
