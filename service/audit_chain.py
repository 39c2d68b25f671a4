"""Tamper evidence for the audit trail: a SHA-256 hash chain over every stored AuditEvent.

Each AuditEvent gets one `audit_chain` row (migration 0004): seq (1, 2, …), prev_hash (the previous
row's hash, or 64 zeros for the first) and hash = SHA-256(prev_hash || canonical JSON of the event as
stored). Changing or deleting an event, or a chain row, breaks the chain at that point, which
`flask audit verify` reports. (It proves the log was not edited in place; someone able to rewrite the
whole table and every later hash is not stopped by it: ship the head hash elsewhere for that.)

Appends serialise on the chain head. PostgreSQL: a transaction-scoped advisory lock, taken by the caller
as the last thing before commit (after every other row lock of the unit, so it cannot be part of a
lock cycle) and released by the commit; the head is read after the lock is granted, in a new READ
COMMITTED snapshot, so it is the latest committed row. SQLite: writers are serial already.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from .tables import audit_chain, resource, resource_version

GENESIS = "0" * 64
HEAD_LOCK = 7_243_002  # pg_advisory_xact_lock key of the chain head (db.MIGRATION_LOCK is 7_243_001)
_HEAD_SQL = "SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1"


def canonical(event: dict) -> bytes:
    """The bytes hashed for an event: sorted keys, no whitespace, UTF-8 (stable whatever the stored key order)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, event: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(event)).hexdigest()


def append(conn: Connection, events: Sequence[dict], flush: Callable[[], None] = lambda: None) -> None:
    """Chain `events` (stored AuditEvents, in order) after the current head, holding the head until commit.

    `flush` (the unit's queued rows) is sent in the same round trip on PostgreSQL: the lock and the chain
    rows cost no round trip of their own, and the lock is taken just before the last writes and the commit.
    """
    if not events:
        flush()
        return
    if conn.dialect.name == "postgresql" and len(events) <= FEW:
        _append_pg(conn, events, flush)
        return
    flush()
    if conn.dialect.name == "postgresql":
        _copy(conn, "audit_chain", ("seq", "event_id", "prev_hash", "hash"), _links(_locked_head_pg(conn), events))
        return
    row = conn.exec_driver_sql(_HEAD_SQL).first()  # SQLite: this transaction is the only writer (BEGIN IMMEDIATE)
    conn.connection.driver_connection.executemany(  # type: ignore[union-attr]
        "INSERT INTO audit_chain (seq, event_id, prev_hash, hash) VALUES (?, ?, ?, ?)",
        _links((row[0], row[1]) if row else (0, GENESIS), events))


FEW = 8  # up to this many events (a write), the links are computed by PostgreSQL in the unit's last round trip


def _links(head: tuple[int, str], events: Sequence[dict]) -> list[tuple[int, str, str, str]]:
    seq, prev = head
    rows = []
    for event in events:
        seq += 1
        digest = link(prev, event)
        rows.append((seq, event["id"], prev, digest))
        prev = digest
    return rows


def _locked_head_pg(conn: Connection) -> tuple[int, str]:
    """The head, read after the lock is granted (a new READ COMMITTED snapshot: the latest committed link)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.pipeline(), driver.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
        cur.execute(_HEAD_SQL)
        row = cur.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def copy_rows(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """PostgreSQL COPY: many rows with no SQL text to build or parse (psycopg parses a large INSERT's
    placeholders one by one, which cost more than the database's work for a batch of audit events)."""
    _copy(conn, table, columns, rows)


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# Each link computed by the server from the head as it is when the statement runs (after the lock: every
# earlier append is committed or is this transaction's own): SHA-256 over the UTF-8 of prev_hash || JSON,
# the same bytes as link() hashes.
_APPEND_PG = f"""
INSERT INTO audit_chain (seq, event_id, prev_hash, hash)
SELECT COALESCE(h.seq, 0) + 1, %(id)s, COALESCE(h.hash, '{GENESIS}'),
       encode(sha256(convert_to(COALESCE(h.hash, '{GENESIS}') || %(json)s, 'UTF8')), 'hex')
FROM (SELECT 1) AS one LEFT JOIN ({_HEAD_SQL}) AS h ON true
"""


def _append_pg(conn: Connection, events: Sequence[dict], flush: Callable[[], None]) -> None:
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.pipeline(), driver.cursor() as cur:  # one round trip with the unit's own flush (a nested pipeline)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
        for event in events:
            cur.execute(_APPEND_PG, {"id": event["id"], "json": canonical(event).decode()})
        flush()


# ------------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int  # links checked (all of them when ok)
    seq: int | None = None  # the first broken link
    reason: str = ""


def verify(conn: Connection, page: int = 1000) -> Verdict:
    """Walk the chain from seq 1; the first broken link, or OK with the number of events."""
    expected_seq, prev = 1, GENESIS
    for row in _rows(conn, page):
        problem = _check(row, expected_seq, prev)
        if problem:
            return Verdict(False, expected_seq - 1, row.seq if row.seq == expected_seq else expected_seq, problem)
        expected_seq, prev = expected_seq + 1, row.hash
    orphans = _unchained(conn)
    if orphans:
        return Verdict(False, expected_seq - 1, None, f"AuditEvent/{orphans[0]} is stored but not in the chain")
    return Verdict(True, expected_seq - 1)


def _rows(conn: Connection, page: int) -> Iterator:
    """Chain rows in order with the event's current and first-version JSON (keyset pages: bounded memory)."""
    current = (select(resource.c.content).where(resource.c.type == "AuditEvent", resource.c.id == audit_chain.c.event_id)
               .scalar_subquery())
    first = (select(resource_version.c.content)
             .where(resource_version.c.type == "AuditEvent", resource_version.c.id == audit_chain.c.event_id,
                    resource_version.c.version == 1).scalar_subquery())
    after = 0
    while True:
        rows = conn.execute(select(audit_chain, current.label("content"), first.label("first"))
                            .where(audit_chain.c.seq > after).order_by(audit_chain.c.seq).limit(page)).all()
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].seq


def _check(row, expected_seq: int, prev: str) -> str:
    if row.seq != expected_seq:
        return f"link {expected_seq} is missing (next is {row.seq})"
    if row.prev_hash != prev:
        return f"link {row.seq} (AuditEvent/{row.event_id}) does not follow the previous link"
    if row.content is None:
        return f"AuditEvent/{row.event_id} of link {row.seq} is missing"
    if row.first != row.content:
        return f"AuditEvent/{row.event_id} of link {row.seq}: its stored version differs from the current one"
    try:
        digest = link(prev, json.loads(row.content))
    except ValueError:
        digest = ""
    if digest != row.hash:
        return f"AuditEvent/{row.event_id} of link {row.seq} was changed after it was recorded"
    return ""


def _unchained(conn: Connection) -> list[str]:
    """AuditEvents with no chain row (inserted behind the server's back)."""
    chained = select(audit_chain.c.event_id)
    return list(conn.execute(select(resource.c.id).where(resource.c.type == "AuditEvent", resource.c.id.not_in(chained))
                             .limit(1)).scalars())
