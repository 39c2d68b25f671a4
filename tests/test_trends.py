"""Trends per episode: scores over time by instrument, first versus latest, as a search and as
EpisodeOfCare/[id]/$score-trends."""
from __future__ import annotations

import json

import requests
from outcome_helpers import LOINC, enrolled, gad7, phq9, search

from helpers import assert_outcome, created, post
from helpers import phq9 as phq9_observation


def parts(parameter: dict) -> dict:
    out: dict = {}
    for p in parameter["part"]:
        out.setdefault(p["name"], []).append(p)
    return out


def test_search_by_patient_and_code_sorted_by_date(client):
    who = enrolled(client)
    for day, total in ((16, 14), (2, 17), (9, 15)):
        created(post(client, "QuestionnaireResponse", phq9([3] * (total // 3) + [total % 3] + [0] * (8 - total // 3),
                                                          who, authored=f"2026-11-{day:02d}T10:00:00Z")))
    created(post(client, "QuestionnaireResponse", gad7([1] * 7, who)))
    found = search(client, f"Observation?patient={who['patient']}&code={LOINC}|44261-6&_sort=date")
    assert [o["valueInteger"] for o in found] == [17, 15, 14]
    found = search(client, f"Observation?patient={who['patient']}&code={LOINC}|44261-6&_sort=-date")
    assert [o["effectiveDateTime"][:10] for o in found] == ["2026-11-16", "2026-11-09", "2026-11-02"]


def test_score_trends_operation(client):
    who = enrolled(client)
    for day, scores in ((2, [2] * 9), (9, [2] * 6 + [0] * 3), (23, [1] * 8 + [0])):
        created(post(client, "QuestionnaireResponse", phq9(scores, who, authored=f"2026-11-{day:02d}T10:00:00Z")))
    created(post(client, "QuestionnaireResponse", gad7([3] * 7, who, authored="2026-11-02T10:00:00Z")))
    created(post(client, "QuestionnaireResponse", gad7([1] * 7, who, authored="2026-11-20T10:00:00Z")))
    created(post(client, "Observation", phq9_observation(who["patient"], 6, when="2026-11-25T10:00:00Z")))  # no episode named
    created(post(client, "Observation", phq9_observation(who["patient"], 27, when="2026-10-01T10:00:00Z")))  # before the episode
    other = enrolled(client, family="Other")
    created(post(client, "QuestionnaireResponse", phq9([3] * 9, other)))
    resp = client.get(f"/fhir/{who['episode']}/$score-trends")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["resourceType"] == "Parameters"
    assert body["parameter"][0] == {"name": "episode", "valueReference": {"reference": who["episode"]}}
    phq, gad = (parts(p) for p in body["parameter"][1:])
    assert phq["code"][0]["valueCoding"]["code"] == "44261-6" and gad["code"][0]["valueCoding"]["code"] == "70274-6"
    points = [{q["name"]: q for q in p["part"]} for p in phq["point"]]
    assert [p["score"]["valueInteger"] for p in points] == [18, 12, 8, 6]
    assert points[0]["date"]["valueDateTime"] == "2026-11-02T10:00:00Z"
    assert phq["first"][0]["valueInteger"] == 18 and phq["latest"][0]["valueInteger"] == 6 and phq["change"][0]["valueInteger"] == -12
    assert (gad["first"][0]["valueInteger"], gad["latest"][0]["valueInteger"], gad["change"][0]["valueInteger"]) == (21, 7, -14)


def test_score_trends_of_an_episode_without_scores_and_unknown(client):
    who = enrolled(client)
    body = client.get(f"/fhir/{who['episode']}/$score-trends").get_json()
    assert body["parameter"] == [{"name": "episode", "valueReference": {"reference": who["episode"]}}]
    assert_outcome(client.get("/fhir/EpisodeOfCare/nope/$score-trends"), 404)
    assert_outcome(client.post(f"/fhir/{who['episode']}/$score-trends", data="{}",
                               headers={"Content-Type": "application/fhir+json"}), 405)


def test_operation_is_in_the_capability_statement_and_served(client, validator_url):
    cap = client.get("/fhir/metadata").get_json()
    eoc = next(r for r in cap["rest"][0]["resource"] if r["type"] == "EpisodeOfCare")
    url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-score-trends"
    assert {"name": "score-trends", "definition": url} in [{k: o[k] for k in ("name", "definition")} for o in eoc["operation"]]
    assert client.get("/fhir/OperationDefinition/EpisodeOfCare-score-trends").get_json()["url"] == url
    who = enrolled(client)
    created(post(client, "QuestionnaireResponse", phq9([1] * 9, who)))
    body = client.get(f"/fhir/{who['episode']}/$score-trends").get_json()
    issues = requests.post(f"{validator_url}/validate", data=json.dumps(body), timeout=30).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues
