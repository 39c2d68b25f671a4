"""Safety alerts: a positive suicide-risk item raises a high-priority Task for the care team and a Flag on the patient.

Raised by scoring.py in the same transaction as the response (PHQ-9 item 9 above 0, or a C-SSRS screener at moderate
or high risk), so the alert is stored exactly when the score is: never dropped, never alone. The Task is owned by the
episode's CareTeam; when that cannot be found, by its care manager; else by the program (the episode's managing
Organization, or this server's only program), and the Task says so in a note. One Task per response (identifier),
one active Flag per patient (identifier; a resolved Flag is made active again): re-scoring makes nothing twice.
A later negative re-score does not withdraw the Task: staff close it (docs/outcome-measures.md).
"""
from __future__ import annotations

from .. import dates, instruments, interactions
from ..errors import Unprocessable
from ..interactions import Unit
from ..repository import Stored
from . import lookups, programs, records

ALERT_CS = f"{records.CS}/iop-safety-alert"
TASK_ID = f"{records.SID}/safety-alert"  # value: the response's id
FLAG_ID = f"{records.SID}/safety-flag"  # value: the patient's id
FLAG_DETAIL = "http://hl7.org/fhir/StructureDefinition/flag-detail"
SAFETY = {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/flag-category", "safety", "Safety")]}


def alert(unit: Unit, response: dict, episode: dict, result_obs: Stored, result: instruments.Result, *, fresh: bool) -> None:
    """Create the Task (unless this response already has one) and make sure the patient's Flag is active."""
    observation = {"reference": f"Observation/{result_obs.id}"}
    if fresh or not lookups.find(unit, "Task", f"identifier={TASK_ID}|{response['id']}", 1):
        interactions.create(unit, _task(unit, response, episode, observation, result))
    _flag(unit, response, episode, observation, result)


def _task(unit: Unit, response: dict, episode: dict, observation: dict, result: instruments.Result) -> dict:
    owner, note = owner_of(unit, episode)
    task = {
        "resourceType": "Task", **_meta(response),
        "identifier": [{"system": TASK_ID, "value": response["id"]}],
        "status": "requested", "intent": "order", "priority": "asap" if _high(result) else "urgent",
        "code": {"coding": [records.coding(ALERT_CS, "suicide-risk-review", "Review suicide risk")]},
        "description": f"{result.alert}: contact the patient and assess suicide risk now.",
        "focus": observation, "for": {"reference": records.ref_text(response["subject"])},
        "authoredOn": dates.instant(unit.now), "lastModified": dates.instant(unit.now),
        "owner": owner, "reasonReference": observation,
    }
    if records.ref_text(response.get("encounter")):
        task["encounter"] = {"reference": records.ref_text(response["encounter"])}
    if note:
        task["note"] = [{"text": note}]
    return task


def owner_of(unit: Unit, episode: dict) -> tuple[dict, str | None]:
    """(owner, why not the care team) of an alert: the episode's CareTeam, else its care manager, else the program."""
    for ref in episode.get("team", []):
        if records.split(ref) and lookups.read(unit, ref) is not None:
            return {"reference": records.ref_text(ref)}, None
    missing = "the episode's care team could not be found"
    manager = episode.get("careManager")
    if records.split(manager) and lookups.read(unit, manager) is not None:
        return {"reference": records.ref_text(manager)}, f"Assigned to the care manager: {missing}."
    program = episode.get("managingOrganization")
    if not (records.split(program) and lookups.read(unit, program) is not None):
        program = programs.sole_program(unit)
    if program is None:  # nobody to own it: refuse the write rather than store a score whose alert reaches no one
        raise Unprocessable("A safety alert must be raised, but the episode has no care team, care manager or managing "
                            "organization on this server, and the server has no single program to own it",
                            code="business-rule", expression="EpisodeOfCare.team")
    return {"reference": records.ref_text(program)}, f"Assigned to the program: {missing}, nor its care manager."


def _flag(unit: Unit, response: dict, episode: dict, observation: dict, result: instruments.Result) -> None:
    patient = records.ref_text(response["subject"])
    rows = lookups.find(unit, "Flag", f"identifier={FLAG_ID}|{patient.split('/')[1]}", 1)
    current = rows[0] if rows else None
    if current is not None and current.get("status") == "active":
        return
    flag = {
        "resourceType": "Flag", **_meta(response),
        "extension": [{"url": FLAG_DETAIL, "valueReference": observation}],
        "identifier": [{"system": FLAG_ID, "value": patient.split("/")[1]}],
        "status": "active", "category": [SAFETY],
        "code": {"coding": [records.coding(ALERT_CS, "suicide-risk", "Suicide risk")], "text": result.alert},
        "subject": {"reference": patient}, "period": {"start": dates.instant(unit.now)},
    }
    if records.ref_text(episode.get("managingOrganization")):
        flag["author"] = {"reference": records.ref_text(episode["managingOrganization"])}
    if current is None:
        interactions.create(unit, flag)
    else:
        records.save(unit, dict(flag, id=current["id"]))


def _high(result: instruments.Result) -> bool:
    return isinstance(result.value, dict) and any(c.get("code") == "high" for c in result.value.get("coding", []))


def _meta(response: dict) -> dict:
    """meta carrying the response's 42 CFR Part 2 labels, when it has any."""
    labels = records.part2_labels(response)
    return {"meta": {"security": labels}} if labels else {}
