"""Batch and transaction Bundles: entry parsing, spec processing order, reference rewriting, responses.

A transaction runs in one unit of work through the same interactions as REST and persists all or
nothing; a batch runs each entry in its own savepoint and reports each entry's outcome.
See: https://hl7.org/fhir/R4/http.html#transaction and #trules
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl

from . import bundles, dates, interactions, privacy, references, repository, scopes, search, validation
from .db import Database
from .definitions import tables
from .errors import BadRequest, FhirError, Gone, NotFound, PreconditionFailed, RetryableConflict, informational, outcome
from .interactions import Result, Unit
from .repository import Batch
from .wire import Prefer

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict", 410: "Gone",
            412: "Precondition Failed", 415: "Unsupported Media Type", 422: "Unprocessable Entity", 500: "Internal Server Error"}


@dataclass
class Entry:
    """One request entry of a batch or transaction."""

    index: int
    method: str
    url: str
    rtype: str | None = None
    rid: str | None = None
    vid: str | None = None
    query: str | None = None
    full_url: str | None = None
    resource: dict | None = None  # as it will be stored (references rewritten)
    source: dict | None = None  # as the client sent it (a retried transaction starts again from here)
    if_none_exist: str | None = None
    if_match: str | None = None
    target_id: str | None = None  # the id a POST/PUT will store under, once resolved
    matched: bool = False  # a conditional create that found an existing resource
    response: str | None = None  # the response entry as JSON text

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def status_line(status: int) -> str:
    return f"{status} {_REASONS.get(status, '')}".strip()


# ------------------------------------------------------------------------------- parsing
def process(db: Database, body: object, prefer: Prefer, options: interactions.Options, settings: dict) -> str:
    """Run a batch or transaction Bundle and return the response Bundle as JSON text."""
    base = options.base_url
    bundle_type, raw_entries = _check_bundle(body, settings["MAX_BUNDLE_ENTRIES"], options.max_depth)
    entries = [_parse_entry(i, e, base) for i, e in enumerate(raw_entries)]
    if bundle_type == "transaction":  # all or nothing: one entry beyond the client's scopes refuses the whole Bundle
        for entry in entries:
            _check_scope(entry)
    if bundle_type == "batch":
        with interactions.unit_of_work(db, options) as unit:
            for entry in entries:
                _batch_entry(unit, entry, prefer, base, settings)
        kind = "batch-response"
    else:
        _check_identities(entries)
        interactions.run(db, lambda unit: _transaction(unit, entries, prefer, base, settings), options)
        kind = "transaction-response"
    return bundles.bundle(kind, [e.response or "{}" for e in entries])


def _check_bundle(body: object, max_entries: int, max_depth: int) -> tuple[str, list]:
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base takes a Bundle of type batch or transaction", code="structure")
    bundle_type = body.get("type")
    if bundle_type not in ("batch", "transaction"):
        hint = " (post messages to [base]/$process-message)" if bundle_type == "message" else ""
        raise BadRequest(f"Bundle.type must be batch or transaction, not '{bundle_type}'{hint}", expression="Bundle.type")
    issues = validation.validate_envelope(body, max_depth)
    if issues:
        raise BadRequest(issues[0].diagnostics, issues=issues)
    entries = body.get("entry", [])
    if len(entries) > max_entries:
        raise BadRequest(f"A Bundle may hold at most {max_entries} entries (IOP_MAX_BUNDLE_ENTRIES); it has {len(entries)}",
                         code="too-costly", expression="Bundle.entry")
    return bundle_type, entries


def _parse_entry(index: int, raw: dict, base: str) -> Entry:
    where = f"Bundle.entry[{index}]"
    request = raw.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("method"), str) or not isinstance(request.get("url"), str):
        raise BadRequest("Each entry needs request.method and request.url", expression=f"{where}.request")
    method = request["method"]
    if method not in ORDER:
        raise BadRequest(f"'{method}' is not in the required value set http://hl7.org/fhir/ValueSet/http-verb",
                         code="code-invalid", expression=f"{where}.request.method")
    entry = Entry(index, method, _relative(request["url"], base, where), full_url=raw.get("fullUrl"),
                  if_none_exist=request.get("ifNoneExist"), if_match=request.get("ifMatch"))
    _parse_url(entry)
    resource = raw.get("resource")
    if resource is not None and (not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str)):
        raise BadRequest("entry.resource must be a FHIR resource", code="structure", expression=f"{where}.resource")
    entry.resource = entry.source = resource
    _check_entry(entry)
    return entry


def _relative(url: str, base: str, where: str) -> str:
    if url.startswith(base + "/"):
        return url[len(base) + 1:]
    if url.startswith(("http://", "https://")):
        raise BadRequest(f"request.url '{url}' is not on this server", expression=f"{where}.request.url")
    return url.lstrip("/")


def _parse_url(entry: Entry) -> None:
    path, _, query = entry.url.partition("?")
    parts = [p for p in path.split("/") if p]
    entry.query = query or None
    if parts and parts[0] in tables().resource_types:
        entry.rtype = parts[0]
        if len(parts) >= 2 and parts[1] not in ("_search", "_history"):
            entry.rid = parts[1]
        if len(parts) == 4 and parts[2] == "_history":
            entry.vid = parts[3]
    elif parts and parts[0] not in ("metadata", "_history"):
        raise NotFound(f"Resource type '{parts[0]}' is not supported", code="not-supported", expression=f"{entry.where}.request.url")


def _check_entry(entry: Entry) -> None:
    where, m = entry.where, entry.method
    if m in ("POST", "PUT", "PATCH") and entry.resource is None:
        raise BadRequest(f"A {m} entry needs a resource", code="required", expression=f"{where}.resource")
    if m in ("POST", "PUT", "DELETE", "PATCH") and entry.rtype is None:
        raise BadRequest(f"A {m} entry needs a resource type in request.url", expression=f"{where}.request.url")
    if m == "POST" and (entry.rid or entry.query):
        raise BadRequest("A POST entry's url is the resource type alone", expression=f"{where}.request.url")
    if m in ("PUT", "DELETE", "PATCH") and not (entry.rid or entry.query):
        raise BadRequest(f"A {m} entry's url is Type/id or Type?criteria", expression=f"{where}.request.url")
    if m in ("POST", "PUT") and entry.resource and entry.resource["resourceType"] != entry.rtype:
        raise BadRequest(f"The entry holds a {entry.resource['resourceType']} but request.url names {entry.rtype}",
                         expression=f"{where}.resource.resourceType")
    if m == "PUT" and entry.rid and entry.resource is not None and entry.resource.get("id", entry.rid) != entry.rid:
        raise BadRequest(f"resource.id '{entry.resource.get('id')}' differs from request.url '{entry.url}'",
                         expression=f"{where}.resource.id")


def _check_identities(entries: list[Entry]) -> None:
    """A transaction may not name the same fullUrl or the same resource twice (http.html#trules)."""
    seen_urls: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for e in entries:
        if e.full_url:
            if e.full_url in seen_urls:
                raise BadRequest(f"fullUrl '{e.full_url}' appears in entries {seen_urls[e.full_url]} and {e.index}", code="duplicate",
                                 expression=f"{e.where}.fullUrl")
            seen_urls[e.full_url] = e.index
        if e.method in ("PUT", "DELETE", "PATCH") and e.rid:
            key = f"{e.rtype}/{e.rid}"
            if key in seen_ids:
                raise BadRequest(f"{key} is changed by entries {seen_ids[key]} and {e.index}", code="duplicate",
                                 expression=f"{e.where}.request.url")
            seen_ids[key] = e.index


# ------------------------------------------------------------------------------- transaction
def _transaction(unit: Unit, entries: list[Entry], prefer: Prefer, base: str, settings: dict) -> None:
    for e in _ordered(entries, ("DELETE",)):
        _run_guarded(e, lambda e=e: _execute(unit, e, prefer, base, settings))
    mapping = _resolve_identities(unit, entries)
    for e in _ordered(entries, ("POST", "PUT", "PATCH")):
        _run_guarded(e, lambda e=e: _rewrite_entry(unit, e, entries, mapping))
    for e in _ordered(entries, ("POST", "PUT", "PATCH", "GET", "HEAD")):
        _run_guarded(e, lambda e=e: _execute(unit, e, prefer, base, settings))


def _ordered(entries: list[Entry], methods: tuple[str, ...]) -> list[Entry]:
    chosen = [e for e in entries if e.method in methods]
    return sorted(chosen, key=lambda e: (ORDER[e.method], e.index))


def _run_guarded(entry: Entry, fn) -> None:
    try:
        fn()
    except FhirError as err:
        err.prefixed(f"{entry.where}.resource" if _is_resource_error(err) else entry.where)
        raise


def _is_resource_error(err: FhirError) -> bool:
    return any(i.expression and i.expression[:1].isupper() and not i.expression.startswith("Bundle") for i in err.issues)


def _resolve_identities(unit: Unit, entries: list[Entry]) -> dict[str, str]:
    """Decide every POST/PUT target id before storing anything; map fullUrls to Type/id."""
    mapping: dict[str, str] = {}
    for e in _ordered(entries, ("POST", "PUT")):
        _run_guarded(e, lambda e=e: _resolve_target(unit, e))
        if e.full_url and e.target_id:
            mapping[e.full_url] = f"{e.rtype}/{e.target_id}"
    return mapping


def _resolve_target(unit: Unit, e: Entry) -> None:
    assert e.rtype
    e.matched = False
    if e.method == "POST":
        e.target_id = interactions.new_id()
        if e.if_none_exist:
            interactions.lock_criteria(unit, e.rtype, e.if_none_exist)  # two copies at once: one creates, one matches
            matches = unit.find(e.rtype, e.if_none_exist)
            if len(matches) > 1:
                raise PreconditionFailed(f"ifNoneExist '{e.if_none_exist}' matches more than one {e.rtype}", code="multiple-matches")
            if matches:
                e.target_id, e.matched = matches[0].id, True
    elif e.query:
        interactions.lock_criteria(unit, e.rtype, e.query)
        matches = unit.find(e.rtype, e.query)
        if len(matches) > 1:
            raise PreconditionFailed(f"Conditional update '{e.url}' matches more than one {e.rtype}", code="multiple-matches")
        e.target_id = matches[0].id if matches else (e.resource or {}).get("id") or interactions.new_id()
    else:
        e.target_id = e.rid


def _rewrite_entry(unit: Unit, e: Entry, entries: list[Entry], mapping: dict[str, str]) -> None:
    if e.source is None or e.matched:
        return
    conditional = {f"{x.rtype}?{x.if_none_exist or x.query}": f"{x.rtype}/{x.target_id}"
                   for x in entries if x.target_id and (x.if_none_exist or x.query)}

    def resolve(reference: str) -> str | None:
        if reference in mapping:
            return mapping[reference]
        absolute = references.absolute(reference, e.full_url)
        if absolute and absolute in mapping:
            return mapping[absolute]
        if _is_conditional(reference):
            return conditional.get(reference) or _conditional_reference(unit, reference)
        return None

    e.resource = references.rewrite(e.source, resolve)


def _is_conditional(reference: str) -> bool:
    return "?" in reference and reference.split("?")[0] in tables().resource_types


def _conditional_reference(unit: Unit, reference: str) -> str:
    rtype, _, query = reference.partition("?")
    matches = unit.find(rtype, query)
    if len(matches) != 1:
        raise PreconditionFailed(f"Conditional reference '{reference}' matches {len(matches) if len(matches) < 2 else 'more than one'} "
                                 f"{rtype}; it must match exactly one", code="not-found" if not matches else "multiple-matches")
    return f"{rtype}/{matches[0].id}"


def _execute(unit: Unit, e: Entry, prefer: Prefer, base: str, settings: dict) -> None:
    if e.method in ("GET", "HEAD"):
        e.response = _read_entry(unit, e, base, settings)
        return
    result = _write_entry(unit, e)
    e.response = _response_entry(result, prefer, base, e.method)


def _write_entry(unit: Unit, e: Entry) -> Result | None:
    assert e.rtype
    if e.method == "DELETE":
        if e.query:
            return interactions.conditional_delete(unit, e.rtype, e.query)
        return interactions.delete(unit, e.rtype, e.rid or "")
    if e.method == "PATCH":
        return interactions.patch(unit, e.rtype, e.rid or _single(unit, e), _patch_operations(e), if_match=e.if_match)
    assert e.resource is not None
    if e.method == "POST":
        if e.matched:
            existing = unit.current(e.rtype, e.target_id or "")
            assert existing is not None
            return Result(existing, 200)
        return interactions.create(unit, e.resource, rid=e.target_id)
    resource = dict(e.resource, id=e.target_id)
    return interactions.update(unit, e.rtype, e.target_id or "", resource, if_match=e.if_match)


def _single(unit: Unit, e: Entry) -> str:
    matches = unit.find(e.rtype or "", e.query or "")
    if len(matches) != 1:
        raise PreconditionFailed(f"Conditional patch '{e.url}' matches {len(matches)} resources; it must match one")
    return matches[0].id


def _patch_operations(e: Entry) -> object:
    res = e.resource or {}
    if res.get("resourceType") != "Binary" or res.get("contentType") != "application/json-patch+json" or "data" not in res:
        raise BadRequest("A PATCH entry holds a Binary with contentType application/json-patch+json", expression=f"{e.where}.resource")
    try:
        return json.loads(base64.b64decode(res["data"], validate=True))
    except (binascii.Error, ValueError) as err:
        raise BadRequest(f"The PATCH Binary does not hold a JSON Patch: {err}", expression=f"{e.where}.resource.data") from None


def _response_entry(result: Result | None, prefer: Prefer, base: str, method: str) -> str:
    if result is None:
        return bundles.entry(None, response={"status": status_line(204)})
    stored = result.stored
    full_url = f"{base}/{stored.type}/{stored.id}"
    status = 204 if stored.deleted else result.status
    response = {"status": status_line(status), "location": f"{stored.type}/{stored.id}/_history/{stored.version}",
                "etag": stored.etag, "lastModified": dates.instant(stored.last_updated)}
    if prefer.return_ == "OperationOutcome":
        response["outcome"] = json.dumps(informational(f"{method} {stored.type}/{stored.id} done"))
    body = stored.content if prefer.return_ == "representation" and not stored.deleted else None
    return bundles.entry(full_url, body, response=response)


def _read_entry(unit: Unit, e: Entry, base: str, settings: dict) -> str:
    unit.flush()
    if e.rtype and e.rid and not e.query:
        stored = repository.version(unit.conn, e.rtype, e.rid, int(e.vid)) if e.vid and e.vid.isdigit() \
            else repository.current(unit.conn, e.rtype, e.rid)
        if stored is None:
            raise NotFound(f"{e.rtype}/{e.rid} is not known")
        privacy.check_read(unit.conn, stored)  # 404 / 403 for an outside client, as a REST read
        if stored.deleted:
            raise Gone(f"{e.rtype}/{e.rid} has been deleted")
        response = {"status": status_line(200), "etag": stored.etag, "lastModified": dates.instant(stored.last_updated)}
        return bundles.entry(f"{base}/{e.rtype}/{e.rid}", stored.content if e.method == "GET" else None, response=response)
    if e.rtype:
        return _search_entry(unit, e, base, settings)
    raise BadRequest(f"GET {e.url} is not supported inside a Bundle", code="not-supported", expression=f"{e.where}.request.url")


def _search_entry(unit: Unit, e: Entry, base: str, settings: dict) -> str:
    from .rest import searchset  # the same Bundle as a REST search

    args = parse_qsl(e.query or "", keep_blank_values=True)
    req = search.parse(e.rtype or "", args, default_count=settings["PAGE_SIZE"], max_count=settings["MAX_PAGE_SIZE"], strict=False)
    page = search.run(unit.conn, req, base, settings["MAX_INCLUDES"])
    shown = privacy.screen_page(unit.conn, page)
    return bundles.entry(None, shown.mark(searchset(base, e.rtype or "", req, page)), response={"status": status_line(200)})


# ------------------------------------------------------------------------------- batch
def _batch_entry(unit: Unit, e: Entry, prefer: Prefer, base: str, settings: dict) -> None:
    """Run one batch entry in its own savepoint; record its error as its response (http.html#brules)."""
    for attempt in range(interactions.MAX_ATTEMPTS):
        mark = len(unit.changes)
        try:
            with unit.conn.begin_nested():
                _batch_execute(unit, e, prefer, base, settings)
                unit.flush()
            return
        except RetryableConflict:
            _reset(unit, mark)
            if attempt == interactions.MAX_ATTEMPTS - 1:
                e.response = _error_entry(409, [("error", "conflict", "A concurrent write won; retry the entry")])
        except FhirError as err:
            _reset(unit, mark)
            e.response = bundles.entry(None, response={"status": status_line(err.status),
                                                       "outcome": json.dumps(outcome(err.prefixed(f"{e.where}.resource").issues))})
            return


def _reset(unit: Unit, mark: int) -> None:
    unit.batch = Batch()
    del unit.changes[mark:]


def _error_entry(status: int, issues: list[tuple[str, str, str]]) -> str:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": s, "code": c, "diagnostics": d} for s, c, d in issues]}
    return bundles.entry(None, response={"status": status_line(status), "outcome": json.dumps(body)})


def _check_scope(e: Entry) -> None:
    scopes.entry(e.method, e.url, e.rtype, e.rid, e.query, bool(e.if_none_exist), e.where)


def _batch_execute(unit: Unit, e: Entry, prefer: Prefer, base: str, settings: dict) -> None:
    _check_scope(e)  # a batch entry beyond the client's scopes gets its own 403
    if e.source is not None and _has_placeholder(e.source):
        raise BadRequest("Entries of a batch cannot reference each other by urn:uuid; use a transaction", code="not-found")
    if e.method == "POST":
        e.target_id = interactions.new_id()
        if e.if_none_exist:
            result = interactions.create(unit, e.resource or {}, if_none_exist=e.if_none_exist)
            e.response = _response_entry(result, prefer, base, e.method)
            return
    elif e.method == "PUT":
        _resolve_target(unit, e)
    if e.source is not None and e.method in ("POST", "PUT"):
        e.resource = references.rewrite(e.source, lambda ref: _conditional_reference(unit, ref) if _is_conditional(ref) else None)
    _execute(unit, e, prefer, base, settings)


def _has_placeholder(resource: dict) -> bool:
    return '"urn:uuid:' in json.dumps(resource) and resource.get("resourceType") != "Bundle"
