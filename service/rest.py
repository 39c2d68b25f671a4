"""Blueprint "fhir": thin views for the FHIR RESTful API (https://hl7.org/fhir/R4/http.html).

Each view parses the request, calls one interaction, and renders the result; errors are raised
as FhirError and rendered in one place (errors.py).
"""
from __future__ import annotations

import json
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request

from . import (
    access,
    audit_search,
    auth,
    bundles,
    capability,
    dates,
    elements,
    fhir,
    history,
    interactions,
    operations,
    privacy,
    repository,
    scopes,
    search,
    transaction,
    wire,
)
from .db import get_db
from .definitions import tables
from .errors import BadRequest, Gone, Issue, NotFound, PreconditionFailed, UnsupportedMediaType, informational, outcome
from .interactions import Result

bp = Blueprint("fhir", __name__, url_prefix="/fhir")


@bp.before_request
def _before() -> None:
    g.mime = wire.negotiate(request)
    auth.check(request)
    scopes.check_request(request)


@bp.after_request
def _after(response: Response) -> Response:
    """Echo a client's X-Request-Id so that both sides can correlate logs."""
    request_id = request.headers.get("X-Request-Id", "")
    if wire.REQUEST_ID.fullmatch(request_id):
        response.headers["X-Request-Id"] = request_id
    return response


def settings() -> dict:
    return current_app.config["IOP"]


def known_type(rtype: str) -> str:
    if rtype not in tables().resource_types:
        raise NotFound(f"Resource type '{rtype}' is not supported by this server", code="not-supported")
    return rtype


def valid_id(rid: str) -> str:
    if not fhir.ID_RE.match(rid):
        raise BadRequest(f"'{rid}' is not a valid resource id")
    return rid


def write_options() -> interactions.Options:
    """The write path's options for this request."""
    return interactions.Options(wire.base_url(), settings()["MAX_JSON_DEPTH"], current_app.extensions["iop.required_profiles"],
                                access=access.current())


def write(work) -> Result:
    return interactions.run(get_db(), work, write_options())


def conditional_query() -> str:
    """The query string of a conditional interaction, without the format parameters."""
    return urlencode([(k, v) for k, v in request.args.items(multi=True) if k not in ("_format", "_pretty")])


# ------------------------------------------------------------------------------- responses
def written(result: Result | None) -> Response:
    """The response to a create/update/patch/delete, honouring Prefer: return."""
    pref = wire.prefer(request)
    if result is None:
        return wire.respond(_outcome_text("Nothing to delete"), 200) if pref.return_ == "OperationOutcome" else wire.respond(None, 204)
    stored, base = result.stored, wire.base_url()
    headers = wire.version_headers(stored, base, location=result.status in (200, 201) and not stored.deleted)
    status = result.status
    if stored.deleted and pref.return_ == "OperationOutcome":
        return wire.respond(_outcome_text("Deleted"), 200, headers)
    if stored.deleted:
        return wire.respond(None, 204, headers)
    if pref.return_ == "minimal":
        return wire.respond(None, status, headers)
    if pref.return_ == "OperationOutcome":
        return wire.respond(_outcome_text(f"{stored.type}/{stored.id} version {stored.version} stored"), status, headers)
    return wire.respond(stored.content, status, headers)


def _outcome_text(text: str) -> str:
    return json.dumps(informational(text))


# ------------------------------------------------------------------------------- system level
@bp.get("/metadata")
def metadata() -> Response:
    return wire.respond(capability.statement_json(wire.base_url(), settings()["AUTH"] == "on"))


@bp.post("/")
@bp.post("")
def batch_or_transaction() -> Response:
    body = wire.json_body(request)
    return wire.respond(transaction.process(get_db(), body, wire.prefer(request), write_options(), settings()))


@bp.get("/")
@bp.get("")
def system_search() -> Response:
    raise BadRequest("System-level search is not supported; search a resource type, e.g. GET [base]/Patient?…", code="not-supported")


@bp.get("/_history")
def system_history() -> Response:
    return _history()


@bp.route("/<name>", methods=["POST"])
def operation_or_create(name: str) -> Response:
    if name.startswith("$"):
        return operations.system(name)
    return create(name)


# ------------------------------------------------------------------------------- type level
def create(rtype: str) -> Response:
    known_type(rtype)
    body, condition = wire.resource_body(request, rtype), _create_condition()
    return written(write(lambda unit: interactions.create(unit, body, if_none_exist=condition)))


def _create_condition() -> str | None:
    """If-None-Exist, or search parameters on the POST URL (as fhirpy's create(**criteria) sends them).

    R4 defines only the header; criteria in the URL are taken as the same condition rather than
    ignored, because ignoring them silently creates the duplicates the client meant to prevent.
    """
    header, query = request.headers.get("If-None-Exist"), conditional_query()
    if header and query and header != query:
        raise BadRequest("Give the conditional-create criteria once: in If-None-Exist or in the URL, not both")
    return header or query or None


@bp.get("/<rtype>")
def search_get(rtype: str) -> Response:
    return _search(known_type(rtype), list(request.args.items(multi=True)))


@bp.post("/<rtype>/_search")
def search_post(rtype: str) -> Response:
    known_type(rtype)
    if request.mimetype != wire.FORM:
        raise UnsupportedMediaType(f"POST {rtype}/_search takes {wire.FORM}")
    return _search(rtype, list(request.args.items(multi=True)) + list(request.form.items(multi=True)))


@bp.put("/<rtype>")
def conditional_update(rtype: str) -> Response:
    known_type(rtype)
    query, body, if_match = conditional_query(), wire.resource_body(request, rtype), request.headers.get("If-Match")
    return written(write(lambda unit: interactions.conditional_update(unit, rtype, query, body, if_match=if_match)))


@bp.delete("/<rtype>")
def conditional_delete(rtype: str) -> Response:
    known_type(rtype)
    query = conditional_query()
    return written(write(lambda unit: interactions.conditional_delete(unit, rtype, query)))


@bp.patch("/<rtype>")
def conditional_patch(rtype: str) -> Response:
    known_type(rtype)
    query, ops, if_match = conditional_query(), _patch_body(), request.headers.get("If-Match")

    def work(unit: interactions.Unit) -> Result:
        matches = unit.find(rtype, query)
        if not matches:
            raise NotFound(f"Conditional patch criteria '{query}' match no {rtype}")
        if len(matches) > 1:
            raise PreconditionFailed(f"Conditional patch criteria '{query}' match more than one {rtype}", code="multiple-matches")
        return interactions.patch(unit, rtype, matches[0].id, ops, if_match=if_match)
    return written(write(work))


@bp.get("/<rtype>/_history")
def type_history(rtype: str) -> Response:
    if rtype == "AuditEvent":  # the audit trail has its own table (service/audit_search.py)
        return audit_search.type_history()
    return _history(known_type(rtype))


# ------------------------------------------------------------------------------- instance level
@bp.get("/<rtype>/<rid>")
def read(rtype: str, rid: str) -> Response:
    known_type(rtype)
    if rid.startswith("$"):
        return operations.type_level(rtype, rid)
    if rtype == "AuditEvent":
        return audit_search.read(rid)
    with get_db().read() as conn:
        stored = repository.current(conn, rtype, valid_id(rid))
        notice = privacy.check_read(conn, stored)  # 404 not yours, 403 Part 2 without consent (service/privacy.py)
    if stored is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    if stored.deleted:
        raise Gone(f"{rtype}/{rid} has been deleted", headers=wire.version_headers(stored, ""))
    return _serve_version(stored, notice)


def _serve_version(stored: repository.Stored, notice: dict | None = None) -> Response:
    headers = wire.version_headers(stored, "") | (notice or {})  # no Location on a read, so no base URL to work out
    inm = request.headers.get("If-None-Match")
    if inm and interactions.parse_etag(inm) == str(stored.version):
        return wire.respond(None, 304, headers)
    content = stored.content or ""
    summary, elems = request.args.get("_summary"), request.args.get("_elements")
    if elements.wanted(summary, elems.split(",") if elems else None):
        content = elements.subset(content, summary, elems.split(",") if elems else None)
    return wire.respond(content, 200, headers)


@bp.post("/<rtype>/<name>")
def type_operation(rtype: str, name: str) -> Response:
    known_type(rtype)
    if not name.startswith("$"):
        raise NotFound(f"No such endpoint POST {rtype}/{name}", code="not-supported")
    return operations.type_level(rtype, name)


@bp.put("/<rtype>/<rid>")
def update(rtype: str, rid: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    body, if_match = wire.resource_body(request, rtype), request.headers.get("If-Match")
    return written(write(lambda unit: interactions.update(unit, rtype, rid, body, if_match=if_match)))


def _patch_body() -> object:
    if request.mimetype in (wire.FHIR_JSON, "application/json"):
        raise UnsupportedMediaType(f"PATCH takes a JSON Patch document ({wire.JSON_PATCH}); FHIRPath Patch is not supported")
    return wire.json_body(request, (wire.JSON_PATCH,))


@bp.patch("/<rtype>/<rid>")
def patch(rtype: str, rid: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    ops, if_match = _patch_body(), request.headers.get("If-Match")
    return written(write(lambda unit: interactions.patch(unit, rtype, rid, ops, if_match=if_match)))


@bp.delete("/<rtype>/<rid>")
def delete(rtype: str, rid: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    return written(write(lambda unit: interactions.delete(unit, rtype, rid)))


@bp.get("/<rtype>/<rid>/_history")
def instance_history(rtype: str, rid: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    if rtype == "AuditEvent":
        return audit_search.instance_history(rid)
    with get_db().read() as conn:
        current = repository.current(conn, rtype, rid)
        if current is None:
            raise NotFound(f"{rtype}/{rid} is not known")
        privacy.check_read(conn, current)
    return _history(rtype, rid)


@bp.get("/<rtype>/<rid>/_history/<vid>")
def vread(rtype: str, rid: str, vid: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    if not vid.isdigit() or int(vid) > 2**31 - 1:
        raise NotFound(f"{rtype}/{rid} has no version '{vid}'")
    if rtype == "AuditEvent":
        return audit_search.vread(rid, vid)
    with get_db().read() as conn:
        stored = repository.version(conn, rtype, rid, int(vid))
        notice = privacy.check_read(conn, stored)
    if stored is None:
        raise NotFound(f"{rtype}/{rid} has no version {vid}")
    if stored.deleted:
        raise Gone(f"Version {vid} of {rtype}/{rid} is a deletion", headers=wire.version_headers(stored, ""))
    return _serve_version(stored, notice)


@bp.route("/<rtype>/<rid>/<name>", methods=["GET", "POST"])
def instance_operation(rtype: str, rid: str, name: str) -> Response:
    known_type(rtype)
    valid_id(rid)
    if not name.startswith("$"):
        raise NotFound(f"No such endpoint {rtype}/{rid}/{name}", code="not-supported")
    return operations.instance_level(rtype, rid, name)


# ------------------------------------------------------------------------------- search and history bodies
def _search(rtype: str, args: list[tuple[str, str]]) -> Response:
    if rtype == "AuditEvent":
        return audit_search.search(args)
    s, base = settings(), wire.base_url()
    req = search.parse(rtype, args, default_count=s["PAGE_SIZE"], max_count=s["MAX_PAGE_SIZE"], strict=wire.prefer(request).strict)
    if any(i.source == "AuditEvent" for i in req.revincludes):
        raise BadRequest("_revinclude of AuditEvent is not supported: search AuditEvent?entity=… instead",
                         code="not-supported", expression="_revinclude")
    with get_db().read() as conn:
        page = search.run(conn, req, base, s["MAX_INCLUDES"])
        shown = privacy.screen_page(conn, page)  # what an outside client may not have is left out
    return wire.respond(shown.mark(searchset(base, rtype, req, page)))


def searchset(base: str, rtype: str, req: search.SearchRequest, page: search.Page) -> str:
    """The searchset Bundle for one page."""
    def serve(row: search.Row) -> str:
        return elements.subset(row.content, req.summary, req.elements) if elements.wanted(req.summary, req.elements) else row.content

    entries = [bundles.entry(f"{base}/{r.type}/{r.id}", serve(r), search_mode="match") for r in page.matches]
    included, hidden = scopes.readable_rows(page.included)
    entries += [bundles.entry(f"{base}/{r.type}/{r.id}", serve(r), search_mode="include") for r in included]
    warnings = list(page.warnings) + hidden + [Issue("warning", "not-supported", f"Search parameter '{n}' is not known and was ignored", n)
                                      for n in req.ignored]
    if warnings:
        entries.append(bundles.entry(None, json.dumps(outcome(warnings)), search_mode="outcome"))
    return bundles.bundle("searchset", entries, total=page.total, links=_links(base, rtype, req, page))


def _links(base: str, path: str, req: search.SearchRequest, page: search.Page) -> list[tuple[str, str]]:
    params = [(k, v) for k, v in req.echo if k != "_cursor"]
    url = f"{base}/{path}"

    def link(cursor: str | None = None) -> str:
        query = urlencode(params + ([("_cursor", cursor)] if cursor else []))
        return f"{url}?{query}" if query else url

    links = [("self", link(req.cursor)), ("first", link())]
    if page.previous_cursor:
        links.append(("previous", link(page.previous_cursor)))
    if page.next_cursor:
        links.append(("next", link(page.next_cursor)))
    return links


def _history(rtype: str | None = None, rid: str | None = None) -> Response:
    args, base = request.args, wire.base_url()
    count = _count(args.get("_count"))
    since = history.parse_since(args.get("_since"))
    before, after = _int_arg("_before"), _int_arg("_after")
    with get_db().read() as conn:
        hp = history.page(conn, rtype=rtype, rid=rid, since=since, count=count, before=before, after=after)
        shown = privacy.Screened()
        hp.versions = privacy.screen(conn, hp.versions, shown)
        hp.total = hp.total if not privacy.is_outside() else None  # a total would count what was withheld
    entries = [_history_entry(base, v) for v in hp.versions]
    path = "/".join(p for p in (rtype, rid, "_history") if p)
    keep = [(k, v) for k, v in args.items(multi=True) if k in ("_count", "_since", "_format")]
    url = f"{base}/{path}"
    links = [("self", _url(url, keep + [(k, v) for k, v in args.items() if k in ("_before", "_after")]))]
    if hp.previous_cursor:
        links.append(("previous", _url(url, keep + [("_after", str(hp.previous_cursor))])))
    if hp.next_cursor:
        links.append(("next", _url(url, keep + [("_before", str(hp.next_cursor))])))
    return wire.respond(shown.mark(bundles.bundle("history", entries, total=hp.total, links=links)), headers=_notice(shown))


def _notice(shown: privacy.Screened) -> dict[str, str] | None:
    """The §2.32 notice of a history Bundle (which has no room for an OperationOutcome entry) as a header."""
    return {privacy.NOTICE_HEADER: " ".join(i.diagnostics for i in shown.issues())} if shown.consents else None


def _url(url: str, params: list[tuple[str, str]]) -> str:
    return f"{url}?{urlencode(params)}" if params else url


def _count(raw: str | None) -> int:
    count = wire.int_param("_count", raw, default=settings()["PAGE_SIZE"]) or 1
    return min(count, settings()["MAX_PAGE_SIZE"])


def _int_arg(name: str) -> int | None:
    return wire.int_param(name, request.args.get(name))


_STATUS = {"POST": "201 Created", "PUT": "200 OK", "DELETE": "204 No Content"}


def _history_entry(base: str, v: history.Version) -> str:
    full = f"{base}/{v.type}/{v.id}"
    request_ = {"method": "POST", "url": v.type} if v.method == "POST" else {"method": v.method, "url": f"{v.type}/{v.id}"}
    status = "201 Created" if v.version == 1 and v.method != "DELETE" else _STATUS.get(v.method, "200 OK")
    response = {"status": status, "etag": f'W/"{v.version}"', "lastModified": dates.instant(v.last_updated)}
    return bundles.entry(full, v.content, request=request_, response=response)
