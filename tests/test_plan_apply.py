"""PlanDefinition/{id}/$apply: care plan templates per track (examples/PlanDefinition-iop-template-*.json with their
ActivityDefinition-iop-ad-*.json) applied to a patient
give a draft iop-careplan with Goals; persist=true stores it; bad templates and inputs are 4xx and store nothing."""
from __future__ import annotations

import json

import pytest
import requests

from helpers import EXAMPLES, FHIR, assert_outcome, count_rows, example, post, put

TEMPLATES = tuple(sorted(p.name for p in EXAMPLES.glob("*Definition-iop-*.json")))
SUD = "PlanDefinition/iop-template-substance-use"
PATIENT = "Patient/iop-patient-1"
CANON = "https://iop.example.org/fhir"


def load(client, *names: str) -> None:
    for name in names:
        body = example(name)
        resp = put(client, f"{body['resourceType']}/{body['id']}", body)
        assert resp.status_code in (200, 201), f"{name}: {resp.get_data(as_text=True)}"


@pytest.fixture
def planning(client):
    """The templates, patient 1 with the diagnoses, spouse, care team and clinicians."""
    load(client, *TEMPLATES, "Organization-iop-org-riverside.json", "Practitioner-iop-pract-therapist.json",
         "Practitioner-iop-pract-psychiatrist.json", "Patient-iop-patient-1.json", "RelatedPerson-iop-relperson-1-spouse.json",
         "Condition-iop-cond-1-oud.json", "Condition-iop-cond-1-depression.json", "CareTeam-iop-careteam-1.json")
    return client


def params(**values) -> dict:
    out = []
    for name, value in values.items():
        key = {"persist": "valueBoolean", "periodStart": "valueDate"}.get(name, "valueString")
        out.append({"name": name, key: value})
    return {"resourceType": "Parameters", "parameter": out}


def apply(client, plan: str = SUD, **values):
    return post(client, f"{plan}/$apply", params(**values))


def validate(url: str, body: dict) -> list[dict]:
    resp = requests.post(f"{url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    return [i for i in resp.json()["issue"] if i["severity"] in ("error", "fatal")]


# ------------------------------------------------------------------------------- good input
def test_apply_returns_a_draft_plan_with_goals_activities_and_frequencies_and_stores_nothing(planning, app):
    before = count_rows(app)
    resp = planning.get(f"/fhir/{SUD}/$apply?subject={PATIENT}&practitioner=Practitioner/iop-pract-therapist&periodStart=2026-11-02")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    plan = resp.get_json()
    assert (plan["resourceType"], plan["status"], plan["intent"]) == ("CarePlan", "draft", "plan")
    assert f"{CANON}/StructureDefinition/iop-careplan" in plan["meta"]["profile"]
    assert plan["instantiatesCanonical"] == [f"{CANON}/PlanDefinition/iop-template-substance-use|1.0.0"]
    assert plan["period"] == {"start": "2026-11-02", "end": "2026-12-14"}  # the latest goal is due 6 weeks on
    assert plan["author"] == {"reference": "Practitioner/iop-pract-therapist"}
    assert [c["reference"] for c in plan["contributor"]] == [PATIENT, "Practitioner/iop-pract-therapist",
                                                             "RelatedPerson/iop-relperson-1-spouse"]
    assert plan["careTeam"] == [{"reference": "CareTeam/iop-careteam-1"}]
    assert sorted(a["reference"] for a in plan["addresses"]) == ["Condition/iop-cond-1-depression", "Condition/iop-cond-1-oud"]
    goals = {g["id"]: g for g in plan["contained"]}
    assert set(goals) == {"goal-abstinence", "goal-attendance", "goal-phq9", "goal-mutual-support", "goal-coping"}
    phq9 = goals["goal-phq9"]
    assert phq9["lifecycleStatus"] == "proposed" and phq9["startDate"] == "2026-11-02"
    assert phq9["target"] == [{"measure": {"coding": [{"system": "http://loinc.org", "code": "44261-6",
                                                       "display": "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"}]},
                               "detailRange": {"low": {"value": 0}, "high": {"value": 9}}, "dueDate": "2026-12-14"}]
    assert goals["goal-attendance"]["target"][0]["dueDate"] == "2026-11-09"
    template = planning.get(f"/fhir/{SUD}").get_json()
    assert len(plan["activity"]) == len(template["action"])
    group = next(a["detail"] for a in plan["activity"] if a["detail"]["code"]["coding"][0]["code"] == "76168009")
    assert group["scheduledTiming"]["repeat"] == {"frequency": 3, "period": 1, "periodUnit": "wk", "duration": 3, "durationUnit": "h"}
    assert group["status"] == "not-started" and group["kind"] == "Appointment"
    assert group["goal"] == [{"reference": "#goal-abstinence"}, {"reference": "#goal-attendance"}]
    assert group["instantiatesCanonical"] == [f"{CANON}/ActivityDefinition/iop-ad-group-therapy"]
    assert plan["extension"][0]["valueQuantity"]["value"] > 9  # planned hours a week
    assert "42CFRPart2" in {label["code"] for label in plan["meta"]["security"]}  # from the OUD diagnosis
    assert count_rows(app) == before


def test_the_returned_plan_validates_with_medplum_and_our_profiles(planning, validator_url, ig_validator_url):
    plan = apply(planning, subject=PATIENT, practitioner="Practitioner/iop-pract-therapist").get_json()
    assert validate(validator_url, plan) == []
    assert validate(ig_validator_url, plan) == []
    assert post(planning, "CarePlan/$validate", plan).get_json()["issue"][0]["severity"] == "information"


def test_persist_stores_goals_and_the_draft_plan_in_one_transaction(planning, validator_url, ig_validator_url):
    resp = apply(planning, subject=PATIENT, practitioner="Practitioner/iop-pract-therapist", persist=True)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    plan = resp.get_json()
    assert resp.headers["Location"].endswith(f"/CarePlan/{plan['id']}/_history/1")
    assert "contained" not in plan and plan["status"] == "draft"
    goal_refs = [g["reference"] for g in plan["goal"]]
    assert len(goal_refs) == 5 and all(r.startswith("Goal/") for r in goal_refs)
    for ref in goal_refs:
        goal = planning.get(f"/fhir/{ref}").get_json()
        assert goal["subject"] == {"reference": PATIENT} and goal["lifecycleStatus"] == "proposed"
        assert validate(ig_validator_url, goal) == []
    in_activities = {g["reference"] for a in plan["activity"] for g in a["detail"].get("goal", [])}
    assert in_activities <= set(goal_refs)
    stored = planning.get(f"/fhir/CarePlan/{plan['id']}").get_json()
    assert validate(validator_url, stored) == [] and validate(ig_validator_url, stored) == []


def test_every_track_template_applies(planning):
    for track in ("substance-use", "general-mh", "co-occurring"):
        resp = apply(planning, f"PlanDefinition/iop-template-{track}", subject=PATIENT)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.get_json()["contributor"][0] == {"reference": PATIENT}


def test_the_templates_validate_against_our_profiles(ig_validator_url):
    assert len(TEMPLATES) == 22
    for name in TEMPLATES:
        assert validate(ig_validator_url, example(name)) == [], name


# ------------------------------------------------------------------------------- bad input
def test_unknown_template_is_404(planning):
    assert_outcome(apply(planning, "PlanDefinition/nope", subject=PATIENT), 404)


@pytest.mark.parametrize("values, expression", [
    ({}, "subject"),
    ({"subject": "Group/g1"}, "subject"),
    ({"subject": "Patient/iop-patient-1/_history/1"}, "subject"),
    ({"subject": PATIENT, "practitioner": "Organization/iop-org-riverside"}, "practitioner"),
    ({"subject": PATIENT, "periodStart": "02/11/2026"}, "periodStart"),
])
def test_bad_parameters_are_400(planning, values, expression):
    assert_outcome(apply(planning, **values), 400, expression=expression)


def test_two_subjects_or_an_unknown_parameter_are_400(planning):
    body = params(subject=PATIENT)
    body["parameter"].append({"name": "subject", "valueString": "Patient/iop-patient-2"})
    assert_outcome(post(planning, f"{SUD}/$apply", body), 400, expression="subject")
    assert_outcome(planning.get(f"/fhir/{SUD}/$apply?subject={PATIENT}&patient={PATIENT}"), 400, expression="patient")
    assert planning.get(f"/fhir/{SUD}/$apply?subject={PATIENT}&userLanguage=en").status_code == 200  # R4 input, not used


def test_persist_on_get_is_refused(planning, app):
    before = count_rows(app)
    assert_outcome(planning.get(f"/fhir/{SUD}/$apply?subject={PATIENT}&persist=true"), 400, expression="persist")
    assert count_rows(app) == before


def test_unknown_patient_or_practitioner_is_422_and_nothing_stored(planning, app):
    before = count_rows(app)
    assert_outcome(apply(planning, subject="Patient/nobody", persist=True), 422, expression="subject")
    assert_outcome(apply(planning, subject=PATIENT, practitioner="Practitioner/nobody", persist=True), 422,
                   expression="practitioner")
    assert count_rows(app) == before


def test_a_patient_without_an_active_condition_gets_no_plan(planning, app):
    load(planning, "Patient-iop-patient-2.json")
    before = count_rows(app)
    body = assert_outcome(apply(planning, subject="Patient/iop-patient-2", persist=True), 422, expression="subject")
    assert "active Condition" in body["issue"][0]["diagnostics"]
    assert count_rows(app) == before


def test_a_template_naming_an_unknown_activity_is_422_naming_the_action(planning, app):
    template = planning.get(f"/fhir/{SUD}").get_json()
    template["action"][2]["definitionCanonical"] = f"{CANON}/ActivityDefinition/iop-ad-unknown"
    assert put(planning, f"{SUD}", template).status_code == 200
    before = count_rows(app)
    assert_outcome(apply(planning, subject=PATIENT, persist=True), 422, code="not-found",
                   expression="PlanDefinition.action[2].definitionCanonical")
    assert count_rows(app) == before


def test_a_retired_template_cannot_be_applied(planning):
    template = planning.get(f"/fhir/{SUD}").get_json()
    assert put(planning, SUD, dict(template, status="retired")).status_code == 200
    assert_outcome(apply(planning, subject=PATIENT), 422, expression="PlanDefinition.status")


def test_an_activity_template_without_a_frequency_is_refused_on_write(planning):
    """iop-activity-template (iop-tp-3): every activity template says how often."""
    activity = planning.get("/fhir/ActivityDefinition/iop-ad-cbt").get_json()
    del activity["timingTiming"]["repeat"]["frequency"]
    assert_outcome(put(planning, "ActivityDefinition/iop-ad-cbt", activity), 422)


def test_a_template_goal_without_a_target_or_an_action_naming_an_unknown_goal_is_refused_on_write(planning):
    template = planning.get(f"/fhir/{SUD}").get_json()
    no_target = json.loads(json.dumps(template))
    del no_target["goal"][0]["target"]
    assert_outcome(put(planning, SUD, no_target), 422)
    bad_goal = json.loads(json.dumps(template))
    bad_goal["action"][0]["goalId"] = ["nope"]
    assert_outcome(put(planning, SUD, bad_goal), 422)


def test_not_a_parameters_body_is_400(planning):
    assert_outcome(post(planning, f"{SUD}/$apply", {"resourceType": "Patient"}), 400)


# ------------------------------------------------------------------------------- declared and guarded
def test_capability_statement_declares_the_operations_with_served_definitions(client):
    rest = client.get("/fhir/metadata").get_json()["rest"][0]["resource"]
    ops = {(r["type"], o["name"]): o["definition"] for r in rest for o in r.get("operation", [])}
    assert ops[("PlanDefinition", "apply")] == f"{CANON}/OperationDefinition/PlanDefinition-apply"
    assert ops[("CarePlan", "review-due")] == f"{CANON}/OperationDefinition/CarePlan-review-due"
    apply_def = client.get("/fhir/OperationDefinition/PlanDefinition-apply").get_json()
    assert apply_def["base"] == "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"
    assert client.get("/fhir/OperationDefinition/CarePlan-review-due").status_code == 200


def test_outside_clients_may_not_apply_templates_or_list_reviews(planning, auth_app, auth_client):
    """A referring hospital's token, even with CarePlan scopes: 403 (staff tools only)."""
    from auth_helpers import bearer, make_client

    client_id, key = make_client(auth_app, "Hospital EHR", "system/CarePlan.cruds system/*.rs", organization="Organization/hosp")
    headers = bearer(auth_client, auth_app, client_id, key)
    assert_outcome(auth_client.get(f"/fhir/{SUD}/$apply?subject={PATIENT}", headers=headers), 403)
    assert_outcome(auth_client.get("/fhir/CarePlan/$review-due", headers=headers), 403)
