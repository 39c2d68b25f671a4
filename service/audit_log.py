"""The audit trail's rows (tables audit_log and audit_log_entity, migration 0005): what is stored for an AuditEvent.

An event is stored once, in one audit_log row, as a compact JSON record of what varies between events (below),
next to copies of the few elements AuditEvent searches filter on (recorded, the interaction, action, outcome, the
requesting client and its organization, the purpose of use, whether it is a disclosure), plus one
audit_log_entity row per resource it names. The FHIR AuditEvent is expanded from the record when it is served
(expand()); the hash chain covers the record's stored text, and `flask audit verify` checks that the copies
still agree with it. Events recorded before migration 0005 are stored as full AuditEvent JSON and served as such.

The compact record (keys): s interaction (restful-interaction code), a action, t recorded (instant), o outcome,
d outcomeDesc, p purpose of use (v3-ActReason), c client id (null: the server's own work), n the client's network
address, g the organization it acts for, h this server's FHIR base (source.site), x 1 for a disclosure (DCM 110106
Export), e entities: r reference or n name, k object-role code when not 4 (Domain Resource), l security labels,
q the query (base64). See docs/security.md#audit and https://hl7.org/fhir/R4/auditevent.html.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from . import dates
from .conformance import CANONICAL

CLIENT_ID_SYSTEM = f"{CANONICAL}/sid/client-id"  # local identifier system of our registered SMART clients
DEVELOPMENT_AGENT = "development"
REST = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"}
INTERACTION = "http://hl7.org/fhir/restful-interaction"
EXPORT = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
COLUMNS = ("recorded", "subtype", "action", "outcome", "client", "organization", "purpose", "disclosure")
_SOURCE_ROLE = {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]}
_SOURCE_TYPE = [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_ROLES = {"4": "Domain Resource", "24": "Query", "3": "Report", "1": "Patient"}


@dataclass(frozen=True)
class Entry:
    """An event ready to be appended: its stored text, the search columns and the resources it names."""

    event: str
    columns: dict
    references: tuple[str, ...]


def entry(record: dict) -> Entry:
    """The stored form of one compact record (built before the chain head is taken: no work under the lock)."""
    return Entry(json.dumps(record, separators=(",", ":"), ensure_ascii=False), columns(record), references(record))


def columns(record: dict) -> dict:
    """The search columns of a stored event (compact record, or a full AuditEvent from before 0005)."""
    if "resourceType" in record:
        return _full_columns(record)
    return {"recorded": recorded(record["t"]), "subtype": record["s"], "action": record["a"], "outcome": record["o"],
            "client": record.get("c"), "organization": record.get("g"), "purpose": record.get("p"),
            "disclosure": bool(record.get("x"))}


def _full_columns(ev: dict) -> dict:
    agents = ev.get("agent") or [{}]
    ident = (agents[0].get("who") or {}).get("identifier") or {}
    org = next((a["who"].get("reference") for a in agents[1:] if isinstance(a.get("who"), dict)), None)
    codes = [(c.get("system"), c.get("code")) for c in ev.get("subtype") or []]
    purpose = ((ev.get("purposeOfEvent") or [{}])[0].get("coding") or [{}])[0].get("code")
    return {"recorded": recorded(ev["recorded"]),
            "subtype": next((code for system, code in codes if system == INTERACTION), "") or "",
            "action": ev.get("action") or "", "outcome": ev.get("outcome") or "",
            "client": ident.get("value") if ident.get("system") == CLIENT_ID_SYSTEM else None,
            "organization": org, "purpose": purpose, "disclosure": (EXPORT["system"], EXPORT["code"]) in codes}


def recorded(instant: str) -> datetime:
    """A FHIR instant as the naive UTC datetime stored in audit_log.recorded."""
    if instant.endswith("Z"):  # ours always are
        return datetime.fromisoformat(instant[:-1])
    return datetime.fromisoformat(instant).astimezone(UTC).replace(tzinfo=None)


def references(record: dict) -> tuple[str, ...]:
    """Each resource the event names (its entity references without /_history/n), once."""
    if "resourceType" in record:
        refs = [(e.get("what") or {}).get("reference") for e in record.get("entity") or []]
    else:
        refs = [e.get("r") for e in record.get("e") or []]
    return tuple(dict.fromkeys(r.split("/_history/", 1)[0] for r in refs if isinstance(r, str)))


def resource_text(seq: int, event: str) -> str:
    """The AuditEvent as served: id = the row's seq, versionId 1, lastUpdated = recorded (events never change)."""
    record = json.loads(event)
    ev = record if "resourceType" in record else expand(record)
    served = {"resourceType": "AuditEvent", "id": str(seq),
              "meta": {"versionId": "1", "lastUpdated": dates.instant(recorded(ev["recorded"]))}}
    served.update((k, v) for k, v in ev.items() if k not in ("resourceType", "id", "meta"))
    return json.dumps(served, ensure_ascii=False, separators=(",", ":"))


# ------------------------------------------------------------------------------- the FHIR form of a record
def expand(record: dict) -> dict:
    """The AuditEvent (without id and meta) of a compact record, shaped after IHE BALP's RESTful patterns."""
    ev: dict = {"resourceType": "AuditEvent", "type": REST,
                "subtype": [{"system": INTERACTION, "code": record["s"]}] + ([EXPORT] if record.get("x") else []),
                "action": record["a"], "recorded": record["t"], "outcome": record["o"]}
    if record.get("d"):
        ev["outcomeDesc"] = record["d"]
    ev["purposeOfEvent"] = [{"coding": [{"system": ACT_REASON, "code": record.get("p")}]}]
    ev["agent"] = _agents(record)
    ev["source"] = {"observer": {"display": "IOP FHIR service"}, "type": _SOURCE_TYPE}
    if record.get("h"):
        ev["source"]["site"] = record["h"]
    if record.get("e"):
        ev["entity"] = [_entity(e) for e in record["e"]]
    return ev


def _agents(record: dict) -> list[dict]:
    client = record.get("c")
    who = {"identifier": {"system": CLIENT_ID_SYSTEM, "value": client}} if client else {"display": "this server"}
    agent: dict = {"type": _SOURCE_ROLE, "who": who, "requestor": True}
    if record.get("n"):
        agent["network"] = {"address": record["n"], "type": "2"}  # 2 = IP address (network-type)
    agents = [agent]
    if record.get("g"):
        agents.append({"who": {"reference": record["g"]}, "requestor": False})
    return agents


def _entity(e: dict) -> dict:
    role, ref = e.get("k", "4"), e.get("r")
    patient = (ref or e.get("n") or "").split("/", 1)[0] == "Patient"
    if patient and role == "4":
        role = "1"
    ent: dict = {"what": {"reference": ref}} if ref else ({"name": e["n"]} if "n" in e else {})
    ent |= {"type": {"system": _ENTITY_TYPE, "code": "1" if patient else "2", "display": "Person" if patient else "System Object"},
            "role": {"system": _OBJECT_ROLE, "code": role, "display": _ROLES.get(role, role)}}
    if e.get("l"):
        ent["securityLabel"] = e["l"]
    if "q" in e:
        ent["query"] = e["q"]
    return ent
