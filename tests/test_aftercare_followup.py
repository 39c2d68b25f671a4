"""Aftercare follow-up at discharge: 30/60/90-day follow-up Tasks made in the discharge transaction (once, also when
the discharge is sent again), their outcomes (reached, in treatment, readmitted, not reached) and the alumni group."""
from __future__ import annotations

import pytest
from test_conformance import assert_valid
from test_discharge_summary import discharge
from test_referrals import search
from treatment_helpers import admitted

from helpers import assert_outcome, put

ALUMNI = {"url": "https://iop.example.org/fhir/StructureDefinition/aftercare-alumni-group", "valueBoolean": True}
AFTERCARE = "https://iop.example.org/fhir/CodeSystem/iop-aftercare"
OUTCOME = "https://iop.example.org/fhir/CodeSystem/iop-aftercare-outcome"


def follow_ups(client, episode: dict) -> list[dict]:
    tasks = search(client, f"Task?focus=EpisodeOfCare/{episode['id']}&code={AFTERCARE}|follow-up-contact")
    return sorted(tasks, key=lambda t: t["restriction"]["period"]["start"])


def outcome(code: str) -> list[dict]:
    return [{"type": {"coding": [{"system": AFTERCARE, "code": "follow-up-outcome"}]},
             "valueCodeableConcept": {"coding": [{"system": OUTCOME, "code": code}]}}]


def record(client, task: dict, status: str, output: list[dict] | None = None):
    body = dict(client.get(f"/fhir/Task/{task['id']}").get_json(), status=status)
    if output is not None:
        body["output"] = output
    return put(client, f"Task/{task['id']}", body)


@pytest.fixture
def discharged(program):
    episode = admitted(program)
    return program, discharge(program, episode, extension=episode.get("extension", []) + [ALUMNI])


def test_discharge_makes_three_follow_ups_due_30_60_90_days_later(discharged, validator_url, ig_validator_url):
    client, episode = discharged
    tasks = follow_ups(client, episode)
    assert [t["restriction"]["period"]["start"] for t in tasks] == ["2027-01-17", "2027-02-16", "2027-03-18"]
    for task in tasks:
        assert task["status"] == "ready" and task["intent"] == "plan"
        assert task["for"] == episode["patient"] and task["owner"]["reference"] == "Organization/iop-org-riverside"
        assert "42CFRPart2" in {s["code"] for s in task["meta"]["security"]}
        assert task["meta"]["profile"] == ["https://iop.example.org/fhir/StructureDefinition/iop-aftercare-follow-up"]
        assert_valid(validator_url, task, "follow-up Task")
        assert_valid(ig_validator_url, task, "follow-up Task")


def test_a_resent_discharge_makes_no_second_follow_up(discharged):
    client, episode = discharged
    again = client.get(f"/fhir/EpisodeOfCare/{episode['id']}").get_json()
    assert put(client, f"EpisodeOfCare/{episode['id']}", again).status_code == 200
    again["status"] = "active"  # whether or not a reopened enrollment is allowed, discharging it again makes none twice
    put(client, f"EpisodeOfCare/{episode['id']}", again)
    discharge(client, episode)
    assert len(follow_ups(client, episode)) == 3


def test_the_patient_who_wants_it_joins_the_alumni_group(discharged, validator_url):
    client, episode = discharged
    [group] = search(client, f"Group?code={AFTERCARE}|alumni-group")
    assert group["managingEntity"] == {"reference": "Organization/iop-org-riverside"}
    [member] = [m for m in group["member"] if m["entity"]["reference"] == episode["patient"]["reference"]]
    assert member["period"] == {"start": "2026-12-18"} and not member.get("inactive")
    assert_valid(validator_url, group, "alumni Group")


def test_without_the_wish_there_is_no_alumni_group(program):
    episode = admitted(program)
    discharge(program, episode)
    assert search(program, f"Group?code={AFTERCARE}|alumni-group") == []
    assert len(follow_ups(program, episode)) == 3


@pytest.mark.parametrize("code", ["reached", "in-treatment", "readmitted", "not-reached"])
def test_a_follow_up_records_its_outcome(discharged, code, validator_url):
    client, episode = discharged
    task = follow_ups(client, episode)[0]
    assert record(client, task, "in-progress").status_code == 200
    resp = record(client, task, "completed", outcome(code))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["output"][0]["valueCodeableConcept"]["coding"][0]["code"] == code
    assert_valid(validator_url, resp.get_json(), "completed follow-up")


@pytest.mark.parametrize("status,output,expression", [
    ("completed", None, "Task.output"),
    ("completed", outcome("feeling-fine"), "Task.output"),
    ("completed", outcome("reached") + outcome("readmitted"), "Task.output"),
    ("requested", None, "Task.status"),
    ("accepted", None, "Task.status"),
])
def test_a_bad_follow_up_update_is_a_422_and_nothing_is_stored(discharged, status, output, expression):
    client, episode = discharged
    task = follow_ups(client, episode)[1]
    assert_outcome(record(client, task, status, output), 422, expression=expression)
    assert client.get(f"/fhir/Task/{task['id']}").get_json()["meta"]["versionId"] == "1"


def test_a_completed_follow_up_is_final(discharged):
    client, episode = discharged
    task = follow_ups(client, episode)[2]
    assert record(client, task, "completed", outcome("reached")).status_code == 200
    assert_outcome(record(client, task, "in-progress"), 422, "business-rule", "Task.status")
