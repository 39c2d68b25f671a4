"""Goal.achievementStatus follows the measured scores (HL7 goal-achievement), whenever a score is written."""
from __future__ import annotations

import json

import pytest
import requests
from outcome_helpers import amend, enrolled, gad7, phq9

from helpers import created, example, post, put

ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
MEASURE = "https://iop.example.org/fhir/CodeSystem/iop-measure"


def goal(who: dict, code: str = "44261-6", detail: dict | None = None, status: str = "in-progress") -> dict:
    """examples/Goal-iop-goal-1-phq9.json for this patient: PHQ-9 (or another measure) in 0-9."""
    body = example("Goal-iop-goal-1-phq9.json")
    del body["id"], body["addresses"]
    body["subject"] = body["expressedBy"] = {"reference": who["patient"]}
    body["target"][0]["measure"]["coding"][0]["code"] = code
    if detail is not None:
        del body["target"][0]["detailRange"]
        body["target"][0].update(detail)
    body["achievementStatus"]["coding"][0]["code"] = status
    return created(post(client_of(who), "Goal", body))


def client_of(who: dict):
    return who["client"]


def status_of(client, goal_id: str) -> str:
    body = client.get(f"/fhir/Goal/{goal_id}").get_json()
    return body["achievementStatus"]["coding"][0]["code"]


@pytest.fixture
def who(client):
    return dict(enrolled(client), client=client)


def score(client, who: dict, total: int, day: int) -> dict:
    """A PHQ-9 response whose total is `total` (items of 3, then the remainder), answered on 2026-11-<day>."""
    items = [3] * (total // 3) + ([total % 3] if total % 3 else [])
    items = (items + [0] * 9)[:8] + [0]
    assert sum(items) == total
    return created(post(client, "QuestionnaireResponse", phq9(items, who, authored=f"2026-11-{day:02d}T10:00:00Z")))


def test_phq9_goal_follows_the_scores(client, who):
    g = goal(who)
    score(client, who, 17, 2)
    assert status_of(client, g["id"]) == "in-progress"
    score(client, who, 14, 9)
    assert status_of(client, g["id"]) == "improving"
    score(client, who, 15, 16)
    assert status_of(client, g["id"]) == "worsening"
    score(client, who, 15, 17)
    assert status_of(client, g["id"]) == "no-change"
    score(client, who, 8, 23)  # crosses the target (below 10)
    assert status_of(client, g["id"]) == "achieved"
    score(client, who, 6, 30)
    assert status_of(client, g["id"]) == "sustaining"
    history = client.get(f"/fhir/Goal/{g['id']}/_history").get_json()["entry"]
    assert [e["resource"]["achievementStatus"]["coding"][0]["code"] for e in history] == [
        "sustaining", "achieved", "no-change", "worsening", "improving", "in-progress"]  # a version per move, newest first


def test_backdated_score_does_not_move_the_status(client, who):
    g = goal(who)
    score(client, who, 12, 9)
    score(client, who, 8, 16)
    assert status_of(client, g["id"]) == "achieved"
    score(client, who, 20, 2)  # entered late, measured first
    assert status_of(client, g["id"]) == "achieved"


def test_gad7_goal_with_a_quantity_target(client, who):
    g = goal(who, "70274-6", {"detailQuantity": {"value": 10, "comparator": "<"}})
    created(post(client, "QuestionnaireResponse", gad7([2] * 7, who, authored="2026-11-02T10:00:00Z")))
    assert status_of(client, g["id"]) == "in-progress"
    created(post(client, "QuestionnaireResponse", gad7([1] * 7, who, authored="2026-11-09T10:00:00Z")))
    assert status_of(client, g["id"]) == "achieved"


def test_a_directly_posted_score_moves_the_goal(client, who):
    from helpers import phq9 as phq9_observation

    g = goal(who)
    created(post(client, "Observation", phq9_observation(who["patient"], 5)))
    assert status_of(client, g["id"]) == "achieved"


def test_amended_score_moves_the_goal_back(client, who):
    g = goal(who)
    score(client, who, 15, 2)
    qr = score(client, who, 9, 9)
    assert status_of(client, g["id"]) == "achieved"
    amend(client, dict(qr, item=phq9([3, 3, 3, 3, 0, 0, 0, 0, 0], who)["item"]))
    assert status_of(client, g["id"]) == "improving"  # 12 after 15


def test_typed_status_that_contradicts_the_scores_is_rewritten(client, who):
    g = goal(who)
    score(client, who, 18, 2)
    score(client, who, 16, 9)
    current = client.get(f"/fhir/Goal/{g['id']}").get_json()
    typed = dict(current, achievementStatus={"coding": [{"system": ACHIEVEMENT, "code": "achieved"}]})
    assert put(client, f"Goal/{g['id']}", typed).status_code == 200
    assert status_of(client, g["id"]) == "improving"
    unscored = goal(dict(enrolled(client, family="New"), client=client), status="not-attainable")
    assert status_of(client, unscored["id"]) == "not-attainable"  # no scores yet: what staff set stands


def test_goals_of_other_measures_and_patients_are_left_alone(client, who):
    gad = goal(who, "70274-6")
    other = dict(enrolled(client, family="Other"), client=client)
    theirs = goal(other)
    score(client, who, 5, 2)
    assert status_of(client, gad["id"]) == "in-progress" and status_of(client, theirs["id"]) == "in-progress"
    assert client.get(f"/fhir/Goal/{gad['id']}").get_json()["meta"]["versionId"] == "1"


def test_updated_goal_validates(client, who, validator_url, ig_validator_url):
    g = goal(who)
    score(client, who, 8, 2)
    body = client.get(f"/fhir/Goal/{g['id']}").get_json()
    for url in (validator_url, ig_validator_url):
        issues = requests.post(f"{url}/validate", data=json.dumps(body), timeout=30).json()["issue"]
        assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_days_abstinent_and_attended_hours_goals(client, who):
    """Local IOP measures: a Goal of 42 days abstinent (examples/Goal-iop-goal-1-abstinence.json) and 9 hours a week."""
    body = example("Goal-iop-goal-1-abstinence.json")
    del body["id"]
    body.pop("addresses", None)
    body["subject"] = body["expressedBy"] = {"reference": who["patient"]}
    abstinent = created(post(client, "Goal", body))
    hours = dict(body, target=[{"measure": {"coding": [{"system": MEASURE, "code": "attended-hours-week"}]},
                                "detailQuantity": {"value": 9, "comparator": ">=", "unit": "h", "system": "http://unitsofmeasure.org",
                                                   "code": "h"}}])
    hours = created(post(client, "Goal", hours))

    def measure(code: str, value: float, when: dict) -> None:
        created(post(client, "Observation", {
            "resourceType": "Observation", "status": "final", "code": {"coding": [{"system": MEASURE, "code": code}]},
            "subject": {"reference": who["patient"]}, **when,
            "valueQuantity": {"value": value, "unit": "d" if code == "days-abstinent" else "h",
                              "system": "http://unitsofmeasure.org", "code": "d" if code == "days-abstinent" else "h"}}))

    measure("days-abstinent", 20, {"effectiveDateTime": "2026-11-09"})
    measure("days-abstinent", 27, {"effectiveDateTime": "2026-11-16"})
    assert status_of(client, abstinent["id"]) == "improving"
    measure("days-abstinent", 42, {"effectiveDateTime": "2026-11-30"})
    assert status_of(client, abstinent["id"]) == "achieved"
    measure("attended-hours-week", 7.5, {"effectivePeriod": {"start": "2026-11-02", "end": "2026-11-08"}})
    measure("attended-hours-week", 6, {"effectivePeriod": {"start": "2026-11-09", "end": "2026-11-15"}})
    assert status_of(client, hours["id"]) == "worsening" and status_of(client, abstinent["id"]) == "achieved"


def test_one_transaction_for_two_patients_moves_only_each_ones_goal(client, who):
    """Goals and scores of two patients written together: each goal follows its own patient's scores."""
    other = dict(enrolled(client, family="Other"), client=client)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    for person in (who, other):
        body = example("Goal-iop-goal-1-phq9.json")
        del body["id"], body["addresses"]
        body["subject"] = body["expressedBy"] = {"reference": person["patient"]}
        bundle["entry"].append({"resource": body, "request": {"method": "POST", "url": "Goal"}})
    bundle["entry"].append({"resource": phq9([1] * 9, who), "request": {"method": "POST", "url": "QuestionnaireResponse"}})
    bundle["entry"].append({"resource": phq9([3] * 8 + [0], other), "request": {"method": "POST", "url": "QuestionnaireResponse"}})
    resp = client.post("/fhir", data=json.dumps(bundle), headers={"Content-Type": "application/fhir+json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    ids = [e["response"]["location"].split("/")[1] for e in resp.get_json()["entry"][:2]]
    assert status_of(client, ids[0]) == "achieved" and status_of(client, ids[1]) == "in-progress"
