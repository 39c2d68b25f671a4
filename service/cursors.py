"""Sync cursors (table sync_cursor): how far an inbound pull got, and the failures it met on the way.

A cursor is written in its own small transaction only AFTER the work it covers has committed, so a
crash between the two repeats work (which must therefore be idempotent) and never skips it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from . import dates
from .db import Database
from .tables import sync_cursor

MAX_ERROR_TEXT = 2000


def read(db: Database, name: str) -> str | None:
    """The cursor's value (None before the first save)."""
    with db.read() as conn:
        return conn.execute(select(sync_cursor.c.value).where(sync_cursor.c.name == name)).scalar_one_or_none()


def row(db: Database, name: str) -> Any:
    """The whole row (value, updated_at, error_count, last_error, last_error_at), or None."""
    with db.read() as conn:
        return conn.execute(select(sync_cursor).where(sync_cursor.c.name == name)).first()


def ensure(db: Database, name: str) -> None:
    """Create the row if it is missing."""
    try:
        with db.write() as conn:
            if conn.execute(select(sync_cursor.c.name).where(sync_cursor.c.name == name)).first() is None:
                conn.execute(insert(sync_cursor).values(name=name, value=None, updated_at=dates.utcnow(), error_count=0))
    except IntegrityError:
        pass  # a concurrent writer created it


def advance(db: Database, name: str, value: str, order: Callable[[str], Any]) -> None:
    """Move the cursor to `value` if that is further by `order` (two pollers racing cannot rewind it)."""
    ensure(db, name)
    with db.write() as conn:
        current = conn.execute(select(sync_cursor.c.value).where(sync_cursor.c.name == name).with_for_update()).scalar_one()
        if current is not None and order(current) >= order(value):
            return
        conn.execute(update(sync_cursor).where(sync_cursor.c.name == name).values(value=value, updated_at=dates.utcnow()))


def record_error(db: Database, name: str, message: str) -> None:
    """Count one failure on the cursor row and keep its text and time (operators read them there and in the log)."""
    ensure(db, name)
    now = dates.utcnow()
    with db.write() as conn:
        conn.execute(update(sync_cursor).where(sync_cursor.c.name == name).values(
            error_count=sync_cursor.c.error_count + 1, last_error=message[:MAX_ERROR_TEXT], last_error_at=now, updated_at=now))
