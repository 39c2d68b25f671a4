"""Triage operations on a referral Task: `$triage` proposes a decision with its reasons; `$decide` records the
staff decision (confirming or overriding the proposal), who made it and why (statusReason, Provenance), and on
acceptance the enrollment and the intake appointment.

Local operations (no standard FHIR operation does this): definitions are described in docs/referrals.md.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import dates, interactions
from ..errors import BadRequest, NotFound, Unprocessable
from ..interactions import Unit
from . import eligibility, enrollment, records
from .referral import advance, is_referral

DECIDED = ("accepted", "rejected", "in-progress", "on-hold", "completed", "failed", "cancelled", "entered-in-error")
AUTHOR_TYPES = ("Practitioner", "PractitionerRole")


def load(unit: Unit, task_id: str) -> tuple[dict, dict]:
    """The referral Task and its ServiceRequest (404 when the Task is missing, 422 when it is not a referral's)."""
    stored = unit.current("Task", task_id, lock=True)
    if stored is None or stored.deleted or stored.content is None:
        raise NotFound(f"Task/{task_id} is not known")
    task = json.loads(stored.content)
    sr = records.read(unit, task.get("focus"))
    if sr is None or not is_referral(sr):
        raise Unprocessable(f"Task/{task_id} is not the fulfilment Task of an IOP referral", expression="Task.focus")
    return task, sr


def triage(unit: Unit, task_id: str) -> dict:
    """Check eligibility, record that it was checked (requested → received), and return the proposal."""
    task, sr = load(unit, task_id)
    result = eligibility.assess(unit, task, sr)
    if task["status"] in ("requested", "received"):
        summary = f"Proposed: {result.decision}. " + " ".join(f"{c.code}: {c.outcome}." for c in result.checks)
        advance(unit, task, "received", "eligibility-checked", summary)
    params = eligibility.as_parameters(result)
    params["parameter"].append({"name": "task", "valueReference": {"reference": f"Task/{task_id}"}})
    return params


@dataclass
class Decision:
    decision: str  # accept | decline
    author: dict
    reason: str | None
    intake_start: datetime | None
    intake_minutes: int


def decide(unit: Unit, task_id: str, decision: Decision) -> dict:
    """Record the staff decision on a referral; returns the Task as stored."""
    task, sr = load(unit, task_id)
    if task["status"] in DECIDED:
        raise Unprocessable(f"Task/{task_id} was already decided (status '{task['status']}')", code="business-rule",
                            expression="Task.status")
    records.require(unit, decision.author, "Parameters.parameter[author].valueReference")
    proposal = eligibility.assess(unit, task, sr)
    override = _is_override(proposal.decision, decision.decision)
    if (decision.decision == "decline" or override) and not decision.reason:
        raise BadRequest("A decline, or a decision against the proposal, needs a reason", expression="Parameters.parameter[reason]")
    if decision.decision == "decline":
        _decline(unit, task, proposal, decision)
    else:
        _accept(unit, task, sr, proposal, decision)
    _provenance(unit, task_id, sr, decision, proposal.decision, override)
    return json.loads(unit.current("Task", task_id).content)


def _is_override(proposed: str, decided: str) -> bool:
    return (proposed == "decline") != (decided == "decline") and proposed != "review"


def _decline(unit: Unit, task: dict, proposal: eligibility.Assessment, decision: Decision) -> None:
    reasons = [records.coding(eligibility.CHECKS, c.code, eligibility.DISPLAY[c.code]) for c in proposal.failed()]
    text = decision.reason or "; ".join(c.detail for c in proposal.failed())
    advance(unit, task, "rejected", "declined", f"Declined: {text}", statusReason={"coding": reasons, "text": text} if reasons
            else {"text": text})


def _accept(unit: Unit, task: dict, sr: dict, proposal: eligibility.Assessment, decision: Decision) -> None:
    text = "Accepted" + (f": {decision.reason}" if decision.reason else "")
    advance(unit, task, "accepted", "accepted", text)
    episode = enrollment.ensure(unit, task, sr)
    if decision.intake_start is not None:
        interactions.create(unit, _intake(sr, episode, decision))
        # the Appointment trigger would move the step too, but only at pre-commit: the caller gets the final Task
        advance(unit, json.loads(unit.current("Task", task["id"]).content or "{}"), None, "intake-scheduled")


def _intake(sr: dict, episode: dict, decision: Decision) -> dict:
    """The intake Appointment: basedOn the referral, with the patient and the deciding clinician."""
    start = decision.intake_start
    assert start is not None
    end = start + timedelta(minutes=decision.intake_minutes)
    appt = {"resourceType": "Appointment", "status": "booked",
            "serviceCategory": [{"coding": [records.coding("http://terminology.hl7.org/CodeSystem/service-category", "22",
                                                           "Mental Health")]}],
            "description": "IOP intake assessment", "start": dates.instant(start), "end": dates.instant(end),
            "minutesDuration": decision.intake_minutes, "basedOn": [{"reference": f"ServiceRequest/{sr['id']}"}],
            "participant": [{"actor": sr["subject"], "status": "accepted"}, {"actor": decision.author, "status": "accepted"}]}
    labels = records.part2_labels(sr)
    if labels:
        appt["meta"] = {"security": labels}
    return appt


def _provenance(unit: Unit, task_id: str, sr: dict, decision: Decision, proposed: str, override: bool) -> None:
    """Who decided, when and why (https://hl7.org/fhir/R4/provenance.html): target the new Task version."""
    stored = unit.current("Task", task_id)
    assert stored is not None
    why = f"{decision.decision} (proposed: {proposed}{'; staff override' if override else ''})"
    if decision.reason:
        why += f": {decision.reason}"
    prov = {"resourceType": "Provenance", "target": [{"reference": f"Task/{task_id}/_history/{stored.version}"}],
            "recorded": dates.instant(unit.now),
            "activity": {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE", "revise")],
                         "text": f"Referral triage decision: {why}"},
            "reason": [{"coding": [records.coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT", "treatment")],
                        "text": why}],
            "agent": [{"type": {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                                          "author", "Author")]}, "who": decision.author}],
            "entity": [{"role": "source", "what": {"reference": f"ServiceRequest/{sr['id']}"}}]}
    labels = records.part2_labels(sr)
    if labels:
        prov["meta"] = {"security": labels}
    interactions.create(unit, prov)


# ------------------------------------------------------------------------------- Parameters input
def parse_decision(body: object) -> Decision:
    """The $decide input Parameters: decision (accept|decline), author, reason?, intakeStart?, intakeMinutes?."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadRequest("$decide takes a Parameters resource", expression="Parameters")
    values = {p.get("name"): p for p in body.get("parameter", []) if isinstance(p, dict)}
    decision = (values.get("decision") or {}).get("valueCode")
    if decision not in ("accept", "decline"):
        raise BadRequest("Parameter 'decision' must be valueCode accept or decline", expression="Parameters.parameter[decision]")
    author = (values.get("author") or {}).get("valueReference")
    if not records.split(author) or records.split(author)[0] not in AUTHOR_TYPES:
        raise BadRequest("Parameter 'author' must reference the deciding Practitioner or PractitionerRole",
                         expression="Parameters.parameter[author]")
    return Decision(decision, {"reference": records.ref_text(author)}, (values.get("reason") or {}).get("valueString"),
                    _intake_start(values.get("intakeStart")), _minutes(values.get("intakeMinutes")))


def _intake_start(param: dict | None) -> datetime | None:
    raw = (param or {}).get("valueDateTime")
    if param is not None and (not isinstance(raw, str) or len(raw) < 16 or "T" not in raw):
        raise BadRequest("Parameter 'intakeStart' must be a valueDateTime with a time and zone",
                         expression="Parameters.parameter[intakeStart]")
    try:
        return dates.parse_range(raw)[0] if raw else None
    except ValueError:
        raise BadRequest(f"Parameter 'intakeStart' is not a dateTime: {raw}", expression="Parameters.parameter[intakeStart]") from None


def _minutes(param: dict | None) -> int:
    value = (param or {}).get("valueInteger", 60)
    if not isinstance(value, int) or isinstance(value, bool) or not 15 <= value <= 480:
        raise BadRequest("Parameter 'intakeMinutes' must be an integer from 15 to 480", expression="Parameters.parameter[intakeMinutes]")
    return value
