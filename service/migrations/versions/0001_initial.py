"""Initial schema: resources, versions and the search index.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SORTABLE_TEXT = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def _index_table(name, *columns, indexes):
    op.create_table(
        name,
        sa.Column("resource_pk", PK, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        *columns,
    )
    op.create_index(f"ix_{name}_resource", name, ["resource_pk"])
    for cols in indexes:
        op.create_index(f"ix_{name}_{'_'.join(cols)}", name, ["type", "name", *cols])


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("content", sa.Text()),
        sa.UniqueConstraint("type", "id", name="uq_resource_type_id"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["type", "last_updated"])
    op.create_index("ix_resource_updated", "resource", ["last_updated"])
    op.create_table(
        "resource_version",
        sa.Column("pk", PK, primary_key=True, autoincrement=True),
        sa.Column("resource_pk", PK, sa.ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_updated", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("content", sa.Text()),
        sa.UniqueConstraint("resource_pk", "version", name="uq_resource_version"),
    )
    op.create_index("ix_resource_version_type_updated", "resource_version", ["type", "last_updated"])
    op.create_index("ix_resource_version_updated", "resource_version", ["last_updated"])

    _index_table("sp_string", sa.Column("value", SORTABLE_TEXT, nullable=False), sa.Column("exact", sa.Text(), nullable=False),
                 indexes=(("value",),))
    _index_table("sp_token", sa.Column("system", sa.Text()), sa.Column("code", sa.Text()), sa.Column("text", SORTABLE_TEXT),
                 sa.Column("type_system", sa.Text()), sa.Column("type_code", sa.Text()),
                 indexes=(("code", "system"), ("text",)))
    _index_table("sp_reference", sa.Column("target_type", sa.String(64)), sa.Column("target_id", sa.String(64)),
                 sa.Column("url", sa.Text()), sa.Column("ident_system", sa.Text()), sa.Column("ident_value", sa.Text()),
                 indexes=(("target_id", "target_type"), ("url",), ("ident_value",)))
    op.create_index("ix_sp_reference_target", "sp_reference", ["target_type", "target_id"])
    _index_table("sp_date", sa.Column("low", sa.DateTime(), nullable=False), sa.Column("high", sa.DateTime(), nullable=False),
                 indexes=(("low",), ("high",)))
    _index_table("sp_number", sa.Column("value", sa.Float(), nullable=False), indexes=(("value",),))
    _index_table("sp_quantity", sa.Column("low", sa.Float(), nullable=False), sa.Column("high", sa.Float(), nullable=False),
                 sa.Column("system", sa.Text()), sa.Column("code", sa.Text()), indexes=(("low",), ("code", "system")))
    _index_table("sp_uri", sa.Column("value", SORTABLE_TEXT, nullable=False), indexes=(("value",),))


def downgrade() -> None:
    for name in ("sp_uri", "sp_quantity", "sp_number", "sp_date", "sp_reference", "sp_token", "sp_string",
                 "resource_version", "resource"):
        op.drop_table(name)
