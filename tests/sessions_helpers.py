"""Builders for the sessions and attendance tests: a program with an evening group (Mon/Wed/Thu 18:00-21:00,
America/Chicago), patients with enrollments, and the operations' Parameters."""
from __future__ import annotations

import json

from helpers import example, post, put

SD = "https://iop.example.org/fhir/StructureDefinition"
SID = "https://iop.example.org/fhir/sid"
ORG = "Organization/iop-org-riverside"
THERAPIST = "Practitioner/iop-pract-therapist"
COUNSELOR = "Practitioner/iop-pract-counselor"
GROUP = "eve-a"


def store(client, body: dict) -> dict:
    resp = put(client, f"{body['resourceType']}/{body['id']}", body)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def schedule_ext(days=("mon", "wed", "thu"), at="18:00:00", hours=3, zone="America/Chicago", facilitator=THERAPIST,
                 topic=True) -> dict:
    parts = [{"url": "timing", "valueTiming": {"repeat": {"dayOfWeek": list(days), "timeOfDay": [at], "duration": hours,
                                                          "durationUnit": "h"}}},
             {"url": "timeZone", "valueCode": zone},
             {"url": "location", "valueReference": {"reference": "Location/iop-loc-riverside-main"}}]
    if facilitator:
        parts.append({"url": "facilitator", "valueReference": {"reference": facilitator}})
    if topic:
        parts.append({"url": "topic", "valueCodeableConcept": {"coding": [
            {"system": "http://snomed.info/sct", "code": "720177001", "display": "Drug relapse prevention program (regime/therapy)"}]}})
    return {"url": f"{SD}/session-schedule", "extension": parts}


def member(pid: str, start: str = "2026-10-01", end: str | None = None, inactive: bool = False) -> dict:
    out: dict = {"entity": {"reference": f"Patient/{pid}"}, "period": {"start": start}}
    if end:
        out["period"]["end"] = end
    if inactive:
        out["inactive"] = True
    return out


def group(gid: str = GROUP, members: list[dict] | None = None, schedules: list[dict] | None = None) -> dict:
    body = example("Group-iop-group-evening-a.json")
    body["id"] = gid
    body["extension"] = [e for e in body["extension"] if not e["url"].endswith("/session-schedule")]
    body["extension"] += schedules if schedules is not None else [schedule_ext()]
    body["member"] = members if members is not None else []
    body["identifier"][0]["value"] = f"GRP-{gid}"
    return body


def episode(eid: str, pid: str, status: str = "active", start: str = "2026-10-01", org: str = ORG,
            end: str | None = None) -> dict:
    body = example("EpisodeOfCare-iop-eoc-1.json")
    for key in ("referralRequest", "diagnosis", "team", "statusHistory"):
        body.pop(key, None)
    body.update({"id": eid, "status": status, "patient": {"reference": f"Patient/{pid}"},
                 "managingOrganization": {"reference": org}, "period": {"start": start}})
    if end:
        body["period"]["end"] = end
    body["identifier"][0]["value"] = f"EOC-{eid}"
    return body


def enroll(client, pid: str, **episode_args) -> None:
    """A Patient with an active enrollment of the Riverside program."""
    store(client, {"resourceType": "Patient", "id": pid, "name": [{"family": "Testpatient", "given": [pid]}],
                   "gender": "female", "birthDate": "1988-04-12"})
    store(client, episode(f"eoc-{pid}", pid, **episode_args))


def schedule(client, gid: str = GROUP, start: str = "2026-11-02", weeks: int = 1, facilitator: str | None = None):
    params = [{"name": "start", "valueDate": start}, {"name": "weeks", "valueInteger": weeks}]
    if facilitator:
        params.append({"name": "facilitator", "valueReference": {"reference": facilitator}})
    return post(client, f"Group/{gid}/$schedule-sessions", {"resourceType": "Parameters", "parameter": params})


def mark(pid: str, state: str = "attended", start: str | None = None, end: str | None = None) -> dict:
    parts = [{"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}}, {"name": "state", "valueCode": state}]
    if start:
        parts.append({"name": "start", "valueDateTime": start})
    if end:
        parts.append({"name": "end", "valueDateTime": end})
    return {"name": "attendance", "part": parts}


def record(client, appt_id: str, *marks: dict):
    return post(client, f"Appointment/{appt_id}/$record-attendance", {"resourceType": "Parameters", "parameter": list(marks)})


def resources(bundle: dict, rtype: str | None = None) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if rtype is None or e["resource"]["resourceType"] == rtype]


def search(client, query: str) -> list[dict]:
    resp = client.get(f"/fhir/{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [e["resource"] for e in resp.get_json().get("entry", []) if e.get("search", {}).get("mode") == "match"]


def as_json(resp) -> dict:
    return json.loads(resp.get_data(as_text=True))
