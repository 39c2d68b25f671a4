"""The single write path: a unit of work (one DB transaction) and create, update, patch and delete.

REST views, transaction Bundles and (later) inbound sync and workflows all write through these
functions. Write order per resource, as in Medplum's repository: set id and meta first, validate the
final form, then store. Pre-commit stages run once every entry of the unit is stored (HAPI's
deferred STORAGE_PRECOMMIT); nothing escapes a rolled-back unit.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

import jsonpatch
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from . import conformance, dates, privacy, repository, search, validation
from .access import DEVELOPMENT, Access
from .db import Database, KeyBlock
from .errors import (
    BadRequest,
    Conflict,
    Gone,
    Issue,
    MethodNotAllowed,
    NotFound,
    PreconditionFailed,
    RetryableConflict,
    Unprocessable,
)
from .repository import Batch, Stored

T = TypeVar("T")
MAX_ATTEMPTS = 4


@dataclass(frozen=True)
class Change:
    """One resource written in a unit: what workflows, audit and the outbox act on before commit."""

    interaction: str  # create | update | delete
    stored: Stored
    previous: Stored | None


@dataclass(frozen=True)
class Options:
    """How the write path behaves for a request (from the app's settings)."""

    base_url: str = ""
    max_depth: int = 64
    required_profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # type -> profile URLs of ours
    manage_conformance: bool = False  # only the start-up loader writes our own profiles and value sets
    access: Access = DEVELOPMENT  # who is writing (service/access.py); the server's own work is DEVELOPMENT
    server_write: bool = False  # the server's own bookkeeping (the outbox worker activating a Subscription), not a client


CONFORMANCE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem", "OperationDefinition", "Measure", "Questionnaire")


@dataclass
class Unit:
    """One database transaction and the changes made in it."""

    conn: Connection
    now: datetime
    options: Options = field(default_factory=Options)
    changes: list[Change] = field(default_factory=list)
    batch: Batch = field(default_factory=Batch)
    keys: KeyBlock | None = None
    # Steps the caller adds that must see what the workflows wrote (a $process-message reply naming the Task a
    # workflow created); they run after the workflows, and what they write is not handed to workflows.
    after_workflows: list[Callable[[Unit], None]] = field(default_factory=list)
    # AuditEvents the unit's work records besides its write audits (disclosures by the outbox), chained after them
    audit_events: list[dict] = field(default_factory=list)

    def flush(self) -> None:
        """Write queued rows (before any read or search in the unit, and before commit)."""
        self.batch.flush(self.conn)

    def current(self, rtype: str, rid: str, *, lock: bool = False) -> Stored | None:
        """The current version of Type/id as this unit sees it (its own queued writes included)."""
        self.flush()
        return repository.current(self.conn, rtype, rid, lock=lock)

    def new_key(self) -> int | None:
        """A storage key for a new resource when the database hands them out ahead (PostgreSQL)."""
        return self.keys.next(self.conn) if self.keys else None

    def find(self, rtype: str, query: str, limit: int = 2) -> list[search.Row]:
        """Lookup (conditional writes, workflows) that sees this unit's own writes."""
        self.flush()
        return search.find(self.conn, rtype, query, self.options.base_url, limit)


@dataclass(frozen=True)
class Result:
    """The outcome of one write interaction."""

    stored: Stored
    status: int  # 201 created, 200 updated or matched, 204 deleted


def precommit(unit: Unit) -> None:
    """Stages run after every entry is stored and before commit, in this fixed order."""
    from . import audit, subscriptions, sync_outbound, workflows  # all write through this module

    with privacy.program_work():  # the workflows act for the program, not for the client whose write triggered them
        workflows.run(unit)
        for step in unit.after_workflows:
            step(unit)
    subscriptions.precommit(unit)  # notifications for what the unit (workflows included) changed, in its transaction
    sync_outbound.precommit(unit)  # changes pushed to partner EHRs (outbox rows); its query runs before the chain head is taken
    # an AuditEvent per change, then unit.audit_events, chained: the chain head is held until commit, so it comes last
    audit.precommit(unit)
    unit.flush()


@contextlib.contextmanager
def unit_of_work(db: Database, options: Options | None = None) -> Iterator[Unit]:
    """One write transaction: yields a Unit, runs the pre-commit stages, commits (or rolls back)."""
    with db.write() as conn:
        unit = Unit(conn, dates.utcnow(), options or Options(), keys=db.keys)
        yield unit
        precommit(unit)


def run(db: Database, work: Callable[[Unit], T], options: Options | None = None) -> T:
    """Run `work` in a unit of work, retrying when a concurrent writer won a race."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            with unit_of_work(db, options) as unit:
                return work(unit)
        except RetryableConflict as err:
            if attempt == MAX_ATTEMPTS - 1:
                raise Conflict(f"Concurrent writers kept changing the same data; retry the request ({err})") from err
        except DBAPIError as err:
            if not _is_serialization_failure(err):
                raise
            if attempt == MAX_ATTEMPTS - 1:
                raise Conflict("Concurrent writers kept changing the same data; retry the request") from err
    raise AssertionError("unreachable")


def _is_serialization_failure(err: DBAPIError) -> bool:
    code = getattr(err.orig, "sqlstate", None)
    return code in ("40001", "40P01", "23505") or "database is locked" in str(err.orig)


# ------------------------------------------------------------------------------- preparing content
def prepare(unit: Unit, resource: dict, rid: str, version: int, prior: Stored | None = None, *,
            validated: bool = False, built: bool = False) -> tuple[str, dict]:
    """Set id and meta, validate the final form, add the creator stamp and 42 CFR Part 2 labels (privacy.on_write),
    and serialise it: (JSON text to store, final dict). `validated`: the caller has validated the same content
    (base R4) already; the profiles and program rules are checked all the same. `built`: the server built it from
    validated parts, so the R4 walk judges it without the fhir.resources parse (validation.validate)."""
    given = resource.get("meta", {})
    meta = {"versionId": str(version), "lastUpdated": dates.instant(unit.now)}
    if isinstance(given, dict):
        meta.update((k, v) for k, v in given.items() if k not in ("versionId", "lastUpdated"))
    else:
        meta = given  # not an object: validation reports it
    final = {"resourceType": resource["resourceType"], "id": rid, "meta": meta}
    final.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    issues = [] if validated else validation.validate(final, unit.options.max_depth, parse=not built)
    if issues:
        raise BadRequest(issues[0].diagnostics, issues=issues)
    _check_managed(unit, final)
    errors = [i for i in profile_issues(final, unit.options.required_profiles) if i.severity in ("error", "fatal")]
    if errors:  # a profile or program rule: 422 (http.html#create)
        raise Unprocessable(errors[0].diagnostics, issues=errors)
    privacy.on_write(unit, final, prior)  # after validation: the profiles judge what the client sent
    return json.dumps(final, ensure_ascii=False, separators=(",", ":")), final


def profile_issues(resource: dict, required: Mapping[str, tuple[str, ...]]) -> list[Issue]:
    """Issues against the profiles of ours the resource claims, and a missing claim the program requires."""
    registry = conformance.registry()
    claimed = registry.claimed(resource)
    wanted = required.get(resource["resourceType"], ())
    if wanted and not set(claimed) & set(wanted):
        rtype = resource["resourceType"]
        return [Issue("error", "processing", f"This server requires every {rtype} to claim one of these profiles in meta.profile: "
                      f"{', '.join(wanted)}", f"{rtype}.meta.profile")]
    return registry.validate(resource, claimed)


def _check_managed(unit: Unit, resource: dict) -> None:
    """Our implementation guide's own resources are loaded from profiles/ and cannot be changed through the API."""
    url = resource.get("url")
    if (resource["resourceType"] in CONFORMANCE_TYPES and isinstance(url, str) and url.startswith(conformance.CANONICAL + "/")
            and not unit.options.manage_conformance):
        raise Unprocessable(f"{url} belongs to this server's implementation guide (profiles/); it cannot be changed through the API",
                            code="business-rule")


def new_id() -> str:
    """A server-assigned logical id."""
    return str(uuid.uuid4())


def _same_content(stored: Stored, resource: dict) -> bool:
    """Whether an update would change nothing but meta.versionId and meta.lastUpdated."""
    if stored.content is None:
        return False
    old = json.loads(stored.content)
    if not isinstance(resource.get("meta", {}), dict):
        return False
    for doc in (old, resource):
        meta = {k: v for k, v in (doc.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        doc["meta"] = meta or None
    return old == resource


# ------------------------------------------------------------------------------- interactions
def create(unit: Unit, resource: dict, *, if_none_exist: str | None = None, rid: str | None = None,
           validated: bool = False, built: bool = False) -> Result:
    """Create a resource (server-assigned id unless `rid`); with If-None-Exist, match instead if one exists.
    `validated`, `built`: see prepare()."""
    rtype = check_writable(resource["resourceType"])
    if if_none_exist:
        _lock(unit, f"{rtype}?{_canonical_query(if_none_exist)}")
        matches = unit.find(rtype, if_none_exist)
        if len(matches) > 1:
            raise PreconditionFailed(f"If-None-Exist criteria '{if_none_exist}' match more than one {rtype}", code="multiple-matches")
        if matches:
            existing = unit.current(rtype, matches[0].id)
            assert existing is not None
            privacy.check_write(unit, existing)  # an outside client is not handed a match it may not see
            return Result(existing, 200)
    rid = rid or new_id()
    content, final = prepare(unit, resource, rid, 1, validated=validated, built=built)
    stored = repository.insert_new(unit.conn, unit.batch, rtype, rid, content, final, unit.now, "POST", unit.new_key())
    unit.changes.append(Change("create", stored, None))
    return Result(stored, 201)


def update(unit: Unit, rtype: str, rid: str, resource: dict, *, if_match: str | None = None, built: bool = False) -> Result:
    """Update Type/id (creating it when absent: update-as-create); If-Match guards against lost updates. `built`: see
    prepare()."""
    check_writable(rtype)
    if resource.get("id") != rid:
        raise BadRequest(f"The resource id '{resource.get('id')}' must equal the id in the URL '{rid}'", expression=f"{rtype}.id")
    prior = unit.current(rtype, rid, lock=True)
    privacy.check_write(unit, prior)
    _check_if_match(prior, if_match, rtype, rid)
    if prior is None:
        content, final = prepare(unit, resource, rid, 1, prior, built=built)
        stored = repository.insert_new(unit.conn, unit.batch, rtype, rid, content, final, unit.now, "PUT", unit.new_key())
        unit.changes.append(Change("create", stored, None))
        return Result(stored, 201)
    if not prior.deleted and _same_content(prior, privacy.restored(dict(resource, id=rid), prior)):
        return Result(prior, 200)  # a no-op update makes no new version (an idempotent resend)
    content, final = prepare(unit, resource, rid, prior.version + 1, prior, built=built)
    stored = repository.replace(unit.conn, unit.batch, prior, content, final, unit.now, "PUT")
    unit.changes.append(Change("create" if prior.deleted else "update", stored, prior))
    return Result(stored, 201 if prior.deleted else 200)


def conditional_update(unit: Unit, rtype: str, query: str, resource: dict, *, if_match: str | None = None) -> Result:
    """PUT Type?criteria: no match creates, one match updates it, several is 412."""
    check_writable(rtype)
    _lock(unit, f"{rtype}?{_canonical_query(query)}")
    matches = unit.find(rtype, query)
    if len(matches) > 1:
        raise PreconditionFailed(f"Conditional update criteria '{query}' match more than one {rtype}", code="multiple-matches")
    body_id = resource.get("id")
    if matches:
        if body_id and body_id != matches[0].id:
            raise BadRequest(f"The resource id '{body_id}' differs from the matched {rtype}/{matches[0].id}", expression=f"{rtype}.id")
        return update(unit, rtype, matches[0].id, dict(resource, id=matches[0].id), if_match=if_match)
    if body_id:
        return update(unit, rtype, body_id, resource, if_match=if_match)
    return create(unit, resource)


def patch(unit: Unit, rtype: str, rid: str, operations: object, *, if_match: str | None = None) -> Result:
    """Apply a JSON Patch (RFC 6902) to the current version and store the result as a new version."""
    check_writable(rtype)
    prior = unit.current(rtype, rid, lock=True)
    if prior is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    if prior.deleted:
        raise Gone(f"{rtype}/{rid} has been deleted")
    _check_if_match(prior, if_match, rtype, rid)
    patched = apply_patch(json.loads(prior.content or "{}"), operations)
    if patched.get("resourceType") != rtype or patched.get("id") != rid:
        raise Unprocessable("A patch cannot change resourceType or id", code="business-rule")
    return update(unit, rtype, rid, patched)


def apply_patch(document: dict, operations: object) -> dict:
    """The patched document; 400 for a malformed patch, 422 when a test or path fails."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise BadRequest("A JSON Patch document must be an array of operation objects")
    try:
        result = jsonpatch.JsonPatch(operations).apply(document)
    except jsonpatch.JsonPatchTestFailed as err:
        raise Unprocessable(f"JSON Patch test failed: {err}", code="business-rule") from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as err:
        raise Unprocessable(f"JSON Patch could not be applied: {err}", code="processing") from None
    if not isinstance(result, dict):
        raise Unprocessable("JSON Patch must leave a resource object")
    return result


def delete(unit: Unit, rtype: str, rid: str) -> Result | None:
    """Delete Type/id (a new, deleted version); None when it was already deleted."""
    check_writable(rtype)
    prior = unit.current(rtype, rid, lock=True)
    if prior is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    privacy.check_write(unit, prior)
    if prior.deleted:
        return None
    if prior.type in CONFORMANCE_TYPES and prior.content:
        _check_managed(unit, json.loads(prior.content))
    stored = repository.mark_deleted(unit.conn, unit.batch, prior, unit.now)
    unit.changes.append(Change("delete", stored, prior))
    return Result(stored, 204)


def conditional_delete(unit: Unit, rtype: str, query: str) -> Result | None:
    """DELETE Type?criteria: deletes the one match; several matches is 412; none is a no-op."""
    check_writable(rtype)
    matches = unit.find(rtype, query)
    if len(matches) > 1:
        raise PreconditionFailed(f"Conditional delete criteria '{query}' match more than one {rtype}", code="multiple-matches")
    return delete(unit, rtype, matches[0].id) if matches else None


# ------------------------------------------------------------------------------- helpers
SERVER_WRITTEN = frozenset({"AuditEvent"})  # the audit trail: only the server writes it (service/audit.py)


def check_writable(rtype: str) -> str:
    """405 for a type that no client may create, change or delete (the audit trail is append-only by the server)."""
    if rtype in SERVER_WRITTEN:
        raise MethodNotAllowed(f"{rtype} resources are recorded by this server and cannot be created, changed or deleted "
                               "through the API; they can be read and searched", headers={"Allow": "GET"})
    return rtype


def parse_etag(value: str) -> str:
    """The version in an ETag / If-Match value: W/"3" → "3"."""
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _check_if_match(prior: Stored | None, if_match: str | None, rtype: str, rid: str) -> None:
    if if_match is None:
        return
    current = None if prior is None or prior.deleted else str(prior.version)
    if current != parse_etag(if_match):
        raise PreconditionFailed(f"If-Match {if_match} does not match the current version of {rtype}/{rid} "
                                 f"({'none' if current is None else 'W/' + chr(34) + current + chr(34)})")


def _canonical_query(query: str) -> str:
    return "&".join(sorted(query.split("&")))


def lock_criteria(unit: Unit, rtype: str, query: str) -> None:
    """Hold, until commit, the right to act on a conditional write's criteria (transaction Bundles use it too)."""
    _lock(unit, f"{rtype}?{_canonical_query(query)}")


def _lock(unit: Unit, key: str) -> None:
    """Serialise conditional writes on the same criteria (PostgreSQL; SQLite writers are serial already).

    Two identical conditional creates arriving together would otherwise both find no match and
    both create. See: https://hl7.org/fhir/R4/http.html#ccreate
    """
    if unit.conn.dialect.name != "postgresql":
        return
    digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
    unit.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": digest})
