"""Medication reconciliation of an enrollment: `EpisodeOfCare/[id]/$reconcile-medications` (intake and discharge).

The result is a List (profile iop-medication-reconciliation, mode `changes`: https://hl7.org/fhir/R4/list.html)
with one entry per medication and its decision in entry.flag (local iop-medication-reconciliation-action:
continued, changed, stopped, new), who reconciled it (source) and when (date). At intake the medications the
referral brought (MedicationRequest/MedicationStatement in the referral's supportingInfo or its Task's input) are
reconciled against the program's own orders; at discharge the program's live orders are. Every one of them needs a
decision; an unknown medication, another patient's, or one without a decision is a 422 and nothing is stored.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass

from flask import Response

from . import conformance, dates, interactions, ops, privacy, rest, wire
from .db import get_db
from .errors import BadRequest, Forbidden, NotFound, Unprocessable
from .interactions import Unit
from .op_input import check_reference, parts, read
from .workflows import medications, records

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/EpisodeOfCare-reconcile-medications"
PROFILE = "iop-medication-reconciliation"
SID = f"{records.SID}/medication-reconciliation"
ACTION = f"{records.CS}/iop-medication-reconciliation-action"
ACTIONS = {"continued": "Continued", "changed": "Changed", "stopped": "Stopped", "new": "New"}
LISTS = {"intake": ("42346-7", "Medications on admission (narrative)"), "discharge": ("75311-1", "Discharge medications Narrative")}
MEDICATION_TYPES = ("MedicationRequest", "MedicationStatement")
LIVE_ORDERS = "active,on-hold,draft"


@dataclass(frozen=True)
class Decision:
    item: str
    action: str
    order: str | None
    note: str | None
    where: str  # the parameter's place in the request, for errors


@dataclass(frozen=True)
class Request:
    phase: str
    reconciler: str
    date: str | None
    decisions: list[Decision]


# ------------------------------------------------------------------------------- HTTP
def operation(rid: str) -> Response:
    """POST EpisodeOfCare/[id]/$reconcile-medications with a Parameters body; answers the List."""
    if privacy.is_outside():
        raise Forbidden("$reconcile-medications is for the program's staff")
    asked = parse(read("$reconcile-medications", ("phase", "reconciler", "date", "medication")))
    stored = interactions.run(get_db(), lambda unit: reconcile(unit, rid, asked), rest.write_options())
    return wire.respond(stored.content)


def parse(given) -> Request:
    """The request's shape (400 for a missing or malformed parameter); what it names is checked in the unit."""
    phase = given.text("phase", "valueCode")
    if phase not in LISTS:
        raise BadRequest(f"Parameter 'phase' must be intake or discharge, not '{phase}'", code="required" if phase is None else "value",
                         expression=given.where("phase"))
    reconciler = given.reference("reconciler", ("Practitioner", "PractitionerRole"))
    if reconciler is None:
        raise BadRequest("Parameter 'reconciler' (who reconciled: Practitioner/[id]) is required", code="required",
                         expression=given.where("reconciler"))
    when = given.text("date", "valueDateTime")
    if when is not None:
        try:
            dates.parse_range(when)
        except dates.DateFormatError:
            raise BadRequest(f"'{when}' is not a dateTime", expression=given.where("date")) from None
    decisions = [_decision(p, f"{given.where('medication')}[{i}]") for i, p in enumerate(given.params.get("medication", []))]
    return Request(phase, reconciler, when, decisions)


def _decision(param: dict, where: str) -> Decision:
    found = parts(param)

    def value(name: str, key: str) -> object:
        items = found.get(name, [])
        if len(items) > 1:
            raise BadRequest(f"Part '{name}' is repeated", expression=f"{where}.part[{name}]")
        return items[0].get(key) if items else None

    item = value("item", "valueReference")
    ref = check_reference((item or {}).get("reference") if isinstance(item, dict) else None, MEDICATION_TYPES,
                          "$reconcile-medications", f"{where}.part[item]")
    action = value("action", "valueCode")
    if action not in ACTIONS:
        raise BadRequest(f"Part 'action' must be one of {', '.join(ACTIONS)}, not '{action}'", expression=f"{where}.part[action]")
    order = value("order", "valueReference")
    order_ref = None if order is None else check_reference(order.get("reference") if isinstance(order, dict) else None,
                                                           ("MedicationRequest",), "$reconcile-medications", f"{where}.part[order]")
    note = value("note", "valueString")
    return Decision(ref, action, order_ref, note if isinstance(note, str) else None, where)


# ------------------------------------------------------------------------------- the unit of work
def reconcile(unit: Unit, episode_id: str, asked: Request):
    """Check every decision against the enrollment's medications, stop what is stopped, store the List."""
    episode = records.parsed(unit.current("EpisodeOfCare", episode_id))
    if episode is None:
        raise NotFound(f"EpisodeOfCare/{episode_id} is not known")
    patient = records.ref_text(episode.get("patient"))
    records.require(unit, {"reference": asked.reconciler}, "Parameters.parameter[reconciler]")
    referral = referral_medications(unit, episode)
    orders = live_orders(unit, patient, referral)
    meds = _resolve(unit, asked.decisions, patient)
    _check(asked, referral, orders)
    for d in asked.decisions:
        if d.action == "stopped" and d.item in orders:
            _stop(unit, meds[d.item], asked.phase)
    body = reconciled_list(unit, episode, asked, meds)
    query = f"identifier={SID}|{episode_id}-{asked.phase}"
    return interactions.conditional_update(unit, "List", query, body).stored


def referral_medications(unit: Unit, episode: dict) -> set[str]:
    """The MedicationRequests and MedicationStatements the enrollment's referral brought (supportingInfo, Task.input)."""
    found: set[str] = set()
    for ref in episode.get("referralRequest", []):
        sr = records.read(unit, ref) or {}
        task = _task(unit, ref) or {}
        refs = sr.get("supportingInfo", []) + [i.get("valueReference") for i in task.get("input", []) if isinstance(i, dict)]
        found |= {text for r in refs if (text := records.ref_text(r)) and text.split("/")[0] in MEDICATION_TYPES}
    return found


def _task(unit: Unit, sr_ref: object) -> dict | None:
    ref = records.ref_text(sr_ref)
    rows = unit.find("Task", f"focus={ref}", limit=1) if ref else []
    return json.loads(rows[0].content) if rows else None


def live_orders(unit: Unit, patient: str | None, referral: set[str]) -> set[str]:
    """The program's live orders for the patient: active, on-hold or draft, not the referral's, not reported."""
    rows = unit.find("MedicationRequest", f"subject={patient}&status={LIVE_ORDERS}", limit=500) if patient else []
    return {f"MedicationRequest/{row.id}" for row in rows
            if f"MedicationRequest/{row.id}" not in referral and json.loads(row.content).get("reportedBoolean") is not True}


def _resolve(unit: Unit, decisions: list[Decision], patient: str | None) -> dict[str, dict]:
    """Every medication named, as stored: unknown or another patient's is a 422 naming the part."""
    wanted = [(f"{d.where}.part[item]", {"reference": d.item}) for d in decisions]
    wanted += [(f"{d.where}.part[order]", {"reference": d.order}) for d in decisions if d.order]
    found = records.require_all(unit, wanted)
    for where, ref in wanted:
        med = found[ref["reference"]]
        if records.ref_text(med.get("subject")) != patient:
            raise Unprocessable(f"{ref['reference']} is not a medication of {patient}, the enrollment's patient",
                                code="business-rule", expression=where)
    return found


def _check(asked: Request, referral: set[str], orders: set[str]) -> None:
    """One decision per medication, a decision for each one that needs it, and decisions that fit what they name."""
    seen: dict[str, str] = {}
    for d in asked.decisions:
        for ref in filter(None, (d.item, d.order)):
            if ref in seen and seen[ref] != d.where:
                raise Unprocessable(f"{ref} has two decisions; give one", code="business-rule", expression=f"{d.where}.part[item]")
            seen[ref] = d.where
        _fits(d, referral, orders)
    needed = (referral | orders) if asked.phase == "intake" else orders
    missing = sorted(needed - set(seen))
    if missing:
        raise Unprocessable(f"No decision for {', '.join(missing)}: at {asked.phase} every "
                            f"{'medication the referral brought and every ' if asked.phase == 'intake' else ''}live program order "
                            "needs one (continued, changed, stopped or new)", code="required",
                            expression="Parameters.parameter[medication]")


def _fits(d: Decision, referral: set[str], orders: set[str]) -> None:
    if d.action == "new" and (d.item in referral or not d.item.startswith("MedicationRequest/")):
        raise Unprocessable(f"{d.item} is not a program order, so it cannot be new", code="business-rule",
                            expression=f"{d.where}.part[action]")
    if d.action == "changed" and d.item in referral and not d.order:
        raise Unprocessable("A changed medication names the program's new order in part 'order'", code="required",
                            expression=f"{d.where}.part[order]")
    if d.order and d.order in referral:
        raise Unprocessable(f"{d.order} came with the referral; part 'order' names the program's order", code="business-rule",
                            expression=f"{d.where}.part[order]")
    if d.order and d.action in ("stopped", "new"):
        raise Unprocessable(f"Part 'order' goes with continued or changed, not {d.action}", code="business-rule",
                            expression=f"{d.where}.part[order]")


def _stop(unit: Unit, order: dict, phase: str) -> None:
    """A program order the reconciliation stops becomes stopped (through the status machine)."""
    if order.get("status") in ("active", "on-hold", "draft"):
        target = "cancelled" if order["status"] == "draft" else "stopped"
        medications.check_transition(order["status"], target)
        order["status"] = target
        order["statusReason"] = {"text": f"Stopped at {phase} medication reconciliation"}
        records.save(unit, order)


# ------------------------------------------------------------------------------- the List
def reconciled_list(unit: Unit, episode: dict, asked: Request, meds: dict[str, dict]) -> dict:
    code, display = LISTS[asked.phase]
    entries = [_entry(d, meds) for d in asked.decisions]
    body = {"resourceType": "List", "meta": records.meta(PROFILE, episode),
            "text": {"status": "generated", "div": narrative(asked, meds)},
            "identifier": [{"system": SID, "value": f"{episode['id']}-{asked.phase}"}],
            "status": "current", "mode": "changes",
            "title": f"Medication reconciliation at {asked.phase}",
            "code": {"coding": [records.coding("http://loinc.org", code, display)]},
            "subject": episode["patient"], "date": asked.date or dates.instant(unit.now),
            "source": {"reference": asked.reconciler}}
    if entries:
        body["entry"] = entries
    else:
        body["emptyReason"] = {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/list-empty-reason", "nilknown",
                                                         "Nil Known")]}
    return body


def _entry(d: Decision, meds: dict[str, dict]) -> dict:
    ref = d.order or d.item
    entry: dict = {"flag": {"coding": [records.coding(ACTION, d.action, ACTIONS[d.action])]},
                   "item": {"reference": ref, "display": medication_name(meds[ref])}}
    if d.action == "stopped":
        entry["deleted"] = True
    return entry


def medication_name(med: dict) -> str:
    concept = med.get("medicationCodeableConcept") or {}
    return concept.get("text") or next((c["display"] for c in concept.get("coding", []) if c.get("display")), "medication")


def narrative(asked: Request, meds: dict[str, dict]) -> str:
    rows = "".join(f"<tr><td>{html.escape(medication_name(meds[d.order or d.item]))}</td><td>{ACTIONS[d.action]}</td>"
                   f"<td>{html.escape(d.note or '')}</td></tr>" for d in asked.decisions)
    return (f'<div xmlns="http://www.w3.org/1999/xhtml"><p>Medication reconciliation at {asked.phase}, by '
            f"{html.escape(asked.reconciler)}{' on ' + html.escape(asked.date) if asked.date else ''}.</p>"
            f"<table><tr><th>Medication</th><th>Decision</th><th>Note</th></tr>{rows}</table></div>")


ops.register(ops.Operation("EpisodeOfCare", "$reconcile-medications", DEFINITION, scope=("List", "cu"),
                           instance_level=operation, methods=("POST",)))
