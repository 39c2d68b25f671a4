"""The audit trail in its own append-only tables: audit_log (one row per AuditEvent, hash-chained) and
audit_log_entity (the resources each event names), replacing AuditEvents stored as resources + audit_chain.

Existing AuditEvents move over in chain order with their seq and hash (the hash was computed over the same
canonical JSON that audit_log.event now holds, so the chain stays verifiable); they are then removed from the
resource tables, and audit_chain is dropped. See service/audit_log.py and docs/security.md#audit.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PAGE = 1000


def upgrade() -> None:
    log = op.create_table(
        "audit_log",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("recorded", sa.DateTime(), nullable=False),
        sa.Column("subtype", sa.String(64), nullable=False),
        sa.Column("action", sa.String(1), nullable=False),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("client", sa.Text()),
        sa.Column("organization", sa.Text()),
        sa.Column("purpose", sa.String(64)),
        sa.Column("disclosure", sa.Boolean(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_log_recorded", "audit_log", ["recorded"])
    entity = op.create_table(
        "audit_log_entity",
        sa.Column("reference", sa.String(140), primary_key=True),
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
    )
    _move_events(op.get_bind(), log, entity)
    op.drop_table("audit_chain")


def _move_events(conn, log: sa.Table, entity: sa.Table) -> None:
    """Chain rows with their events, in seq order, into audit_log; then the AuditEvent resources are deleted."""
    from service import audit_log  # the columns an event's JSON gives (the module this revision introduced)

    after = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT c.seq, c.hash, r.content FROM audit_chain c JOIN resource r ON r.type = 'AuditEvent' AND r.id = c.event_id"
            " WHERE c.seq > :after ORDER BY c.seq LIMIT :page"), {"after": after, "page": PAGE}).all()
        for seq, digest, content in rows:
            ev = json.loads(content)
            text = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            conn.execute(log.insert().values(seq=seq, event=text, hash=digest, **audit_log.columns(ev)))
            refs = audit_log.references(ev)
            if refs:
                conn.execute(entity.insert(), [{"reference": r, "seq": seq} for r in refs])
        if len(rows) < PAGE:
            break
        after = rows[-1][0]
    audit_pks = "SELECT pk FROM resource WHERE type = 'AuditEvent'"
    for table in sa.inspect(conn).get_table_names():
        if table.startswith("sp_") or table == "resource_version":
            conn.execute(sa.text(f"DELETE FROM {table} WHERE resource_pk IN ({audit_pks})"))
    conn.execute(sa.text("DELETE FROM resource WHERE type = 'AuditEvent'"))


def downgrade() -> None:
    """The tables only: events recorded since 0005 are not turned back into resources (export them first)."""
    op.create_table(
        "audit_chain",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_audit_chain_event"),
    )
    op.drop_table("audit_log_entity")
    op.drop_index("ix_audit_log_recorded", "audit_log")
    op.drop_table("audit_log")
