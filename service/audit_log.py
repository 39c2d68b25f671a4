"""The audit trail's rows (tables audit_log and audit_log_entity, migration 0005): what is stored for an AuditEvent.

An event is stored once, as its canonical JSON (audit_chain.canonical: sorted keys, no whitespace, UTF-8; no id
or meta: the id is the row's seq) in one audit_log row, next to copies of the few elements AuditEvent searches
filter on (recorded, the interaction subtype, action, outcome, the requesting client and its organization, the
purpose of use, whether it is a disclosure), plus one audit_log_entity row per resource it names. The copies are
derived from the JSON (columns() below) and `flask audit verify` checks that they still agree with it.
See docs/security.md#audit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from . import dates
from .conformance import CANONICAL

INTERACTION = "http://hl7.org/fhir/restful-interaction"
CLIENT_ID_SYSTEM = f"{CANONICAL}/sid/client-id"  # local identifier system of our registered SMART clients
EXPORT_CODE = ("http://dicom.nema.org/resources/ontology/DCM", "110106")  # a disclosure (audit.EXPORT)
COLUMNS = ("recorded", "subtype", "action", "outcome", "client", "organization", "purpose", "disclosure")


@dataclass(frozen=True)
class Entry:
    """An event ready to be appended: its stored JSON, the search columns and the resources it names."""

    event: str
    columns: dict
    references: tuple[str, ...]


def entry(ev: dict) -> Entry:
    """The stored form of one AuditEvent (built before the chain head is taken: no work under the lock)."""
    text = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return Entry(text, columns(ev), references(ev))


def columns(ev: dict) -> dict:
    """The search columns of an event, from its JSON."""
    agents = ev.get("agent") or [{}]
    who = agents[0].get("who") or {}
    ident = who.get("identifier") or {}
    org = next((a["who"].get("reference") for a in agents[1:] if isinstance(a.get("who"), dict)), None)
    codes = [(c.get("system"), c.get("code")) for c in ev.get("subtype") or []]
    purpose = ((ev.get("purposeOfEvent") or [{}])[0].get("coding") or [{}])[0].get("code")
    return {"recorded": recorded(ev["recorded"]),
            "subtype": next((code for system, code in codes if system == INTERACTION), "") or "",
            "action": ev.get("action") or "", "outcome": ev.get("outcome") or "",
            "client": ident.get("value") if ident.get("system") == CLIENT_ID_SYSTEM else None,
            "organization": org, "purpose": purpose, "disclosure": EXPORT_CODE in codes}


def recorded(instant: str) -> datetime:
    """A FHIR instant as the naive UTC datetime stored in audit_log.recorded."""
    return datetime.fromisoformat(instant).astimezone(UTC).replace(tzinfo=None)


def references(ev: dict) -> tuple[str, ...]:
    """Each resource the event names (entity.what.reference without /_history/n), once."""
    refs: dict[str, None] = {}
    for ent in ev.get("entity") or []:
        ref = (ent.get("what") or {}).get("reference")
        if isinstance(ref, str):
            refs[ref.split("/_history/", 1)[0]] = None
    return tuple(refs)


def resource_text(seq: int, event: str) -> str:
    """The AuditEvent as served: id = the row's seq, versionId 1, lastUpdated = recorded (events never change)."""
    ev = json.loads(event)
    served = {"resourceType": "AuditEvent", "id": str(seq),
              "meta": {"versionId": "1", "lastUpdated": dates.instant(recorded(ev["recorded"]))}}
    served.update((k, v) for k, v in ev.items() if k not in ("resourceType", "id", "meta"))
    return json.dumps(served, ensure_ascii=False, separators=(",", ":"))
