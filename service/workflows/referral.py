"""The step-down referral loop: intake, Task state, enrollment, admission and discharge.

Closed-loop pattern of HL7 BSeR and Gravity (domain brief §1.3, §1.4, §1.7): the referral is a
ServiceRequest fulfilled through a Task owned by the IOP; every step the IOP takes shows in the Task
(status + businessStatus), which is what the referrer polls or subscribes to.
"""
from __future__ import annotations

import json

from .. import conformance, dates, interactions
from ..errors import Unprocessable
from ..interactions import Change, Unit
from . import enrollment, programs, records, task_states, trigger
from .records import SD

REFERRAL, TASK, AFTERCARE = "iop-referral", "iop-referral-task", "iop-aftercare-referral"
FULFILL = ("http://hl7.org/fhir/CodeSystem/task-code", "fulfill")
# Elements of a referral whose references must resolve here: the IOP works from them.
SR_REFERENCES = ("subject", "requester", "performer", "insurance", "reasonReference", "supportingInfo")


def is_referral(sr: dict) -> bool:
    """An inbound IOP referral: claims iop-referral, or asks for a level of care the way iop-referral does."""
    if records.claims(sr, REFERRAL):
        return True
    return not records.claims(sr, AFTERCARE) and bool(records.extension_values(sr, "requested-level-of-care"))


# ------------------------------------------------------------------------------- ServiceRequest
@trigger("ServiceRequest")
def on_service_request(unit: Unit, change: Change) -> None:
    """Check an inbound referral and give it a fulfilment Task when it arrived without one."""
    sr = records.parsed(change.stored)
    if sr is None or not is_referral(sr):
        return
    _check_referral(unit, sr)
    if not _tasks_of(unit, sr):
        interactions.create(unit, _new_task(unit, sr))


def _tasks_of(unit: Unit, sr: dict) -> list[dict]:
    """The Tasks whose focus is this referral (for a referral created in this unit, only the unit's own writes)."""
    focus = f"ServiceRequest/{sr['id']}"
    if records.created_here(unit, "ServiceRequest", sr["id"]):
        tasks = (records.parsed(v) for v in records.written(unit).values() if v.type == "Task")
        return [t for t in tasks if t and records.ref_text(t.get("focus")) == focus]
    return [json.loads(row.content) for row in unit.find("Task", f"focus={focus}", limit=20)]


def _check_referral(unit: Unit, sr: dict) -> None:
    """The referral meets iop-referral (even unclaimed) and its references resolve here."""
    if not records.claims(sr, REFERRAL):
        issues = [i for i in conformance.registry().validate(sr, [f"{SD}/{REFERRAL}"]) if i.severity in ("error", "fatal")]
        if issues:
            raise Unprocessable(issues[0].diagnostics, issues=issues)
    refs = []
    for name in SR_REFERENCES:
        value = sr.get(name)
        for i, ref in enumerate(value if isinstance(value, list) else [value] if value else []):
            refs.append((f"ServiceRequest.{name}" + (f"[{i}]" if isinstance(value, list) else ""), ref))
    records.require_all(unit, refs)


def _owner(unit: Unit, sr: dict) -> dict:
    """The program a referral is addressed to: its performer when that is ours, or the server's only program."""
    for ref in sr.get("performer", []):
        if programs.is_program(unit, ref):
            return {"reference": records.ref_text(ref)}
    if sr.get("performer"):
        raise Unprocessable("The referral's performer is not a program of this server", code="business-rule",
                            expression="ServiceRequest.performer")
    sole = programs.sole_program(unit)
    if sole is None:
        raise Unprocessable("The referral names no performer; say which program (Organization or HealthcareService) it is for",
                            code="required", expression="ServiceRequest.performer")
    return sole


def _new_task(unit: Unit, sr: dict) -> dict:
    """The BSeR / Gravity fulfilment Task for a referral that came without one (status requested)."""
    task = {
        "resourceType": "Task", "meta": records.meta(TASK, sr),
        "identifier": [{"type": {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/v2-0203", "FILL",
                                                            "Filler Identifier")]},
                        "system": f"{records.SID}/referral-task", "value": f"IOP-{sr['id']}"}],
        "status": "requested", "businessStatus": task_states.business_status("received"),
        "intent": "order", "priority": sr.get("priority", "routine"),
        "code": {"coding": [records.coding(*FULFILL, "Fulfill the focal request")]},
        "focus": {"reference": f"ServiceRequest/{sr['id']}"}, "for": sr["subject"],
        "authoredOn": _instant(unit), "lastModified": _instant(unit),
        "requester": sr["requester"], "owner": _owner(unit, sr),
    }
    if sr.get("supportingInfo"):
        task["input"] = [{"type": {"coding": [records.coding(ADDITIONAL[0], ADDITIONAL[1], "Additional Content")]},
                          "valueReference": ref} for ref in sr["supportingInfo"]]
    return task


ADDITIONAL = ("http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes", "additional-content")
RESULTING = ("http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes", "resulting-activity")


def _instant(unit: Unit) -> str:
    return dates.instant(unit.now)


# ------------------------------------------------------------------------------- Task
@trigger("Task")
def on_task(unit: Unit, change: Change) -> None:
    """A fulfilment Task moves only along the state machine; an inbound referral's is owned by one of our programs."""
    task = records.parsed(change.stored)
    if task is None or FULFILL not in records.codes(task.get("code")):
        return
    before = records.parsed(change.previous)
    if before is not None and before.get("status") != task.get("status"):
        task_states.check_transition(before.get("status"), task.get("status"))
    sr = records.require(unit, task.get("focus"), "Task.focus") if records.split(task.get("focus")) else None
    if sr is None or not is_referral(sr):
        return
    if not programs.is_program(unit, task.get("owner")):
        raise Unprocessable(f"This referral Task is owned by '{(task.get('owner') or {}).get('reference')}', which is not a "
                            "program of this server; send it to the program that owns it", code="business-rule",
                            expression="Task.owner")
    if records.ref_text(task.get("for")) != records.ref_text(sr.get("subject")):
        raise Unprocessable("Task.for must be the referral's subject", code="business-rule", expression="Task.for")
    if change.interaction == "create":
        _one_task_per_referral(unit, task, sr)
    if task.get("status") == "accepted" and (before or {}).get("status") != "accepted":
        enrollment.ensure(unit, task, sr)


FINAL = ("rejected", "cancelled", "failed", "completed", "entered-in-error")


def _one_task_per_referral(unit: Unit, task: dict, sr: dict) -> None:
    """The referrer's own Task replaces the one we made for a ServiceRequest that came first, alone."""
    for other in _tasks_of(unit, sr):
        if other["id"] == task["id"] or other.get("status") in FINAL:
            continue
        if _made_here(other, sr) and other.get("status") == "requested":
            interactions.delete(unit, "Task", other["id"])
        elif not _made_here(task, sr):
            raise Unprocessable(f"ServiceRequest/{sr['id']} already has a live fulfilment Task/{other['id']}; update that Task "
                                "instead", code="duplicate", expression="Task.focus")


def _made_here(task: dict, sr: dict) -> bool:
    return any(i.get("system") == f"{records.SID}/referral-task" and i.get("value") == f"IOP-{sr['id']}"
               for i in task.get("identifier", []) if isinstance(i, dict))


def task_for(unit: Unit, sr_reference: object) -> dict | None:
    """The fulfilment Task of a referral (the first, when a resend made more than one impossible anyway)."""
    ref = records.ref_text(sr_reference)
    rows = unit.find("Task", f"focus={ref}", limit=1) if ref else []
    return json.loads(rows[0].content) if rows else None


def advance(unit: Unit, task: dict, status: str | None, step: str, text: str | None = None, **extra) -> None:
    """Move a referral Task on (status and/or step), as a new version through the write path."""
    if status and status != task["status"]:
        task_states.check_transition(task["status"], status)
        task["status"] = status
    task["businessStatus"] = task_states.business_status(step, text)
    task["lastModified"] = _instant(unit)
    task.update(extra)
    records.save(unit, task)


# ------------------------------------------------------------------------------- Appointment, Encounter, EpisodeOfCare
@trigger("Appointment")
def on_appointment(unit: Unit, change: Change) -> None:
    """An intake appointment for a referral: booked → intake scheduled; noshow → no-show."""
    appt = records.parsed(change.stored)
    step = {"booked": "intake-scheduled", "noshow": "no-show"}.get((appt or {}).get("status"))
    if step is None or (records.parsed(change.previous) or {}).get("status") == appt["status"]:
        return
    for ref in appt.get("basedOn", []):
        task = task_for(unit, ref) if (records.ref_text(ref) or "").startswith("ServiceRequest/") else None
        if task and task["status"] == "accepted" and task_states.step_of(task) != step:
            advance(unit, task, None, step)


@trigger("Encounter")
def on_encounter(unit: Unit, change: Change) -> None:
    """The first attended session of an enrolled patient makes the enrollment active (admission)."""
    enc = records.parsed(change.stored)
    if enc is None or enc.get("status") not in ("in-progress", "finished") or not _attended(enc):
        return
    for ref in enc.get("episodeOfCare", []):
        episode = _episode(unit, ref)
        if episode and episode.get("status") in ("planned", "waitlist"):
            enrollment.activate(unit, episode, enc)


def known_enrollments(unit: Unit, episodes: list[dict]) -> None:
    """Enrollments the caller has read in this unit (the attendance checks): the admission trigger takes them
    instead of reading them again. The unit's own later writes of them still come first (records.written)."""
    records.memo(unit).setdefault("encounter_episodes", {}).update((f"EpisodeOfCare/{e['id']}", e) for e in episodes)


def _episode(unit: Unit, ref: object) -> dict | None:
    """records.read of an Encounter's enrollment, but the enrollments of all the Encounters the unit wrote so far are
    fetched in one query (a session's attendance writes a dozen Encounters: one query instead of one each)."""
    key = records.ref_text(ref)
    own = records.written(unit)
    if key is None or key in own:
        return records.read(unit, ref)
    fetched = records.memo(unit).setdefault("encounter_episodes", {})
    if key not in fetched:
        refs = [("", r) for c in unit.changes if c.stored.type == "Encounter"
                for r in (records.parsed(c.stored) or {}).get("episodeOfCare", [])] + [("", ref)]
        found = records.read_many(unit, refs)
        fetched.update((k, found.get(k)) for _, r in refs if (k := records.ref_text(r)) and k not in own)
    return fetched[key]


def _attended(enc: dict) -> bool:
    codes = records.extension_codes(enc, "attendance-status")
    return not codes or bool(codes & {"attended", "partial"})


@trigger("EpisodeOfCare")
def on_episode(unit: Unit, change: Change) -> None:
    """Enrollment active → referral Task in-progress (admitted); finished → Task completed with outputs."""
    episode = records.parsed(change.stored)
    before = (records.parsed(change.previous) or {}).get("status")
    if episode is None or episode.get("status") == before:
        return
    for ref in episode.get("referralRequest", []):
        task = task_for(unit, ref)
        if task is None:
            continue
        if episode["status"] == "active" and task["status"] == "accepted":
            advance(unit, task, "in-progress", "admitted")
        elif episode["status"] == "finished" and task["status"] in ("accepted", "in-progress", "on-hold"):
            advance(unit, task, "completed", "completed", output=enrollment.outputs(unit, episode, task))
