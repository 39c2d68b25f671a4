"""SMART Backend Services authorization: registered clients, seen assertion ids, the token signing secret,
and which client created each Subscription (notification payloads follow that client's scopes).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("jwks", sa.Text()),
        sa.Column("jwks_url", sa.Text()),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("organization", sa.String(100)),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "auth_jti",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("client_id", "jti", name="uq_auth_jti"),
    )
    op.create_index("ix_auth_jti_expires", "auth_jti", ["expires_at"])
    op.create_table(
        "auth_secret",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )
    op.create_table(
        "subscription_client",
        sa.Column("subscription_id", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subscription_client")
    op.drop_table("auth_secret")
    op.drop_index("ix_auth_jti_expires", "auth_jti")
    op.drop_table("auth_jti")
    op.drop_table("auth_client")
