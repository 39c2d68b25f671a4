"""The database of one app: engine (SQLite embedded default, PostgreSQL in production), connections, migrations.

SQLite: WAL journal, and write transactions start with BEGIN IMMEDIATE so that two writers never
deadlock on a lock upgrade. PostgreSQL: READ COMMITTED, with row locks and advisory locks taken by
the repository where concurrent writers could otherwise both win.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from flask import Flask, current_app
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

MIGRATIONS = Path(__file__).with_name("migrations")
KEY_BLOCK = 100  # resource keys drawn from the sequence per round trip
MIGRATION_LOCK = 7_243_001  # pg_advisory lock key: one migrator at a time across gunicorn workers


class KeyBlock:
    """Primary keys for new resources, drawn from the PostgreSQL sequence a block at a time.

    With the key known up front, a new resource row is queued with its version and index rows and
    the whole write goes out in one round trip (repository.Batch). Unused keys leave gaps; keys only
    order rows and are never shown.
    """

    def __init__(self) -> None:
        self._keys: list[int] = []
        self._lock = threading.Lock()

    def next(self, conn: Connection) -> int:
        with self._lock:
            if not self._keys:
                drawn = conn.exec_driver_sql(
                    f"SELECT nextval(pg_get_serial_sequence('resource', 'pk')) FROM generate_series(1, {KEY_BLOCK})").scalars()
                self._keys = sorted(drawn, reverse=True)
            return self._keys.pop()


class Database:
    """Engine and connection helpers for one database URL."""

    def __init__(self, url: str, pool_size: int = 5):
        self.url = make_url(_with_driver(url))
        self.dialect = self.url.get_backend_name()
        self.engine = _sqlite_engine(self.url) if self.dialect == "sqlite" else _postgres_engine(self.url, pool_size)
        self.keys = KeyBlock() if self.dialect == "postgresql" else None

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading.

        On PostgreSQL it runs in autocommit: under READ COMMITTED every statement has its own snapshot
        anyway, so a read transaction would only add a BEGIN and a ROLLBACK round trip per request.
        """
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection inside one write transaction: committed on success, rolled back on error."""
        with self.engine.connect() as conn:
            conn.execution_options(iop_write=True)
            with conn.begin():
                yield conn

    def upgrade(self) -> None:
        """Apply the Alembic migrations up to head (serialised between processes)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def _with_driver(url: str) -> str:
    """postgresql:// means psycopg 3 here (the driver we install)."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def _sqlite_engine(url) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if not memory:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    kwargs = {"poolclass": StaticPool} if memory else {}
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _begin)
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("iop_write") else "BEGIN")

    return engine


def _postgres_engine(url, pool_size: int) -> Engine:
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_recycle=3600)


def init_app(app: Flask) -> Database:
    """Attach a Database to the app; apply migrations when IOP_AUTO_MIGRATE is on."""
    settings = app.config["IOP"]
    db = Database(settings["DATABASE_URL"], settings["DB_POOL_SIZE"])
    if settings["AUTO_MIGRATE"]:
        db.upgrade()
    app.extensions["iop.db"] = db
    return db


def get_db() -> Database:
    """The Database of the current app."""
    return current_app.extensions["iop.db"]
