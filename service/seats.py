"""Open seats of a program track, computed from its rosters at the moment of asking, never typed (issue 9).

open seats = the HealthcareService's seat-capacity − the members of the active Groups whose track-service
names it, counting a member while not marked inactive and inside member.period (now in [start, end]).
Index rows hold the inputs (indexer.capacity_rows, roster_seat_rows, Group `track-service`), so a roster
change is reflected by the next search, and a membership that ends frees its seat when it ends.
Only a count leaves this module: no patient reference, so the directory can show it to anyone.
"""
from __future__ import annotations

from sqlalchemy import ColumnElement, Connection, and_, false, func, select

from . import dates
from .tables import resource, sp_date, sp_number, sp_reference


def open_seats_expr(R) -> ColumnElement:
    """SQL: open seats of the HealthcareService row R (NULL when it states no seat capacity)."""
    return _capacity(R) - _taken(R)


def _capacity(R) -> ColumnElement:
    n = sp_number.alias()
    return (select(func.max(n.c.value)).where(n.c.resource_pk == R.c.pk, n.c.type == "HealthcareService",
                                              n.c.name == "seat-capacity").scalar_subquery())


def _taken(R) -> ColumnElement:
    seat, link, group = sp_date.alias(), sp_reference.alias(), resource.alias()
    now = dates.utcnow()
    return (select(func.count()).select_from(seat)
            .join(link, and_(link.c.resource_pk == seat.c.resource_pk, link.c.type == "Group",
                             link.c.name == "track-service"))
            .join(group, group.c.pk == seat.c.resource_pk)
            .where(seat.c.type == "Group", seat.c.name == "roster-seat", seat.c.low <= now, seat.c.high > now,
                   link.c.target_type == "HealthcareService", link.c.target_id == R.c.id,
                   group.c.deleted == false())
            .scalar_subquery())


def open_seats(conn: Connection, service_id: str) -> int | None:
    """Open seats of HealthcareService/service_id now, or None when it states no capacity (or does not exist)."""
    R = resource
    value = conn.execute(select(open_seats_expr(R)).where(R.c.type == "HealthcareService", R.c.id == service_id,
                                                          R.c.deleted == false())).scalar()
    return None if value is None else int(value)
