"""Inbound pull, generic: read the resource types an Endpoint pulls (endpoint-sync direction pull) from its server
by a `_lastUpdated` cursor and write each through our normal write path (docs/exchange.md "Inbound pull").

    GET <address>/<Type>?_lastUpdated=gt<cursor>&_sort=_lastUpdated&_count=<IOP_PULL_PAGE_SIZE>   (then `next` links)

Each resource is one unit of work (validation, workflows, subscriptions, audit, like a REST write):
- a copy of OUR record (it carries our identifier `<our base>/<Type>|<id>`, exchange.copy) updates that record,
  unless the remote still holds exactly what we sent (its meta.source names our version and the content is that
  version's: nothing changed there) or a newer change of ours is still queued for that Endpoint (it will win);
- any other resource is a conditional update on its remote address as an identifier (`<remote base>/<Type>|<id>`,
  as the referral pull does: referral_bundle.origin), so a re-poll changes nothing and remote ids map to ours.
References to the remote's resources become references to our copies when we have them (by that identifier, or
the same id in `id` mode), else absolute URLs on the remote. What we write is not pushed back to the Endpoint it
came from (sync_outbound.pulling). The cursor (the remote's meta.lastUpdated) is saved in its own transaction only
after the resources up to it are committed, and never between two resources that share a timestamp; a resource
our server refuses is counted on the cursor row and skipped; a remote that fails stops the poll where it is.
`flask referrals pull` (service/referral_pull.py) keeps its own, referral-shaped pull.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from flask import Flask
from sqlalchemy import select

from . import cursors, dates, endpoints, exchange, interactions, outbox, repository, sync_outbound
from .db import Database
from .errors import Conflict, FhirError
from .fhirclient import FhirClientError
from .references import rewrite
from .referral_bundle import origin, query_string, remote_key, token
from .tables import outbox_message

log = logging.getLogger(__name__)

MAX_PAGES = 50  # pages per type and poll; the rest comes at the next poll
KEEP_META = ("profile", "security", "tag")  # security labels carry 42 CFR Part 2 restrictions: they travel with the data
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})$")


@dataclass
class PollResult:
    """What one poll of one type on one Endpoint did."""

    endpoint_id: str
    rtype: str
    ingested: int = 0
    unchanged: int = 0
    skipped: int = 0
    cursor: str | None = None
    stopped: str | None = None

    def summary(self) -> str:
        state = f"stopped: {self.stopped}" if self.stopped else "complete"
        return (f"Endpoint/{self.endpoint_id} {self.rtype}: {self.ingested} written, {self.unchanged} unchanged, "
                f"{self.skipped} skipped, cursor {self.cursor or '-'}, {state}")


def cursor_name(endpoint_id: str, rtype: str) -> str:
    return f"sync-pull:Endpoint/{endpoint_id}/{rtype}"


# ------------------------------------------------------------------------------- entry point
def pull(app: Flask, endpoint_id: str | None = None) -> list[PollResult]:
    """Poll every pulled type of every Endpoint that pulls (or of the one named) once."""
    settings = app.config["IOP"]
    db: Database = app.extensions["iop.db"]
    options = interactions.Options(settings["BASE_URL"] or "http://localhost/fhir", settings["MAX_JSON_DEPTH"],
                                   app.extensions["iop.required_profiles"])
    with app.app_context():
        with db.read() as conn:
            targets = [t for t in exchange.configured(conn) if t.pull and endpoint_id in (None, t.endpoint_id)]
            if endpoint_id and not targets:
                return [PollResult(endpoint_id, "-", stopped=_why_not(conn, endpoint_id))]
        return [poll(db, options, settings, t, rtype) for t in targets for rtype in t.pull]


def _why_not(conn, endpoint_id: str) -> str:
    try:
        exchange.load(conn, endpoint_id)
    except exchange.ConfigError as err:
        return str(err)
    return f"Endpoint/{endpoint_id} pulls no resource type (no {exchange.SYNC_EXTENSION} with direction pull)"


def poll(db: Database, options: interactions.Options, settings: dict, target: exchange.Target, rtype: str) -> PollResult:
    """Read `rtype` changed on the remote since the cursor, page by page, and write each resource here."""
    name = cursor_name(target.endpoint_id, rtype)
    result = PollResult(target.endpoint_id, rtype)
    checkpoint = _Checkpoint(db, name, cursors.read(db, name))
    params = [("_sort", "_lastUpdated"), ("_count", str(settings["PULL_PAGE_SIZE"]))]
    params += [("_lastUpdated", f"gt{checkpoint.saved}")] if checkpoint.saved else []
    fhir = endpoints.client(target.endpoint, default_rps=settings["PULL_MAX_RPS"])
    try:
        for page in fhir.search(rtype, params, max_pages=MAX_PAGES):
            for resource in _matches(page, rtype):
                _one(db, options, target, resource, result, checkpoint)
        checkpoint.finish()
    except (FhirClientError, Conflict) as err:
        result.stopped = str(err)
        cursors.record_error(db, name, f"poll stopped: {err}")
        log.warning("sync pull Endpoint/%s %s stopped: %s", target.endpoint_id, rtype, err)
    result.cursor = checkpoint.saved
    return result


def _matches(page: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in page.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            and e["resource"].get("resourceType") == rtype and isinstance(e["resource"].get("id"), str)
            and ((e.get("search") or {}).get("mode") or "match") == "match"]


def _one(db: Database, options: interactions.Options, target: exchange.Target, resource: dict, result: PollResult,
         checkpoint: _Checkpoint) -> None:
    stamp = (resource.get("meta") or {}).get("lastUpdated")
    stamp = stamp if isinstance(stamp, str) and _instant(stamp) else None
    checkpoint.begin(stamp)
    try:
        with sync_outbound.pulling(target.endpoint_id):
            written = interactions.run(db, lambda unit: ingest(unit, target, resource), options)
        if written:
            result.ingested += 1
        else:
            result.unchanged += 1
    except FhirError as err:
        if isinstance(err, Conflict):
            raise
        message = f"{resource['resourceType']}/{resource['id']} skipped: refused ({err.status}): {err.issues[0].diagnostics}"
        result.skipped += 1
        cursors.record_error(db, checkpoint.name, message)
        log.warning("sync pull Endpoint/%s: %s", target.endpoint_id, message)
    checkpoint.done(stamp)


# ------------------------------------------------------------------------------- one resource
def ingest(unit: interactions.Unit, target: exchange.Target, resource: dict) -> bool:
    """Write one remote resource here; False when nothing changed (already ours, or ours is newer)."""
    rtype, rid = resource["resourceType"], resource["id"]
    base = sync_outbound.base_url(unit.options)
    ours = _our_id(resource, f"{base}/{rtype}")
    body = _local_body(unit, target, resource, f"{base}/{rtype}")
    if ours is None:
        mark = origin(target.address, f"{rtype}/{rid}")
        body["identifier"] = [i for i in body.get("identifier") or [] if i.get("system") != mark["system"]] + [mark]
        query = query_string([("identifier", token(mark["system"], mark["value"]))])
        before = len(unit.changes)
        interactions.conditional_update(unit, rtype, query, body)
        return len(unit.changes) > before
    current = unit.current(rtype, ours)
    if current is not None and not current.deleted and _stale(unit, target, resource, current, base):
        return False
    body["id"] = ours
    if current is not None and current.content:
        body["meta"] = {k: v for k, v in (json.loads(current.content).get("meta") or {}).items()}  # ours: our meta stays
    before = len(unit.changes)
    interactions.update(unit, rtype, ours, body)
    return len(unit.changes) > before


def _our_id(resource: dict, system: str) -> str | None:
    given = resource.get("identifier")
    for ident in [given] if isinstance(given, dict) else given or []:
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"]
    return None


def _local_body(unit: interactions.Unit, target: exchange.Target, resource: dict, our_system: str) -> dict:
    """The resource without the remote's id and meta (profiles and labels kept), our own identifier and with
    references to the remote mapped to our copies."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    kept = {k: v for k, v in (resource.get("meta") or {}).items() if k in KEEP_META}
    if kept:
        body["meta"] = kept
    if isinstance(body.get("identifier"), list):
        body["identifier"] = [i for i in body["identifier"] if not (isinstance(i, dict) and i.get("system") == our_system)]
        if not body["identifier"]:
            del body["identifier"]
    return rewrite(body, lambda ref: _localise(unit, target, ref))


def _localise(unit: interactions.Unit, target: exchange.Target, reference: str) -> str | None:
    key = remote_key(reference, target.address)
    if key is None or not (_RELATIVE.match(reference) or reference.startswith(target.address + "/")):
        return None
    rtype, rid = key.split("/")
    mark = origin(target.address, key)
    found = unit.find(rtype, query_string([("identifier", token(mark["system"], mark["value"]))]), limit=1)
    if found:
        return f"{rtype}/{found[0].id}"
    if target.mode == "id" and unit.current(rtype, rid) is not None:
        return key  # our ids are the remote's for what we pushed by id
    return f"{target.address}/{key}"


def _stale(unit: interactions.Unit, target: exchange.Target, remote: dict, current, base: str) -> bool:
    """Whether the remote copy of our record brings nothing new: a change of ours for that Endpoint is still queued,
    or the remote holds exactly the version we sent (meta.source) unchanged."""
    key = f"{current.type}/{current.id}"
    M = outbox_message
    queued = unit.conn.execute(select(M.c.pk).where(M.c.ordering_key == f"{target.reference}|{key}", M.c.status == outbox.PENDING)
                               .limit(1)).first()
    if queued is not None:
        return True
    number = exchange.version_of((remote.get("meta") or {}).get("source"), base, key)
    sent = repository.version(unit.conn, current.type, current.id, number) if number else None
    if sent is None or sent.content is None:
        return False
    copy = exchange.copy(json.loads(sent.content), base)
    return _content(copy) == _content(remote)


def _content(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("id", "meta")}


# ------------------------------------------------------------------------------- the cursor
def _instant(value: str) -> datetime | None:
    try:
        return dates.parse_range(value)[0]
    except dates.DateFormatError:
        return None


class _Checkpoint:
    """Saves the cursor only where every resource last updated at or before it is committed: it moves to a
    timestamp when a later one begins (resources sharing a timestamp are never split) and at the end."""

    def __init__(self, db: Database, name: str, saved: str | None):
        self.db, self.name, self.saved = db, name, saved
        self.handled: str | None = None

    def begin(self, stamp: str | None) -> None:
        if stamp and self.handled and _instant(stamp) > _instant(self.handled):  # type: ignore[operator]
            self._save(self.handled)

    def done(self, stamp: str | None) -> None:
        if stamp and (self.handled is None or _instant(stamp) > _instant(self.handled)):  # type: ignore[operator]
            self.handled = stamp

    def finish(self) -> None:
        if self.handled:
            self._save(self.handled)

    def _save(self, value: str) -> None:
        if self.saved is None or _instant(value) > _instant(self.saved):  # type: ignore[operator]
            cursors.advance(self.db, self.name, value, _instant)
            self.saved = value
