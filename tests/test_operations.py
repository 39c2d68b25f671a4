"""$validate and Patient/$everything."""
from __future__ import annotations

import json

from helpers import assert_outcome, count_rows, created, patient, phq9, post, put


def test_validate_type_level_valid_and_invalid(client, app):
    ok = post(client, "Patient/$validate", patient())
    assert ok.status_code == 200
    assert ok.get_json()["issue"][0]["severity"] == "information"
    bad = post(client, "Patient/$validate", patient(gender="woman"))
    assert bad.status_code == 200  # R4: 200 whether or not the resource is valid
    issues = bad.get_json()["issue"]
    assert issues[0]["severity"] == "error" and issues[0]["expression"] == ["Patient.gender"]
    assert count_rows(app) == 0  # $validate stores nothing


def test_validate_with_parameters_and_wrong_type(client):
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient(active="no")},
                                                          {"name": "mode", "valueCode": "create"}]}
    body = post(client, "Patient/$validate", params).get_json()
    assert body["issue"][0]["expression"] == ["Patient.active"]
    wrong = post(client, "Patient/$validate", {"resourceType": "Observation"}).get_json()
    assert wrong["issue"][0]["severity"] == "error"


def test_validate_instance_level(client):
    put(client, "Patient/v1", patient(id="v1"))
    stored = client.get("/fhir/Patient/v1/$validate")
    assert stored.status_code == 200 and stored.get_json()["issue"][0]["severity"] == "information"
    mismatch = post(client, "Patient/v1/$validate?mode=update", patient(id="v2")).get_json()
    assert mismatch["issue"][0]["expression"] == ["Patient.id"]
    assert_outcome(client.get("/fhir/Patient/none/$validate"), 404)


def test_validate_malformed_body_is_400(client):
    assert_outcome(client.post("/fhir/Patient/$validate", data="{", headers={"Content-Type": "application/fhir+json"}), 400)


def test_everything_returns_the_compartment_paged(client):
    pid = created(post(client, "Patient", patient(mrn="EV-1")))["id"]
    other = created(post(client, "Patient", patient(mrn="EV-2")))["id"]
    for score in range(5):
        post(client, "Observation", phq9(f"Patient/{pid}", score))
    post(client, "Observation", phq9(f"Patient/{other}", 1))
    post(client, "Encounter", {"resourceType": "Encounter", "status": "finished",
                               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                               "subject": {"reference": f"Patient/{pid}"}})
    page = client.get(f"/fhir/Patient/{pid}/$everything?_count=4").get_json()
    assert page["type"] == "searchset"
    assert page["entry"][0]["resource"]["id"] == pid
    seen = [e["resource"]["id"] for e in page["entry"]]
    while any(link["relation"] == "next" for link in page["link"]):
        url = next(link["url"] for link in page["link"] if link["relation"] == "next")
        page = client.get(url.replace("http://localhost", "")).get_json()
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(seen) == len(set(seen)) == 7  # the patient, 5 observations, 1 encounter
    only_enc = client.get(f"/fhir/Patient/{pid}/$everything?_type=Encounter").get_json()
    assert {e["resource"]["resourceType"] for e in only_enc["entry"]} == {"Encounter"}


def test_everything_unknown_patient_is_404(client):
    assert_outcome(client.get("/fhir/Patient/nobody/$everything"), 404)


def test_unknown_operation_is_404(client):
    assert_outcome(client.post("/fhir/Patient/$frobnicate", data=json.dumps({}), headers={"Content-Type": "application/fhir+json"}), 404)
