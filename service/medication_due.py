"""`MedicationRequest/$due`: the worklist of long-acting injections and refills due in the next days.

Computed on request from the stored orders, administrations and dispenses, so a late entry always shows:
- an injection (an active order for a long-acting injectable, workflows/medications.INJECTABLES) is due one dosing
  interval (dosageInstruction[0].timing.repeat) after its last completed MedicationAdministration (request = the
  order); before the first dose, on timing.repeat.boundsPeriod.start, else timing.event[0], else authoredOn;
- a refill of any other active order with dispenseRequest.expectedSupplyDuration is due when the supply runs out:
  that duration after its last completed MedicationDispense (prescription = the order), else after
  dispenseRequest.validityPeriod.start, else after authoredOn.
Only the program's own orders count: not `reported` ones and not those of another setting (category inpatient or
discharge: a hospital's discharge prescription that came with a referral is reconciled, not refilled here).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from flask import Response
from sqlalchemy import Connection

from . import conformance, dates, ops, privacy, search, wire
from .db import get_db
from .errors import Forbidden
from .op_input import read
from .program_data import linked
from .workflows import medications

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/MedicationRequest-due"
ORDER_INTENTS = ("order", "original-order", "reflex-order", "filler-order", "instance-order")
OTHER_SETTINGS = {"inpatient", "discharge"}
MAX_ORDERS = 5000
SUPPLY_DAYS = {"d": 1, "wk": 7, "mo": 30, "a": 365}


@dataclass(frozen=True)
class Due:
    order: dict
    kind: str  # injection | refill
    due: date
    last: str | None  # when the last dose was given or the last fill handed over


def operation() -> Response:
    """GET|POST MedicationRequest/$due?days=7&as-of=YYYY-MM-DD&patient=Patient/x"""
    if privacy.is_outside():
        raise Forbidden("$due is the program staff's worklist")
    given = read("$due", ("days", "as-of", "patient"))
    days = given.integer("days", 7, 0, 90)
    as_of = given.day("as-of", dates.utcnow().date())
    patient = given.reference("patient", ("Patient",))
    with get_db().read() as conn:
        items = worklist(conn, wire.base_url(), as_of, days, patient)
    return wire.respond(json.dumps(parameters(items, as_of, days), ensure_ascii=False, separators=(",", ":")))


def worklist(conn: Connection, base_url: str, as_of: date, days: int, patient: str | None = None) -> list[Due]:
    """Everything due on or before as_of + days (overdue included), soonest first."""
    query = "status=active" + (f"&subject={patient}" if patient else "")
    orders = [o for o in (json.loads(r.content) for r in search.find(conn, "MedicationRequest", query, base_url, MAX_ORDERS))
              if is_program_order(o)]
    refs = [f"MedicationRequest/{o['id']}" for o in orders]
    given = latest(conn, "MedicationAdministration", "request", refs, _administered_at)
    filled = latest(conn, "MedicationDispense", "prescription", refs, lambda d: d.get("whenHandedOver"))
    until = as_of + timedelta(days=days)
    items = [item for o in orders if (item := next_due(o, given, filled)) is not None and item.due <= until]
    return sorted(items, key=lambda i: (i.due, i.order["id"]))


def is_program_order(order: dict) -> bool:
    categories = {code for c in order.get("category", []) for _, code in _codes(c)}
    return order.get("intent") in ORDER_INTENTS and order.get("reportedBoolean") is not True and not categories & OTHER_SETTINGS


def next_due(order: dict, given: dict[str, str], filled: dict[str, str]) -> Due | None:
    ref = f"MedicationRequest/{order['id']}"
    if medications.is_injectable(order):
        interval = medications.interval_days(order)
        last = given.get(ref)
        if last:
            return Due(order, "injection", _day(last) + timedelta(days=interval or 28), last)
        start = _first_dose(order)
        return Due(order, "injection", _day(start), None) if start else None
    supply = _supply_days(order)
    if supply is None:
        return None
    last = filled.get(ref)
    start = last or (order.get("dispenseRequest", {}).get("validityPeriod") or {}).get("start") or order.get("authoredOn")
    return Due(order, "refill", _day(start) + timedelta(days=supply), last) if start else None


def _first_dose(order: dict) -> str | None:
    timing = ((order.get("dosageInstruction") or [{}])[0] or {}).get("timing") or {}
    bounds = (timing.get("repeat") or {}).get("boundsPeriod") or {}
    return bounds.get("start") or (timing.get("event") or [None])[0] or order.get("authoredOn")


def _supply_days(order: dict) -> float | None:
    duration = (order.get("dispenseRequest") or {}).get("expectedSupplyDuration") or {}
    unit, value = duration.get("code") or duration.get("unit"), duration.get("value")
    per = SUPPLY_DAYS.get(unit) or {"day": 1, "days": 1, "week": 7, "weeks": 7}.get(unit or "")
    return value * per if isinstance(value, (int, float)) and value > 0 and per else None


def latest(conn: Connection, rtype: str, param: str, refs: list[str], when) -> dict[str, str]:
    """The latest completed event (administration or dispense) per order: order reference -> its date."""
    out: dict[str, str] = {}
    wanted = set(refs)
    name = "request" if rtype == "MedicationAdministration" else "authorizingPrescription"
    for event in linked(conn, rtype, param, "MedicationRequest", [r.split("/", 1)[1] for r in refs]):
        at = when(event)
        for ref in _refs(event.get(name)) if event.get("status") == "completed" and at else []:
            if ref in wanted and (ref not in out or _day(at) > _day(out[ref])):
                out[ref] = at
    return out


def _administered_at(admin: dict) -> str | None:
    return admin.get("effectiveDateTime") or (admin.get("effectivePeriod") or {}).get("start")


def _refs(value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [v["reference"] for v in items if isinstance(v, dict) and isinstance(v.get("reference"), str)]


def _codes(concept: object) -> list[tuple[str, str]]:
    return [(c.get("system"), c.get("code")) for c in (concept or {}).get("coding", []) if isinstance(c, dict)]


def _day(text: str) -> date:
    """The calendar day a FHIR date or dateTime falls on (as written: a clinic's local date)."""
    return date.fromisoformat(text[:10]) if len(text) >= 10 else dates.parse_range(text)[0].date()


def parameters(items: list[Due], as_of: date, days: int) -> dict:
    """The worklist as Parameters: asOf, until, then one `due` per order with its parts."""
    out = [{"name": "asOf", "valueDate": as_of.isoformat()},
           {"name": "until", "valueDate": (as_of + timedelta(days=days)).isoformat()}]
    for item in items:
        order = item.order
        concept = order.get("medicationCodeableConcept") or {}
        display = concept.get("text") or next((c.get("display") for c in concept.get("coding", []) if c.get("display")), None)
        parts = [{"name": "medicationRequest", "valueReference": {"reference": f"MedicationRequest/{order['id']}",
                                                                  **({"display": display} if display else {})}},
                 {"name": "patient", "valueReference": {"reference": (order.get("subject") or {}).get("reference", "")}},
                 {"name": "kind", "valueCode": item.kind},
                 {"name": "dueDate", "valueDate": item.due.isoformat()},
                 {"name": "overdue", "valueBoolean": item.due < as_of}]
        if item.last:
            parts.append({"name": "lastGiven" if item.kind == "injection" else "lastFilled", "valueDateTime": item.last})
        out.append({"name": "due", "part": parts})
    return {"resourceType": "Parameters", "parameter": out}


ops.register(ops.Operation("MedicationRequest", "$due", DEFINITION, scope=("MedicationRequest", "s"), type_level=operation))
