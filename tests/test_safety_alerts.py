"""Safety alerts: PHQ-9 item 9 above 0 or a positive C-SSRS screener raises, in the response's transaction, a
high-priority Task for the episode's care team and a Flag on the patient; never dropped, never twice."""
from __future__ import annotations

import json

import requests
from outcome_helpers import amend, cssrs, enrolled, gad7, phq9, result_of, search

from helpers import assert_outcome, count_rows, created, post, put

ALERT_CS = "https://iop.example.org/fhir/CodeSystem/iop-safety-alert"


def tasks(client, who) -> list[dict]:
    return [t for t in search(client, f"Task?patient={who['patient']}")
            if t["code"]["coding"][0] == {**t["code"]["coding"][0], "system": ALERT_CS}]


def flags(client, who) -> list[dict]:
    return search(client, f"Flag?patient={who['patient']}")


def test_phq9_item9_raises_task_for_the_care_team_and_a_flag(client):
    who = enrolled(client)
    qr = created(post(client, "QuestionnaireResponse", phq9([0] * 8 + [1], who)))
    obs = result_of(client, qr["id"])[0]
    [task] = tasks(client, who)
    assert task["status"] == "requested" and task["intent"] == "order" and task["priority"] == "urgent"
    assert task["owner"] == {"reference": who["team"]} and "note" not in task
    assert task["focus"] == {"reference": f"Observation/{obs['id']}"} == task["reasonReference"]
    assert task["for"] == {"reference": who["patient"]}
    assert "item 9" in task["description"] and "Several days" in task["description"]
    [flag] = flags(client, who)
    assert flag["status"] == "active" and flag["category"][0]["coding"][0]["code"] == "safety"
    assert flag["code"]["coding"][0]["code"] == "suicide-risk" and flag["subject"] == {"reference": who["patient"]}
    assert flag["extension"][0]["valueReference"] == {"reference": f"Observation/{obs['id']}"}


def test_no_alert_without_risk(client):
    who = enrolled(client)
    created(post(client, "QuestionnaireResponse", phq9([3] * 8 + [0], who)))  # severe, but item 9 is 0
    created(post(client, "QuestionnaireResponse", cssrs({1, 2}, who)))  # low risk
    created(post(client, "QuestionnaireResponse", gad7([3] * 7, who)))
    assert tasks(client, who) == [] and flags(client, who) == []


def test_positive_cssrs_raises_alert_high_risk_asap(client):
    who = enrolled(client)
    created(post(client, "QuestionnaireResponse", cssrs({2, 3}, who)))
    assert [t["priority"] for t in tasks(client, who)] == ["urgent"]
    created(post(client, "QuestionnaireResponse", cssrs({6, 7}, who)))
    assert sorted(t["priority"] for t in tasks(client, who)) == ["asap", "urgent"]  # one Task per positive response
    assert len(flags(client, who)) == 1  # one active Flag per patient


def test_rescoring_is_idempotent(client):
    who = enrolled(client)
    qr = created(post(client, "QuestionnaireResponse", phq9([1] * 9, who)))
    amend(client, dict(qr, item=phq9([2] * 8 + [1], who)["item"]))
    amend(client, dict(qr, item=phq9([2] * 8 + [3], who)["item"]))
    assert len(tasks(client, who)) == 1 and len(flags(client, who)) == 1
    amend(client, dict(qr, item=phq9([0] * 9, who)["item"]))  # a negative re-score leaves the Task to staff
    assert [t["status"] for t in tasks(client, who)] == ["requested"]


def test_resolved_flag_is_raised_again(client):
    who = enrolled(client)
    created(post(client, "QuestionnaireResponse", phq9([0] * 8 + [2], who)))
    [flag] = flags(client, who)
    assert put(client, f"Flag/{flag['id']}", dict(flag, status="inactive")).status_code == 200
    created(post(client, "QuestionnaireResponse", cssrs({2, 4}, who)))
    [again] = flags(client, who)
    assert again["id"] == flag["id"] and again["status"] == "active"
    assert len(tasks(client, who)) == 2


def test_missing_care_team_falls_back_to_the_program(client):
    """The episode's CareTeam is gone (or never existed): the alert still goes out, owned by the program."""
    who = enrolled(client)
    assert client.delete(f"/fhir/{who['team']}").status_code in (200, 204)
    created(post(client, "QuestionnaireResponse", phq9([0] * 8 + [3], who)))
    [task] = tasks(client, who)
    assert task["owner"] == {"reference": who["org"]} and "care team could not be found" in task["note"][0]["text"]
    assert len(flags(client, who)) == 1
    nobody = enrolled(client, team=False, family="Alone")
    created(post(client, "QuestionnaireResponse", cssrs({2, 5}, nobody)))
    assert tasks(client, nobody)[0]["owner"] == {"reference": nobody["org"]}


def test_care_manager_owns_it_when_the_team_is_missing(client):
    who = enrolled(client, team=False)
    pract = created(post(client, "Practitioner", {"resourceType": "Practitioner", "name": [{"family": "Therapist"}]}))
    episode = dict(who["episode_resource"], careManager={"reference": f"Practitioner/{pract['id']}"},
                   team=[{"reference": "CareTeam/gone"}])
    assert put(client, who["episode"], episode).status_code == 200
    created(post(client, "QuestionnaireResponse", phq9([0] * 8 + [1], who)))
    [task] = tasks(client, who)
    assert task["owner"] == {"reference": f"Practitioner/{pract['id']}"} and "care manager" in task["note"][0]["text"]


def test_no_owner_at_all_refuses_the_response(client, app):
    """Nobody on this server could own the alert: the response is refused, not stored without its alert."""
    pid = created(post(client, "Patient", {"resourceType": "Patient", "name": [{"family": "Nobody"}]}))["id"]
    eoc = created(post(client, "EpisodeOfCare", {"resourceType": "EpisodeOfCare", "status": "active",
                                                 "patient": {"reference": f"Patient/{pid}"}}))
    who = {"patient": f"Patient/{pid}", "episode": f"EpisodeOfCare/{eoc['id']}"}
    before = count_rows(app)
    assert_outcome(post(client, "QuestionnaireResponse", phq9([0] * 8 + [1], who)), 422, "business-rule")
    assert count_rows(app) == before
    created(post(client, "QuestionnaireResponse", phq9([1] * 8 + [0], who)))  # no alert needed: scored and stored


def test_alerts_validate_with_medplum(client, validator_url, ig_validator_url):
    who = enrolled(client)
    created(post(client, "QuestionnaireResponse", cssrs({2, 3, 4, 5, 6, 7}, who)))
    for resource in tasks(client, who) + flags(client, who):
        for url in (validator_url, ig_validator_url):
            issues = requests.post(f"{url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
            assert not [i for i in issues if i["severity"] in ("error", "fatal")], (resource["resourceType"], issues)
