"""What the server derives from every current resource of one type (the Subscriptions it acts on, the Endpoints
that sync), cached per process and checked with one aggregate query per use.

The check reads count, sum of versions and latest lastUpdated of the type's rows: every create, update or delete
of that type, in this process or another, changes them, so a cached value is never used after its source changed.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from sqlalchemy import Connection, false, func, select

from .tables import resource

T = TypeVar("T")


class TypeCache(Generic[T]):
    """`build(contents of the current resources of rtype)`, cached per database until the type is written."""

    def __init__(self, rtype: str, build: Callable[[Iterable[str | None]], list[T]]):
        self._generation = (select(func.count(), func.coalesce(func.sum(resource.c.version), 0), func.max(resource.c.last_updated))
                            .where(resource.c.type == rtype))
        self._current = select(resource.c.content).where(resource.c.type == rtype, resource.c.deleted == false())
        self._build = build
        self._cache: dict[str, tuple[tuple, list[T]]] = {}
        self._lock = threading.Lock()

    def get(self, conn: Connection) -> list[T]:
        key = str(conn.engine.url)
        generation = tuple(conn.execute(self._generation).one())
        with self._lock:
            cached = self._cache.get(key)
        if cached and cached[0] == generation:
            return cached[1]
        built = self._build(conn.execute(self._current).scalars())
        with self._lock:
            self._cache[key] = (generation, built)
        return built

    def forget(self) -> None:
        """Drop what is cached (this process wrote the type and wants no aggregate query to notice)."""
        with self._lock:
            self._cache.clear()
