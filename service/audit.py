"""The audit trail: an AuditEvent for every read, write, search, operation, refusal and disclosure.

Shape (R4 https://hl7.org/fhir/R4/auditevent.html, after IHE BALP's RESTful patterns): type
audit-event-type#rest, subtype the restful interaction, action C/R/U/D/E, recorded, outcome 0/4/8 (with
outcomeDesc on a failure), purposeOfEvent the request's v3-ActReason, the client as the requesting agent
(who.identifier = our client-id system | client_id; "development" with IOP_AUTH=off) with its
organization as a second agent, this server as source.observer, and one entity per resource version
(or the query, base64, for a search). A disclosure (an external client receives data labelled 42 CFR
Part 2 / SUD) also carries subtype DCM 110106 "Export" and the resource's meta.security labels on its
entity, so `AuditEvent?subtype=http://dicom.nema.org/resources/ontology/DCM|110106` lists disclosures.

Every event is one append-only row of the audit log (service/audit_log.py: the event's canonical JSON and a few
search columns; not a resource), chained (service/audit_chain.py) and served through the FHIR API by
service/audit_search.py. Writes are audited in their own transaction (precommit below, one event per Change; a
rolled-back write leaves none). Reads, searches, operations and failures are audited from an in-process buffer that
a background thread appends every FLUSH_INTERVAL (100 ms, or at BUFFER_MAX events, and at exit) in a short
transaction of its own: a crash loses at most the read audits recorded in the last 100 ms before it (plus a batch
whose transaction had not committed); write audits cannot be lost. The API cannot create, change or delete
AuditEvents (interactions.check_writable).
"""
from __future__ import annotations

import atexit
import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, has_app_context, has_request_context, request
from sqlalchemy.exc import InterfaceError, OperationalError

from . import access as access_mod
from . import audit_chain, audit_log, dates
from .access import Access
from .audit_log import ACT_REASON, CLIENT_ID_SYSTEM, DEVELOPMENT_AGENT, EXPORT, INTERACTION, REST  # noqa: F401 (the API)

log = logging.getLogger(__name__)

PART2_LABELS = frozenset({"42CFRPart2", "SUD"})  # v3-ActCode sensitivity / policy codes that make a read a disclosure
ACTIONS = {"create": "C", "read": "R", "vread": "R", "update": "U", "patch": "U", "delete": "D",
           "history-instance": "R", "history-type": "R", "history-system": "R", "search-type": "E",
           "search-system": "E", "operation": "E", "transaction": "E", "batch": "E", "capabilities": "R"}
FLUSH_INTERVAL = 0.1  # seconds: a crash loses at most the read audits of the last 0.1 s (and a batch in flight)
BUFFER_MAX = 200  # events: flush early when this many are waiting
BUFFER_CAP = 100_000  # events kept while the database refuses them; older ones are dropped (and logged)


# ------------------------------------------------------------------------------- building events (compact records)
def entity(what: object, *, labels: Iterable[dict] = (), role: str = "4") -> dict:
    """An entity for a resource version: a Stored / search Row / 'Type/id[/_history/v]' string."""
    reference = what if isinstance(what, str) else _reference(what)
    # a target that is no valid reference (GET Patient/<not an id>) is named, not referenced
    ent: dict = {"r": reference} if _REFERENCE.match(reference) else {"n": clean(reference[:200])}
    if role != "4":
        ent["k"] = role
    labels = list(labels)
    if labels:
        ent["l"] = labels
    return ent


_REFERENCE = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}(/_history/[0-9]{1,10})?$")


def clean(text: str) -> str:
    """Client-supplied text made storable: control characters (NUL is refused by PostgreSQL) become U+FFFD."""
    return _CONTROL.sub("\ufffd", text)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _reference(obj: object) -> str:
    version = getattr(obj, "version", None)
    base = f"{obj.type}/{obj.id}"  # type: ignore[attr-defined]
    return f"{base}/_history/{version}" if version else base


def query_entity(query: str) -> dict:
    """The query of a search (BALP: role 24 Query, the query string base64-encoded)."""
    return {"k": "24", "q": base64.b64encode(query.encode()).decode()}


def event(subtype: str, outcome: str, who: Access, entities: list[dict], recorded: datetime, *,
          description: str | None = None, disclosure: bool = False, server: bool = False) -> dict:
    """The compact record of one interaction (service/audit_log.py: what is stored, and its AuditEvent form)."""
    ev: dict = {"s": subtype, "a": ACTIONS.get(subtype, "E"), "t": dates.instant(recorded), "o": outcome,
                "p": who.purpose, "c": None if server else (who.client_id or DEVELOPMENT_AGENT)}
    if description:
        ev["d"] = clean(description[:1000])
    if disclosure:
        ev["x"] = 1
    if has_request_context():
        if request.remote_addr:
            ev["n"] = request.remote_addr
        ev["h"] = current_app.config["IOP"].get("BASE_URL") or request.host_url.rstrip("/") + "/fhir"
    elif has_app_context() and current_app.config["IOP"].get("BASE_URL"):
        ev["h"] = current_app.config["IOP"]["BASE_URL"]
    if who.organization:
        ev["g"] = who.organization
    if entities:
        ev["e"] = entities
    return ev


def part2_labels(content: str | None) -> list[dict]:
    """meta.security of a stored resource when it is Part 2 data (42CFRPart2 or SUD labelled), else []."""
    if not content or '"security"' not in content:
        return []
    try:
        labels = json.loads(content).get("meta", {}).get("security") or []
    except (ValueError, AttributeError):
        return []
    return labels if any(isinstance(c, dict) and c.get("code") in PART2_LABELS for c in labels) else []


# ------------------------------------------------------------------------------- the public API
def record_access(action: str, entities: Iterable[object], outcome: str | int, query: str | None = None, *,
                  description: str | None = None) -> None:
    """Audit a read, search or operation of this request (buffered: see the module docstring).

    `action` is the restful interaction (read, vread, search-type, history-instance, operation …);
    `entities` what was served (Stored, search Row, or "Type/id[/_history/v]"); outcome 0, 4, 8 or 12.
    An external client served Part 2 labelled data makes it a disclosure. Replaces this request's
    automatic audit (init_app below).
    """
    who = access_mod.current()
    ents, disclosure = _entities(entities, who)
    if query is not None:
        ents.insert(0, query_entity(query))
    _buffer_of().add(event(action, str(outcome), who, ents, dates.utcnow(), description=description, disclosure=disclosure))
    _mark_done()


def record_refusal(entities: Iterable[object], reason: str) -> None:
    """Audit a refused disclosure (42 CFR Part 2: no consent): outcome 4 with the reason.

    It stands for the request's own event when the request is refused (403); a search that only left the
    refused resources out is audited as a search besides.
    """
    who = access_mod.current()
    ents = [entity(e, labels=part2_labels(getattr(e, "content", None))) for e in entities]
    _buffer_of().add(event(_interaction() or "read", "4", who, ents, dates.utcnow(), description=reason, disclosure=True))
    if has_request_context():  # a refused read (403) needs no second event; a search that left data out still gets its own
        g.iop_refused = True


def _entities(items: Iterable[object], who: Access) -> tuple[list[dict], bool]:
    ents, disclosure = [], False
    for item in items:
        labels = [] if who.internal else part2_labels(getattr(item, "content", None))
        disclosure = disclosure or bool(labels)
        ents.append(entity(item, labels=labels))
    return ents, disclosure


def _mark_done() -> None:
    if has_request_context():
        g.iop_audited = True


# ------------------------------------------------------------------------------- write audit (transactional)
def precommit(unit) -> None:
    """One AuditEvent per resource the unit created, updated or deleted, appended to the log in its transaction.

    Runs after the workflows and subscriptions (so their writes are audited too) and before the final
    flush; the server's own conformance loading is not audited.
    """
    changes = [] if unit.options.manage_conformance else unit.changes
    if not changes and not unit.audit_events:
        return
    who, server = unit.options.access, unit.options.server_write
    entries = [audit_log.entry(event(c.interaction, "0", who, [entity(c.stored)], unit.now, server=server)) for c in changes]
    entries += [audit_log.entry(ev) for ev in unit.audit_events]
    audit_chain.append(unit.conn, entries, unit.flush)  # takes the chain head: the last step before commit
    if has_request_context():
        g.iop_write_audited = True


def write_events(db, events: list[dict]) -> None:
    """Append buffered events to the log in one short transaction of their own, chained."""
    entries = [audit_log.entry(ev) for ev in events]  # serialised before the chain head is taken
    with db.write() as conn:
        audit_chain.append(conn, entries)


# ------------------------------------------------------------------------------- the read-audit buffer
class ReadBuffer:
    """Read audits waiting to be written; a daemon thread writes them every FLUSH_INTERVAL or BUFFER_MAX."""

    def __init__(self, db) -> None:
        self.db = db
        self._events: list[dict] = []
        self._lock = threading.Lock()  # guards _events
        self._writing = threading.Lock()  # one writer at a time keeps the chain in recording order
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, ev: dict) -> None:
        with self._lock:
            self._events.append(ev)
            waiting = len(self._events)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-flush", daemon=True)
                self._thread.start()
        if waiting >= BUFFER_MAX:
            self._wake.set()

    def flush(self) -> int:
        """Write every waiting event now; the number written (tests and shutdown call it)."""
        with self._writing:
            with self._lock:
                events, self._events = self._events, []
            if not events:
                return 0
            try:
                write_events(self.db, events)
            except Exception:
                return self._one_by_one(events)
            return len(events)

    def _one_by_one(self, events: list[dict]) -> int:
        """After a failed batch: write each event alone, so that one bad event cannot block the others.

        An event the database refuses on its own is dropped (and logged); when the database is away, what is
        left is kept for the next round.
        """
        written, failed = 0, []
        for i, ev in enumerate(events):
            try:
                write_events(self.db, [ev])
                written += 1
            except (OperationalError, InterfaceError):  # the database is away: keep the rest for the next round
                self._requeue(events[i:])
                raise
            except Exception as err:
                failed.append((ev, err))
        for ev, err in failed:
            log.error("audit event dropped, the database refused it: %s (%s)", err, json.dumps(ev)[:2000])
        return written

    def _requeue(self, events: list[dict]) -> None:
        with self._lock:
            self._events = (events + self._events)[-BUFFER_CAP:]
            dropped = len(events) + len(self._events) - BUFFER_CAP
        if dropped > 0:
            log.error("audit buffer full: %d read audit events dropped", dropped)

    def _run(self) -> None:
        while True:
            self._wake.wait(FLUSH_INTERVAL)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the database is away: keep the events and try again next round
                log.exception("writing read audit events failed; will retry")


class _Off:
    """Where events go in an app without the audit trail wired in (init_app not called): nowhere."""

    def add(self, ev: dict) -> None:
        pass

    def flush(self) -> int:
        return 0


def _buffer_of(app: Flask | None = None) -> ReadBuffer | _Off:
    if app is None and not has_app_context():
        return _Off()
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return app.extensions.get("iop.audit") or _Off()


def flush(app: Flask | None = None) -> int:
    """Write the waiting read audits of `app` (default: the current app) now."""
    return _buffer_of(app).flush()


_BUFFERS: weakref.WeakSet[ReadBuffer] = weakref.WeakSet()


def flush_all() -> int:
    """Write the waiting read audits of every app in this process (tests, between two tests)."""
    return sum(buffer.flush() for buffer in list(_BUFFERS))


def init_app(app: Flask) -> None:
    """The read buffer (flushed at exit) and the automatic audit of every FHIR request not audited otherwise."""
    buffer = ReadBuffer(app.extensions["iop.db"])
    app.extensions["iop.audit"] = buffer
    _BUFFERS.add(buffer)
    atexit.register(_flush_quietly, buffer)
    app.before_request(_refuse_audit_writes)
    app.after_request(_audit_request)


_AUDIT_PATH = re.compile(r"^/fhir/AuditEvent(/(?![$_])[^/]+)?/?$")


def _refuse_audit_writes() -> None:
    """405 for PUT/PATCH/DELETE on AuditEvent and its conditional forms, and POST /AuditEvent (not _search, $op).

    The write path refuses them too (interactions.check_writable, which also covers Bundle entries); this
    answers before a conditional form would look for matches first.
    """
    from .interactions import check_writable  # (interactions imports this module's precommit)

    if request.method in ("PUT", "PATCH", "DELETE", "POST") and _AUDIT_PATH.match(request.path):
        if request.method == "POST" and request.path.rstrip("/") != "/fhir/AuditEvent":
            return
        check_writable("AuditEvent")


def _flush_quietly(buffer: ReadBuffer) -> None:
    try:
        buffer.flush()
    except Exception:
        log.exception("writing read audit events at exit failed")


# ------------------------------------------------------------------------------- automatic audit of requests
_ENDPOINTS = {"fhir.read": "read", "fhir.vread": "vread", "fhir.search_get": "search-type", "fhir.search_post": "search-type",
              "fhir.system_history": "history-system", "fhir.type_history": "history-type",
              "fhir.instance_history": "history-instance", "fhir.instance_operation": "operation",
              "fhir.type_operation": "operation", "fhir.operation_or_create": "create", "fhir.update": "update",
              "fhir.conditional_update": "update", "fhir.patch": "patch", "fhir.conditional_patch": "patch",
              "fhir.delete": "delete", "fhir.conditional_delete": "delete", "fhir.batch_or_transaction": "transaction",
              "fhir.system_search": "search-system"}
WRITES = frozenset({"create", "update", "patch", "delete", "transaction"})


def _interaction() -> str | None:
    """The restful interaction of the current request (None outside the FHIR API or for metadata)."""
    if not has_request_context():
        return None
    kind = _ENDPOINTS.get(request.endpoint or "")
    name = (request.view_args or {}).get("name") or (request.view_args or {}).get("rid") or ""
    if kind in ("read", "create") and name.startswith("$"):
        return "operation"
    return kind


def _bundle_kind() -> str:
    """transaction or batch, from the request's Bundle (parsed again: only for a Bundle that is audited here)."""
    body = request.get_json(silent=True, force=True)
    return "batch" if isinstance(body, dict) and body.get("type") == "batch" else "transaction"


def _audit_request(response: Response) -> Response:
    """Audit a FHIR request that no view audited itself: every failure, and every successful read-side call.

    A successful write was audited in its transaction (precommit); a successful write that changed
    nothing (a matched conditional create, a no-op update) is audited here.
    """
    if g.get("iop_audited") or not (request.path == "/fhir" or request.path.startswith("/fhir/")):
        return response
    if g.get("iop_refused") and response.status_code == 403:
        return response
    kind = _interaction()
    if kind is None or (kind in WRITES and response.status_code < 400 and g.get("iop_write_audited")):
        return response
    try:
        kind = _bundle_kind() if kind == "transaction" else kind
        _buffer_of().add(_request_event(kind, response))
    except Exception:  # auditing must never turn a served response into an error; it is logged
        log.exception("auditing %s %s failed", request.method, request.path)
    return response


def _request_event(kind: str, response: Response) -> dict:
    who = access_mod.current()
    status = response.status_code
    outcome = "0" if status < 400 else ("4" if status < 500 else "8")
    ents, disclosure = _request_entities(kind, response, who)
    return event(kind, outcome, who, ents, dates.utcnow(), description=_error_text(response) if status >= 400 else None,
                 disclosure=disclosure)


def _request_entities(kind: str, response: Response, who: Access) -> tuple[list[dict], bool]:
    args = request.view_args or {}
    ents: list[dict] = []
    query = _query_text()
    if query or kind.startswith(("search", "history")):
        ents.append(query_entity(query))
    target = "/".join(p for p in (args.get("rtype"), args.get("rid")) if p and not p.startswith("$"))
    version = response.headers.get("ETag", "").removeprefix("W/").strip('"')
    if target and "/" in target:
        ents.append(entity(f"{target}/_history/{version}" if version.isdigit() else target))
    labelled = [] if who.internal or response.status_code >= 400 else _served_labels(response)
    ents += [entity(ref, labels=labels) for ref, labels in labelled]
    return ents, bool(labelled)


def _query_text() -> str:
    """The query of a search or history (a POST _search's form too); "" for other interactions."""
    kind = request.endpoint or ""
    if not (kind.startswith("fhir.search") or kind.endswith("_history")):
        return ""
    query = request.query_string.decode("latin-1")
    if kind == "fhir.search_post" and request.form:
        query = "&".join(p for p in (query, urlencode(list(request.form.items(multi=True)))) if p)
    return query


def _served_labels(response: Response) -> list[tuple[str, list[dict]]]:
    """(reference, labels) of each Part 2 labelled resource in a response body (a disclosure to an external client)."""
    data = response.get_data(as_text=True) if not response.direct_passthrough else ""
    if '"security"' not in data:
        return []
    try:
        body = json.loads(data)
    except ValueError:
        return []
    resources = [e.get("resource") or {} for e in body.get("entry", [])] if body.get("resourceType") == "Bundle" else [body]
    out = []
    for res in resources:
        labels = part2_labels(json.dumps(res)) if isinstance(res, dict) else []
        if labels:
            version = (res.get("meta") or {}).get("versionId")
            ref = f"{res.get('resourceType')}/{res.get('id')}" + (f"/_history/{version}" if version else "")
            out.append((ref, labels))
    return out


def _error_text(response: Response) -> str | None:
    try:
        body = json.loads(response.get_data(as_text=True))
        return body["issue"][0].get("diagnostics")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return f"HTTP {response.status_code}"
