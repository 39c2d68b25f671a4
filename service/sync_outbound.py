"""The outbound FHIR channel of the outbox: changes pushed to partner EHRs, and aftercare transactions.

Rows are written in the unit's own transaction (`precommit`, after the audit stage), one per change of a
resource type an Endpoint pushes (docs/exchange.md "Outbound sync"); a rolled-back request leaves none.
The worker (`flask outbox run`) delivers them with the outbox's claims, leases, backoff and dead letters:

- kind `update`: PUT [base]/Type/id (or PUT [base]/Type?identifier=<our base>/Type|id): the copy of one version;
- kind `delete`: DELETE of the same URL (404/410 counts as done);
- kind `aftercare`: a transaction Bundle (service/workflows/aftercare.py), POSTed to [base], or sent entry by entry
  when the remote's CapabilityStatement has no transaction (FhirClient.transaction).
Each goes through the Endpoint's FhirClient (service/endpoints.py: credentials, timeouts, request rate).

Idempotent at the receiver: PUT by id or by our identifier never creates a second resource. Exactly once in
the remote's history too: a message on its second or later attempt (its worker may have died after the remote
stored it) first reads the remote copy, and when its meta.source already names this version of ours (or a
later one) it is recorded as delivered without writing again. One resource's versions share an ordering_key, so
version 2 never overtakes version 1; a version that an operator retries after a later one was delivered is
cancelled as superseded rather than sent over it.

42 CFR Part 2: labelled data leaves only under a consent of the patient naming the Endpoint's organization
(exchange.refusal), checked when the row is written and again when it is sent; otherwise the row is `held` with
the reason (`flask outbox list --status held`). Every delivery is audited as a disclosure (DCM 110106 Export).
"""
from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator
from datetime import datetime

import requests
from sqlalchemy import Connection

from . import access, audit, endpoints, exchange, outbox
from .db import Database
from .fhirclient import FhirClient, FhirClientError, FhirRequestError
from .interactions import Change, Options, Unit

NAME = "fhir-sync"
UPDATE, DELETE, AFTERCARE = "update", "delete", "aftercare"

# The Endpoint a pull is writing from: its changes are not pushed back to it (no echo loop).
_pulling: contextvars.ContextVar[str | None] = contextvars.ContextVar("iop_sync_pulling", default=None)


@contextlib.contextmanager
def pulling(endpoint_id: str) -> Iterator[None]:
    token = _pulling.set(endpoint_id)
    try:
        yield
    finally:
        _pulling.reset(token)


# ------------------------------------------------------------------------------- writing rows (pre-commit)
def precommit(unit: Unit) -> None:
    """Queue the unit's changes for the Endpoints that push their type (before audit.precommit, which takes the
    audit chain head until commit). A unit that changed no syncable type runs no query (exchange.SYNCABLE)."""
    changed = [c for c in unit.changes if c.stored.type in exchange.SYNCABLE]
    if changed:
        _queue(unit, changed)


def _queue(unit: Unit, changed: list[Change]) -> None:
    if any(c.stored.type == "Endpoint" for c in unit.changes):
        unit.flush()  # the Endpoints this unit wrote count already; other queued rows go out with the audit's round trip
    skip = _pulling.get()
    targets = [t for t in exchange.configured(unit.conn) if t.push and t.endpoint_id != skip]
    rows = [_row(unit, t, c) for c in changed for t in targets if c.stored.type in t.push]
    outbox.enqueue(unit.conn, rows)


def _row(unit: Unit, target: exchange.Target, change: Change) -> dict:
    stored = change.stored
    key = f"{stored.type}/{stored.id}"
    if stored.deleted or stored.content is None:
        kind, payload = DELETE, {"resourceType": stored.type, "id": stored.id}
    else:
        kind, payload = UPDATE, exchange.copy(json.loads(stored.content), base_url(unit.options))
    row = outbox.row(NAME, target.reference, kind, f"{target.reference}|{key}", f"{target.reference}|{key}/_history/{stored.version}",
                     json.dumps(payload, ensure_ascii=False, separators=(",", ":")), unit.now)
    return hold(unit.conn, row, [payload] if kind == UPDATE else [], target.organization, unit.now)


def hold(conn: Connection, row: dict, docs: list[dict], recipient: str | None, now: datetime) -> dict:
    """The row `held` with the reason when 42 CFR Part 2 forbids sending `docs` to the recipient."""
    reason = exchange.refusal(conn, docs, recipient, now)
    return row if reason is None else {**row, "status": outbox.HELD, "last_error": reason}


def base_url(options: Options) -> str:
    """Our FHIR base as remotes know us (IOP_BASE_URL; the request's own base otherwise)."""
    return options.base_url.rstrip("/") or "http://localhost/fhir"


# ------------------------------------------------------------------------------- delivering
def attempt(db: Database, session: requests.Session, msg: outbox.Message, settings: dict, now: datetime,
            memo: dict) -> outbox.Outcome:
    """Send one started message through the Endpoint's FhirClient (its credentials, timeouts and rate; a transaction
    as single requests when the remote has none): check the Endpoint, supersession and consent, skip what arrived.
    The Endpoint is read once per round (`memo`)."""
    payload = json.loads(msg.payload)
    with db.read() as conn:
        try:
            target = _target(conn, msg.target, memo)
        except exchange.ConfigError as err:
            return outbox.Outcome(outbox.CANCELLED, f"{err}; not sent")
        later = msg.later_delivered if msg.kind != AFTERCARE else None  # read with the lease (outbox.lease_due)
        reason = None if msg.kind == DELETE else exchange.refusal(conn, _resources(payload), target.organization, now)
    if later is not None:
        return outbox.Outcome(outbox.CANCELLED, f"superseded by outbox message {later}, already delivered; not sent")
    if reason is not None:
        return outbox.Outcome(outbox.HELD, reason)
    fhir = endpoints.client(target.endpoint)
    try:
        if not (msg.attempts > 1 and _arrived(fhir, target, msg.kind, payload)):
            _send(fhir, target, msg.kind, payload)
    except endpoints.CredentialError as err:
        return outbox.Outcome(outbox.DEAD, f"{err}; not sent")
    except FhirClientError as err:
        if msg.kind == DELETE and err.status in (404, 410):
            return outbox.Outcome(outbox.DELIVERED)  # gone already
        return outbox.decide(outbox.Attempt(False, err.retryable, str(err), err.retry_after), msg.attempts, settings, now)
    return outbox.Outcome(outbox.DELIVERED)


def _target(conn: Connection, reference: str, memo: dict) -> exchange.Target:
    """The Endpoint's Target, read once per `memo` (a delivery round, or a recording transaction); ConfigError cached too."""
    key = ("sync-target", reference)
    if key not in memo:
        try:
            memo[key] = exchange.load(conn, reference.removeprefix("Endpoint/"))
        except exchange.ConfigError as err:
            memo[key] = err
    found = memo[key]
    if isinstance(found, exchange.ConfigError):
        raise found
    return found


def _send(fhir: FhirClient, target: exchange.Target, kind: str, payload: dict) -> None:
    """PUT by id or by our identifier, DELETE, or the aftercare transaction (FhirClient.transaction adapts)."""
    if kind == AFTERCARE:
        fhir.transaction(payload)
        return
    rtype, rid = payload["resourceType"], payload["id"]
    if target.mode == "id":
        fhir.send("PUT" if kind == UPDATE else "DELETE", f"{rtype}/{rid}", body=payload if kind == UPDATE else None)
        return
    body = {k: v for k, v in payload.items() if k != "id"} if kind == UPDATE else None  # the remote keeps its own id
    fhir.send("PUT" if kind == UPDATE else "DELETE", rtype, params=[("identifier", _ours(payload))], body=body)


def _ours(payload: dict) -> str:
    """identifier search value <our base>/<Type>|<our id> (the identifier exchange.copy added)."""
    source = str((payload.get("meta") or {}).get("source") or "")
    base = source.rpartition(f"/{payload['resourceType']}/{payload['id']}/_history/")[0]
    return f"{base}/{payload['resourceType']}|{payload['id']}"


def _resources(payload: dict) -> list[dict]:
    if payload.get("resourceType") == "Bundle":
        return [e["resource"] for e in payload.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    return [payload]


def _arrived(fhir: FhirClient, target: exchange.Target, kind: str, payload: dict) -> bool:
    """Whether the remote already holds this version of ours (or a later one): a redelivery after a lost result.

    A transaction is probed by its Task (the entries are applied all or none on a server with transactions)."""
    if kind == DELETE:
        return False  # a second DELETE is harmless; 404/410 counts as done
    probe = next((r for r in _resources(payload) if r.get("resourceType") == "Task"), None) if kind == AFTERCARE else payload
    source = ((probe or {}).get("meta") or {}).get("source")
    if probe is None or not isinstance(source, str) or "/_history/" not in source:
        return False
    try:
        if kind == AFTERCARE or target.mode == "id":
            found: dict | None = fhir.read(probe["resourceType"], probe["id"])
        else:
            page = fhir.get(probe["resourceType"], [("identifier", _ours(probe))])
            found = next((e.get("resource") for e in page.get("entry") or [] if isinstance(e, dict)), None)
    except FhirRequestError as err:
        if err.status in (404, 410):
            return False
        raise
    theirs = ((found or {}).get("meta") or {}).get("source")
    prefix = source.rpartition("/_history/")[0]
    return isinstance(theirs, str) and theirs.startswith(prefix + "/_history/") and _number(theirs) >= _number(source)


def _number(source: str) -> int:
    tail = source.rpartition("/_history/")[2]
    return int(tail) if tail.isdigit() else -1


# ------------------------------------------------------------------------------- after a result
def after(unit: Unit, msg: outbox.Message, outcome: outbox.Outcome) -> None:
    """Audit a delivery (or a held disclosure); tell the aftercare Task what became of its transaction."""
    payload = json.loads(msg.payload)
    if outcome.status in (outbox.DELIVERED, outbox.HELD) and msg.kind != DELETE:
        disclose(unit, msg, _resources(payload), outcome)
    if msg.kind == AFTERCARE:
        from .workflows import aftercare

        aftercare.on_result(unit, msg, payload, outcome)


def disclose(unit: Unit, msg: outbox.Message, docs: list[dict], outcome: outbox.Outcome) -> None:
    """Queue an audit event (DCM 110106 Export) for a disclosure sent (outcome 0) or held back (4), chained by
    audit.precommit;
    its description names the recipient organization, the Endpoint and the outbox message."""
    try:
        target = _target(unit.conn, msg.target, unit.__dict__.setdefault("_sync_targets", {}))
        recipient = f"{target.organization or 'no organization'} at {msg.target} ({target.address})"
    except exchange.ConfigError:
        recipient = msg.target
    entities = [audit.entity(_versioned(d), labels=[s for s in (d.get("meta") or {}).get("security") or []
                                                     if isinstance(s, dict) and s.get("code") in audit.PART2_LABELS])
                for d in docs]
    sent = outcome.status == outbox.DELIVERED
    text = (f"sent to {recipient}" if sent else f"held, not sent to {recipient}: {outcome.error}") + f" (outbox message {msg.pk})"
    ev = audit.event("transaction" if msg.kind == AFTERCARE else "update", "0" if sent else "4", access.DEVELOPMENT, entities,
                     unit.now, description=text, disclosure=True, server=True)
    unit.audit_events.append(ev)


def _versioned(doc: dict) -> str:
    source = (doc.get("meta") or {}).get("source")
    version = source.rpartition("/_history/")[2] if isinstance(source, str) else ""
    return f"{doc.get('resourceType')}/{doc.get('id')}" + (f"/_history/{version}" if version.isdigit() else "")


def due(db: Database, now: datetime, options: Options) -> None:
    """Nothing periodic: the rows come from changes."""


CHANNEL = outbox.Channel(lambda conn, msg: "sent by its own attempt", after, due, attempt)
