"""What FhirClient does when the remote lacks an interaction: a transaction as single requests, a conditional
create as a search then a create.

Neither is atomic, and that is the price of talking to such a server:
- one by one, a failure part-way leaves the earlier entries applied; PartialTransactionError says which, so
  the caller (the outbox) can send the Bundle again: entries keyed on a business identifier (ifNoneExist,
  conditional PUT) or PUT by id do not duplicate on a resend, plain POSTs may.
- search-then-create can create twice when two writers race between the search and the create.
The order follows the transaction rules (https://hl7.org/fhir/R4/http.html#trules): DELETE, then POST, then
PUT/PATCH, then GET; POSTs are further ordered so that a resource is created before one that references its
urn:uuid, and such references are rewritten to the created Type/id before sending.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from .fhirclient import FhirClientError, FhirRequestError, Reply

if TYPE_CHECKING:
    from .fhirclient import FhirClient

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}  # https://hl7.org/fhir/R4/http.html#trules
_LOCATION = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?/?$")


class PartialTransactionError(FhirClientError):
    """Entry `failed` of a transaction sent one by one was refused; entries `done` (Bundle indexes) were applied,
    and `applied` holds their transaction-response entries (status, location) by index."""

    def __init__(self, message: str, cause: FhirClientError, failed: int, applied: dict[int, dict]):
        super().__init__(message, response=cause.response, outcome=cause.outcome)
        self.cause, self.failed, self.applied = cause, failed, applied
        self.done = sorted(applied)

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.cause.retryable


# ------------------------------------------------------------------------------- conditional create
def search_then_create(client: FhirClient, resource: dict, query: str) -> Reply:
    """Return the one match of `query` (200), create when none matches (201); several matches: FhirRequestError."""
    rtype = resource["resourceType"]
    params = parse_qsl(query, keep_blank_values=True)
    if not params:
        raise FhirRequestError(f"conditional create of {rtype}: the criteria {query!r} hold no search parameter")
    page = client.get(rtype, params + [("_count", "2")])
    matches = [e["resource"] for e in page.get("entry") or []
               if isinstance(e, dict) and isinstance(e.get("resource"), dict) and (e.get("search") or {}).get("mode", "match") == "match"]
    if len(matches) > 1:
        raise FhirRequestError(f"conditional create of {rtype}: {query!r} matches more than one resource (HTTP 412 semantics)")
    if matches:
        found = matches[0]
        return Reply(200, found, f"{rtype}/{found.get('id')}", _etag(found))
    return client.create(resource)


def _etag(resource: dict) -> str | None:
    vid = (resource.get("meta") or {}).get("versionId")
    return f'W/"{vid}"' if isinstance(vid, str) else None


# ------------------------------------------------------------------------------- transaction as single requests
def one_by_one(client: FhirClient, bundle: dict) -> dict:
    """Send a transaction Bundle's entries as single requests; a transaction-response Bundle in entry order."""
    entries = bundle.get("entry") or []
    resolved = _known_ids(entries)
    replies: dict[int, dict] = {}
    for index in _order(entries, resolved):
        try:
            reply = _send(client, entries[index], resolved)
        except FhirClientError as err:
            raise PartialTransactionError(f"transaction sent as single requests (the server has no transaction): entry {index} "
                                          f"failed ({err}); entries {sorted(replies)} were applied", err, index, dict(replies)) from err
        replies[index] = reply.as_entry_response()
        full_url = entries[index].get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith("urn:") and reply.location:
            resolved[full_url] = type_id(reply.location) or resolved.get(full_url, full_url)
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": [replies[i] for i in range(len(entries))]}


def _known_ids(entries: list[dict]) -> dict[str, str]:
    """urn:uuid fullUrls whose target is known before sending: PUT Type/id entries."""
    known = {}
    for entry in entries:
        url, full_url = (entry.get("request") or {}).get("url"), entry.get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith("urn:") and isinstance(url, str) and _LOCATION.match(url):
            known[full_url] = url.strip("/")
    return known


def _order(entries: list[dict], resolved: dict[str, str]) -> list[int]:
    """DELETE, POST, PUT/PATCH, GET; among POSTs, referenced before referencing (a cycle cannot be sent one by one)."""
    method = [str((e.get("request") or {}).get("method", "")).upper() for e in entries]
    bad = [i for i, m in enumerate(method) if m not in METHOD_ORDER]
    if bad:
        raise FhirRequestError(f"transaction entry {bad[0]} has no valid request.method")
    if "PATCH" in method:  # its body is a Binary holding a JSON Patch, which single requests would send as a resource
        raise FhirRequestError(f"transaction entry {method.index('PATCH')} is a PATCH: it cannot be sent one by one")
    posts = [i for i, m in enumerate(method) if m == "POST"]
    created = {entries[i].get("fullUrl") for i in posts}
    waiting = {i: _references(entries[i].get("resource")) & created - {entries[i].get("fullUrl")} for i in posts}
    ordered: list[int] = []
    while waiting:
        ready = [i for i in sorted(waiting) if not waiting[i] - {entries[j].get("fullUrl") for j in ordered}]
        if not ready:
            raise FhirRequestError(f"transaction entries {sorted(waiting)} reference each other in a cycle: they cannot be sent one by one")
        ordered.append(ready[0])
        del waiting[ready[0]]
    rest = sorted((i for i, m in enumerate(method) if m != "POST"), key=lambda i: (METHOD_ORDER[method[i]], i))
    return [i for i in rest if method[i] == "DELETE"] + ordered + [i for i in rest if method[i] != "DELETE"]


def _references(value: object) -> set[str]:
    """Every Reference.reference (and nothing else) in a resource."""
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        return found.union(*(_references(v) for k, v in value.items() if k != "reference"))
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value))
    return set()


def _rewrite(value: object, resolved: dict[str, str]) -> object:
    if isinstance(value, dict):
        return {k: (resolved.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, resolved)) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, resolved) for v in value]
    return value


def _send(client: FhirClient, entry: dict, resolved: dict[str, str]) -> Reply:
    request = entry.get("request") or {}
    method, url = str(request.get("method")).upper(), str(request.get("url") or "").strip("/")
    resource = _rewrite(entry.get("resource"), resolved) if isinstance(entry.get("resource"), dict) else None
    if method == "POST" and isinstance(resource, dict):
        query = request.get("ifNoneExist")
        return client.conditional_create(resource, query) if query else client.create(resource)
    if method == "PUT" and isinstance(resource, dict) and "?" in url:
        return _conditional_update(client, resource, url)
    headers = {"If-Match": request["ifMatch"]} if request.get("ifMatch") else {}
    return client.send(method, url, body=resource if isinstance(resource, dict) else None, headers=headers)


def _conditional_update(client: FhirClient, resource: dict, url: str) -> Reply:
    """PUT Type?criteria; without the interaction: search, then update the one match or create when none matches."""
    rtype, query = url.split("?", 1)
    if client.support.conditional_update(rtype):
        return client.send("PUT", url, body=resource)
    page = client.get(rtype, parse_qsl(query, keep_blank_values=True) + [("_count", "2")])
    matches = [e["resource"] for e in page.get("entry") or [] if (e.get("search") or {}).get("mode", "match") == "match"]
    if len(matches) > 1:
        raise FhirRequestError(f"conditional update of {rtype}: {query!r} matches more than one resource (HTTP 412 semantics)")
    if matches:
        return client.update({**resource, "id": matches[0]["id"]})
    return client.create({k: v for k, v in resource.items() if k != "id"})


def type_id(location: str) -> str | None:
    """Type/id from a Location header (absolute or relative, with or without _history)."""
    match = _LOCATION.search(location.split("?", 1)[0])
    return f"{match.group(1)}/{match.group(2)}" if match else None
