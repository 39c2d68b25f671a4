"""Durable outbox (side effects delivered after commit), subscription state, and sync cursors (inbound pulls).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "outbox_message",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ordering_key", sa.String(300), nullable=False),
        sa.Column("dedupe_key", sa.String(400), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime()),
        sa.Column("last_error", sa.Text()),
        sa.UniqueConstraint("dedupe_key", name="uq_outbox_dedupe"),
    )
    op.create_index("ix_outbox_due", "outbox_message", ["status", "next_attempt_at"])
    op.create_index("ix_outbox_ordering", "outbox_message", ["ordering_key", "pk"])
    op.create_table(
        "subscription_state",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("last_notified_at", sa.DateTime()),
        sa.Column("base_url", sa.Text()),
    )
    op.create_table(
        "sync_cursor",
        sa.Column("name", sa.String(300), primary_key=True),
        sa.Column("value", sa.Text()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_error_at", sa.DateTime()),
    )


def downgrade() -> None:
    op.drop_table("sync_cursor")
    op.drop_table("subscription_state")
    op.drop_table("outbox_message")
