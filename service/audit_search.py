"""AuditEvent through the FHIR API: read, vread, history and search over the audit log (service/audit_log.py).

AuditEvents are not stored as resources: this module serves `GET [base]/AuditEvent?…` (and POST _search),
`AuditEvent/[id]`, `AuditEvent/[id]/_history[/1]` and `AuditEvent/_history` from the audit_log table. The id of
an event is its place in the chain (seq). Search parameters (https://hl7.org/fhir/R4/auditevent.html#search):
date (= _lastUpdated), patient, entity, agent (Organization reference; agent:identifier client-id), type, subtype
(restful interaction, or DCM 110106 for disclosures), action, outcome, _id; controls _count, _cursor (paging),
_total, _summary=count, _format, _pretty. Anything else is refused with 400 not-supported naming it: the
audit trail never silently ignores a filter. Newest first (chain order). Clients outside the program see no
AuditEvent (they never did: the server's events are not theirs).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlencode

from flask import Response, current_app, request
from sqlalchemy import ColumnElement, false, func, or_, select, true

from . import audit_log, bundles, dates, privacy, wire
from .db import get_db
from .errors import BadRequest, NotFound
from .search.params import split_bar, split_values
from .search.query import _point_condition
from .tables import audit_log as L
from .tables import audit_log_entity as E

CONTROLS = ("_count", "_cursor", "_total", "_summary", "_format", "_pretty")
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
OUTCOMES = ("0", "4", "8", "12")
ACTIONS = ("C", "R", "U", "D", "E")


# ------------------------------------------------------------------------------- read, vread, history
def read(rid: str) -> Response:
    row = _one(rid)
    return wire.respond(audit_log.resource_text(row.seq, row.event), 200, _headers(row.recorded))


def vread(rid: str, vid: str) -> Response:
    row = _one(rid)
    if vid != "1":  # events are never changed: version 1 is the only one
        raise NotFound(f"AuditEvent/{rid} has no version '{vid}'")
    return wire.respond(audit_log.resource_text(row.seq, row.event), 200, _headers(row.recorded))


def instance_history(rid: str) -> Response:
    row = _one(rid)
    base = wire.base_url()
    return wire.respond(bundles.bundle("history", [_history_entry(base, row.seq, row.event)], total=1,
                                       links=[("self", f"{base}/AuditEvent/{rid}/_history")]))


def type_history() -> Response:
    """AuditEvent/_history: every event is one creation; _count, _since, and _before (paging) as for other types."""
    args = request.args
    unknown = [k for k in args if k not in ("_count", "_since", "_before", "_format", "_pretty")]
    if unknown:
        raise BadRequest(f"'{unknown[0]}' is not supported on AuditEvent/_history", code="not-supported", expression=unknown[0])
    count, where = _count(args.get("_count")), []
    if args.get("_since"):
        where.append(_point_condition(L.c.recorded, f"ge{args['_since']}", "_since"))
    before = wire.int_param("_before", args.get("_before"))
    rows, more = _page(where, count, before)
    base = wire.base_url()
    links = [("self", _url(f"{base}/AuditEvent/_history", list(args.items())))]
    if more:
        keep = [(k, v) for k, v in args.items() if k != "_before"]
        links.append(("next", _url(f"{base}/AuditEvent/_history", keep + [("_before", str(rows[-1].seq))])))
    return wire.respond(bundles.bundle("history", [_history_entry(base, r.seq, r.event) for r in rows], links=links))


def _one(rid: str):
    row = None
    if rid.isdigit() and int(rid) <= wire.MAX_INT64 and not privacy.is_outside():
        with get_db().read() as conn:
            row = conn.execute(select(L.c.seq, L.c.event, L.c.recorded).where(L.c.seq == int(rid))).first()
    if row is None:
        raise NotFound(f"AuditEvent/{rid} is not known")
    return row


def _headers(recorded: datetime) -> dict:
    """An event never changes: version 1, last modified when it was recorded."""
    return {"ETag": 'W/"1"', "Last-Modified": dates.http_date(recorded)}


def _history_entry(base: str, seq: int, event: str) -> str:
    text = audit_log.resource_text(seq, event)
    updated = json.loads(text)["meta"]["lastUpdated"]
    return bundles.entry(f"{base}/AuditEvent/{seq}", text, request={"method": "POST", "url": "AuditEvent"},
                         response={"status": "201 Created", "etag": 'W/"1"', "lastModified": updated})


# ------------------------------------------------------------------------------- search
def search(args: list[tuple[str, str]]) -> Response:
    """A searchset of AuditEvents, newest first; 400 for a parameter or modifier this search does not support."""
    where, controls, echo = _parse(args)
    count = _count(controls.get("_count"))
    summary, total_mode = controls.get("_summary"), controls.get("_total", "")
    if summary not in (None, "count", "false"):
        raise BadRequest("AuditEvent search supports _summary=count only", code="not-supported", expression="_summary")
    if total_mode not in ("", "none", "estimate", "accurate"):
        raise BadRequest("_total must be none, estimate or accurate", expression="_total")
    cursor = wire.int_param("_cursor", controls.get("_cursor"))
    base = wire.base_url()
    if privacy.is_outside():  # the audit trail is the program's: an outside client sees none of it
        return wire.respond(bundles.bundle("searchset", [], links=[("self", _url(f"{base}/AuditEvent", echo))]))
    if summary == "count" or count == 0:
        return wire.respond(bundles.bundle("searchset", [], total=_total(where)))
    rows, more = _page(where, count, cursor)
    complete = cursor is None and not more  # the first page holds every match: its length is the total, no COUNT
    total = None if total_mode == "none" else len(rows) if complete else _total(where) if total_mode == "accurate" else None
    entries = [bundles.entry(f"{base}/AuditEvent/{r.seq}", audit_log.resource_text(r.seq, r.event), search_mode="match")
               for r in rows]
    return wire.respond(bundles.bundle("searchset", entries, total=total, links=_links(base, echo, cursor, rows, more)))


def _parse(args: list[tuple[str, str]]) -> tuple[list[ColumnElement], dict[str, str], list[tuple[str, str]]]:
    where: list[ColumnElement] = []
    controls: dict[str, str] = {}
    echo: list[tuple[str, str]] = []
    for name, raw in args:
        if "\x00" in name or "\x00" in raw:
            raise BadRequest("Search parameters cannot contain NUL characters", expression=name.replace("\x00", ""))
        if name in CONTROLS:
            controls[name] = raw
            if name != "_cursor":
                echo.append((name, raw))
            continue
        code, _, modifier = name.partition(":")
        build = PARAMS.get(code)
        if build is None:
            raise BadRequest(f"Search parameter '{name}' is not supported for AuditEvent (supported: "
                             f"{', '.join(sorted(PARAMS))}, {', '.join(CONTROLS)})", code="not-supported", expression=name)
        values = split_values(raw)
        if not values:
            raise BadRequest(f"Search parameter '{name}' has no value", expression=name)
        where.append(build(modifier, values, name))
        echo.append((name, raw))
    return where, controls, echo


def _page(where: list[ColumnElement], count: int, before: int | None) -> tuple[list, bool]:
    """Up to `count` rows, newest first, older than `before` (keyset paging on the chain order); and whether more follow."""
    keyset = [L.c.seq < before] if before is not None else []
    query = select(L.c.seq, L.c.event).where(*where, *keyset).order_by(L.c.seq.desc()).limit(count + 1)
    with get_db().read() as conn:
        rows = conn.execute(query).all()
    return rows[:count], len(rows) > count


def _total(where: list[ColumnElement]) -> int:
    with get_db().read() as conn:
        return conn.execute(select(func.count()).select_from(L).where(*where)).scalar_one()


def _count(raw: str | None) -> int:
    settings = current_app.config["IOP"]
    return min(wire.int_param("_count", raw, default=settings["PAGE_SIZE"]) or 0, settings["MAX_PAGE_SIZE"])


def _links(base: str, echo: list[tuple[str, str]], cursor: int | None, rows: list, more: bool) -> list[tuple[str, str]]:
    url = f"{base}/AuditEvent"
    links = [("self", _url(url, echo + ([("_cursor", str(cursor))] if cursor is not None else []))), ("first", _url(url, echo))]
    if more:
        links.append(("next", _url(url, echo + [("_cursor", str(rows[-1].seq))])))
    return links


def _url(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


# ------------------------------------------------------------------------------- parameters → conditions
def _no_modifier(modifier: str, name: str, allowed: tuple[str, ...] = ()) -> None:
    if modifier and modifier not in allowed:
        raise BadRequest(f"Modifier ':{modifier}' is not supported on AuditEvent search parameter '{name.partition(':')[0]}'",
                         code="not-supported", expression=name)


def _date(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    return or_(*(_point_condition(L.c.recorded, v, name) for v in values))


def _references(values: list[str], name: str, rtype: str | None = None) -> list[str]:
    """Relative references 'Type/id' (a bare id for patient; our own base URL is cut off)."""
    base = wire.base_url() + "/"
    refs = []
    for value in values:
        ref = value.removeprefix(base)
        if rtype and "/" not in ref:
            ref = f"{rtype}/{ref}"
        if ref.count("/") != 1 or (rtype and not ref.startswith(f"{rtype}/")):
            raise BadRequest(f"'{value}' is not a {rtype or 'Type/id'} reference for {name}", expression=name)
        refs.append(ref)
    return refs


def _named(refs: list[str]) -> ColumnElement:
    return L.c.seq.in_(select(E.c.seq).where(E.c.reference.in_(refs)))


def _entity(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    return _named(_references(values, name))


def _patient(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    return _named(_references(values, name, "Patient"))


def _agent(modifier: str, values: list[str], name: str) -> ColumnElement:
    """agent=Organization/x (the organization a client acts for); agent:identifier=[system|]client-id."""
    _no_modifier(modifier, name, ("identifier",))
    if modifier != "identifier":
        return L.c.organization.in_(_references(values, name))
    clients = []
    for value in values:
        parts = split_bar(value)
        system, code = (parts[0], "|".join(parts[1:])) if len(parts) > 1 else (None, parts[0])
        if system in (None, "", audit_log.CLIENT_ID_SYSTEM):
            clients.append(code)
    return L.c.client.in_(clients) if clients else false()


def _tokens(values: list[str], system: str | None) -> list[str]:
    """The codes of token values in `system` (or with no system given)."""
    codes = []
    for value in values:
        parts = split_bar(value)
        if len(parts) == 1 or parts[0] in ("", system):
            codes.append(parts[-1])
    return codes


def _type(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    return true() if "rest" in _tokens(values, AUDIT_EVENT_TYPE) else false()  # every event is a RESTful operation


def _subtype(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    interactions = _tokens(values, audit_log.INTERACTION)
    export = audit_log.EXPORT["code"] in _tokens(values, audit_log.EXPORT["system"])
    return or_(L.c.subtype.in_(interactions), (L.c.disclosure == true()) if export else false())


def _code_in(column, allowed: tuple[str, ...]) -> Callable[[str, list[str], str], ColumnElement]:
    def build(modifier: str, values: list[str], name: str) -> ColumnElement:
        _no_modifier(modifier, name)
        codes = [code for code in (split_bar(v)[-1] for v in values) if code in allowed]
        return column.in_(codes) if codes else false()
    return build


def _id(modifier: str, values: list[str], name: str) -> ColumnElement:
    _no_modifier(modifier, name)
    seqs = [int(v) for v in values if v.isdigit() and int(v) <= wire.MAX_INT64]
    return L.c.seq.in_(seqs) if seqs else false()


PARAMS: dict[str, Callable[[str, list[str], str], ColumnElement]] = {
    "date": _date, "_lastUpdated": _date, "entity": _entity, "patient": _patient, "agent": _agent, "type": _type,
    "subtype": _subtype, "action": _code_in(L.c.action, ACTIONS), "outcome": _code_in(L.c.outcome, OUTCOMES), "_id": _id}
