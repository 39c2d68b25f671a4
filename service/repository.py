"""Storage of resource versions and their search index rows; no business rules.

Writes go through a `Batch`: version and index rows (and on PostgreSQL the new resource rows too, with
keys drawn ahead from the sequence) are queued and written in bulk by `flush()`, before any read or
search in the same transaction and before commit. On PostgreSQL a flush is one pipelined round trip
(the transaction's BEGIN included); a write's cost is dominated by round trips, not by SQL.
See architecture: one write path, one transaction per request.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

import psycopg
from sqlalchemy import Connection, Table, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from . import indexer
from .definitions import tables
from .errors import RetryableConflict
from .tables import INDEX_TABLES, resource, resource_version


@dataclass(frozen=True)
class Stored:
    """One stored version of a resource; `content` is the JSON text served as is (None if deleted)."""

    pk: int
    type: str
    id: str
    version: int
    last_updated: datetime
    deleted: bool
    content: str | None
    method: str = "PUT"

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'


@dataclass
class Batch:
    """Rows queued for bulk insert within one transaction."""

    resources: list[dict] = field(default_factory=list)
    versions: list[dict] = field(default_factory=list)
    index: dict[str, list[dict]] = field(default_factory=dict)

    def flush(self, conn: Connection) -> None:
        """Write every queued row: one pipelined round trip (PostgreSQL) or executemany per table (SQLite)."""
        queued = [(resource, self.resources), (resource_version, self.versions)]
        queued += [(INDEX_TABLES[kind], rows) for kind, rows in self.index.items()]
        queued = [(table, rows) for table, rows in queued if rows]
        self.resources, self.versions, self.index = [], [], {}
        if not queued:
            return
        if conn.dialect.name == "postgresql":
            _flush_pipelined(conn, queued)
        else:
            for table, rows in queued:
                _sqlite_insert(conn, table, rows)


MAX_BIND_PARAMS = 30_000  # per statement: below PostgreSQL's limit of 65,535


def _flush_pipelined(conn: Connection, queued: list[tuple[Table, list[dict]]]) -> None:
    """Multi-row INSERTs through the driver in one psycopg pipeline (http://psycopg.org/psycopg3/docs/advanced/pipeline.html)."""
    driver = conn.connection.driver_connection
    assert driver is not None
    try:
        # A RawCursor ($n placeholders): psycopg re-parses every %s query of more than 50 parameters (its cache's
        # limit), ~2.5 ms of CPU per multi-row INSERT (https://www.psycopg.org/psycopg3/docs/advanced/cursors.html#raw-query-cursors)
        with driver.pipeline(), psycopg.RawCursor(driver) as cur:
            for table, rows in queued:
                columns = list(rows[0])
                step = MAX_BIND_PARAMS // len(columns)
                for start in range(0, len(rows), step):
                    chunk = rows[start:start + step]
                    cur.execute(_values_sql(table.name, tuple(columns), len(chunk)), [row[c] for row in chunk for c in columns])
    except Exception as err:
        if getattr(err, "sqlstate", None) == "23505":  # unique_violation: a concurrent writer took the id
            raise RetryableConflict(str(err)) from err
        raise


@lru_cache(maxsize=1024)
def _values_sql(table: str, columns: tuple[str, ...], rows: int) -> str:
    width = len(columns)
    values = ", ".join("(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(rows))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


def _sqlite_insert(conn: Connection, table: Table, rows: list[dict]) -> None:
    # The driver's executemany: SQLAlchemy's per-row parameter processing cost more than the rest of a create.
    columns = list(rows[0])
    driver = conn.connection.driver_connection
    assert driver is not None
    marks = ", ".join("?" * len(columns))
    driver.executemany(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})",
                       [tuple(_sqlite_value(row[c]) for c in columns) for row in rows])


def _sqlite_value(value: object) -> object:
    # Datetimes as SQLAlchemy stores them on SQLite ("YYYY-MM-DD HH:MM:SS.ffffff"): sqlite3's own adapter
    # drops a zero ".000000", and text comparisons in date searches would then miss equal bounds.
    return value.isoformat(" ", "microseconds") if isinstance(value, datetime) else value


_CURRENT = select(resource).where(resource.c.type == bindparam("type"), resource.c.id == bindparam("id"))
_VERSION = (select(resource_version.c.resource_pk, resource_version.c.type, resource_version.c.id,
                   resource_version.c.version, resource_version.c.last_updated, resource_version.c.content,
                   resource_version.c.method)
            .where(resource_version.c.type == bindparam("type"), resource_version.c.id == bindparam("id"),
                   resource_version.c.version == bindparam("version")))


_INSERT = insert(resource).returning(resource.c.pk)
# The version guard makes a lost update impossible even without a row lock (SQLite).
_UPDATE = (update(resource)
           .where(and_(resource.c.pk == bindparam("pk_"), resource.c.version == bindparam("expected")))
           .values(version=bindparam("version"), last_updated=bindparam("last_updated"), deleted=bindparam("deleted"),
                   content=bindparam("content")))

_DELETE_INDEX = {kind: delete(t).where(t.c.resource_pk == bindparam("pk_")) for kind, t in INDEX_TABLES.items()}


# Every read and write looks a resource up by its key: on PostgreSQL straight through the driver as a prepared
# statement (SQLAlchemy's execution context cost more than the query: ~0.1 of ~0.3 ms per lookup, measured).
_CURRENT_PG = "SELECT pk, type, id, version, last_updated, deleted, content FROM resource WHERE type = $1 AND id = $2"


def current(conn: Connection, rtype: str, rid: str, *, lock: bool = False) -> Stored | None:
    """The current version (possibly a deletion) of Type/id; `lock` takes a row lock on PostgreSQL."""
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        with psycopg.RawCursor(driver) as cur:
            cur.execute(_CURRENT_PG + (" FOR UPDATE" if lock else ""), (rtype, rid), prepare=True)
            found = cur.fetchone()
        return None if found is None else Stored(*found)
    row = conn.execute(_CURRENT, {"type": rtype, "id": rid}).first()
    return None if row is None else _from_row(row)


def _from_row(row) -> Stored:
    return Stored(row.pk, row.type, row.id, row.version, row.last_updated, row.deleted, row.content)


def version(conn: Connection, rtype: str, rid: str, vid: int) -> Stored | None:
    """One historical version of Type/id."""
    row = conn.execute(_VERSION, {"type": rtype, "id": rid, "version": vid}).first()
    if row is None:
        return None
    return Stored(row.resource_pk, row.type, row.id, row.version, row.last_updated, row.content is None,
                  row.content, row.method)


def insert_new(conn: Connection, batch: Batch, rtype: str, rid: str, content: str, parsed: dict,
               now: datetime, method: str, pk: int | None = None) -> Stored:
    """Store version 1 of a new resource: queued under `pk` when the key was drawn ahead, else inserted now.

    If a concurrent writer took the same id (update-as-create), the unique key fails (here or at flush):
    the whole unit of work is then rolled back and retried, and the retry updates the resource instead.
    """
    values = {"type": rtype, "id": rid, "version": 1, "last_updated": now, "deleted": False, "content": content}
    if pk is not None:
        batch.resources.append({"pk": pk, **values})
    else:
        try:
            pk = conn.execute(_INSERT, values).scalar_one()
        except IntegrityError as err:
            raise RetryableConflict(f"{rtype}/{rid} was created concurrently") from err
    stored = Stored(pk, rtype, rid, 1, now, False, content, method)
    _queue(batch, stored, parsed, method)
    return stored


def replace(conn: Connection, batch: Batch, prior: Stored, content: str, parsed: dict, now: datetime,
            method: str) -> Stored:
    """Store a new version over `prior` (which the caller has locked)."""
    stored = Stored(prior.pk, prior.type, prior.id, prior.version + 1, now, False, content, method)
    _update_row(conn, stored, prior.version)
    _clear_index(conn, batch, prior)
    _queue(batch, stored, parsed, method)
    return stored


def mark_deleted(conn: Connection, batch: Batch, prior: Stored, now: datetime) -> Stored:
    """Store a deletion as a new version; the resource leaves the search index."""
    stored = Stored(prior.pk, prior.type, prior.id, prior.version + 1, now, True, None, "DELETE")
    _update_row(conn, stored, prior.version)
    _clear_index(conn, batch, prior)
    batch.versions.append(_version_row(stored))
    return stored


def _update_row(conn: Connection, stored: Stored, expected_version: int) -> None:
    result = conn.execute(_UPDATE, {"pk_": stored.pk, "expected": expected_version, "version": stored.version,
                                    "last_updated": stored.last_updated, "deleted": stored.deleted, "content": stored.content})
    if result.rowcount != 1:
        raise RetryableConflict(f"{stored.type}/{stored.id} changed concurrently")


def _clear_index(conn: Connection, batch: Batch, prior: Stored) -> None:
    # `prior` was read through a flushed unit (Unit.current), so none of its rows are still queued.
    if prior.deleted:
        return
    for kind in kinds_of(prior.type):
        conn.execute(_DELETE_INDEX[kind], {"pk_": prior.pk})


def kinds_of(rtype: str) -> frozenset[str]:
    """The index tables that can hold rows for a resource type."""
    return _KINDS.get(rtype) or _kinds(rtype)


_KINDS: dict[str, frozenset[str]] = {}


def _kinds(rtype: str) -> frozenset[str]:
    declared = {p.type for p in tables().search_params.get(rtype, {}).values() if not p.column and p.type in INDEX_TABLES}
    _KINDS[rtype] = frozenset(declared | indexer.HIDDEN_KINDS.get(rtype, set()))
    return _KINDS[rtype]


def _queue(batch: Batch, stored: Stored, parsed: dict, method: str) -> None:
    batch.versions.append(_version_row(stored))
    for kind, rows in indexer.index_rows(parsed).items():
        for row in rows:
            row["resource_pk"] = stored.pk
        batch.index.setdefault(kind, []).extend(rows)


def _version_row(stored: Stored) -> dict:
    return {"resource_pk": stored.pk, "type": stored.type, "id": stored.id, "version": stored.version,
            "last_updated": stored.last_updated, "method": stored.method, "content": stored.content}
