"""Collaborative plans: the patient's agreement (Provenance with a Consent Signature) before a draft becomes active,
reviews as new versions by the care team only (Provenance author in the same transaction), and the worklist of
reviews due (CarePlan/$review-due, IOP_CAREPLAN_REVIEW_DAYS)."""
from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import requests
from flask import Flask

from helpers import EXAMPLES, FHIR, assert_outcome, count_rows, example, post, put
from service import config

PATIENT = "Patient/iop-patient-1"
THERAPIST = "Practitioner/iop-pract-therapist"
OUTSIDER = "Practitioner/hosp-pract-psychiatrist"  # the referring hospital's psychiatrist: not on the IOP care team
CONSENT_SIGNATURE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.7", "display": "Consent Signature"}
SETUP = (*sorted(p.name for p in EXAMPLES.glob("*Definition-iop-*.json")), "Organization-iop-org-riverside.json",
         "Practitioner-iop-pract-therapist.json", "Practitioner-iop-pract-psychiatrist.json", "Practitioner-hosp-pract-psychiatrist.json",
         "PractitionerRole-iop-role-therapist.json", "Patient-iop-patient-1.json", "RelatedPerson-iop-relperson-1-spouse.json",
         "Condition-iop-cond-1-oud.json", "Condition-iop-cond-1-depression.json", "CareTeam-iop-careteam-1.json")


@pytest.fixture
def draft(client) -> dict:
    """A draft plan from the substance use template, stored (persist=true)."""
    for name in SETUP:
        body = example(name)
        assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), name
    resp = post(client, "PlanDefinition/iop-template-substance-use/$apply", {"resourceType": "Parameters", "parameter": [
        {"name": "subject", "valueString": PATIENT}, {"name": "practitioner", "valueString": THERAPIST},
        {"name": "persist", "valueBoolean": True}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def agreement(plan_id: str, version: int | None, *signers: str) -> dict:
    target = f"CarePlan/{plan_id}" + (f"/_history/{version}" if version else "")
    return {"resourceType": "Provenance", "target": [{"reference": target}], "recorded": "2026-11-03T18:00:00Z",
            "activity": {"coding": [{"system": "https://iop.example.org/fhir/CodeSystem/iop-treatment-planning",
                                     "code": "plan-agreement", "display": "Agreement to the care plan"}]},
            "agent": [{"who": {"reference": who}} for who in signers],
            "signature": [{"type": [CONSENT_SIGNATURE], "when": "2026-11-03T18:00:00Z", "who": {"reference": who}} for who in signers]}


def review(plan_id: str, reviewer: str) -> dict:
    return {"resourceType": "Provenance", "target": [{"reference": f"CarePlan/{plan_id}"}], "recorded": "2026-11-30T18:00:00Z",
            "activity": {"coding": [{"system": "https://iop.example.org/fhir/CodeSystem/iop-treatment-planning",
                                     "code": "plan-review", "display": "Care plan review"}]},
            "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                            "code": "author", "display": "Author"}]}, "who": {"reference": reviewer}}]}


def transaction(*entries: tuple[str, str, dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": body, "request": {"method": method, "url": url}} for method, url, body in entries]}


def current(client, plan_id: str) -> dict:
    return client.get(f"/fhir/CarePlan/{plan_id}").get_json()


def activate(client, plan: dict) -> dict:
    """Tailor nothing more, agree (patient and spouse), activate: the active plan."""
    version = int(plan["meta"]["versionId"])
    assert post(client, "Provenance", agreement(plan["id"], version, PATIENT, "RelatedPerson/iop-relperson-1-spouse")).status_code == 201
    resp = put(client, f"CarePlan/{plan['id']}", dict(plan, status="active"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def today_utc() -> date:
    return datetime.now(UTC).date()


def validate(url: str, body: dict) -> list[dict]:
    resp = requests.post(f"{url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    return [i for i in resp.json()["issue"] if i["severity"] in ("error", "fatal")]


# ------------------------------------------------------------------------------- agreement
def test_tailor_then_agree_then_activate(client, draft, validator_url):
    """Staff tailor the draft freely; the patient (and the spouse) sign; only then the plan becomes active."""
    tailored = dict(draft, activity=draft["activity"][:-1], description="Tailored with Robin and Casey")
    v2 = put(client, f"CarePlan/{draft['id']}", tailored).get_json()
    assert v2["meta"]["versionId"] == "2"
    assert_outcome(put(client, f"CarePlan/{draft['id']}", dict(v2, status="active")), 422, code="business-rule",
                   expression="CarePlan.status")
    assert current(client, draft["id"])["status"] == "draft"
    signed = agreement(draft["id"], 2, PATIENT, "RelatedPerson/iop-relperson-1-spouse")
    stored = post(client, "Provenance", signed)
    assert stored.status_code == 201 and validate(validator_url, stored.get_json()) == []
    active = put(client, f"CarePlan/{draft['id']}", dict(v2, status="active"))
    assert active.status_code == 200 and active.get_json()["meta"]["versionId"] == "3"
    found = client.get(f"/fhir/Provenance?target=CarePlan/{draft['id']}").get_json()
    assert found["total"] == 1  # who agreed and when: reachable from the plan (_revinclude=Provenance:target)
    goals = [client.get(f"/fhir/{g['reference']}").get_json() for g in draft["goal"]]
    assert {g["lifecycleStatus"] for g in goals} == {"active"}  # agreed: the goals are the patient's now


def test_agreement_to_an_older_draft_or_by_someone_else_does_not_count(client, draft, app):
    assert post(client, "Provenance", agreement(draft["id"], 1, PATIENT)).status_code == 201
    v2 = put(client, f"CarePlan/{draft['id']}", dict(draft, description="changed after the patient signed")).get_json()
    assert post(client, "Provenance", agreement(draft["id"], 2, "RelatedPerson/iop-relperson-1-spouse")).status_code == 201
    before = count_rows(app, "resource_version")
    assert_outcome(put(client, f"CarePlan/{draft['id']}", dict(v2, status="active")), 422, expression="CarePlan.status")
    assert count_rows(app, "resource_version") == before


def test_agreement_and_activation_in_one_transaction(client, draft):
    bundle = transaction(("POST", "Provenance", agreement(draft["id"], None, PATIENT)),
                         ("PUT", f"CarePlan/{draft['id']}", dict(draft, status="active")))
    resp = post(client, "", bundle)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert current(client, draft["id"])["status"] == "active"


# ------------------------------------------------------------------------------- reviews
def test_a_review_by_the_care_team_is_a_new_version(client, draft):
    active = activate(client, draft)
    changed = dict(active, description="Review 1: family sessions weekly")
    resp = post(client, "", transaction(("POST", "Provenance", review(draft["id"], THERAPIST)),
                                        ("PUT", f"CarePlan/{draft['id']}", changed)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    plan = current(client, draft["id"])
    assert plan["meta"]["versionId"] == str(int(active["meta"]["versionId"]) + 1)
    assert plan["description"] == "Review 1: family sessions weekly"
    history = client.get(f"/fhir/CarePlan/{draft['id']}/_history").get_json()
    assert history["total"] == int(plan["meta"]["versionId"])


def test_a_review_through_a_practitioner_role_of_a_team_member_is_accepted(client, draft):
    active = activate(client, draft)
    resp = post(client, "", transaction(("POST", "Provenance", review(draft["id"], "PractitionerRole/iop-role-therapist")),
                                        ("PUT", f"CarePlan/{draft['id']}", dict(active, description="Reviewed"))))
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_a_review_by_someone_outside_the_care_team_is_403_and_nothing_is_stored(client, draft, app, validator_url):
    active = activate(client, draft)
    before = (count_rows(app), count_rows(app, "resource_version"))
    resp = post(client, "", transaction(("POST", "Provenance", review(draft["id"], OUTSIDER)),
                                        ("PUT", f"CarePlan/{draft['id']}", dict(active, description="Outsider edit"))))
    body = assert_outcome(resp, 403, code="forbidden")
    assert OUTSIDER in body["issue"][0]["diagnostics"]
    assert validate(validator_url, body) == []
    assert (count_rows(app), count_rows(app, "resource_version")) == before
    assert current(client, draft["id"])["meta"]["versionId"] == active["meta"]["versionId"]


def test_a_review_without_a_named_reviewer_is_422_and_nothing_is_stored(client, draft, app):
    active = activate(client, draft)
    before = count_rows(app, "resource_version")
    assert_outcome(put(client, f"CarePlan/{draft['id']}", dict(active, description="Who?")), 422, code="business-rule")
    assert count_rows(app, "resource_version") == before


def test_pausing_and_resuming_are_reviews_too(client, draft):
    """No way around the care team through on-hold: active → on-hold → active each need a team reviewer."""
    active = activate(client, draft)
    assert_outcome(put(client, f"CarePlan/{draft['id']}", dict(active, status="on-hold")), 422)
    resp = post(client, "", transaction(("POST", "Provenance", review(draft["id"], THERAPIST)),
                                        ("PUT", f"CarePlan/{draft['id']}", dict(active, status="on-hold"))))
    assert resp.status_code == 200
    paused = current(client, draft["id"])
    assert_outcome(post(client, "", transaction(("POST", "Provenance", review(draft["id"], OUTSIDER)),
                                                ("PUT", f"CarePlan/{draft['id']}", dict(paused, status="active")))), 403)


def test_closing_an_active_plan_is_not_a_review(client, draft):
    """Discharge completes the plan: a status change out of active needs no reviewer."""
    active = activate(client, draft)
    assert put(client, f"CarePlan/{draft['id']}", dict(active, status="completed")).status_code == 200


# ------------------------------------------------------------------------------- the worklist
def review_due(client, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get(f"/fhir/CarePlan/$review-due{'?' + query if query else ''}")


def test_review_due_lists_active_plans_from_their_last_review_plus_the_setting(client, draft, validator_url):
    activate(client, draft)
    today = today_utc()
    assert review_due(client).get_json() == {"resourceType": "Parameters"}  # just activated: not due
    late = review_due(client, date=(today + timedelta(days=35)).isoformat())
    assert late.status_code == 200 and validate(validator_url, late.get_json()) == []
    [item] = late.get_json()["parameter"]
    parts = {p["name"]: p for p in item["part"]}
    assert parts["carePlan"]["valueReference"]["reference"] == f"CarePlan/{draft['id']}"
    assert parts["patient"]["valueReference"] == {"reference": PATIENT}
    last = date.fromisoformat(parts["lastReviewed"]["valueInstant"][:10])
    assert parts["due"]["valueDate"] == (last + timedelta(days=30)).isoformat()
    assert parts["daysOverdue"]["valueInteger"] == (today + timedelta(days=35) - last - timedelta(days=30)).days
    on_due_day = review_due(client, date=(last + timedelta(days=30)).isoformat()).get_json()
    assert on_due_day["parameter"][0]["part"][4]["valueInteger"] == 0
    assert "parameter" not in review_due(client, date=(last + timedelta(days=29)).isoformat()).get_json()


def test_review_due_follows_the_setting_and_ignores_drafts(client, draft, app, monkeypatch):
    future = (today_utc() + timedelta(days=8)).isoformat()
    assert "parameter" not in review_due(client, date=future).get_json()  # a draft is never due
    activate(client, draft)
    assert "parameter" not in review_due(client, date=future).get_json()
    monkeypatch.setitem(app.config["IOP"], "CAREPLAN_REVIEW_DAYS", 7)
    assert len(review_due(client, date=future).get_json()["parameter"]) == 1


def test_review_due_for_a_care_team_member(client, draft):
    activate(client, draft)
    future = (today_utc() + timedelta(days=40)).isoformat()
    assert len(review_due(client, date=future, member=THERAPIST).get_json()["parameter"]) == 1
    assert "parameter" not in review_due(client, date=future, member=OUTSIDER).get_json()
    body = {"resourceType": "Parameters", "parameter": [{"name": "date", "valueDate": future},
                                                        {"name": "member", "valueReference": {"reference": THERAPIST}}]}
    assert len(post(client, "CarePlan/$review-due", body).get_json()["parameter"]) == 1


@pytest.mark.parametrize("query, expression", [
    ({"date": "next-week"}, "date"), ({"date": "2026-13-01"}, "date"), ({"member": "Group/g"}, "member"),
    ({"owner": "Organization/x"}, "owner")])
def test_review_due_bad_parameters_are_400(client, query, expression):
    assert_outcome(review_due(client, **query), 400, expression=expression)


def test_review_days_setting_is_validated():
    assert config.DEFAULTS["CAREPLAN_REVIEW_DAYS"] == 30
    for bad in (0, -1, 366, "monthly"):
        with pytest.raises(config.ConfigError):
            config.load(Flask(__name__), {"CAREPLAN_REVIEW_DAYS": bad})
    assert config.load(Flask(__name__), {"CAREPLAN_REVIEW_DAYS": "14"})["CAREPLAN_REVIEW_DAYS"] == 14


def test_the_example_agreement_lets_its_plan_become_active(client, draft, validator_url):
    """examples/Provenance-iop-careplan-1-agreement.json: patient and spouse sign version 1 of iop-careplan-1."""
    plan = dict(example("CarePlan-iop-careplan-1.json"), status="draft")
    assert put(client, "CarePlan/iop-careplan-1", plan).status_code == 201
    agreed = example("Provenance-iop-careplan-1-agreement.json")
    stored = put(client, "Provenance/iop-careplan-1-agreement", agreed)
    assert stored.status_code == 201 and validate(validator_url, stored.get_json()) == []
    assert put(client, "CarePlan/iop-careplan-1", dict(plan, status="active")).status_code == 200
