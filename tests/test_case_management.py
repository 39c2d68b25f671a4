"""Case management needs (housing, employment, legal or probation) as SDOH Conditions and Goals with referrals to
community resources (ServiceRequest + Task), the Gravity SDOH pattern: examples/case-management.json."""
from __future__ import annotations

import copy
import json

import pytest
import requests

from helpers import FHIR, assert_outcome, count_rows, example, post, put

SETUP = ("Organization-iop-org-riverside.json", "Practitioner-iop-pract-therapist.json", "PractitionerRole-iop-role-therapist.json",
         "Patient-iop-patient-1.json", "Patient-iop-patient-3.json", "Condition-iop-cond-1-oud.json")
BUNDLE = "case-management.json"


@pytest.fixture
def needs(client):
    for name in SETUP:
        body = example(name)
        assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), name
    resp = post(client, "", example(BUNDLE))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return client


def entry(rtype: str, rid: str) -> dict:
    return copy.deepcopy(next(e["resource"] for e in example(BUNDLE)["entry"] if e["resource"]["id"] == rid))


def validate(url: str, body: dict) -> list[dict]:
    resp = requests.post(f"{url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    return [i for i in resp.json()["issue"] if i["severity"] in ("error", "fatal")]


def referral(rid: str = "iop-sr-new", **changes) -> dict:
    sr = entry("ServiceRequest", "iop-sr-1-employment")
    sr.update(id=rid, **changes)
    return sr


def test_the_example_needs_goals_referrals_and_tasks_are_stored_and_valid(needs, validator_url):
    for e in example(BUNDLE)["entry"]:
        r = e["resource"]
        stored = needs.get(f"/fhir/{r['resourceType']}/{r['id']}").get_json()
        assert validate(validator_url, stored) == [], r["id"]
    # each need: Condition (SDOH category) ← Goal.addresses, ← ServiceRequest.reasonReference ← Task.focus
    for key in ("1-employment", "1-legal", "3-housing"):
        tasks = needs.get(f"/fhir/Task?focus=ServiceRequest/iop-sr-{key}").get_json()
        assert tasks["total"] == 1
        sr = needs.get(f"/fhir/ServiceRequest/iop-sr-{key}").get_json()
        assert sr["reasonReference"] == [{"reference": f"Condition/iop-cond-{key}"}]
    assert needs.get("/fhir/Condition?patient=Patient/iop-patient-1&category=sdoh").get_json()["total"] == 2


def test_a_referral_sent_without_a_task_gets_one_once(needs, validator_url):
    assert put(needs, "ServiceRequest/iop-sr-new", referral()).status_code == 201
    tasks = needs.get("/fhir/Task?focus=ServiceRequest/iop-sr-new").get_json()
    assert tasks["total"] == 1
    task = tasks["entry"][0]["resource"]
    assert (task["status"], task["intent"], task["code"]["coding"][0]["code"]) == ("requested", "order", "fulfill")
    assert task["owner"] == {"reference": "Organization/cbo-workforce-center"} and task["for"] == {"reference": "Patient/iop-patient-1"}
    assert task["requester"]["reference"] == "PractitionerRole/iop-role-therapist"
    assert validate(validator_url, task) == []
    assert put(needs, "ServiceRequest/iop-sr-new", referral(priority="urgent")).status_code == 200
    assert needs.get("/fhir/Task?focus=ServiceRequest/iop-sr-new").get_json()["total"] == 1


def test_the_task_follows_the_gravity_statuses(needs, app):
    task = needs.get("/fhir/Task/iop-task-3-housing").get_json()
    for bad in ("received", "ready"):
        assert_outcome(put(needs, "Task/iop-task-3-housing", dict(task, status=bad)), 422, expression="Task.status")
    accepted = put(needs, "Task/iop-task-3-housing", dict(task, status="accepted")).get_json()
    completed = put(needs, "Task/iop-task-3-housing", dict(accepted, status="completed")).get_json()
    assert_outcome(put(needs, "Task/iop-task-3-housing", dict(completed, status="in-progress")), 422)


@pytest.mark.parametrize("change, expression", [
    ({"reasonReference": None}, "ServiceRequest.reasonReference"),
    ({"reasonReference": [{"reference": "Condition/iop-cond-1-oud"}]}, "ServiceRequest.reasonReference[0]"),  # not an SDOH need
    ({"reasonReference": [{"reference": "Condition/iop-cond-3-housing"}]}, "ServiceRequest.reasonReference[0]"),  # another patient's
    ({"reasonReference": [{"reference": "Condition/nowhere"}]}, "ServiceRequest.reasonReference[0]"),
    ({"performer": None}, "ServiceRequest.performer"),
    ({"performer": [{"reference": "Patient/iop-patient-1"}]}, "ServiceRequest.performer"),
    ({"performer": [{"reference": "Organization/nowhere"}]}, "ServiceRequest.performer[0]"),
])
def test_a_referral_without_its_need_or_community_resource_is_422_and_nothing_is_stored(needs, app, change, expression):
    sr = referral()
    for key, value in change.items():
        if value is None:
            sr.pop(key)
        else:
            sr[key] = value
    before = count_rows(app)
    assert_outcome(put(needs, "ServiceRequest/iop-sr-new", sr), 422, expression=expression)
    assert count_rows(app) == before


def test_other_service_requests_are_left_alone(needs):
    plain = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/iop-patient-1"},
             "code": {"text": "Lab work"}}
    assert post(needs, "ServiceRequest", plain).status_code == 201
