"""Step-down referrals end to end through the HTTP API: intake, resend, triage, decision, intake appointment,
admission, discharge, and what the referrer sees by polling; bad referrals refused with nothing stored."""
from __future__ import annotations

import copy
import json
import threading

import pytest

from helpers import assert_outcome, count_rows, example, post, put

CS = "https://iop.example.org/fhir/CodeSystem"
STEP = f"{CS}/iop-referral-step"
PROGRAM = "Organization/iop-org-riverside"


def referral_bundle(**changes) -> dict:
    """journey-01: the hospital's referral transaction (Patient, Conditions, Coverage, Consent, discharge summary,
    assessments, triage findings, medications, ServiceRequest, Task)."""
    bundle = example("journey-01-referral.json")
    for entry in bundle["entry"]:
        change = changes.get(entry["resource"]["resourceType"])
        if change:
            change(entry)
    return bundle


def search(client, query: str) -> list[dict]:
    resp = client.get(f"/fhir/{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [e["resource"] for e in resp.get_json().get("entry", [])]


def the_task(client) -> dict:
    tasks = search(client, "Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0601")
    assert len(tasks) == 1, tasks
    return tasks[0]


def step(task: dict) -> str:
    return next(c["code"] for c in task["businessStatus"]["coding"] if c["system"] == STEP)


def attend_intake(client, episode: dict) -> None:
    """The patient attends the intake session of an enrollment (an Encounter of that episode, with the counselor)."""
    intake = {"resourceType": "Encounter", "status": "finished",
              "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
              "subject": episode["patient"], "episodeOfCare": [{"reference": f"EpisodeOfCare/{episode['id']}"}],
              "participant": [{"individual": {"reference": "Practitioner/iop-pract-counselor"}}],
              "period": {"start": "2026-11-30T16:00:00-06:00", "end": "2026-11-30T17:00:00-06:00"}}
    assert post(client, "Encounter", intake).status_code == 201


def decide(client, task_id: str, decision: str, **extra) -> object:
    params = [{"name": "decision", "valueCode": decision},
              {"name": "author", "valueReference": {"reference": "Practitioner/iop-pract-counselor"}}]
    params += [{"name": k, **v} for k, v in extra.items()]
    return post(client, f"Task/{task_id}/$decide", {"resourceType": "Parameters", "parameter": params})


# ------------------------------------------------------------------------------- the loop
def test_a_referral_goes_from_intake_to_discharge_and_the_referrer_sees_every_step(program, app):
    client = program
    resp = post(client, "", referral_bundle())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    task = the_task(client)
    assert task["status"] == "requested" and task["owner"]["reference"] == PROGRAM

    proposal = post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"})
    assert proposal.status_code == 200, proposal.get_data(as_text=True)
    params = {p["name"]: p for p in proposal.get_json()["parameter"]}
    assert params["decision"]["valueCode"] == "accept", proposal.get_json()
    outcomes = {c["part"][0]["valueCoding"]["code"]: c["part"][1]["valueCode"]
                for c in proposal.get_json()["parameter"] if c["name"] == "check"}
    assert outcomes == {"medically-stable": "pass", "age-fit": "pass", "track-fit": "pass",
                        "insurance-in-network": "pass", "seat-available": "pass"}
    task = the_task(client)
    assert task["status"] == "received" and step(task) == "eligibility-checked"

    resp = decide(client, task["id"], "accept", intakeStart={"valueDateTime": "2026-11-30T16:00:00-06:00"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert step(resp.get_json()) == "intake-scheduled"  # the Task as stored at the end of the decision
    task = the_task(client)
    assert task["status"] == "accepted" and step(task) == "intake-scheduled"
    [episode] = search(client, f"EpisodeOfCare?incoming-referral={task['focus']['reference']}")
    assert episode["status"] == "planned" and episode["managingOrganization"]["reference"] == PROGRAM
    [appointment] = search(client, f"Appointment?based-on={task['focus']['reference']}")
    assert appointment["status"] == "booked" and appointment["start"] == "2026-11-30T22:00:00.000Z"
    [provenance] = search(client, f"Provenance?target=Task/{task['id']}")
    assert provenance["agent"][0]["who"]["reference"] == "Practitioner/iop-pract-counselor"

    attend_intake(client, episode)
    task = the_task(client)
    assert task["status"] == "in-progress" and step(task) == "admitted"
    episode = client.get(f"/fhir/EpisodeOfCare/{episode['id']}").get_json()
    assert episode["status"] == "active" and episode["careManager"]["reference"] == "Practitioner/iop-pract-counselor"

    episode.update(status="finished", period={"start": episode["period"]["start"], "end": "2026-12-18"})
    assert put(client, f"EpisodeOfCare/{episode['id']}", episode).status_code == 200
    task = the_task(client)
    assert task["status"] == "completed" and step(task) == "completed"
    assert {"reference": f"EpisodeOfCare/{episode['id']}"} in [o["valueReference"] for o in task["output"]]

    history = client.get(f"/fhir/Task/{task['id']}/_history").get_json()
    statuses = [e["resource"]["status"] for e in reversed(history["entry"])]
    assert statuses == ["requested", "received", "accepted", "accepted", "in-progress", "completed"]


def test_the_referrer_polls_by_owner_requester_and_last_updated_with_the_referral_included(program):
    client = program
    assert post(client, "", referral_bundle()).status_code == 200
    task = the_task(client)
    requester = task["requester"]["reference"]
    bundle = client.get(f"/fhir/Task?owner={PROGRAM}&_include=Task:focus").get_json()
    kinds = sorted(e["resource"]["resourceType"] for e in bundle["entry"])
    assert kinds == ["ServiceRequest", "Task"]
    assert [t["id"] for t in search(client, f"Task?requester={requester}&_lastUpdated=ge2020-01-01")] == [task["id"]]
    assert search(client, f"Task?requester={requester}&_lastUpdated=gt2999-01-01") == []


def test_a_resent_referral_creates_nothing_twice(program, app):
    client = program
    first = post(client, "", referral_bundle())
    assert first.status_code == 200
    stored = count_rows(app)
    again = post(client, "", referral_bundle())
    assert again.status_code == 200, again.get_data(as_text=True)
    assert count_rows(app) == stored
    assert [e["response"]["status"] for e in again.get_json()["entry"]][:3] == ["200 OK"] * 3


def test_two_copies_arriving_at_once_make_one_referral(program, app, live_server):
    import requests

    body = json.dumps(referral_bundle())
    results = []

    def send():
        results.append(requests.post(live_server, data=body, headers={"Content-Type": "application/fhir+json"}, timeout=60))

    threads = [threading.Thread(target=send) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert sorted(r.status_code for r in results) == [200, 200], [r.text for r in results]
    assert len(search(program, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0601")) == 1
    the_task(program)
    assert len(search(program, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100345")) == 1


def test_a_referral_sent_without_a_task_gets_one(program):
    client = program
    bundle = referral_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Task"]
    assert post(client, "", bundle).status_code == 200
    [sr] = search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0601")
    [task] = search(client, f"Task?focus=ServiceRequest/{sr['id']}")
    assert task["status"] == "requested" and step(task) == "received"
    assert task["owner"]["reference"] == PROGRAM and task["for"] == sr["subject"]
    assert task["intent"] == "order" and task["meta"]["security"] == sr["meta"]["security"]
    again = post(client, "", bundle)
    assert again.status_code == 200
    assert len(search(client, f"Task?focus=ServiceRequest/{sr['id']}")) == 1


# ------------------------------------------------------------------------------- triage and decisions
def needs_supervision(entry: dict) -> None:
    resource = entry["resource"]
    if resource.get("code", {}).get("coding", [{}])[0].get("code") == "needs-24h-supervision":
        resource["valueBoolean"] = True


def test_a_patient_who_needs_24_hour_supervision_is_declined_with_the_reason(program):
    client = program
    assert post(client, "", referral_bundle(Observation=needs_supervision)).status_code == 200
    task = the_task(client)
    proposal = post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).get_json()
    assert proposal["parameter"][0] == {"name": "decision", "valueCode": "decline"}
    assert decide(client, task["id"], "decline").status_code == 400  # a decline needs a reason
    resp = decide(client, task["id"], "decline", reason={"valueString": "Needs residential care (ASAM 3.7)"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    task = the_task(client)
    assert task["status"] == "rejected" and step(task) == "declined"
    assert task["statusReason"]["coding"][0]["code"] == "medically-stable"
    assert task["statusReason"]["text"] == "Needs residential care (ASAM 3.7)"
    assert search(client, f"EpisodeOfCare?incoming-referral={task['focus']['reference']}") == []
    [provenance] = search(client, f"Provenance?target=Task/{task['id']}")
    assert "decline" in provenance["reason"][0]["text"]


def test_staff_may_override_a_proposal_with_a_reason_which_is_recorded(program):
    client = program
    assert post(client, "", referral_bundle(Observation=needs_supervision)).status_code == 200
    task = the_task(client)
    assert decide(client, task["id"], "accept").status_code == 400  # against the proposal: needs a reason
    resp = decide(client, task["id"], "accept", reason={"valueString": "Attending confirms supervision need resolved"})
    assert resp.status_code == 200
    [provenance] = search(client, f"Provenance?target=Task/{task['id']}")
    assert "staff override" in provenance["reason"][0]["text"]


def test_a_full_track_puts_the_patient_on_the_waitlist(program):
    client = program
    service = client.get("/fhir/HealthcareService/iop-hs-adult-evening").get_json()
    for ext in service["extension"]:
        if ext["url"].endswith("/seat-capacity"):
            ext["valueUnsignedInt"] = 0
    assert put(client, "HealthcareService/iop-hs-adult-evening", service).status_code == 200
    assert post(client, "", referral_bundle()).status_code == 200
    task = the_task(client)
    proposal = post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).get_json()
    assert proposal["parameter"][0]["valueCode"] == "waitlist"
    assert decide(client, task["id"], "accept").status_code == 200
    [episode] = search(client, f"EpisodeOfCare?incoming-referral={task['focus']['reference']}")
    assert episode["status"] == "waitlist"


def test_an_illegal_transition_is_a_422_naming_the_allowed_ones(program, app):
    client = program
    assert post(client, "", referral_bundle()).status_code == 200
    task = the_task(client)
    task["status"] = "completed"
    task["output"] = [{"type": {"text": "x"}, "valueString": "x"}]
    body = assert_outcome(put(client, f"Task/{task['id']}", task), 422, "business-rule", "Task.status")
    assert "received, accepted, rejected, cancelled" in body["issue"][0]["diagnostics"]
    assert the_task(client)["status"] == "requested"
    assert decide(client, task["id"], "accept").status_code == 200
    assert assert_outcome(decide(client, task["id"], "decline", reason={"valueString": "x"}), 422, "business-rule")


@pytest.mark.parametrize("params, where", [
    ({"resourceType": "Patient"}, "Parameters"),
    ({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "maybe"}]}, "Parameters.parameter[decision]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "accept"}]}, "Parameters.parameter[author]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "decision", "valueCode": "accept"},
      {"name": "author", "valueReference": {"reference": "Practitioner/iop-pract-counselor"}},
      {"name": "intakeStart", "valueDateTime": "2026-11-30"}]}, "Parameters.parameter[intakeStart]"),
])
def test_bad_decide_input_is_a_400_and_changes_nothing(program, params, where):
    client = program
    assert post(client, "", referral_bundle()).status_code == 200
    task = the_task(client)
    assert_outcome(post(client, f"Task/{task['id']}/$decide", params), 400, expression=where)
    assert the_task(client)["meta"]["versionId"] == task["meta"]["versionId"]


def test_triage_of_an_unknown_task_is_404(program):
    assert_outcome(post(program, "Task/nope/$triage", {"resourceType": "Parameters"}), 404)


# ------------------------------------------------------------------------------- bad referrals: nothing stored
def drop_subject(entry: dict) -> None:
    entry["resource"].pop("subject")


def dangling_insurance(entry: dict) -> None:
    entry["resource"]["insurance"] = [{"reference": "Coverage/does-not-exist"}]


def unknown_level_of_care(entry: dict) -> None:
    for ext in entry["resource"]["extension"]:
        if ext["url"].endswith("/requested-level-of-care"):
            ext["valueCodeableConcept"]["coding"][0]["code"] = "asam-9.9"


def other_owner(entry: dict) -> None:
    entry["resource"]["owner"] = {"reference": "Organization/hosp-org-lakeside"}


@pytest.mark.parametrize("rtype, change, status, where", [
    ("ServiceRequest", drop_subject, 400, None),
    ("ServiceRequest", dangling_insurance, 422, "ServiceRequest.insurance[0]"),
    ("ServiceRequest", unknown_level_of_care, 422, None),
    ("Task", other_owner, 422, "Task.owner"),
])
def test_a_bad_referral_is_refused_and_nothing_is_stored(program, app, rtype, change, status, where):
    stored = count_rows(app)
    resp = post(program, "", referral_bundle(**{rtype: change}))
    assert_outcome(resp, status, expression=where)
    assert count_rows(app) == stored


def test_a_referral_missing_its_patient_entry_is_refused(program, app):
    bundle = referral_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    stored = count_rows(app)
    resp = post(program, "", bundle)
    assert 400 <= resp.status_code < 500 and resp.get_json()["resourceType"] == "OperationOutcome"
    assert count_rows(app) == stored


def test_a_second_live_task_for_the_same_referral_is_refused(program, app):
    client = program
    assert post(client, "", referral_bundle()).status_code == 200
    task = copy.deepcopy(the_task(client))
    for key in ("id", "meta"):
        task.pop(key)
    task["identifier"] = [{"system": "https://hospital.example.org/fhir/sid/referral-task", "value": "T-OTHER"}]
    assert_outcome(post(client, "Task", task), 422, "duplicate", "Task.focus")


# ------------------------------------------------------------------------------- what the workflow writes is valid
def test_what_the_workflow_writes_passes_medplum_with_our_guide(program, ig_validator_url):
    import requests

    client = program
    bundle = referral_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Task"]
    assert post(client, "", bundle).status_code == 200
    [task] = search(client, "Task?code=fulfill")
    assert post(client, f"Task/{task['id']}/$triage", {"resourceType": "Parameters"}).status_code == 200
    assert decide(client, task["id"], "accept", intakeStart={"valueDateTime": "2026-11-30T16:00:00-06:00"}).status_code == 200
    written = [*search(client, "Task"), *search(client, "EpisodeOfCare"), *search(client, "Appointment"),
               *search(client, "Provenance")]
    assert sorted({r["resourceType"] for r in written}) == ["Appointment", "EpisodeOfCare", "Provenance", "Task"]
    for resource in written:
        issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
        errors = [i for i in issues if i["severity"] in ("error", "fatal")]
        assert not errors, (resource["resourceType"], errors)
