"""ValueSet/$expand for the value sets of our implementation guide.

GET or POST [base]/ValueSet/$expand?url=…, or [base]/ValueSet/[id]/$expand, with optional `filter`
(text in code or display), `offset` and `count`.
See: https://hl7.org/fhir/R4/valueset-operation-expand.html
"""
from __future__ import annotations

import json
import uuid

from flask import Response, request

from . import conformance, dates, repository, wire
from .db import get_db
from .errors import BadRequest, NotFound


def expand(rid: str | None) -> Response:
    """The expansion of one of our value sets, as a ValueSet resource."""
    params = _parameters()
    url = _url(rid, params.get("url"))
    terminology = conformance.registry().terminology
    if url not in terminology.value_sets:
        raise NotFound(f"ValueSet {url} is not one of this server's value sets; only those can be expanded", code="not-supported")
    text = (params.get("filter") or "").casefold()
    concepts = [c for c in terminology.expand(url) if not text or text in c.code.casefold() or text in (c.display or "").casefold()]
    offset = wire.int_param("offset", params.get("offset"), default=0) or 0
    count = wire.int_param("count", params.get("count"), default=len(concepts))
    page = concepts[offset:offset + (count if count is not None else len(concepts))]
    expansion = {"identifier": f"urn:uuid:{uuid.uuid4()}", "timestamp": dates.instant(dates.utcnow()), "total": len(concepts),
                 "offset": offset, "contains": [_contains(c) for c in page]}
    if not page:
        del expansion["contains"]
    body = {k: v for k, v in terminology.value_sets[url].items() if k != "text"}
    body["expansion"] = expansion
    return wire.respond(json.dumps(body, ensure_ascii=False))


def _contains(concept: conformance.terminology.Concept) -> dict:
    out = {"system": concept.system, "code": concept.code}
    if concept.display:
        out["display"] = concept.display
    return out


def _parameters() -> dict[str, str]:
    """Operation parameters from the query string, or from a Parameters body on POST."""
    params = dict(request.args.items())
    if request.method == "POST" and request.content_length:
        body = wire.json_body(request)
        if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
            raise BadRequest("POST $expand takes a Parameters resource", code="structure")
        for p in body.get("parameter", []):
            value = next((v for k, v in p.items() if k.startswith("value")), None) if isinstance(p, dict) else None
            if isinstance(value, (str, int)) and p.get("name"):
                params[p["name"]] = str(value)
    return params


def _url(rid: str | None, url: str | None) -> str:
    if rid is None:
        if not url:
            raise BadRequest("$expand needs the url of a value set (or use ValueSet/[id]/$expand)", code="required", expression="url")
        return url.split("|")[0]
    with get_db().read() as conn:
        stored = repository.current(conn, "ValueSet", rid)
    if stored is None or stored.deleted or not stored.content:
        raise NotFound(f"ValueSet/{rid} is not known")
    return json.loads(stored.content).get("url", "")
