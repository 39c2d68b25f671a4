"""Pull step-down referrals from referring hospitals' FHIR servers (workflow option F, Gravity's polling).

A referring server is configured as FHIR data: an active Endpoint on our server (connectionType
hl7-fhir-rest, payloadType REFERRAL_SOURCE, address = the remote base) whose OWNER_EXTENSION holds
the remote's reference to our program. Each poll asks the remote for the Tasks that program owns,
changed after the stored cursor:

    GET <address>/Task?owner=<ref>&_lastUpdated=gt<cursor>&_sort=_lastUpdated&_include=Task:focus&_include=Task:patient

and ingests each Task, its ServiceRequest, Patient and supporting resources as ONE transaction Bundle
through service.transaction.process: the same write path, validation and workflows as a referral
POSTed over REST. Conditional entries (Patient on its identifier, the others on their business
identifier, the Task on its remote address) make a re-poll a no-op.

The cursor (the remote's meta.lastUpdated) is saved only after the Tasks up to it are committed.
A Task our server refuses (validation, a referral without its ServiceRequest) is logged, counted on
the cursor row and skipped; a remote that is down or slow stops the poll where it is, to resume at
the next one. See: https://hl7.org/fhir/R4/workflow-management.html (option F) and the Gravity IG's
"Checking Task Status" (poll at most every 15 minutes).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask

from . import cursors, dates, endpoints, interactions, search, transaction
from .db import Database
from .errors import Conflict, FhirError
from .fhirclient import FhirClient, FhirClientError, FhirRequestError, next_link
from .referral_bundle import InvalidReferral, escape, query_string, referral_bundle, remote_key, token
from .wire import Prefer

log = logging.getLogger(__name__)

CONNECTION_TYPE = endpoints.CONNECTION_TYPE
# A local code (no standard code says "poll this server for referral Tasks"): code system of ours.
REFERRAL_SOURCE = ("https://iop.example.org/fhir/CodeSystem/iop-endpoint-payload", "referral-source")
OWNER_EXTENSION = "https://iop.example.org/fhir/StructureDefinition/referral-task-owner"
PROGRAM_EXTENSION = "https://iop.example.org/fhir/StructureDefinition/referral-program"
TOKEN_EXTENSION = endpoints.TOKEN_EXTENSION
MAX_PAGES = 50  # pages per poll; the rest comes at the next poll
GRAVITY_MIN_INTERVAL = 900  # seconds: Gravity's pollers SHOULD NOT poll more often than every 15 minutes


class SourceError(endpoints.EndpointError):
    """An Endpoint that cannot be polled as a referral source (its configuration is wrong)."""


@dataclass(frozen=True)
class Source:
    """One referring server to poll, read from an Endpoint."""

    endpoint_id: str
    base: str
    owner: tuple[str, str]  # (search parameter, value): ("owner", "Organization/7") or ("owner:identifier", "system|value")
    # values are as FHIR search writes them (search.html#escaping), not yet percent-encoded
    program: str  # the same program on our server (Organization/… or HealthcareService/…): what Task.owner becomes here
    token_env: str | None = None
    endpoint: endpoints.Endpoint | None = None  # as the registry reads it (address, credentials, timeouts, rate)

    @property
    def cursor_name(self) -> str:
        return f"referral-pull:Endpoint/{self.endpoint_id}"


@dataclass
class PollResult:
    """What one poll of one Endpoint did."""

    endpoint_id: str
    ingested: int = 0
    skipped: int = 0
    cursor: str | None = None
    stopped: str | None = None  # why the poll ended early; None when it read everything

    def summary(self) -> str:
        state = f"stopped: {self.stopped}" if self.stopped else "complete"
        return f"Endpoint/{self.endpoint_id}: {self.ingested} ingested, {self.skipped} skipped, cursor {self.cursor or '-'}, {state}"


# ------------------------------------------------------------------------------- configuration
def source_from_endpoint(resource: dict) -> Source:
    """The Source an Endpoint describes (address and credentials as service/endpoints.py reads them); SourceError says what is missing."""
    try:
        endpoint = endpoints.parse(resource)
    except endpoints.EndpointError as err:
        raise SourceError(str(err)) from None
    rid, base = endpoint.id, endpoint.address
    if REFERRAL_SOURCE not in endpoint.payload_types:
        raise SourceError(f"Endpoint/{rid}.payloadType does not mark it as a referral source ({REFERRAL_SOURCE[0]}#{REFERRAL_SOURCE[1]})")
    return Source(rid, base, _owner(resource, rid, base), _program(resource, rid), endpoint.token_env, endpoint)


def _coding(coding: object) -> tuple[str, str] | None:
    return (coding.get("system"), coding.get("code")) if isinstance(coding, dict) else None  # type: ignore[return-value]


def _extension(endpoint: dict, url: str) -> dict | None:
    found = [e for e in endpoint.get("extension") or [] if isinstance(e, dict) and e.get("url") == url]
    return found[0] if len(found) == 1 else None


def _owner(endpoint: dict, rid: str, base: str) -> tuple[str, str]:
    """The owner search from the extension: an absolute reference on the remote, or a reference by identifier."""
    value = (_extension(endpoint, OWNER_EXTENSION) or {}).get("valueReference") or {}
    ref, ident = value.get("reference"), value.get("identifier") or {}
    key = remote_key(ref, base) if isinstance(ref, str) and ref.startswith(base + "/") else None
    if key:
        return "owner", key
    if isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
        return "owner:identifier", token(ident["system"], ident["value"])
    raise SourceError(f"Endpoint/{rid} needs one extension {OWNER_EXTENSION} with a valueReference to our program on the remote: "
                      f"an absolute reference under {base} or an identifier")


def _program(endpoint: dict, rid: str) -> str:
    """Our program (a relative reference here) that the remote's owner stands for."""
    ref = ((_extension(endpoint, PROGRAM_EXTENSION) or {}).get("valueReference") or {}).get("reference")
    if not isinstance(ref, str) or not re.match(r"^(Organization|HealthcareService)/[A-Za-z0-9\-.]{1,64}$", ref):
        raise SourceError(f"Endpoint/{rid} needs one extension {PROGRAM_EXTENSION} with a valueReference to our program on this "
                          "server (Organization/… or HealthcareService/…)")
    return ref


def find_sources(db: Database, base_url: str, endpoint_id: str | None = None) -> list[tuple[str, Source | SourceError]]:
    """The referral-source Endpoints on our server (or the one named), each as a Source or the reason it is unusable."""
    criteria = [("connection-type", token(*CONNECTION_TYPE)), ("payload-type", token(*REFERRAL_SOURCE)), ("status", "active")]
    criteria += [("_id", escape(endpoint_id))] if endpoint_id else []
    with db.read() as conn:
        rows = search.find(conn, "Endpoint", query_string(criteria), base_url, limit=1000)
    if endpoint_id and not rows:
        return [(endpoint_id, SourceError(f"Endpoint/{endpoint_id} is not an active referral source on this server"))]
    return [(row.id, _parse_source(row.content)) for row in rows]


def _parse_source(content: str) -> Source | SourceError:
    try:
        return source_from_endpoint(json.loads(content))
    except SourceError as err:
        return err


# ------------------------------------------------------------------------------- the cursor
def _instant(value: str) -> datetime:
    """A remote meta.lastUpdated as naive UTC (to compare; the stored cursor keeps the remote's own text)."""
    return dates.parse_range(value)[0]


class _Checkpoint:
    """Saves the cursor only where every Task last updated at or before it is handled.

    Tasks arrive sorted by _lastUpdated; the cursor moves to a timestamp once a later one begins, so
    Tasks sharing a timestamp are never split by a stop. A remote that does not sort makes the poll
    save only at its end.
    """

    def __init__(self, db: Database, name: str, value: str | None):
        self.db, self.name, self.saved = db, name, value
        self.handled: str | None = None
        self.in_order = True

    def begin(self, stamp: str | None) -> None:
        if stamp is None or self.handled is None:
            return
        if _instant(stamp) < _instant(self.handled):
            self.in_order = False
        elif self.in_order and _instant(stamp) > _instant(self.handled):
            self._save(self.handled)

    def done(self, stamp: str | None) -> None:
        if stamp is not None and (self.handled is None or _instant(stamp) > _instant(self.handled)):
            self.handled = stamp

    def finish(self) -> None:
        if self.handled is not None:
            self._save(self.handled)

    def _save(self, value: str) -> None:
        if self.saved is None or _instant(value) > _instant(self.saved):
            cursors.advance(self.db, self.name, value, _instant)
            self.saved = value


# ------------------------------------------------------------------------------- one poll
@dataclass
class _Poll:
    """The state of one poll of one source."""

    db: Database
    options: interactions.Options
    settings: dict
    source: Source
    client: FhirClient
    result: PollResult
    checkpoint: _Checkpoint
    known: dict[str, dict] = field(default_factory=dict)  # remote resources seen in this poll, by Type/id
    handled: set[str] = field(default_factory=set)  # Task versions handled in this poll


def poll(db: Database, options: interactions.Options, settings: dict, source: Source, client: FhirClient) -> PollResult:
    """Poll one source once: ingest each new or changed Task; the cursor follows what is committed."""
    name = source.cursor_name
    cursor = cursors.read(db, name)
    state = _Poll(db, options, settings, source, client, PollResult(source.endpoint_id), _Checkpoint(db, name, cursor))
    try:
        for page in _pages(state, cursor):
            _remember(state, page)
            for task in _tasks(page):
                _handle(state, task)
        state.checkpoint.finish()
    except (FhirClientError, Conflict) as err:  # the remote is down, slow or refusing; or our writers kept colliding
        state.result.stopped = str(err)
        cursors.record_error(db, name, f"poll stopped: {err}")
        log.warning("referral pull Endpoint/%s stopped: %s", source.endpoint_id, err)
    state.result.cursor = state.checkpoint.saved
    return state.result


def _query(state: _Poll, last_updated: str | None) -> list[tuple[str, str]]:
    params = [state.source.owner, ("_sort", "_lastUpdated"), ("_count", str(state.settings["PULL_PAGE_SIZE"])),
              ("_include", "Task:focus"), ("_include", "Task:patient")]
    return params + ([("_lastUpdated", last_updated)] if last_updated else [])


def _pages(state: _Poll, cursor: str | None) -> Iterator[dict]:
    """Result pages: after a page, search again from its newest timestamp (keyset) rather than by offset.

    Offset paging (the `next` link of many servers) skips a Task when one on an earlier page changes
    mid-poll, and the cursor would then pass it for good. The `next` link is followed only when a whole
    page shares one timestamp (a keyset step could not move on) or the remote does not sort.
    """
    page = state.client.get("Task", _query(state, f"gt{cursor}" if cursor else None))
    for _ in range(MAX_PAGES - 1):
        yield page
        link = next_link(page)
        if link is None:
            return
        stamps = [s for s in (_stamp(t) for t in _tasks(page)) if s]
        in_order = stamps == sorted(stamps, key=_instant)
        if in_order and len({_instant(s) for s in stamps}) > 1:
            page = state.client.get("Task", _query(state, f"ge{stamps[-1]}"))
        else:
            page = state.client.get(link)
    yield page


def _tasks(page: dict) -> list[dict]:
    return [e["resource"] for e in page.get("entry") or [] if _is_match(e) and e["resource"].get("resourceType") == "Task"]


def _is_match(entry: object) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("resource"), dict)
            and ((entry.get("search") or {}).get("mode") or "match") == "match")


def _remember(state: _Poll, page: dict) -> None:
    for entry in page.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and isinstance(resource.get("id"), str) and isinstance(resource.get("resourceType"), str):
            state.known[f"{resource['resourceType']}/{resource['id']}"] = resource


def _stamp(task: dict) -> str | None:
    value = (task.get("meta") or {}).get("lastUpdated")
    try:
        return value if isinstance(value, str) and _instant(value) else None
    except dates.DateFormatError:
        return None


def _handle(state: _Poll, task: dict) -> None:
    """Ingest one Task; a permanent failure is recorded and skipped, a transient one stops the poll (raised)."""
    stamp = _stamp(task)
    version = f"{task.get('id')}|{(task.get('meta') or {}).get('versionId') or stamp}"
    if version in state.handled:
        return  # seen again through a keyset step
    state.handled.add(version)
    state.checkpoint.begin(stamp)
    if _owned(task, state.source):
        try:
            _ingest(state, task)
            state.result.ingested += 1
        except (FhirError, FhirClientError, InvalidReferral) as err:
            if not _permanent(err):
                raise
            _skip(state, task, err)
    state.checkpoint.done(stamp)


def _permanent(err: Exception) -> bool:
    """Whether a failure belongs to this Task's data (skip it) rather than to the remote or to us now (stop the poll).

    Our server refusing the data (400, 412, 422) is permanent; 409 means our writers kept colliding.
    From the remote only 404/410 on a referenced resource is: 401/403 on a read would otherwise skip
    (and lose) every Task while access is misconfigured.
    """
    if isinstance(err, FhirError):
        return not isinstance(err, Conflict)
    if isinstance(err, FhirClientError):
        return err.status in (404, 410)
    return True


def _owned(task: dict, source: Source) -> bool:
    """Whether the Task is really owned by our program (a server that ignored the owner parameter must not leak others' Tasks)."""
    owner = task.get("owner") or {}
    param, value = source.owner
    if param == "owner":
        return remote_key(owner.get("reference"), source.base) == value
    ident = owner.get("identifier") or {}
    return isinstance(ident, dict) and token(str(ident.get("system")), str(ident.get("value"))) == value


def _ingest(state: _Poll, task: dict) -> None:
    source = state.source
    bundle = referral_bundle(source.base, task, lambda ref, optional: _fetch(state, ref, optional), program=source.program,
                             owner_key=source.owner[1] if source.owner[0] == "owner" else None)
    try:
        transaction.process(state.db, bundle, Prefer("minimal"), state.options, state.settings)
    except FhirError as err:
        if isinstance(err, Conflict):
            raise
        raise InvalidReferral(_refusal(err, bundle)) from err


def _refusal(err: FhirError, bundle: dict) -> str:
    """Our server's refusal, naming the remote resource (not the entry of a Bundle the operator never saw)."""
    issue = err.issues[0]
    where = issue.expression or ""
    m = re.match(r"^Bundle\.entry\[(\d+)\](?:\.resource)?(.*)$", where)
    if m and int(m.group(1)) < len(bundle["entry"]):
        origin = bundle["entry"][int(m.group(1))]["resource"]["identifier"][-1]
        where = f"{origin['system'].rsplit('/', 1)[1]}/{origin['value']}{m.group(2)}"
    return f"refused ({err.status}): {issue.diagnostics}" + (f" at {where}" if where else "")


def _fetch(state: _Poll, reference: str, optional: bool) -> dict | None:
    """A remote resource by reference: from this poll's pages, else read (only on the source's server)."""
    key = remote_key(reference, state.source.base)
    if key is None:
        return None
    if key not in state.known:
        rtype, rid = key.split("/")
        try:
            resource = state.client.read(rtype, rid)
        except FhirRequestError as err:
            if optional and err.status in (403, 404, 410):  # withheld or gone: absent, as BSeR asks receivers to read it
                return None
            raise
        if resource.get("resourceType") != rtype or resource.get("id") != rid:
            raise InvalidReferral(f"reading {key} returned {resource.get('resourceType')}/{resource.get('id')}")
        state.known[key] = resource
    return state.known[key]


def _skip(state: _Poll, task: dict, err: Exception) -> None:
    message = f"Task/{task.get('id')} skipped: {err}"
    state.result.skipped += 1
    cursors.record_error(state.db, state.source.cursor_name, message)
    log.warning("referral pull Endpoint/%s: %s", state.source.endpoint_id, message)


# ------------------------------------------------------------------------------- entry points
def pull(app: Flask, endpoint_id: str | None = None) -> list[PollResult]:
    """Poll every referral-source Endpoint (or the one named) once."""
    db, options, settings = _context(app)
    results = []
    with app.app_context():
        for rid, source in find_sources(db, options.base_url, endpoint_id):
            results.append(_poll_or_report(db, options, settings, rid, source))
    return results


def _poll_or_report(db: Database, options: interactions.Options, settings: dict, rid: str, source: Source | SourceError) -> PollResult:
    if isinstance(source, SourceError):
        cursors.record_error(db, f"referral-pull:Endpoint/{rid}", str(source))
        log.warning("referral pull: %s", source)
        return PollResult(rid, stopped=str(source))
    return _poll_source(db, options, settings, source)


def _poll_source(db: Database, options: interactions.Options, settings: dict, source: Source) -> PollResult:
    if source.endpoint is None:
        raise ValueError("a Source polled must come from an Endpoint (find_sources)")
    if source.token_env and not os.environ.get(source.token_env):
        message = f"the environment variable {source.token_env} named by Endpoint/{source.endpoint_id} is not set"
        cursors.record_error(db, source.cursor_name, message)
        return PollResult(source.endpoint_id, cursor=cursors.read(db, source.cursor_name), stopped=message)
    client = endpoints.client(source.endpoint, default_rps=settings["PULL_MAX_RPS"])
    return poll(db, options, settings, source, client)


def loop(app: Flask, endpoint_id: str | None = None, *, polls: int | None = None,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
    """Poll, then wait until IOP_PULL_INTERVAL seconds after the poll began; forever unless `polls` is given."""
    interval = app.config["IOP"]["PULL_INTERVAL"]
    if interval < GRAVITY_MIN_INTERVAL:
        log.warning("IOP_PULL_INTERVAL=%s: polling a referring server more often than every 15 minutes is for urgent cases only "
                    "(Gravity IG)", interval)
    done = 0
    while polls is None or done < polls:
        began = clock()
        try:
            for result in pull(app, endpoint_id):
                log.info("referral pull %s", result.summary())
        except Exception:  # a bug or our database down: log it, keep the loop (the cursor did not move past it)
            log.exception("referral pull failed")
        done += 1
        if polls is None or done < polls:
            sleep(max(0.0, began + interval - clock()))


def _context(app: Flask) -> tuple[Database, interactions.Options, dict[str, Any]]:
    settings = app.config["IOP"]
    options = interactions.Options(settings["BASE_URL"] or "http://localhost/fhir", settings["MAX_JSON_DEPTH"],
                                   app.extensions["iop.required_profiles"])
    return app.extensions["iop.db"], options, settings

