"""The relapse prevention plan (iop-relapse-prevention-plan, examples/CarePlan-iop-relapse-plan-1.json) and the
discharge summary section made from it (service/relapse_plan.section_for)."""
from __future__ import annotations

import copy
import json

import pytest
import requests

from helpers import FHIR, assert_outcome, count_rows, example, put
from service import interactions, relapse_plan

PLAN = "CarePlan-iop-relapse-plan-1.json"
PATIENT = "Patient/iop-patient-1"
SETUP = ("Organization-iop-org-riverside.json", "Organization-crisis-988-lifeline.json", "Practitioner-iop-pract-therapist.json",
         "Patient-iop-patient-1.json", "RelatedPerson-iop-relperson-1-spouse.json", "RelatedPerson-iop-relperson-1-sponsor.json",
         "Condition-iop-cond-1-oud.json", "Condition-iop-cond-1-depression.json", "CareTeam-iop-careteam-1.json")


def load(client, *names: str) -> None:
    for name in names:
        body = example(name)
        resp = put(client, f"{body['resourceType']}/{body['id']}", body)
        assert resp.status_code in (200, 201), f"{name}: {resp.get_data(as_text=True)}"


@pytest.fixture
def people(client):
    load(client, *SETUP)
    return client


def section(app, patient: str = PATIENT) -> dict | None:
    with app.extensions["iop.db"].read() as conn:
        return relapse_plan.section_for(conn, patient)


def validate(url: str, body: dict) -> list[dict]:
    resp = requests.post(f"{url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    return [i for i in resp.json()["issue"] if i["severity"] in ("error", "fatal")]


# ------------------------------------------------------------------------------- the plan
def test_the_example_plan_is_valid_and_structured(people, ig_validator_url, validator_url):
    load(people, PLAN)
    stored = people.get("/fhir/CarePlan/iop-relapse-plan-1").get_json()
    assert validate(ig_validator_url, stored) == [] and validate(validator_url, stored) == []
    kinds = [relapse_plan.kind_of(a) for a in stored["activity"]]
    assert set(kinds) == {"trigger", "warning-sign", "coping-strategy", "support-network", "crisis-step"}
    performers = {p["reference"] for a in stored["activity"] for p in a["detail"]["performer"]}
    assert {"RelatedPerson/iop-relperson-1-spouse", "RelatedPerson/iop-relperson-1-sponsor",
            "Organization/crisis-988-lifeline"} <= performers


@pytest.mark.parametrize("kind", ["trigger", "warning-sign", "coping-strategy", "support-network", "crisis-step"])
def test_an_active_plan_missing_a_kind_of_item_is_422_and_not_stored(people, app, kind):
    plan = example(PLAN)
    plan["activity"] = [a for a in plan["activity"] if relapse_plan.kind_of(a) != kind]
    before = count_rows(app)
    assert_outcome(put(people, "CarePlan/iop-relapse-plan-1", plan), 422)
    assert count_rows(app) == before
    draft = dict(plan, status="draft")  # a draft may be incomplete (iop-rp-1 applies to active plans)
    assert put(people, "CarePlan/iop-relapse-plan-1", draft).status_code == 201


def test_an_item_without_its_kind_or_a_plan_without_the_patient_as_contributor_is_422(people):
    plan = example(PLAN)
    untagged = copy.deepcopy(plan)
    del untagged["activity"][0]["extension"]
    assert_outcome(put(people, "CarePlan/iop-relapse-plan-1", untagged), 422)
    no_patient = copy.deepcopy(plan)
    no_patient["contributor"] = no_patient["contributor"][1:]
    assert_outcome(put(people, "CarePlan/iop-relapse-plan-1", no_patient), 422)


# ------------------------------------------------------------------------------- the discharge summary section
def test_section_lists_every_kind_with_contacts_and_the_988_lifeline(people, app):
    load(people, PLAN)
    got = section(app)
    assert got["title"] == "Relapse prevention plan"
    assert got["code"]["coding"][0]["code"] == "relapse-prevention-plan"
    assert got["entry"] == [{"reference": "CarePlan/iop-relapse-plan-1"}]
    div = got["text"]["div"]
    for heading in ("Triggers", "Warning signs", "Coping strategies", "Support network", "Crisis contacts and steps"):
        assert f"<b>{heading}</b>" in div
    assert "Casey Testpatient, +1-217-555-0122" in div and "Alex Testsponsor, +1-217-555-0177" in div
    assert "988 Suicide &amp; Crisis Lifeline, 988" in div
    assert div.count("988 Suicide") == 1  # the plan names the lifeline: not added twice
    assert "Payday: cash on hand on Friday afternoons" in div


def test_section_fits_the_discharge_summary_profile(people, app, ig_validator_url):
    load(people, PLAN)
    doc = example("Composition-iop-discharge-summary-2-2025.json")
    doc["section"].append(section(app))
    assert validate(ig_validator_url, doc) == []


def test_section_from_the_treatment_plan_items_when_there_is_no_relapse_plan_adds_988(people, app):
    load(people, "CarePlan-iop-careplan-1.json")
    got = section(app)
    assert got["entry"] == [{"reference": "CarePlan/iop-careplan-1"}]
    assert "Payday" in got["text"]["div"] and "988 Suicide &amp; Crisis Lifeline: call or text 988" in got["text"]["div"]


def test_no_plan_or_only_a_draft_gives_no_section(people, app):
    assert section(app) is None
    load(people, PLAN)
    plan = people.get("/fhir/CarePlan/iop-relapse-plan-1").get_json()
    assert put(people, "CarePlan/iop-relapse-plan-1", dict(plan, status="draft")).status_code == 200
    assert section(app) is None
    assert section(app, "Patient/iop-patient-2") is None


def test_discharge_section_takes_the_enrollment(people, app):
    load(people, PLAN)
    with app.extensions["iop.db"].read() as conn:
        got = relapse_plan.discharge_section(conn, {"resourceType": "EpisodeOfCare", "patient": {"reference": PATIENT}})
        assert got == relapse_plan.section_for(conn, PATIENT)
        assert relapse_plan.discharge_section(conn, {"resourceType": "EpisodeOfCare"}) is None


def test_section_sees_a_plan_written_in_the_same_unit(people, app):
    def work(unit):
        interactions.create(unit, example(PLAN), rid="iop-relapse-plan-1")
        return relapse_plan.section_for(unit, PATIENT)

    got = interactions.run(app.extensions["iop.db"], work)
    assert got["entry"] == [{"reference": "CarePlan/iop-relapse-plan-1"}]


@pytest.mark.parametrize("where", ["contributor", "performer", "partOf"])
def test_people_and_the_parent_plan_of_another_patient_are_422(people, app, where):
    load(people, "Patient-iop-patient-2.json", "CarePlan-iop-careplan-1.json")
    stranger = {"resourceType": "RelatedPerson", "id": "rp-other", "active": True, "patient": {"reference": "Patient/iop-patient-2"}}
    assert put(people, "RelatedPerson/rp-other", stranger).status_code == 201
    other_plan = dict(example("CarePlan-iop-careplan-1.json"), id="cp-other", subject={"reference": "Patient/iop-patient-2"},
                      contributor=[{"reference": "Patient/iop-patient-2"}])
    other_plan["activity"] = other_plan["activity"][:4]  # no RelatedPerson of patient 1 in it
    assert put(people, "CarePlan/cp-other", other_plan).status_code == 201
    plan = example(PLAN)
    if where == "contributor":
        plan["contributor"].append({"reference": "RelatedPerson/rp-other"})
        expression = "CarePlan.contributor[3]"
    elif where == "performer":
        plan["activity"][5]["detail"]["performer"] = [{"reference": "RelatedPerson/rp-other"}]
        expression = "CarePlan.activity[5].detail.performer[0]"
    else:
        plan["partOf"] = [{"reference": "CarePlan/cp-other"}]
        expression = "CarePlan.partOf[0]"
    before = count_rows(app)
    assert_outcome(put(people, "CarePlan/iop-relapse-plan-1", plan), 422, code="business-rule", expression=expression)
    assert count_rows(app) == before
