"""Outcome measures: QuestionnaireResponses for PHQ-9, GAD-7, AUDIT-C, PCL-5 and the C-SSRS screener scored into
Observations in the same transaction (totals and bands computed here from the instruments' published rules), and
bad responses refused with nothing stored."""
from __future__ import annotations

import json

import pytest
import requests
from outcome_helpers import (
    LOINC,
    PHQ9_ITEMS,
    Q,
    amend,
    auditc,
    cssrs,
    enrolled,
    gad7,
    pcl5,
    phq9,
    response,
    result_of,
    search,
)

from helpers import FHIR, assert_outcome, count_rows, created, post, put

BAND = "https://iop.example.org/fhir/CodeSystem/iop-score-band"
SD = "https://iop.example.org/fhir/StructureDefinition"


def phq9_band(total: int) -> str:
    """PHQ-9 severity (Kroenke 2001), computed independently of the service."""
    return ["minimal", "mild", "moderate", "moderately-severe", "severe"][min(total // 5, 4)]


def gad7_band(total: int) -> str:
    return "minimal" if total < 5 else "mild" if total < 10 else "moderate" if total < 15 else "severe"


def the_result(client, response_id: str) -> dict:
    results = result_of(client, response_id)
    assert len(results) == 1, results
    return results[0]


@pytest.mark.parametrize("scores", [[0] * 9, [1, 1, 1, 1, 0, 0, 0, 0, 0], [1] * 9, [2, 2, 2, 2, 2, 1, 1, 1, 0],
                                    [3, 3, 2, 2, 2, 2, 2, 1, 0], [3] * 8 + [0]])
def test_phq9_total_and_band(client, scores):
    who = enrolled(client)
    qr = created(post(client, "QuestionnaireResponse", phq9(scores, who)))
    obs = the_result(client, qr["id"])
    total = sum(scores)
    assert obs["valueInteger"] == total
    assert obs["code"]["coding"][0]["system"] == LOINC and obs["code"]["coding"][0]["code"] == "44261-6"
    assert obs["interpretation"][0]["coding"][0] == {**obs["interpretation"][0]["coding"][0], "system": BAND, "code": phq9_band(total)}
    assert obs["status"] == "final" and obs["derivedFrom"] == [{"reference": f"QuestionnaireResponse/{qr['id']}"}]
    assert f"{SD}/iop-phq9" in obs["meta"]["profile"]
    assert obs["subject"] == {"reference": who["patient"]} and obs["effectiveDateTime"] == "2026-11-16T10:00:00Z"
    assert obs["extension"][0]["valueReference"] == {"reference": who["episode"]}
    assert obs["category"][0]["coding"][0]["code"] == "survey"


@pytest.mark.parametrize("scores", [[0] * 7, [1, 1, 1, 1, 1, 0, 0], [2, 2, 2, 2, 1, 1, 0], [3, 3, 3, 2, 2, 2, 0], [3] * 7])
def test_gad7_total_and_band(client, scores):
    who = enrolled(client)
    obs = the_result(client, created(post(client, "QuestionnaireResponse", gad7(scores, who)))["id"])
    assert obs["valueInteger"] == sum(scores) and obs["code"]["coding"][0]["code"] == "70274-6"
    assert obs["interpretation"][0]["coding"][0]["code"] == gad7_band(sum(scores))


@pytest.mark.parametrize("gender,scores,positive", [
    ("male", [1, 1, 1], False), ("male", [2, 1, 1], True), ("female", [1, 1, 1], True), ("female", [1, 1, 0], False),
    ("unknown", [1, 1, 1], True), ("male", [4, 4, 4], True)])
def test_auditc_sex_specific_threshold(client, gender, scores, positive):
    """AUDIT-C positive at 4 or more for men, 3 or more for women (and other or unknown sex)."""
    who = enrolled(client, gender=gender)
    obs = the_result(client, created(post(client, "QuestionnaireResponse", auditc(scores, who)))["id"])
    assert obs["valueInteger"] == sum(scores) and obs["code"]["coding"][0]["code"] == "75626-2"
    assert obs["interpretation"][0]["coding"][0]["code"] == ("POS" if positive else "NEG")


@pytest.mark.parametrize("scores,positive", [([1] * 20, False), ([2] * 16 + [1] * 1 + [0] * 3, True),
                                             ([2] * 16 + [0] * 4, False), ([4] * 20, True)])
def test_pcl5_cut_point(client, scores, positive):
    who = enrolled(client)
    obs = the_result(client, created(post(client, "QuestionnaireResponse", pcl5(scores, who)))["id"])
    assert obs["valueInteger"] == sum(scores) and obs["code"]["coding"][0]["code"] == "101698-9"
    assert obs["interpretation"][0]["coding"][0]["code"] == ("POS" if sum(scores) >= 33 else "NEG") == ("POS" if positive else "NEG")


@pytest.mark.parametrize("yes,level", [(set(), "LA9194-7"), ({1}, "LA9194-7"), ({1, 2}, "LA9194-7"), ({2, 3}, "moderate"),
                                       ({6}, "moderate"), ({6, 7}, "high"), ({2, 4}, "high"), ({2, 3, 4, 5}, "high")])
def test_cssrs_risk_level(client, yes, level):
    who = enrolled(client)
    obs = the_result(client, created(post(client, "QuestionnaireResponse", cssrs(yes, who)))["id"])
    assert obs["code"]["coding"][0] == {"system": LOINC, "code": "93374-7", "display": "Suicide risk level"}
    assert obs["valueCodeableConcept"]["coding"][0]["code"] == level
    assert "valueInteger" not in obs


def test_questionnaires_are_served_and_read_only(client):
    for qid, items in (("iop-phq9", 9), ("iop-gad7", 7), ("iop-auditc", 3), ("iop-pcl5", 20), ("iop-cssrs", 7)):
        resp = client.get(f"/fhir/Questionnaire/{qid}")
        assert resp.status_code == 200, qid
        body = resp.get_json()
        assert body["url"] == f"{Q}/{qid}" and len(body["item"]) == items
    assert [i["linkId"] for i in client.get("/fhir/Questionnaire/iop-phq9").get_json()["item"]] == PHQ9_ITEMS
    assert search(client, f"Questionnaire?url={Q}/iop-gad7")[0]["id"] == "iop-gad7"
    changed = dict(client.get("/fhir/Questionnaire/iop-phq9").get_json(), title="Mine")
    assert_outcome(put(client, "Questionnaire/iop-phq9", changed), 422, "business-rule")


# ------------------------------------------------------------------------------- bad input: 422, nothing stored
def test_incomplete_response_refused_naming_the_item(client, app):
    who = enrolled(client)
    before = count_rows(app)
    body = phq9([1] * 9, who)
    del body["item"][8]
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, "required", "QuestionnaireResponse.item")
    assert "44260-8" in out["issue"][0]["diagnostics"]
    body = phq9([1] * 9, who)
    del body["item"][3]["answer"]
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, "required")
    assert "44254-1" in out["issue"][0]["diagnostics"]
    assert count_rows(app) == before


def test_cssrs_follow_up_questions_are_required_only_when_enabled(client, app):
    who = enrolled(client)
    before = count_rows(app)
    body = cssrs({2, 3}, who)
    body["item"] = [i for i in body["item"] if i["linkId"] != "93249-1"]  # question 4 missing after a yes to 2
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, "required")
    assert "93249-1" in out["issue"][0]["diagnostics"]
    body = cssrs(set(), who)
    body["item"].append({"linkId": "93248-3", "answer": [{"valueCoding": {"system": LOINC, "code": "LA33-6"}}]})
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, "business-rule")
    assert "93248-3" in out["issue"][0]["diagnostics"]
    assert count_rows(app) == before


def test_answer_outside_the_options_refused(client, app):
    who = enrolled(client)
    before = count_rows(app)
    body = phq9([1] * 9, who)
    body["item"][2]["answer"] = [{"valueCoding": {"system": LOINC, "code": "LA6270-8"}}]  # an AUDIT-C answer
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, expression="QuestionnaireResponse.item[2].answer[0]")
    assert "44259-0" in out["issue"][0]["diagnostics"]
    body["item"][2]["answer"] = [{"valueInteger": 2}]
    assert_outcome(post(client, "QuestionnaireResponse", body), 422, expression="QuestionnaireResponse.item[2].answer[0]")
    body["item"][2]["answer"] = [{"valueCoding": {"system": "http://example.org/other", "code": "LA6570-1"}}]
    assert_outcome(post(client, "QuestionnaireResponse", body), 422, expression="QuestionnaireResponse.item[2].answer[0]")
    body = phq9([1] * 9, who)
    body["item"].append({"linkId": "99999-9", "answer": [{"valueCoding": {"system": LOINC, "code": "LA6568-5"}}]})
    assert_outcome(post(client, "QuestionnaireResponse", body), 422, expression="QuestionnaireResponse.item[9].linkId")
    assert count_rows(app) == before


def test_response_for_another_patients_episode_refused(client, app):
    mine, theirs = enrolled(client), enrolled(client, family="Other")
    before = count_rows(app)
    body = phq9([1] * 9, mine, episode=theirs["episode"])
    out = assert_outcome(post(client, "QuestionnaireResponse", body), 422, "business-rule",
                         "QuestionnaireResponse.extension[0].valueReference")
    assert theirs["patient"] in out["issue"][0]["diagnostics"]
    assert_outcome(post(client, "QuestionnaireResponse", phq9([1] * 9, mine, episode="EpisodeOfCare/nope")), 422, "not-found")
    encounter = created(post(client, "Encounter", {"resourceType": "Encounter", "status": "finished",
                                                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                                                   "subject": {"reference": theirs["patient"]},
                                                   "episodeOfCare": [{"reference": theirs["episode"]}]}))
    before = count_rows(app)
    body = dict(phq9([1] * 9, mine, episode=None), encounter={"reference": f"Encounter/{encounter['id']}"})
    assert_outcome(post(client, "QuestionnaireResponse", body), 422, "business-rule", "QuestionnaireResponse.encounter")
    assert count_rows(app) == before


def test_episode_from_the_encounter_or_the_sole_active_episode(client, app):
    who = enrolled(client)
    encounter = created(post(client, "Encounter", {"resourceType": "Encounter", "status": "finished",
                                                   "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                                                   "subject": {"reference": who["patient"]},
                                                   "episodeOfCare": [{"reference": who["episode"]}]}))
    body = dict(phq9([2] * 9, who, episode=None), encounter={"reference": f"Encounter/{encounter['id']}"})
    obs = the_result(client, created(post(client, "QuestionnaireResponse", body))["id"])
    assert obs["extension"][0]["valueReference"] == {"reference": who["episode"]}
    assert obs["encounter"] == {"reference": f"Encounter/{encounter['id']}"}
    obs = the_result(client, created(post(client, "QuestionnaireResponse", phq9([0] * 9, who, episode=None)))["id"])
    assert obs["extension"][0]["valueReference"] == {"reference": who["episode"]}
    second = dict(who["episode_resource"])
    del second["id"], second["meta"]
    created(post(client, "EpisodeOfCare", second))
    before = count_rows(app)
    assert_outcome(post(client, "QuestionnaireResponse", phq9([0] * 9, who, episode=None)), 422, "required",
                   "QuestionnaireResponse.extension")
    assert count_rows(app) == before


def test_unscored_responses_are_stored_as_they_are(client):
    who = enrolled(client)
    draft = created(post(client, "QuestionnaireResponse", phq9([1, 1], who, status="in-progress")))
    assert result_of(client, draft["id"]) == []
    other = response("something-else", {"q1": (LOINC, "LA33-6")}, who)
    assert result_of(client, created(post(client, "QuestionnaireResponse", other))["id"]) == []


# ------------------------------------------------------------------------------- re-scoring
def test_amended_response_updates_its_observation(client):
    who = enrolled(client)
    qr = created(post(client, "QuestionnaireResponse", phq9([2] * 9, who)))
    first = the_result(client, qr["id"])
    amended = dict(qr, item=phq9([1] * 9, who)["item"])
    amend(client, amended)
    again = the_result(client, qr["id"])
    assert again["id"] == first["id"] and again["valueInteger"] == 9 and again["status"] == "amended"
    assert again["meta"]["versionId"] == "2"
    assert put(client, f"QuestionnaireResponse/{qr['id']}", dict(amended, status="amended")).status_code == 200  # resend
    assert the_result(client, qr["id"])["meta"]["versionId"] == "2"
    assert len(search(client, f"Observation?subject={who['patient']}")) == 1
    put(client, f"QuestionnaireResponse/{qr['id']}", dict(amended, status="entered-in-error"))
    assert the_result(client, qr["id"])["status"] == "entered-in-error"


def test_transaction_scores_each_response(client):
    who = enrolled(client)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": phq9([1] * 9, who), "request": {"method": "POST", "url": "QuestionnaireResponse"}},
        {"fullUrl": "urn:uuid:2", "resource": gad7([3] * 7, who), "request": {"method": "POST", "url": "QuestionnaireResponse"}}]}
    resp = client.post("/fhir", data=json.dumps(bundle), headers={"Content-Type": FHIR})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    values = sorted(o["valueInteger"] for o in search(client, f"Observation?subject={who['patient']}"))
    assert values == [9, 21]


# ------------------------------------------------------------------------------- conformance
def test_results_validate_with_medplum_and_our_guide(client, validator_url, ig_validator_url):
    who = enrolled(client, gender="male")
    for body in (phq9([2] * 9, who), gad7([1] * 7, who), auditc([2, 1, 1], who), pcl5([2] * 20, who), cssrs({2, 3, 4}, who)):
        qr = created(post(client, "QuestionnaireResponse", body))
        for resource in [qr, the_result(client, qr["id"])]:
            for url in (validator_url, ig_validator_url):
                issues = requests.post(f"{url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
                errors = [i for i in issues if i["severity"] in ("error", "fatal")]
                assert not errors, (resource["resourceType"], errors)
