"""Whether a client is active, on every authorized request, without a database round trip per request.

On PostgreSQL each process keeps the standing (active, organization, internal) of the clients it has seen,
and a listener thread of that process drops it all whenever a client changes: `flask clients disable`
runs `NOTIFY iop_auth_clients` in its transaction, so every worker forgets at that commit (milliseconds),
and the process that made the change forgets at once. The cache is used only while the listener is
connected (a lost connection means queries again until it is back), an entry lives at most TTL seconds,
and an entry read from the database is kept only if no change was announced meanwhile (generation).
On SQLite (development, tests) the lookup is an in-process query and nothing is cached.
https://www.postgresql.org/docs/current/sql-notify.html
"""
from __future__ import annotations

import logging
import os
import threading
import time

import psycopg
from sqlalchemy import Connection, select

from .tables import auth_client

log = logging.getLogger(__name__)

CHANNEL = "iop_auth_clients"
TTL = 30.0  # seconds: a bound on staleness even if a notification were lost
KEEPALIVE = 10.0  # seconds between checks that the listener's connection is alive
Standing = tuple[bool, str | None, bool]  # active, organization, internal

_lock = threading.Lock()
_cache: dict[str, tuple[float, Standing]] = {}
_generation = 0
_listening: int | None = None  # the pid whose listener is connected (a forked worker starts its own)
_started: int | None = None
_QUERY = select(auth_client.c.status, auth_client.c.organization, auth_client.c.internal)


def lookup(db, client_id: str) -> Standing | None:
    """The client's standing, or None if it is not registered."""
    if db.dialect != "postgresql":
        return _query(db, client_id)
    _listen_once(db)
    if _listening != os.getpid():
        return _query(db, client_id)
    hit = _cache.get(client_id)
    if hit is not None and time.monotonic() - hit[0] < TTL:
        return hit[1]
    generation, found = _generation, _query(db, client_id)
    if found is not None:
        with _lock:
            if generation == _generation:
                _cache[client_id] = (time.monotonic(), found)
    return found


def changed(conn: Connection) -> None:
    """Announce a client change in the writing transaction (delivered at commit) and forget in this process now."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"NOTIFY {CHANNEL}")
    forget()


def forget() -> None:
    global _generation
    with _lock:
        _generation += 1
        _cache.clear()


def _query(db, client_id: str) -> Standing | None:
    with db.read() as conn:
        row = conn.execute(_QUERY.where(auth_client.c.client_id == client_id)).first()
    return None if row is None else (row.status == "active", row.organization, bool(row.internal))


def _listen_once(db) -> None:
    global _started
    if _started == os.getpid():
        return
    with _lock:
        if _started == os.getpid():
            return
        _started = os.getpid()
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    threading.Thread(target=_listen, args=(conninfo,), name="iop-client-standing", daemon=True).start()


def _listen(conninfo: str) -> None:
    global _listening
    while True:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                forget()  # whatever was cached before we listened may be stale
                _listening = os.getpid()
                while True:
                    for _ in conn.notifies(timeout=KEEPALIVE):
                        forget()
                    conn.execute("SELECT 1")  # a dead connection raises here, not silently
        except Exception as err:  # noqa: BLE001 - any failure: stop caching, reconnect
            log.warning("client standing listener lost its connection (%s); looking clients up per request meanwhile",
                        type(err).__name__)
        finally:
            _listening = None
            forget()
        time.sleep(1.0)
