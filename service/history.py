"""History: instance, type and system level, newest first, with _since and keyset paging.

See: https://hl7.org/fhir/R4/http.html#history
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from . import dates
from .errors import BadRequest
from .tables import resource_version


@dataclass(frozen=True)
class Version:
    """One row of history."""

    pk: int
    type: str
    id: str
    version: int
    last_updated: datetime
    method: str
    content: str | None


@dataclass
class HistoryPage:
    versions: list[Version]
    total: int
    next_cursor: int | None
    previous_cursor: int | None


def parse_since(value: str | None) -> datetime | None:
    """The _since instant as naive UTC."""
    if not value:
        return None
    try:
        return dates.parse_range(value)[0]
    except dates.DateFormatError as err:
        raise BadRequest(str(err), expression="_since") from None


def page(conn: Connection, *, rtype: str | None = None, rid: str | None = None, since: datetime | None = None,
         count: int = 20, before: int | None = None, after: int | None = None) -> HistoryPage:
    """One page of versions (newest first); `before`/`after` are version-row keys from paging links."""
    V = resource_version
    where = []
    if rtype:
        where.append(V.c.type == rtype)
    if rid:
        where.append(V.c.id == rid)
    if not rtype:  # the system history is the change feed of the data; the audit trail is AuditEvent's own history
        where.append(V.c.type != "AuditEvent")
    if since:
        where.append(V.c.last_updated >= since)
    total = conn.execute(select(func.count()).select_from(V).where(*where)).scalar_one()
    stmt = select(V.c.pk, V.c.type, V.c.id, V.c.version, V.c.last_updated, V.c.method, V.c.content).where(*where)
    if after is not None:  # the previous page: rows newer than `after`, read oldest first then reversed
        rows = conn.execute(stmt.where(V.c.pk > after).order_by(V.c.pk.asc()).limit(count + 1)).all()
        more = len(rows) > count
        rows = list(reversed(rows[:count]))
        return HistoryPage([Version(*r) for r in rows], total, rows[-1].pk if rows else None,
                           rows[0].pk if rows and more else None)
    if before is not None:
        stmt = stmt.where(V.c.pk < before)
    rows = conn.execute(stmt.order_by(V.c.pk.desc()).limit(count + 1)).all()
    more = len(rows) > count
    rows = rows[:count]
    return HistoryPage([Version(*r) for r in rows], total, rows[-1].pk if rows and more else None,
                       rows[0].pk if rows and before is not None else None)
