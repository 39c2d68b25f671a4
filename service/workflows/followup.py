"""Aftercare follow-up at discharge: the discharge summary, the 30/60/90-day follow-up Tasks, the alumni group.

When an enrollment (EpisodeOfCare) becomes finished, in the discharge's own transaction:
- the discharge summary is written when the enrollment has none (service/discharge_summary.py). This trigger runs
  before the other EpisodeOfCare triggers, so the referral Task's outputs (referral.py) and the hand-off to the
  aftercare providers (aftercare.py) carry it;
- three follow-up Tasks (local code iop-aftercare#follow-up-contact), due 30, 60 and 90 days after discharge
  (restriction.period), owned by the program; created on their identifier, so a resent discharge makes none twice;
- when the enrollment says the patient wants it (extension aftercare-alumni-group = true), the patient joins the
  program's alumni Group, after the workflows (the roster trigger ends the program's group memberships).
A follow-up Task records its outcome when completed: one output of type iop-aftercare#follow-up-outcome with a
code of iop-aftercare-outcome (reached, in-treatment, readmitted, not-reached); without it the write is a 422.
"""
from __future__ import annotations

from datetime import date, timedelta

from .. import dates, interactions
from ..errors import Unprocessable
from ..interactions import Change, Unit
from . import TRIGGERS, records, trigger

AFTERCARE = f"{records.CS}/iop-aftercare"
OUTCOME = f"{records.CS}/iop-aftercare-outcome"
OUTCOMES = {"reached": "Reached", "in-treatment": "In treatment", "readmitted": "Readmitted", "not-reached": "Not reached"}
FOLLOW_UP_SID = f"{records.SID}/aftercare-follow-up"
GROUP_SID = f"{records.SID}/alumni-group"
DAYS = (30, 60, 90)
WINDOW = 14  # days a follow-up contact may take after it is due
# The R4 Task state machine (https://hl7.org/fhir/R4/task.html#statemachine) from `ready` on: a follow-up needs no
# acceptance; it is worked (in-progress), completed with its outcome, or cancelled; failed when it could not be done.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "ready": ("in-progress", "on-hold", "completed", "failed", "cancelled", "entered-in-error"),
    "in-progress": ("on-hold", "completed", "failed", "cancelled", "entered-in-error"),
    "on-hold": ("ready", "in-progress", "completed", "failed", "cancelled", "entered-in-error"),
}


LIVE = ("planned", "waitlist", "active", "onhold")


def _finished_now(change: Change) -> dict | None:
    """The enrollment when this change discharges it: from a live status to finished (a record stored already
    finished, e.g. a past episode imported, is history, not a discharge)."""
    episode = records.parsed(change.stored)
    before = (records.parsed(change.previous) or {}).get("status")
    return episode if episode and episode.get("status") == "finished" and before in LIVE else None


def on_discharge_summary(unit: Unit, change: Change) -> None:
    """Discharge writes the summary when the enrollment has none (staff may have written one already)."""
    from .. import discharge_summary

    episode = _finished_now(change)
    if episode is not None and not discharge_summary.existing(unit, episode):
        discharge_summary.write(unit, episode)


# First of the EpisodeOfCare triggers: what it writes is what the later ones report and send.
TRIGGERS.setdefault("EpisodeOfCare", []).insert(0, on_discharge_summary)


@trigger("EpisodeOfCare")
def on_discharge(unit: Unit, change: Change) -> None:
    """Discharge: the follow-up Tasks, and the alumni group when the patient wants it."""
    episode = _finished_now(change)
    if episode is None:
        return
    discharged = date.fromisoformat(((episode.get("period") or {}).get("end") or unit.now.date().isoformat())[:10])
    for days in DAYS:
        task = follow_up(unit, episode, days, discharged + timedelta(days=days))
        interactions.create(unit, task, if_none_exist=f"identifier={FOLLOW_UP_SID}|{episode['id']}-{days}")
    if True in records.extension_values(episode, "aftercare-alumni-group"):
        # after every workflow: the roster trigger ends the program's group memberships at discharge (rosters.py)
        unit.after_workflows.append(lambda u: join_alumni(u, episode, discharged))


def follow_up(unit: Unit, episode: dict, days: int, due: date) -> dict:
    program = episode["managingOrganization"]
    return _labelled(episode, {
            "resourceType": "Task", "meta": {"profile": [f"{records.SD}/iop-aftercare-follow-up"]},
            "identifier": [{"system": FOLLOW_UP_SID, "value": f"{episode['id']}-{days}"}],
            "status": "ready", "intent": "plan", "priority": "routine",
            "code": {"coding": [records.coding(AFTERCARE, "follow-up-contact", "Aftercare follow-up contact")],
                     "text": f"{days}-day aftercare follow-up"},
            "description": f"Contact the patient {days} days after discharge and record the outcome",
            "focus": {"reference": f"EpisodeOfCare/{episode['id']}"}, "for": episode["patient"],
            "authoredOn": dates.instant(unit.now), "requester": program, "owner": program,
            "restriction": {"period": {"start": due.isoformat(), "end": (due + timedelta(days=WINDOW)).isoformat()}}})


def join_alumni(unit: Unit, episode: dict, since: date) -> None:
    """The patient becomes an active member of the program's alumni Group (made on first use)."""
    program = records.ref_text(episode["managingOrganization"]) or ""
    ident = f"alumni-{program.split('/')[-1]}"
    found = interactions.create(unit, alumni_group(episode, ident), if_none_exist=f"identifier={GROUP_SID}|{ident}").stored
    group = records.parsed(found) or {}
    patient = records.ref_text(episode["patient"])
    if any(records.ref_text(m.get("entity")) == patient and not m.get("inactive") and not (m.get("period") or {}).get("end")
           for m in group.get("member", [])):
        return
    group.setdefault("member", []).append({"entity": {"reference": patient}, "period": {"start": since.isoformat()}})
    group["quantity"] = len(group["member"])
    labels = {(s.get("system"), s.get("code")) for s in (group.get("meta") or {}).get("security", [])}
    extra = [s for s in records.part2_labels(episode) if (s.get("system"), s.get("code")) not in labels]
    if extra:
        group.setdefault("meta", {}).setdefault("security", []).extend(extra)
    records.save(unit, group)


def alumni_group(episode: dict, ident: str) -> dict:
    program = episode["managingOrganization"]
    return _labelled(episode, {
        "resourceType": "Group", "identifier": [{"system": GROUP_SID, "value": ident}], "active": True, "type": "person",
        "actual": True, "code": {"coding": [records.coding(AFTERCARE, "alumni-group", "Program alumni group")]},
        "name": f"Alumni group of {program.get('display') or records.ref_text(program)}",
        "managingEntity": {"reference": records.ref_text(program)}, "quantity": 0})


def _labelled(episode: dict, resource: dict) -> dict:
    """What discharge derives from a 42 CFR Part 2 enrollment carries its labels (records.part2_labels)."""
    labels = records.part2_labels(episode)
    return {**resource, "meta": {**resource.get("meta", {}), "security": labels}} if labels else resource


# ------------------------------------------------------------------------------- follow-up outcomes
@trigger("Task")
def on_follow_up(unit: Unit, change: Change) -> None:
    """A follow-up Task moves along the Task state machine; once completed it names its outcome."""
    task = records.parsed(change.stored)
    if task is None or (AFTERCARE, "follow-up-contact") not in records.codes(task.get("code")):
        return
    before = records.parsed(change.previous)
    was, now = (before or {}).get("status"), task.get("status")
    if before is not None and was != now and now not in TRANSITIONS.get(was or "", ()):
        raise Unprocessable(f"A follow-up Task cannot go from '{was}' to '{now}'; it may go to: "
                            f"{', '.join(TRANSITIONS.get(was or '', ())) or 'none (it is final)'}",
                            code="business-rule", expression="Task.status")
    found = outcomes(task)
    if None in found or (task.get("status") == "completed" and len(found) != 1):
        raise Unprocessable("A completed follow-up records its outcome: one Task.output of type iop-aftercare#follow-up-outcome "
                            f"with a code of {OUTCOME} ({', '.join(OUTCOMES)})", code="required", expression="Task.output")


def outcomes(task: dict) -> list[str | None]:
    """The outcome code of each follow-up-outcome output (None for one without a known code)."""
    found: list[str | None] = []
    for output in task.get("output", []):
        if (AFTERCARE, "follow-up-outcome") in records.codes(output.get("type")):
            codes = [c for s, c in records.codes(output.get("valueCodeableConcept")) if s == OUTCOME and c in OUTCOMES]
            found.append(codes[0] if codes else None)
    return found
