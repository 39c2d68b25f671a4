"""Builders for the intensity, level-of-care, certification and census tests (issue 9 part B): the Lakeview program
of examples/program-operations-1-network.json (America/Chicago, CDT = UTC-5 in September and October 2026), and
attendance written as the sessions operations write it: a session Encounter for a group session and one
iop-attendance-encounter per patient, linked to the patient's enrollment."""
from __future__ import annotations

import uuid

from helpers import example, post, put

C = "https://iop.example.org/fhir"
SD = f"{C}/StructureDefinition"
SCT = "http://snomed.info/sct"
ORG = "Organization/ops-org-lakeview"
THERAPIST = "Practitioner/ops-pract-therapist"
PSYCHIATRIST = "Practitioner/ops-pract-psychiatrist"
NETWORK = "program-operations-1-network.json"
ZONE = "-05:00"  # America/Chicago, daylight time until 2026-11-01
KIND = {"group": ("76168009", "Group psychotherapy"), "individual": ("18512000", "Individual psychotherapy"),
        "family": ("108313002", "Family psychotherapy procedure"), "psychiatric": ("88848003", "Psychiatric follow-up")}
STATES = {"attended": ("finished", "attended"), "late": ("finished", "partial"), "left-early": ("finished", "partial"),
          "excused": ("cancelled", "excused-absence"), "no-show": ("cancelled", "no-show")}


def load_network(client) -> None:
    resp = post(client, "", example(NETWORK))
    assert resp.status_code == 200, resp.get_data(as_text=True)


def at(day: str, clock: str) -> str:
    """A local (Chicago, daylight time) dateTime."""
    return f"{day}T{clock}:00{ZONE}"


def minutes(start: str, end: str) -> int:
    from datetime import datetime
    return int((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() // 60)


def _type(kind: str) -> list[dict]:
    code, display = KIND[kind]
    return [{"coding": [{"system": SCT, "code": code, "display": display}]}]


def attendance(pid: str, eid: str, start: str, end: str, kind: str, state: str = "attended", session: str | None = None,
               family: str | None = None, eid_suffix: str = "") -> dict:
    """One patient's attendance Encounter (iop-attendance-encounter)."""
    status, how = STATES[state]
    enc: dict = {
        "resourceType": "Encounter", "meta": {"profile": [f"{SD}/iop-attendance-encounter"]},
        "extension": [{"url": f"{SD}/attendance-status", "valueCodeableConcept": {"coding": [
            {"system": f"{C}/CodeSystem/iop-attendance", "code": how}]}}],
        "status": status, "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": _type(kind), "subject": {"reference": f"Patient/{pid}"},
        "episodeOfCare": [{"reference": f"EpisodeOfCare/{eid}"}],
        "participant": [{"individual": {"reference": PSYCHIATRIST if kind == "psychiatric" else THERAPIST}}],
        "period": {"start": start, "end": end}, "serviceProvider": {"reference": ORG}}
    if status == "finished":
        enc["length"] = {"value": minutes(start, end), "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"}
    if session:
        enc["partOf"] = {"reference": session}
    if family:
        enc["participant"].append({"individual": {"reference": family}})
    return enc


def group_session(group: str, start: str, end: str, patients: dict[str, tuple]) -> dict:
    """A transaction: the session Encounter and each patient's Encounter. patients: pid -> (eid, state[, start, end])."""
    session = f"urn:uuid:{uuid.uuid4()}"
    entries = [{"fullUrl": session, "request": {"method": "POST", "url": "Encounter"}, "resource": {
        "resourceType": "Encounter", "meta": {"profile": [f"{SD}/iop-session-encounter"]}, "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}, "type": _type("group"),
        "serviceType": {"coding": [{"system": SCT, "code": "720177001", "display": "Drug relapse prevention program (regime/therapy)"}]},
        "subject": {"reference": f"Group/{group}"},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
                         "individual": {"reference": THERAPIST}}],
        "period": {"start": start, "end": end},
        "length": {"value": minutes(start, end), "unit": "min", "system": "http://unitsofmeasure.org", "code": "min"},
        "serviceProvider": {"reference": ORG}}}]
    for pid, (eid, state, *times) in patients.items():
        s, e = times if times else (start, end)
        entries.append({"request": {"method": "POST", "url": "Encounter"},
                        "resource": attendance(pid, eid, s, e, "group", state, session=session)})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def record(client, bundle_or_encounter: dict) -> dict:
    if bundle_or_encounter["resourceType"] == "Bundle":
        resp = post(client, "", bundle_or_encounter)
        assert resp.status_code == 200, resp.get_data(as_text=True)
    else:
        resp = post(client, "Encounter", bundle_or_encounter)
        assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def level_change(level: str, display: str, on: str, reason: str, who: str = PSYCHIATRIST) -> dict:
    return {"url": f"{SD}/level-of-care-change", "extension": [
        {"url": "level", "valueCodeableConcept": {"coding": [{"system": f"{C}/CodeSystem/level-of-care", "code": level, "display": display}]}},
        {"url": "date", "valueDate": on},
        {"url": "reason", "valueCodeableConcept": {"text": reason}},
        {"url": "decidedBy", "valueReference": {"reference": who}}]}


def set_level(episode: dict, level: str, display: str) -> None:
    for ext in episode["extension"]:
        if ext["url"] == f"{SD}/level-of-care":
            ext["valueCodeableConcept"] = {"coding": [{"system": f"{C}/CodeSystem/level-of-care", "code": level, "display": display}]}


def get(client, path: str):
    return client.get(f"/fhir/{path}")


def parts(parameter: dict) -> dict:
    """A Parameters part list as {name: value} (repeated names as lists: flag, day)."""
    out: dict = {}
    for p in parameter.get("part", []):
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        if "part" in p:
            value = parts(p) if p["name"] != "day" else parts(p)
        if p["name"] in ("flag", "day"):
            out.setdefault(p["name"], []).append(value)
        else:
            out[p["name"]] = value
    return out


def named(body: dict, name: str) -> list[dict]:
    return [p for p in body["parameter"] if p["name"] == name]


def store(client, body: dict) -> dict:
    resp = put(client, f"{body['resourceType']}/{body['id']}", body)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()
