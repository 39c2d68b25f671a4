"""Run searches: matches with keyset paging, totals, _include/_revinclude, and lookups for conditional writes.

Paging is keyset-based (the next link carries the sort key of the last row, not an offset), so
pages stay correct while data changes: a resource created or deleted between two page requests
never shifts the rows of later pages. See: https://hl7.org/fhir/R4/http.html#paging
"""
from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, false, func, or_, select

from ..errors import BadRequest, Issue, PreconditionFailed
from ..tables import resource, sp_reference
from . import near
from .params import Include, SearchRequest, parse
from .query import criterion_condition, keyset, sort_key

__all__ = ["Page", "Row", "SearchRequest", "parse", "run", "find", "parse_query"]


@dataclass(frozen=True)
class Row:
    """A current resource as stored."""

    pk: int
    type: str
    id: str
    content: str


@dataclass
class Page:
    """One page of a search: matches, included resources, total and paging cursors."""

    matches: list[Row]
    included: list[Row] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    previous_cursor: str | None = None
    warnings: list[Issue] = field(default_factory=list)


def run(conn: Connection, req: SearchRequest, base_url: str, max_includes: int) -> Page:
    """Execute a search request and return the requested page."""
    R = resource
    point = _near(req)
    criteria = [c for c in req.criteria if point is None or c.param.special != "near"]  # near_page applies its box
    where = [R.c.type == req.type, R.c.deleted == false()] + [criterion_condition(c, R, base_url) for c in criteria]
    if point is not None:
        page = near_page(conn, req, where, point)
    elif req.count == 0 or req.summary == "count":
        return Page([], total=_count(conn, where) if req.total != "none" else None)
    else:
        page = _page(conn, req, where)
    if req.total != "none" and point is None:
        # A first page without a next page holds every match: its length is the total, no COUNT needed.
        complete = req.cursor is None and page.next_cursor is None
        page.total = len(page.matches) if complete else _count(conn, where)
    if req.includes or req.revincludes:
        page.included, page.warnings = _included(conn, req, page.matches, max_includes)
    return page


def _near(req: SearchRequest) -> near.Point | None:
    """The point of the request's near criterion; near orders the results, so _sort cannot."""
    found = [c for c in req.criteria if c.param.special == "near"]
    if len(found) > 1:
        raise BadRequest("near can be given once", expression=found[1].name)
    if found and req.sort:
        raise BadRequest("near results are ordered by distance; leave out _sort", expression="_sort")
    return near.Point(near.parse(found[0]), found[0].chain[0].param.code if found[0].chain else None) if found else None


def near_page(conn: Connection, req: SearchRequest, where: list, point: near.Point) -> Page:
    """One page of a near search: candidates in the box, exact distance in Python, nearest first (then creation)."""
    best: dict[int, float] = {}
    for pk, y, x in conn.execute(near.candidates(req.type, where, point)).all():
        km = near.haversine_km(point.near.lat, point.near.lng, y, x) if y is not None and x is not None else None
        if km is not None and km <= point.near.km and km < best.get(pk, math.inf):
            best[pk] = km  # a resource at several Locations is as near as its nearest one
    scored = sorted((km, pk) for pk, km in best.items())
    total = len(scored) if req.total != "none" else None
    if req.count == 0 or req.summary == "count":
        return Page([], total=total)
    direction, values = _decode(req.cursor, ["number", "pk"])
    reverse = direction == "b"
    if values is not None:
        mark = (values[0], values[1])
        scored = [s for s in scored if s < mark] if reverse else [s for s in scored if s > mark]
    more = len(scored) > req.count
    chosen = scored[-req.count:] if reverse else scored[:req.count]
    by_pk = {r.pk: r for r in _by_pks(conn, [pk for _, pk in chosen])}
    page = Page([by_pk[pk] for _, pk in chosen if pk in by_pk], total=total)
    if chosen and (more or reverse):
        page.next_cursor = _encode("a", list(chosen[-1]), ["number", "pk"])
    if chosen and (values is not None and not reverse or reverse and more):
        page.previous_cursor = _encode("b", list(chosen[0]), ["number", "pk"])
    return page


def _by_pks(conn: Connection, pks: list[int]) -> list[Row]:
    R = resource
    return [Row(*r) for r in conn.execute(select(R.c.pk, R.c.type, R.c.id, R.c.content).where(R.c.pk.in_(pks))).all()]


def _count(conn: Connection, where: list) -> int:
    return conn.execute(select(func.count()).select_from(resource).where(*where)).scalar_one()


def _page(conn: Connection, req: SearchRequest, where: list) -> Page:
    R = resource
    keys = [sort_key(req.type, code, desc, R) + (desc,) for code, desc in req.sort]
    keys.append((R.c.pk, "pk", False))
    direction, values = _decode(req.cursor, [k[1] for k in keys])
    reverse = direction == "b"
    stmt = select(R.c.pk, R.c.type, R.c.id, R.c.content, *[k[0].label(f"k{i}") for i, k in enumerate(keys)]).where(*where)
    if values is not None:
        stmt = stmt.where(keyset([(k[0], k[2]) for k in keys], values, reverse=reverse))
    order = [k[0].desc() if k[2] != reverse else k[0].asc() for k in keys]
    rows = list(conn.execute(stmt.order_by(*order).limit(req.count + 1)).all())
    more = len(rows) > req.count
    rows = rows[:req.count]
    if reverse:
        rows.reverse()
    kinds = [k[1] for k in keys]
    page = Page([Row(r.pk, r.type, r.id, r.content) for r in rows])
    if rows and (more or reverse):
        page.next_cursor = _encode("a", [rows[-1][4 + i] for i in range(len(keys))], kinds)
    if rows and (values is not None and not reverse or reverse and more):
        page.previous_cursor = _encode("b", [rows[0][4 + i] for i in range(len(keys))], kinds)
    return page


def _encode(direction: str, values: list, kinds: list[str]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps({"d": direction, "v": plain, "k": kinds}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# The JSON types a cursor may carry for each kind of sort key.
_CURSOR_TYPES: dict[str, type | tuple[type, ...]] = {"pk": int, "number": (int, float), "string": str, "date": str}


def _cursor_value_ok(value: object, kind: str) -> bool:
    """Whether a decoded cursor value can be bound as a sort key of `kind` (a forged one must not reach SQL)."""
    if isinstance(value, bool) or not isinstance(value, _CURSOR_TYPES[kind]):
        return False
    if isinstance(value, int):
        return -2**63 <= value < 2**63
    if isinstance(value, str):
        return "\x00" not in value
    return value == value  # not NaN


def _decode(cursor: str | None, kinds: list[str]) -> tuple[str, list | None]:
    if not cursor:
        return "a", None
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if doc["k"] != kinds or doc["d"] not in ("a", "b") or len(doc["v"]) != len(kinds):
            raise ValueError("cursor does not match this search")
        if not all(_cursor_value_ok(v, k) for v, k in zip(doc["v"], kinds, strict=True)):
            raise ValueError("cursor values do not match this search")
        values = [datetime.fromisoformat(v) if k == "date" else v for v, k in zip(doc["v"], kinds, strict=True)]
    except (ValueError, KeyError, TypeError) as err:
        raise BadRequest(f"Invalid paging cursor: {err}", expression="_cursor") from None
    return doc["d"], values


# ------------------------------------------------------------------------------- includes
def _included(conn: Connection, req: SearchRequest, matches: list[Row], limit: int) -> tuple[list[Row], list[Issue]]:
    seen = {(r.type, r.id) for r in matches}
    frontier, out = matches, []
    for round_ in range(5):  # :iterate follows at most four more levels
        includes = req.includes if round_ == 0 else [i for i in req.includes if i.iterate]
        revincludes = req.revincludes if round_ == 0 else [i for i in req.revincludes if i.iterate]
        found = _follow(conn, includes, frontier) + _follow_back(conn, revincludes, frontier)
        fresh = [r for r in _unique(found) if (r.type, r.id) not in seen]
        seen.update((r.type, r.id) for r in fresh)
        out.extend(fresh)
        frontier = fresh
        if not frontier or len(out) >= limit:
            break
    if len(out) > limit:
        return out[:limit], [Issue("warning", "too-costly", f"Included resources were limited to {limit}")]
    return out, []


def _unique(rows: list[Row]) -> list[Row]:
    out, keys = [], set()
    for r in rows:
        if r.pk not in keys:
            keys.add(r.pk)
            out.append(r)
    return out


def _follow(conn: Connection, includes: list[Include], sources: list[Row]) -> list[Row]:
    found: list[Row] = []
    for inc in includes:
        pks = [r.pk for r in sources if r.type == inc.source]
        if not pks:
            continue
        ref = sp_reference
        stmt = select(ref.c.target_type, ref.c.target_id).where(
            ref.c.resource_pk.in_(pks), ref.c.type == inc.source, ref.c.name == inc.param, ref.c.target_id.is_not(None))
        if inc.target:
            stmt = stmt.where(ref.c.target_type == inc.target)
        found.extend(fetch(conn, [(t, i) for t, i in conn.execute(stmt).all()]))
    return found


def _follow_back(conn: Connection, revincludes: list[Include], targets: list[Row]) -> list[Row]:
    found: list[Row] = []
    for inc in revincludes:
        ref = sp_reference
        for rtype in {r.type for r in targets}:
            if inc.target and inc.target != rtype:
                continue
            ids = [r.id for r in targets if r.type == rtype]
            stmt = select(ref.c.resource_pk).where(ref.c.type == inc.source, ref.c.name == inc.param,
                                                  ref.c.target_type == rtype, ref.c.target_id.in_(ids))
            R = resource
            rows = conn.execute(select(R.c.pk, R.c.type, R.c.id, R.c.content)
                                .where(R.c.pk.in_(stmt), R.c.deleted == false()).order_by(R.c.pk)).all()
            found.extend(Row(*r) for r in rows)
    return found


def fetch(conn: Connection, refs: list[tuple[str, str]]) -> list[Row]:
    """Current, non-deleted resources for (type, id) pairs, in a stable order, in one query."""
    by_type: dict[str, set[str]] = {}
    for rtype, rid in refs:
        by_type.setdefault(rtype, set()).add(rid)
    if not by_type:
        return []
    R = resource
    wanted = or_(*(and_(R.c.type == rtype, R.c.id.in_(sorted(ids))) for rtype, ids in sorted(by_type.items())))
    rows = conn.execute(select(R.c.pk, R.c.type, R.c.id, R.c.content).where(wanted, R.c.deleted == false())
                        .order_by(R.c.type, R.c.pk)).all()
    return [Row(*r) for r in rows]


# ------------------------------------------------------------------------------- conditional writes
def parse_query(rtype: str, query: str) -> SearchRequest:
    """A strict SearchRequest from a conditional URL's query (If-None-Exist, Type?params)."""
    from urllib.parse import parse_qsl

    try:
        args = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise BadRequest(f"Invalid search criteria '{query}'") from None
    req = parse(rtype, args, default_count=2, max_count=2, strict=True)
    if not req.criteria:
        raise PreconditionFailed(f"Conditional criteria '{query}' select nothing; give at least one search parameter")
    return req


def find(conn: Connection, rtype: str, query: str, base_url: str = "", limit: int = 2) -> list[Row]:
    """Up to `limit` current resources matching a query (two tell 0, 1 and many apart for conditional writes)."""
    req = parse_query(rtype, query)
    R = resource
    where = [R.c.type == rtype, R.c.deleted == false()] + [criterion_condition(c, R, base_url) for c in req.criteria]
    rows = conn.execute(select(R.c.pk, R.c.type, R.c.id, R.c.content).where(*where).order_by(R.c.pk).limit(limit)).all()
    return [Row(*r) for r in rows]
