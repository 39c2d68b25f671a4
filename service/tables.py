"""SQLAlchemy tables: current resources, their versions, and one search index table per parameter kind.

`resource` holds the current version's JSON exactly as served; `resource_version` holds every
version (history, vread). Search index rows (sp_*) exist only for current, non-deleted versions and
are written in the same transaction as the resource. Schema changes go through Alembic migrations
(service/migrations); this module mirrors the latest one.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql

metadata = MetaData()

PK = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements only INTEGER PRIMARY KEY
# Byte-order text on PostgreSQL so that prefix LIKE 'abc%' and range scans can use a btree index.
SORTABLE_TEXT = Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

resource = Table(
    "resource", metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("content", Text),
    UniqueConstraint("type", "id", name="uq_resource_type_id"),
    Index("ix_resource_type_updated", "type", "last_updated"),
    Index("ix_resource_updated", "last_updated"),
)

resource_version = Table(
    "resource_version", metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("resource_pk", PK, ForeignKey("resource.pk", ondelete="CASCADE"), nullable=False),
    Column("type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("last_updated", DateTime, nullable=False),
    Column("method", String(8), nullable=False),
    Column("content", Text),
    UniqueConstraint("resource_pk", "version", name="uq_resource_version"),
    Index("ix_resource_version_type_updated", "type", "last_updated"),
    Index("ix_resource_version_updated", "last_updated"),
)


def _index_table(name: str, *columns: Column, indexes: tuple[tuple[str, ...], ...]) -> Table:
    """A search index table: one row per indexed value of a (type, name) search parameter.

    No foreign key to resource: rows are only written and removed together with their resource in
    one transaction, and a key check per row would cost ~15 lookups per create.
    """
    return Table(
        name, metadata,
        Column("resource_pk", PK, nullable=False),
        Column("type", String(64), nullable=False),
        Column("name", String(100), nullable=False),
        *columns,
        Index(f"ix_{name}_resource", "resource_pk"),
        *(Index(f"ix_{name}_{'_'.join(cols)}", "type", "name", *cols) for cols in indexes),
    )


sp_string = _index_table(
    "sp_string", Column("value", SORTABLE_TEXT, nullable=False), Column("exact", Text, nullable=False),
    indexes=(("value",),))
sp_token = _index_table(
    "sp_token", Column("system", Text), Column("code", Text), Column("text", SORTABLE_TEXT),
    Column("type_system", Text), Column("type_code", Text),
    indexes=(("code", "system"), ("text",)))
sp_reference = _index_table(
    "sp_reference", Column("target_type", String(64)), Column("target_id", String(64)), Column("url", Text),
    Column("ident_system", Text), Column("ident_value", Text),
    indexes=(("target_id", "target_type"), ("url",), ("ident_value",)))
sp_date = _index_table(
    "sp_date", Column("low", DateTime, nullable=False), Column("high", DateTime, nullable=False),
    indexes=(("low",), ("high",)))
sp_number = _index_table(
    "sp_number", Column("value", Float, nullable=False), indexes=(("value",),))
sp_quantity = _index_table(
    "sp_quantity", Column("low", Float, nullable=False), Column("high", Float, nullable=False),
    Column("system", Text), Column("code", Text), indexes=(("low",), ("code", "system")))
sp_uri = _index_table(
    "sp_uri", Column("value", SORTABLE_TEXT, nullable=False), indexes=(("value",),))

# Compartment and _revinclude lookups go from a target to its referrers, whatever the parameter.
Index("ix_sp_reference_target", sp_reference.c.target_type, sp_reference.c.target_id)

INDEX_TABLES: dict[str, Table] = {
    "string": sp_string, "token": sp_token, "reference": sp_reference, "date": sp_date,
    "number": sp_number, "quantity": sp_quantity, "uri": sp_uri,
}

# Side effects (subscription notifications, later outbound sync) written in the same transaction as the
# change that caused them and delivered after commit by service/outbox.py (migration 0002). `target`
# names what a row is for (Subscription/{id}: the endpoint is read from it at delivery); rows with the
# same ordering_key are delivered in `pk` order; dedupe_key makes an enqueue idempotent.
outbox_message = Table(
    "outbox_message", metadata,
    Column("pk", PK, primary_key=True, autoincrement=True),
    Column("channel", String(32), nullable=False),  # rest-hook
    Column("target", String(200), nullable=False),
    Column("kind", String(32), nullable=False),  # handshake | heartbeat | event-notification
    Column("ordering_key", String(300), nullable=False),
    Column("dedupe_key", String(400), nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead | cancelled
    Column("attempts", Integer, nullable=False),  # delivery attempts started (a claim counts one)
    Column("next_attempt_at", DateTime, nullable=False),  # also the lease of a claimed row
    Column("created_at", DateTime, nullable=False),
    Column("delivered_at", DateTime),
    Column("last_error", Text),
    UniqueConstraint("dedupe_key", name="uq_outbox_dedupe"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_ordering", "ordering_key", "pk"),
)

# Per topic-based Subscription: events since it started (numbered in the writing transaction, so
# concurrent writers never share a number), when it was last notified (heartbeats), and the FHIR base
# URL its notifications name.
subscription_state = Table(
    "subscription_state", metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("events", BigInteger, nullable=False),
    Column("last_notified_at", DateTime),
    Column("base_url", Text),
)

# Where an inbound pull got to (e.g. a referring server's Task _lastUpdated), advanced only after commit,
# with the failures met on the way (error_count since the row was created, the latest one's text and time).
sync_cursor = Table(
    "sync_cursor", metadata,
    Column("name", String(300), primary_key=True),
    Column("value", Text),
    Column("updated_at", DateTime, nullable=False),
    Column("error_count", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("last_error_at", DateTime),
)

# ------------------------------------------------------------------------------- authorization (migration 0003)
# Clients registered by an operator (`flask clients register`): their keys (inline JWKS or a JWKS URL), the
# scopes they may be granted, the organization they act for; status active | disabled.
auth_client = Table(
    "auth_client", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("jwks", Text),
    Column("jwks_url", Text),
    Column("scopes", Text, nullable=False),
    Column("organization", String(100)),
    Column("internal", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created", DateTime, nullable=False),
)

# Client assertion ids seen, kept until the assertion expires (a replayed jti is refused).
auth_jti = Table(
    "auth_jti", metadata,
    Column("client_id", String(64), nullable=False),
    Column("jti", String(255), nullable=False),
    Column("expires_at", DateTime, nullable=False),
    UniqueConstraint("client_id", "jti", name="uq_auth_jti"),
    Index("ix_auth_jti_expires", "expires_at"),
)

# The access-token signing secret when IOP_TOKEN_SECRET is not set: drawn once, shared by all workers.
auth_secret = Table(
    "auth_secret", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# The client that created a Subscription: its notifications carry full resources only while it may read them.
subscription_client = Table(
    "subscription_client", metadata,
    Column("subscription_id", String(64), primary_key=True),
    Column("client_id", String(64), nullable=False),
)

# ------------------------------------------------------------------------------- the audit trail (migration 0005)
# Every AuditEvent, one append-only row each in chain order (service/audit_log.py, audit_chain.py): the columns
# AuditEvent searches filter on, the event's canonical JSON and hash = SHA-256(previous row's hash || event).
# audit_log_entity: one row per resource an event names (entity.what without its version), for entity= / patient=.
AUDIT_SEQ = BigInteger().with_variant(Integer, "sqlite")
audit_log = Table(
    "audit_log", metadata,
    Column("seq", AUDIT_SEQ, primary_key=True, autoincrement=False),
    Column("recorded", DateTime, nullable=False),
    Column("subtype", String(64), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", String(2), nullable=False),
    Column("client", Text),
    Column("organization", Text),
    Column("purpose", String(64)),
    Column("disclosure", Boolean, nullable=False),
    Column("event", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_recorded", "recorded"),
)
audit_log_entity = Table(
    "audit_log_entity", metadata,
    Column("reference", String(140), primary_key=True),
    Column("seq", AUDIT_SEQ, primary_key=True, autoincrement=False),
)
