"""Appointment/[id]/$record-attendance (issue 9): a whole session's attendance in one request.

Domain brief §3.2: attended, late and left early make a finished Encounter with the minutes present; excused and
no-show a cancelled one; each is partOf the session Encounter and names the patient's enrollment; the Appointment
participants say accepted, declined or needs-action. Recording twice changes nothing, a correction changes one
Encounter, and bad input (off the roster, no enrollment or another program's, overlapping, an end before the start,
a future session marked attended, an unknown patient) is a 4xx naming the parameter with nothing stored.
"""
from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import requests
from sessions_helpers import (
    GROUP,
    ORG,
    THERAPIST,
    enroll,
    episode,
    group,
    mark,
    member,
    record,
    resources,
    schedule,
    search,
    store,
)

from helpers import assert_outcome, count_rows, example, post
from service import fhir

SD = "https://iop.example.org/fhir/StructureDefinition"
WED = "2026-11-11"  # a past Wednesday session, 18:00-21:00 America/Chicago (-06:00)


@pytest.fixture
def evening(program, client):
    """The evening group with p1, p2, p3 (Riverside enrollments) and p5 (on the roster, another program's patient);
    sessions of the weeks of 2 and 9 November; p4 is enrolled but not on the roster."""
    for pid in ("p1", "p2", "p3", "p4"):
        enroll(client, pid)
    enroll(client, "p5", org="Organization/aftercare-org-harbor")
    store(client, example("Organization-aftercare-org-harbor.json"))
    store(client, group(members=[member(p) for p in ("p1", "p2", "p3", "p5")]))
    appts = resources(schedule(client, start="2026-11-02", weeks=2).get_json())
    client.sessions = {a["start"][:10]: a for a in appts}
    return client


def session(client, day: str = WED) -> dict:
    return client.sessions[day]


def encounters(client, appt_id: str) -> dict[str, dict]:
    found = search(client, f"Encounter?appointment=Appointment/{appt_id}&_count=100")
    return {e["subject"]["reference"]: e for e in found}


def test_a_whole_session_in_one_request(evening):
    """Attended, late, left early and excused: one Encounter each, partOf the session, linked to the enrollment."""
    appt = session(evening)
    resp = record(evening, appt["id"], mark("p1"), mark("p2", "late", start=f"{WED}T18:40:00-06:00"),
                  mark("p3", "left-early", end=f"{WED}T20:00:00-06:00"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["type"] == "collection"
    encs = encounters(evening, appt["id"])
    session_enc = encs[f"Group/{GROUP}"]
    assert session_enc["status"] == "finished" and session_enc["length"]["value"] == 180
    assert session_enc["participant"][0]["individual"]["reference"] == THERAPIST
    assert session_enc["serviceProvider"]["reference"] == ORG
    p1, p2, p3 = encs["Patient/p1"], encs["Patient/p2"], encs["Patient/p3"]
    for enc, pid in ((p1, "p1"), (p2, "p2"), (p3, "p3")):
        assert enc["partOf"]["reference"] == f"Encounter/{session_enc['id']}"
        assert enc["episodeOfCare"] == [{"reference": f"EpisodeOfCare/eoc-{pid}"}]
        assert enc["appointment"] == [{"reference": f"Appointment/{appt['id']}"}]
        assert enc["status"] == "finished"
    assert p1["period"] == {"start": f"{WED}T18:00:00-06:00", "end": f"{WED}T21:00:00-06:00"} and p1["length"]["value"] == 180
    assert p2["period"]["start"] == f"{WED}T18:40:00-06:00" and p2["length"]["value"] == 140
    assert p3["period"]["end"] == f"{WED}T20:00:00-06:00" and p3["length"]["value"] == 120
    assert [state(e) for e in (p1, p2, p3)] == ["attended", "partial", "partial"]
    stored = evening.get(f"/fhir/Appointment/{appt['id']}").get_json()
    assert stored["status"] == "fulfilled"
    assert participant_status(stored) == {"Patient/p1": "accepted", "Patient/p2": "accepted", "Patient/p3": "accepted",
                                          "Patient/p5": "accepted"}
    assert {e["resource"]["id"] for e in body["entry"]} == {appt["id"], session_enc["id"], p1["id"], p2["id"], p3["id"]}


def state(enc: dict) -> str:
    ext = [e for e in enc["extension"] if e["url"] == f"{SD}/attendance-status"]
    return ext[0]["valueCodeableConcept"]["coding"][0]["code"]


def participant_status(appt: dict) -> dict[str, str]:
    return {p["actor"]["reference"]: p["status"] for p in appt["participant"] if p["actor"]["reference"].startswith("Patient/")}


def test_absences_are_cancelled_encounters_and_participant_states(evening):
    """Excused: cancelled, excused-absence, participant declined; no-show: cancelled, no-show, needs-action."""
    appt = session(evening)
    assert record(evening, appt["id"], mark("p1"), mark("p2", "excused"), mark("p3", "no-show")).status_code == 200
    encs = encounters(evening, appt["id"])
    assert (encs["Patient/p2"]["status"], state(encs["Patient/p2"])) == ("cancelled", "excused-absence")
    assert (encs["Patient/p3"]["status"], state(encs["Patient/p3"])) == ("cancelled", "no-show")
    assert "length" not in encs["Patient/p2"] and encs["Patient/p2"]["partOf"]
    stored = evening.get(f"/fhir/Appointment/{appt['id']}").get_json()
    assert participant_status(stored)["Patient/p2"] == "declined"
    assert participant_status(stored)["Patient/p3"] == "needs-action"


def test_a_session_where_nobody_came(evening):
    """Everybody excused: the Appointment is cancelled (patient), the session Encounter cancelled."""
    appt = session(evening, "2026-11-12")
    marks = [mark(p, "excused") for p in ("p1", "p2", "p3")]
    assert record(evening, appt["id"], *marks).status_code == 200
    assert evening.get(f"/fhir/Appointment/{appt['id']}").get_json()["status"] == "booked"  # p5 not recorded yet
    assert record(evening, appt["id"], mark("p5", "no-show")).status_code == 422  # another program's patient
    stored = evening.get(f"/fhir/Appointment/{appt['id']}").get_json()
    assert stored["status"] == "booked"
    assert encounters(evening, appt["id"])[f"Group/{GROUP}"]["status"] == "cancelled"


def test_recording_twice_changes_nothing(evening, app):
    appt = session(evening)
    marks = (mark("p1"), mark("p2", "late", start=f"{WED}T18:40:00-06:00"), mark("p3", "no-show"))
    first = record(evening, appt["id"], *marks).get_json()
    rows, versions = count_rows(app, "resource_version"), {e["resource"]["id"]: e["resource"]["meta"]["versionId"]
                                                           for e in first["entry"]}
    again = record(evening, appt["id"], *marks)
    assert again.status_code == 200
    assert {e["resource"]["id"]: e["resource"]["meta"]["versionId"] for e in again.get_json()["entry"]} == versions
    assert count_rows(app, "resource_version") == rows


def test_a_correction_changes_only_that_patients_encounter(evening):
    """p3 was marked a no-show but came late: the one Encounter is corrected, the others keep their version."""
    appt = session(evening)
    record(evening, appt["id"], mark("p1"), mark("p3", "no-show"))
    before = encounters(evening, appt["id"])
    resp = record(evening, appt["id"], mark("p3", "late", start=f"{WED}T19:00:00-06:00"))
    assert resp.status_code == 200
    after = encounters(evening, appt["id"])
    assert after["Patient/p3"]["id"] == before["Patient/p3"]["id"] and after["Patient/p3"]["meta"]["versionId"] == "2"
    assert after["Patient/p3"]["status"] == "finished" and after["Patient/p3"]["length"]["value"] == 120
    assert after["Patient/p1"]["meta"]["versionId"] == before["Patient/p1"]["meta"]["versionId"]
    assert participant_status(evening.get(f"/fhir/Appointment/{appt['id']}").get_json())["Patient/p3"] == "accepted"


def test_the_first_attended_session_admits_a_planned_enrollment(evening):
    """A planned enrollment counts (admission is the first attended session) and becomes active with it."""
    store(evening, episode("eoc-p1", "p1", status="planned", start="2026-11-20"))
    assert record(evening, session(evening)["id"], mark("p1")).status_code == 200
    admitted = evening.get("/fhir/EpisodeOfCare/eoc-p1").get_json()
    assert admitted["status"] == "active" and admitted["period"]["start"] == WED


def test_individual_and_family_sessions(evening, ig_validator_url):
    """An individual session and a family session (the spouse as a RelatedPerson): no session Encounter."""
    store(evening, example("RelatedPerson-iop-relperson-1-spouse.json") | {"patient": {"reference": "Patient/p1"}})
    family = individual(evening, "p1", "108313002", "Family psychotherapy procedure (regime/therapy)", "2026-11-10T10:00:00-06:00",
                        extra=[{"actor": {"reference": "RelatedPerson/iop-relperson-1-spouse"}, "status": "accepted"}])
    resp = record(evening, family["id"], mark("p1"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    encs = encounters(evening, family["id"])
    assert list(encs) == ["Patient/p1"] and "partOf" not in encs["Patient/p1"]
    assert encs["Patient/p1"]["type"][0]["coding"][0]["code"] == "108313002"
    alone = individual(evening, "p2", "18512000", "Individual psychotherapy (regime/therapy)", "2026-11-10T11:00:00-06:00")
    assert record(evening, alone["id"], mark("p2", "no-show")).status_code == 200
    assert evening.get(f"/fhir/Appointment/{alone['id']}").get_json()["status"] == "noshow"
    assert_outcome(record(evening, alone["id"], mark("p1")), 422, expression="Parameters.parameter[0].part[patient]")
    for resource in (encs["Patient/p1"], evening.get(f"/fhir/Appointment/{family['id']}").get_json()):
        issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
        assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def individual(client, pid: str, code: str, display: str, start: str, extra: list | None = None) -> dict:
    end = start[:11] + f"{int(start[11:13]) + 1:02d}" + start[13:]
    appt = {"resourceType": "Appointment", "meta": {"profile": [f"{SD}/iop-session-appointment"]}, "status": "booked",
            "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}],
            "start": start, "end": end, "minutesDuration": 60,
            "participant": [{"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"},
                            {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                                   "code": "PPRF"}]}], "actor": {"reference": THERAPIST}, "status": "accepted"},
                            {"actor": {"reference": "Location/iop-loc-riverside-main"}, "status": "accepted"}] + (extra or [])}
    resp = post(client, "Appointment", appt)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def test_what_the_operation_writes_is_valid_with_our_guide(evening, ig_validator_url):
    """Medplum with our guide accepts every resource written, and so does the fhir.resources parse, which the write
    path leaves out for these server-built resources (validation.validate, parse=False)."""
    appt = session(evening)
    body = record(evening, appt["id"], mark("p1"), mark("p2", "excused"), mark("p3", "late", start=f"{WED}T18:40:00-06:00")).get_json()
    assert len(body["entry"]) == 5  # the Appointment, the session Encounter and three patients'
    for entry in body["entry"]:
        issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(entry["resource"]), timeout=30).json()["issue"]
        assert not [i for i in issues if i["severity"] in ("error", "fatal")], (entry["resource"]["resourceType"], issues)
        assert fhir.parse_issues(entry["resource"]) == [], entry["resource"]


# ------------------------------------------------------------------------------- refused: nothing stored
def refused(client, app, appt_id: str, status: int, where: str, *marks: dict, text: str | None = None) -> dict:
    rows = count_rows(app, "resource_version")
    body = assert_outcome(record(client, appt_id, *marks), status, expression=where)
    assert count_rows(app, "resource_version") == rows
    if text:
        assert text in json.dumps(body), body
    return body


def test_a_patient_not_on_the_roster_is_a_422_naming_them(evening, app):
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[1].part[patient]", mark("p1"), mark("p4"),
            text="Patient/p4 is not on the roster")


def test_a_patient_without_an_active_enrollment_is_a_422(evening, app):
    store(evening, episode("eoc-p2", "p2", status="onhold"))
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[1].part[patient]", mark("p1"), mark("p2"),
            text="no planned or active enrollment")


def test_an_enrollment_that_started_after_the_session_does_not_cover_it(evening, app):
    store(evening, episode("eoc-p2", "p2", start="2026-11-12"))
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[0].part[patient]", mark("p2"))


def test_an_episode_of_another_program_is_a_422(evening, app):
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[0].part[patient]", mark("p5"),
            text="another program")


def test_an_unknown_patient_is_a_422(evening, app):
    body = refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[1].part[patient]", mark("p1"),
                   mark("nobody"), text="Patient/nobody is not known")
    assert body["issue"][0]["code"] == "not-found"


def test_every_bad_patient_is_named(evening, app):
    body = refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[0].part[patient]", mark("p4"),
                   mark("p1"), mark("nobody"))
    assert len(body["issue"]) == 2


def test_overlapping_attendance_is_a_422(evening, app):
    """p1 attended an individual session 19:00-20:00 that Wednesday: the group session overlaps it."""
    alone = individual(evening, "p1", "18512000", "Individual psychotherapy (regime/therapy)", f"{WED}T19:00:00-06:00")
    assert record(evening, alone["id"], mark("p1")).status_code == 200
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[0].part[start]", mark("p1"),
            text="overlaps")
    # leaving before it started is no overlap
    assert record(evening, session(evening)["id"], mark("p1", "left-early", end=f"{WED}T19:00:00-06:00")).status_code == 200


def test_an_end_before_the_start_is_a_422(evening, app):
    refused(evening, app, session(evening)["id"], 422, "Parameters.parameter[0].part[end]",
            mark("p1", "attended", start=f"{WED}T20:00:00-06:00", end=f"{WED}T19:00:00-06:00"))


def test_a_future_session_cannot_be_marked_attended(evening, app):
    monday = date.today() + timedelta(days=14 - date.today().weekday())
    future = resources(schedule(evening, start=monday.isoformat(), weeks=1).get_json())[0]
    refused(evening, app, future["id"], 422, "Parameters.parameter[0].part[state]", mark("p1"), text="in the future")
    refused(evening, app, future["id"], 422, "Parameters.parameter[0].part[state]", mark("p1", "no-show"))
    assert record(evening, future["id"], mark("p1", "excused")).status_code == 200  # notice given ahead


@pytest.mark.parametrize("param, where", [
    ({"name": "attendance", "part": [{"name": "state", "valueCode": "attended"}]}, "Parameters.parameter[0].part[patient]"),
    ({"name": "attendance", "part": [{"name": "patient", "valueReference": {"reference": "Group/eve-a"}},
                                     {"name": "state", "valueCode": "attended"}]}, "Parameters.parameter[0].part[patient]"),
    (mark("p1", "present"), "Parameters.parameter[0].part[state]"),
    (mark("p1", "late"), "Parameters.parameter[0].part[start]"),
    (mark("p1", "left-early"), "Parameters.parameter[0].part[end]"),
    (mark("p1", "excused", start=f"{WED}T18:00:00-06:00"), "Parameters.parameter[0].part[start]"),
    (mark("p1", "attended", start=f"{WED}T18:00:00"), "Parameters.parameter[0].part[start]"),
    (mark("p1", "attended", end="yesterday"), "Parameters.parameter[0].part[end]"),
    ({"name": "who", "valueString": "p1"}, "Parameters.parameter[0]"),
    ({"name": "attendance", "part": ["p1"]}, "Parameters.parameter[0].part"),
    ({"name": "attendance", "part": mark("p1")["part"] + [{"name": "room", "valueString": "2"}]},
     "Parameters.parameter[0].part[2]"),
])
def test_bad_parameters_are_400s(evening, app, param, where):
    refused(evening, app, session(evening)["id"], 400, where, param)


def test_a_patient_named_twice_or_no_patient_is_a_400(evening, app):
    refused(evening, app, session(evening)["id"], 400, "Parameters.parameter[1].part[patient]", mark("p1"), mark("p1", "late",
            start=f"{WED}T18:30:00-06:00"))
    refused(evening, app, session(evening)["id"], 400, "Parameters.parameter[attendance]")


def test_an_unknown_appointment_is_a_404(evening):
    assert_outcome(record(evening, "nope", mark("p1")), 404)


def test_an_excused_individual_session_is_cancelled_and_can_be_corrected(evening):
    """The only patient excused: the Appointment is cancelled (reason: patient); a correction makes it fulfilled."""
    alone = individual(evening, "p2", "18512000", "Individual psychotherapy (regime/therapy)", "2026-11-10T11:00:00-06:00")
    assert record(evening, alone["id"], mark("p2", "excused")).status_code == 200
    stored = evening.get(f"/fhir/Appointment/{alone['id']}").get_json()
    assert stored["status"] == "cancelled" and stored["cancelationReason"]["coding"][0]["code"] == "pat"
    assert record(evening, alone["id"], mark("p2")).status_code == 200
    stored = evening.get(f"/fhir/Appointment/{alone['id']}").get_json()
    assert stored["status"] == "fulfilled" and "cancelationReason" not in stored


def test_a_session_the_program_cancelled_takes_no_attendance(evening, app):
    appt = dict(session(evening), status="cancelled", cancelationReason={"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason", "code": "prov"}]})
    store(evening, appt)
    refused(evening, app, appt["id"], 422, "Appointment.status", mark("p1"))


def test_a_virtual_group_meets_in_the_virtual_class(evening):
    body = evening.get(f"/fhir/Group/{GROUP}").get_json()
    body["extension"][0]["valueCodeableConcept"]["coding"][0].update(code="virtual", display="Virtual track")
    store(evening, body)
    record(evening, session(evening)["id"], mark("p1"))
    assert {e["class"]["code"] for e in encounters(evening, session(evening)["id"]).values()} == {"VR"}


def test_two_overlapping_sessions_recorded_at_once_for_one_patient(evening, app):
    """The group session and an individual session at the same time, recorded concurrently: one of them is refused."""
    import threading

    alone = individual(evening, "p1", "18512000", "Individual psychotherapy (regime/therapy)", f"{WED}T19:00:00-06:00")
    clients = [app.test_client(), app.test_client()]
    jobs = [(session(evening)["id"], mark("p1")), (alone["id"], mark("p1"))]
    start, statuses = threading.Barrier(2), []

    def run(client, appt_id, one):
        start.wait()
        statuses.append(record(client, appt_id, one).status_code)

    threads = [threading.Thread(target=run, args=(c, *job)) for c, job in zip(clients, jobs, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200, 422]
    attended = search(evening, "Encounter?patient=Patient/p1&status=finished")
    assert len(attended) == 1
