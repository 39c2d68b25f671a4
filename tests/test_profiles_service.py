"""Our implementation guide in the service: 422 on write, required profiles, $validate?profile=, the served
guide (read, search, protected), ValueSet/$expand and supportedProfile in the CapabilityStatement."""
from __future__ import annotations

import json

import pytest

from helpers import EXAMPLES, assert_outcome, count_rows, example, load_examples, post, put
from service import create_app
from service.config import ConfigError

C = "https://iop.example.org/fhir"
REFERRAL = f"{C}/StructureDefinition/iop-referral"


def referral(**changes) -> dict:
    body = example("ServiceRequest-iop-sr-1-referral.json")
    body.update(changes)
    return body


def test_a_conforming_referral_is_stored(app, client):
    load_examples(app, skip=("ServiceRequest", "Task"))
    assert put(client, "ServiceRequest/iop-sr-1-referral", referral()).status_code == 201


def test_a_claimed_profile_is_enforced_on_write_with_422(client, app):
    body = referral()
    body.pop("requester")
    resp = put(client, "ServiceRequest/iop-sr-1-referral", body)
    outcome = assert_outcome(resp, 422, "required", "ServiceRequest.requester")
    assert "iop-referral" in outcome["issue"][0]["diagnostics"].lower() or "referral" in outcome["issue"][0]["diagnostics"].lower()
    assert count_rows(app) == 0


def test_a_profile_violation_inside_a_transaction_names_the_entry(client, app):
    body = referral()
    body.pop("requester")
    bundle = {"resourceType": "Bundle", "type": "transaction",
              "entry": [{"resource": body, "request": {"method": "PUT", "url": "ServiceRequest/iop-sr-1-referral"}}]}
    assert_outcome(post(client, "", bundle), 422, expression="Bundle.entry[0].resource.requester")
    assert count_rows(app) == 0


def test_unknown_profiles_are_not_ours_to_check(client):
    body = referral()
    body["meta"] = {"profile": ["http://example.org/StructureDefinition/unknown"]}
    body.pop("requester")
    body.pop("extension")  # asking for a level of care would make it an IOP referral, checked as one
    assert put(client, "ServiceRequest/iop-sr-1-referral", body).status_code == 201


def test_validate_with_a_profile_parameter(client):
    body = referral()
    body.pop("meta")
    body.pop("requester")
    plain = post(client, "ServiceRequest/$validate", body).get_json()
    assert plain["issue"][0]["severity"] == "information"  # valid R4, and no profile claimed
    checked = post(client, f"ServiceRequest/$validate?profile={REFERRAL}", body).get_json()
    assert any(i["severity"] == "error" and i["expression"] == ["ServiceRequest.requester"] for i in checked["issue"])
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": body}, {"name": "profile", "valueUri": REFERRAL}]}
    assert any(i["severity"] == "error" for i in post(client, "ServiceRequest/$validate", params).get_json()["issue"])
    assert_outcome(post(client, f"ServiceRequest/$validate?profile={C}/StructureDefinition/nope", body), 400, "not-supported")
    assert_outcome(post(client, f"ServiceRequest/$validate?profile={C}/StructureDefinition/iop-referral-task", body), 400)


def test_the_guide_is_served_as_resources(client):
    sd = client.get("/fhir/StructureDefinition/iop-referral")
    assert sd.status_code == 200 and sd.get_json()["url"] == REFERRAL and sd.get_json()["snapshot"]["element"]
    found = client.get(f"/fhir/StructureDefinition?url={REFERRAL}").get_json()
    assert found["total"] == 1
    assert client.get(f"/fhir/ValueSet?url={C}/ValueSet/iop-schedule-track").get_json()["total"] == 1
    assert client.get("/fhir/CodeSystem?url=" + f"{C}/CodeSystem/iop-schedule-track").get_json()["total"] == 1


def test_the_guide_cannot_be_changed_through_the_api(client):
    sd = client.get("/fhir/StructureDefinition/iop-referral").get_json()
    sd["status"] = "retired"
    assert_outcome(put(client, "StructureDefinition/iop-referral", sd), 422, "business-rule")
    assert_outcome(client.delete("/fhir/StructureDefinition/iop-referral"), 422, "business-rule")
    copy = dict(sd, id="my-copy")
    assert_outcome(put(client, "StructureDefinition/my-copy", copy), 422, "business-rule")
    assert client.get("/fhir/StructureDefinition/iop-referral").get_json()["status"] != "retired"


def test_expand_one_of_our_value_sets(client):
    url = f"{C}/ValueSet/iop-schedule-track"
    full = client.get(f"/fhir/ValueSet/$expand?url={url}")
    assert full.status_code == 200
    expansion = full.get_json()["expansion"]
    codes = {c["code"] for c in expansion["contains"]}
    assert expansion["total"] == len(codes) and {"day", "evening"} <= codes
    assert all(c.get("display") for c in expansion["contains"])
    evening = client.get(f"/fhir/ValueSet/$expand?url={url}&filter=even").get_json()["expansion"]
    assert [c["code"] for c in evening["contains"]] == ["evening"]
    page = client.get(f"/fhir/ValueSet/$expand?url={url}&offset=1&count=1").get_json()["expansion"]
    assert page["offset"] == 1 and len(page["contains"]) == 1 and page["total"] == len(codes)
    vs_id = client.get(f"/fhir/ValueSet?url={url}").get_json()["entry"][0]["resource"]["id"]
    assert {c["code"] for c in client.get(f"/fhir/ValueSet/{vs_id}/$expand").get_json()["expansion"]["contains"]} == codes
    posted = post(client, "ValueSet/$expand", {"resourceType": "Parameters", "parameter": [{"name": "url", "valueUri": url}]})
    assert posted.get_json()["expansion"]["total"] == len(codes)
    assert_outcome(client.get("/fhir/ValueSet/$expand?url=http://hl7.org/fhir/ValueSet/administrative-gender"), 404, "not-supported")
    assert_outcome(client.get("/fhir/ValueSet/$expand"), 400, "required")


def test_capability_statement_lists_our_profiles(client):
    cap = client.get("/fhir/metadata").get_json()
    by_type = {r["type"]: r for r in cap["rest"][0]["resource"]}
    assert REFERRAL in by_type["ServiceRequest"]["supportedProfile"]
    assert f"{C}/StructureDefinition/iop-referral-task" in by_type["Task"]["supportedProfile"]
    assert {"name": "expand", "definition": "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"} in by_type["ValueSet"]["operation"]


@pytest.fixture
def strict_app(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/strict.db", "AUTH": "off", "LOG_LEVEL": "WARNING",
                      "REQUIRED_PROFILES": "Task=iop-referral-task,ServiceRequest=iop-referral|iop-aftercare-referral"})
    yield app
    app.extensions["iop.db"].dispose()


def test_required_profiles_must_be_claimed(strict_app):
    client = strict_app.test_client()
    load_examples(strict_app, skip=("Task",))
    task = example("Task-iop-task-1-referral.json")
    unclaimed = dict(task, meta={})
    outcome = assert_outcome(put(client, f"Task/{task['id']}", unclaimed), 422, "processing", "Task.meta.profile")
    assert "iop-referral-task" in outcome["issue"][0]["diagnostics"]
    assert put(client, f"Task/{task['id']}", task).status_code == 201
    other = {"resourceType": "Observation", "status": "final", "code": {"text": "not required"}}
    assert post(client, "Observation", other).status_code == 201


@pytest.mark.parametrize("setting", ["Task=nope", "Task=iop-referral", "Task", "Task=,"])
def test_invalid_required_profiles_stop_start_up(setting, tmp_path):
    with pytest.raises(ConfigError):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "AUTH": "off", "REQUIRED_PROFILES": setting})


def test_examples_all_meet_their_claimed_profiles():
    """Every examples/ resource claiming a profile of ours meets it in our validator (Bundle entries included)."""
    from service.conformance import registry

    reg = registry()
    checked = 0
    for path in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(path.read_text())
        docs = [e["resource"] for e in doc.get("entry", []) if "resource" in e] if doc["resourceType"] == "Bundle" else [doc]
        for resource in docs:
            claimed = reg.claimed(resource)
            errors = [i for i in reg.validate(resource, claimed) if i.severity == "error"]
            assert not errors, (path.name, [(i.expression, i.diagnostics) for i in errors])
            checked += bool(claimed)
    assert checked >= len(reg.by_type())


def test_elements_on_a_profile_leaves_out_the_snapshot(client, validator_url):
    """_elements returns what was asked; an invariant (sdf-6: snapshot or differential) brings back only the smaller part."""
    import requests

    resp = client.get("/fhir/StructureDefinition/iop-referral?_elements=url,name,status")
    body = resp.get_json()
    assert {"url", "name", "status"} <= set(body) and "snapshot" not in body and "differential" in body
    issues = requests.post(f"{validator_url}/validate", data=resp.get_data(), timeout=30).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_every_example_passes_medplum_with_our_guide(ig_validator_url):
    """Every examples/ resource, and every resource inside the examples' Bundles, validates (0 errors) with --ig."""
    import requests

    checked = 0
    for path in sorted(EXAMPLES.glob("*.json")):
        doc = json.loads(path.read_text())
        docs = [e["resource"] for e in doc.get("entry", []) if "resource" in e] if doc["resourceType"] == "Bundle" else [doc]
        for resource in docs:
            issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
            errors = [i for i in issues if i["severity"] in ("error", "fatal")]
            assert not errors, (path.name, resource["resourceType"], errors)
            checked += 1
    assert checked > 150
