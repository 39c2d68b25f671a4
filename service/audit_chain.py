"""Tamper evidence for the audit trail: the rows of audit_log (service/audit_log.py) form a SHA-256 hash chain.

Row seq (1, 2, …) has hash = SHA-256(hash of row seq-1 (64 zeros for the first) || the event's canonical JSON as
stored). Changing or deleting an event breaks the chain at that point, which `flask audit verify` reports; it
also checks that each row's search columns and entity rows still agree with its JSON. (It proves the log was not
edited in place; someone able to rewrite the whole table and every later hash is not stopped by it: ship the head
hash elsewhere for that.)

Appends serialise on the chain head. PostgreSQL: a transaction-scoped advisory lock, taken as the last thing
before commit (after every other row lock of a write unit, so it cannot be part of a lock cycle) and released by
the commit; the head is read after the lock is granted, in a new READ COMMITTED snapshot, so it is the latest
committed row. SQLite: writers are serial already.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from . import audit_log
from .audit_log import Entry
from .tables import audit_log as log_table
from .tables import audit_log_entity

GENESIS = "0" * 64
HEAD_LOCK = 7_243_002  # pg_advisory_xact_lock key of the chain head (db.MIGRATION_LOCK is 7_243_001)
_HEAD_SQL = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
LOG_COLUMNS = ("seq", *audit_log.COLUMNS, "event", "hash")
FEW = 8  # up to this many events (a write), the links are computed by PostgreSQL in the unit's last round trip


def canonical(event: dict) -> bytes:
    """The bytes hashed for an event: sorted keys, no whitespace, UTF-8 (audit_log.entry stores exactly these)."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: str, event_text: str) -> str:
    return hashlib.sha256(prev_hash.encode() + event_text.encode()).hexdigest()


def append(conn: Connection, entries: Sequence[Entry], flush: Callable[[], None] = lambda: None) -> None:
    """Chain `entries` (in order) after the current head, holding the head until commit.

    `flush` (a write unit's queued rows) is sent in the same round trip on PostgreSQL for a few events: the lock
    and the rows cost no round trip of their own, and the lock is taken just before the last writes and the commit.
    """
    if not entries:
        flush()
        return
    if conn.dialect.name == "postgresql" and len(entries) <= FEW:
        _append_pg(conn, entries, flush)
        return
    flush()
    if conn.dialect.name == "postgresql":
        links = _links(_locked_head_pg(conn), entries)
        _copy(conn, "audit_log", LOG_COLUMNS, _log_rows(links, entries))
        _copy(conn, "audit_log_entity", ("reference", "seq"), _entity_rows(links, entries))
        return
    row = conn.exec_driver_sql(_HEAD_SQL).first()  # SQLite: this transaction is the only writer (BEGIN IMMEDIATE)
    links = _links((row[0], row[1]) if row else (0, GENESIS), entries)
    driver = conn.connection.driver_connection
    when = LOG_COLUMNS.index("recorded")  # stored as SQLAlchemy's DateTime stores it on SQLite (compared as text)
    rows = [r[:when] + (r[when].strftime("%Y-%m-%d %H:%M:%S.%f"),) + r[when + 1:] for r in _log_rows(links, entries)]
    driver.executemany(f"INSERT INTO audit_log ({', '.join(LOG_COLUMNS)}) VALUES ({', '.join('?' * len(LOG_COLUMNS))})",  # type: ignore[union-attr]
                       rows)
    driver.executemany("INSERT INTO audit_log_entity (reference, seq) VALUES (?, ?)", list(_entity_rows(links, entries)))  # type: ignore[union-attr]


def _links(head: tuple[int, str], entries: Sequence[Entry]) -> list[tuple[int, str]]:
    """(seq, hash) of each entry after `head`."""
    seq, prev = head
    out = []
    for e in entries:
        seq, prev = seq + 1, link(prev, e.event)
        out.append((seq, prev))
    return out


def _log_rows(links: list[tuple[int, str]], entries: Sequence[Entry]) -> Iterator[tuple]:
    for (seq, digest), e in zip(links, entries, strict=True):
        yield (seq, *(e.columns[c] for c in audit_log.COLUMNS), e.event, digest)


def _entity_rows(links: list[tuple[int, str]], entries: Sequence[Entry]) -> Iterator[tuple]:
    for (seq, _), e in zip(links, entries, strict=True):
        for ref in e.references:
            yield (ref, seq)


def _locked_head_pg(conn: Connection) -> tuple[int, str]:
    """The head, read after the lock is granted (a new READ COMMITTED snapshot: the latest committed link)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.pipeline(), driver.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
        cur.execute(_HEAD_SQL)
        row = cur.fetchone()
    return (row[0], row[1]) if row else (0, GENESIS)


def _copy(conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence]) -> None:
    """PostgreSQL COPY: many rows with no SQL text to build or parse (cheaper than a multi-row INSERT for a batch)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# Each link computed by the server from the head as it is when the statement runs (after the lock: every earlier
# append is committed or is this transaction's own): SHA-256 over the UTF-8 of prev_hash || JSON, the bytes link()
# hashes; the entity rows get the new row's seq in the same statement.
_APPEND_PG = f"""
WITH h AS ({_HEAD_SQL}),
row AS (
  INSERT INTO audit_log ({', '.join(LOG_COLUMNS)})
  SELECT COALESCE(h.seq, 0) + 1, {', '.join(f'%({c})s' for c in audit_log.COLUMNS)}, %(event)s,
         encode(sha256(convert_to(COALESCE(h.hash, '{GENESIS}') || %(event)s, 'UTF8')), 'hex')
  FROM (SELECT 1) AS one LEFT JOIN h ON true
  RETURNING seq)
INSERT INTO audit_log_entity (reference, seq) SELECT r, row.seq FROM row, unnest(%(refs)s::text[]) AS r
"""


def _append_pg(conn: Connection, entries: Sequence[Entry], flush: Callable[[], None]) -> None:
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.pipeline(), driver.cursor() as cur:  # one round trip with the unit's own flush (a nested pipeline)
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (HEAD_LOCK,))
        for e in entries:
            cur.execute(_APPEND_PG, e.columns | {"event": e.event, "refs": list(e.references)})
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
    expected_seq, prev, references = 1, GENESIS, 0
    for rows in _pages(conn, page):
        entity_rows = _entity_rows_of(conn, rows)
        for row in rows:
            problem, refs = _check(row, expected_seq, prev, entity_rows)
            if problem:
                return Verdict(False, expected_seq - 1, row.seq if row.seq == expected_seq else expected_seq, problem)
            expected_seq, prev, references = expected_seq + 1, row.hash, references + refs
    stored = conn.execute(select(func.count()).select_from(audit_log_entity)).scalar_one()
    if stored != references:  # rows naming no event, or pointing an entity search at an event that does not name it
        return Verdict(False, expected_seq - 1, None, f"audit_log_entity holds {stored} rows, the events name {references}")
    return Verdict(True, expected_seq - 1)


def _pages(conn: Connection, page: int) -> Iterator[list]:
    """Rows in seq order, a page at a time (keyset: bounded memory)."""
    after = 0
    while True:
        rows = conn.execute(select(log_table).where(log_table.c.seq > after).order_by(log_table.c.seq).limit(page)).all()
        if rows:
            yield rows
        if len(rows) < page:
            return
        after = rows[-1].seq


def _entity_rows_of(conn: Connection, rows: list) -> set[tuple[str, int]]:
    """The entity rows of the references these events name, within their seq range (the primary key's order)."""
    names = {ref for row in rows for ref in _names(row.event)}
    if not names:
        return set()
    E = audit_log_entity
    found = conn.execute(select(E.c.reference, E.c.seq).where(
        E.c.reference.in_(sorted(names)), E.c.seq.between(rows[0].seq, rows[-1].seq))).all()
    return {(r, s) for r, s in found}


def _names(event: str) -> tuple[str, ...]:
    try:
        return audit_log.references(json.loads(event))
    except (ValueError, AttributeError, TypeError):
        return ()


def _check(row, expected_seq: int, prev: str, entity_rows: set[tuple[str, int]]) -> tuple[str, int]:
    """What is wrong with a row ("" if nothing) and how many entity rows it has."""
    if row.seq != expected_seq:
        return f"link {expected_seq} is missing (next is {row.seq})", 0
    if link(prev, row.event) != row.hash:
        return f"AuditEvent/{row.seq} was changed after it was recorded, or does not follow the previous link", 0
    try:
        ev = json.loads(row.event)
        derived = audit_log.columns(ev)
    except (ValueError, KeyError, AttributeError, TypeError, IndexError):
        return f"AuditEvent/{row.seq} is not an AuditEvent", 0
    changed = [c for c in audit_log.COLUMNS if derived[c] != getattr(row, c)]
    if changed:
        return f"AuditEvent/{row.seq}: its search columns ({', '.join(changed)}) differ from the event", 0
    refs = audit_log.references(ev)
    if any((ref, row.seq) not in entity_rows for ref in refs):
        return f"AuditEvent/{row.seq}: an entity it names is missing from audit_log_entity", 0
    return "", len(refs)
