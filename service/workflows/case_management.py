"""Case management referrals (housing, employment, legal or probation needs) after the Gravity SDOH Clinical Care
pattern (domain brief §1.4): the need is a Condition with an SDOH category, the aim a Goal, the referral to a community
resource a ServiceRequest whose category names the SDOH domain (SDOHCC temporary codes), and its fulfilment a Task
(code fulfill, focus the ServiceRequest, owner the community resource; Gravity TaskForReferralManagement).

Rules, in the writing transaction: the referral names the need it answers (`reasonReference` → an SDOH Condition or
Observation of the same patient) and the community resource (`performer`); an active referral sent without its Task
gets one (as an inbound IOP referral does); the Task never takes `received` or `ready`, which Gravity's status value
set excludes. Status changes follow the Task state machine (workflows/referral.on_task). docs/careplans.md.
"""
from __future__ import annotations

import json

from .. import dates, interactions
from ..errors import Unprocessable
from ..interactions import Change, Unit
from . import records, trigger

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
US_CORE_SDOH = ("http://hl7.org/fhir/us/core/CodeSystem/us-core-category", "sdoh")
FULFILL = ("http://hl7.org/fhir/CodeSystem/task-code", "fulfill")
NOT_GRAVITY = ("received", "ready")  # SDOHCC-ValueSetReferralTaskStatus: every TaskStatus but these
RESOURCE_TYPES = ("Organization", "HealthcareService", "PractitionerRole", "Practitioner")
NEED_TYPES = ("Condition", "Observation")


def is_case_management(sr: dict) -> bool:
    """A referral for a social need: a ServiceRequest whose category names an SDOH domain (SDOHCC temporary codes)."""
    return any(system == SDOHCC for c in sr.get("category", []) for system, _ in records.codes(c))


def is_sdoh(doc: dict) -> bool:
    """A need recorded the Gravity way: category us-core sdoh or an SDOHCC domain."""
    return any(US_CORE_SDOH in records.codes(c) or any(s == SDOHCC for s, _ in records.codes(c)) for c in doc.get("category", []))


@trigger("ServiceRequest")
def on_service_request(unit: Unit, change: Change) -> None:
    sr = records.parsed(change.stored)
    if sr is None or not is_case_management(sr) or sr.get("status") in ("entered-in-error", "revoked"):
        return
    _check(unit, sr)
    if sr.get("status") == "active" and not _tasks_of(unit, sr):
        interactions.create(unit, new_task(unit, sr))


def _check(unit: Unit, sr: dict) -> None:
    """The referral names a need of its own patient and the community resource that should meet it."""
    patient = records.ref_text(sr.get("subject"))
    if not patient or not patient.startswith("Patient/"):
        raise Unprocessable("A case management referral is for a Patient", code="business-rule", expression="ServiceRequest.subject")
    reasons = sr.get("reasonReference") or []
    if not reasons:
        raise Unprocessable("A case management referral names the need it answers: reasonReference → the SDOH Condition "
                            "(housing, employment, legal or probation)", code="required", expression="ServiceRequest.reasonReference")
    found = records.require_all(unit, [(f"ServiceRequest.reasonReference[{i}]", r) for i, r in enumerate(reasons)])
    for i, ref in enumerate(reasons):
        need = found.get(records.ref_text(ref) or "")
        where = f"ServiceRequest.reasonReference[{i}]"
        if need is None or need["resourceType"] not in NEED_TYPES or not is_sdoh(need):
            raise Unprocessable("reasonReference must name an SDOH Condition or Observation (category sdoh)", code="business-rule",
                                expression=where)
        if records.ref_text(need.get("subject")) != patient:
            raise Unprocessable(f"The need {records.ref_text(ref)} is another patient's, not {patient}'s", code="business-rule",
                                expression=where)
    performers = sr.get("performer") or []
    if len(performers) != 1 or (records.split(performers[0]) or ("",))[0] not in RESOURCE_TYPES:
        raise Unprocessable("A case management referral names one community resource: performer → Organization, "
                            "HealthcareService, PractitionerRole or Practitioner", code="required", expression="ServiceRequest.performer")
    records.require(unit, performers[0], "ServiceRequest.performer[0]")


def _tasks_of(unit: Unit, sr: dict) -> list[dict]:
    if records.created_here(unit, "ServiceRequest", sr["id"]):  # nothing stored before this unit can point at it
        own = [records.parsed(s) for k, s in records.written(unit).items() if k.startswith("Task/")]
        return [t for t in own if t and records.ref_text(t.get("focus")) == f"ServiceRequest/{sr['id']}"]
    return [json.loads(r.content) for r in unit.find("Task", f"focus=ServiceRequest/{sr['id']}", limit=1)]


def new_task(unit: Unit, sr: dict) -> dict:
    """The Gravity referral-management Task of a case management referral."""
    task = {"resourceType": "Task", "status": "requested", "intent": "order", "priority": sr.get("priority", "routine"),
            "code": {"coding": [records.coding(*FULFILL, "Fulfill the focal request")]},
            "focus": {"reference": f"ServiceRequest/{sr['id']}"}, "for": sr["subject"],
            "authoredOn": dates.instant(unit.now), "owner": sr["performer"][0]}
    if sr.get("requester"):
        task["requester"] = sr["requester"]
    labels = records.part2_labels(sr)
    if labels:
        task["meta"] = {"security": labels}
    return task


@trigger("Task")
def on_task(unit: Unit, change: Change) -> None:
    """A case management Task keeps to Gravity's statuses."""
    task = records.parsed(change.stored)
    if task is None or FULFILL not in records.codes(task.get("code")) or task.get("status") not in NOT_GRAVITY:
        return
    sr = records.read(unit, task.get("focus")) if records.split(task.get("focus")) else None
    if sr is not None and is_case_management(sr):
        raise Unprocessable(f"A community referral Task does not use status '{task['status']}' (Gravity SDOH referral Task "
                            "statuses: requested, accepted, rejected, in-progress, on-hold, completed, failed, cancelled)",
                            code="business-rule", expression="Task.status")
