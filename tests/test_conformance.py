"""Everything the server emits is valid FHIR R4, judged by an independent validator (Medplum, medplum-validate.mjs).

Each test drives the real API, then posts the response body to the validator service; an issue of
severity error or fatal fails the test (warnings and information are allowed). Bundles are
validated whole, which includes every entry.resource and entry.response.outcome.
"""
from __future__ import annotations

import json

import pytest
import requests

from helpers import EXAMPLES, FHIR, assert_outcome, created, example, patient, phq9, post, put

PATCH = "application/json-patch+json"
MRN = "https://iop.example.org/fhir/sid/mrn"
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.json"))


# ------------------------------------------------------------------------------- helpers
def problems(validator_url: str, body: dict) -> list[dict]:
    """The validator's error and fatal issues for one resource."""
    resp = requests.post(f"{validator_url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    resp.raise_for_status()
    result = resp.json()
    assert result["resourceType"] == "OperationOutcome", result
    return [i for i in result["issue"] if i["severity"] in ("error", "fatal")]


def assert_valid(validator_url: str, body: dict, label: str = "") -> dict:
    """Assert `body` is valid R4 (no error/fatal issue) and return it."""
    assert isinstance(body, dict) and body.get("resourceType"), f"{label}: not a resource: {body!r}"
    bad = problems(validator_url, body)
    assert not bad, f"{label or body['resourceType']} is not valid R4:\n" + "\n".join(
        f"  {i['severity']} {i['code']} {i.get('expression')}: {(i.get('details') or {}).get('text') or i.get('diagnostics')}"
        for i in bad)
    return body


def valid_response(validator_url: str, response, status: int = 200, label: str = "") -> dict:
    """Assert the HTTP status and media type of `response` and that its body is valid R4."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR, response.mimetype
    return assert_valid(validator_url, response.get_json(force=True), label)


def valid_outcome(validator_url: str, response, status: int, code: str | None = None) -> dict:
    """Assert an OperationOutcome error response (helpers.assert_outcome) that is valid R4."""
    body = assert_outcome(response, status, code)
    return assert_valid(validator_url, body, f"{status} OperationOutcome")


def link(bundle: dict, relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def local(url: str) -> str:
    """A server URL as a test-client path."""
    return url.replace("http://localhost", "")


def load_examples(client) -> dict[str, dict]:
    """Load examples/ as `make run` does (in file-name order: resources by PUT, Bundles by POST, messages to
    $process-message); responses by file."""
    out = {}
    for name in EXAMPLE_FILES:
        body = example(name)
        bundle = body["resourceType"] == "Bundle"
        path = "$process-message" if bundle and body["type"] == "message" else ""
        resp = post(client, path, body) if bundle else put(client, f"{body['resourceType']}/{body['id']}", body)
        assert resp.status_code in ((200,) if bundle else (200, 201)), f"{name}: {resp.get_data(as_text=True)}"
        out[name] = resp.get_json()
    return out


@pytest.fixture
def loaded(client) -> dict[str, dict]:
    return load_examples(client)


# ------------------------------------------------------------------------------- stored examples, read, vread
def test_every_example_as_stored_and_read_back_is_valid(client, validator_url, loaded):
    """The response to every example file (resource or transaction-response) and a fresh read of what it stored."""
    for name in EXAMPLE_FILES:
        body = assert_valid(validator_url, loaded[name], f"load {name}")
        if body["resourceType"] != "Bundle":
            valid_response(validator_url, client.get(f"/fhir/{body['resourceType']}/{body['id']}"), label=f"read {name}")
            continue
        if body["type"] == "message":  # the response message: read back what it focuses
            focus = body["entry"][0]["resource"]["focus"][0]["reference"].split("/fhir/")[1]
            valid_response(validator_url, client.get(f"/fhir/{focus}"), label=f"read {focus} ({name})")
            continue
        assert body["type"] == "transaction-response"
        for entry in body["entry"]:
            assert entry["response"]["status"].startswith(("200", "201")), entry
            path = entry["response"]["location"].split("/_history")[0]
            valid_response(validator_url, client.get(f"/fhir/{path}"), label=f"read {path} ({name})")


def test_vread_is_valid(client, validator_url):
    pid = created(post(client, "Patient", patient(mrn="CONF-VR")))["id"]
    body = client.get(f"/fhir/Patient/{pid}").get_json()
    put(client, f"Patient/{pid}", dict(body, active=True))
    v1 = valid_response(validator_url, client.get(f"/fhir/Patient/{pid}/_history/1"), label="vread 1")
    v2 = valid_response(validator_url, client.get(f"/fhir/Patient/{pid}/_history/2"), label="vread 2")
    assert (v1["meta"]["versionId"], v2["meta"]["versionId"]) == ("1", "2")


# ------------------------------------------------------------------------------- search
def test_searchset_with_total_links_matches_includes_and_outcome_is_valid(client, validator_url):
    """A paged searchset with total, self/first/next/previous links, include entries and an outcome entry."""
    pid = created(post(client, "Patient", patient(mrn="CONF-S1")))["id"]
    for score in range(5):
        created(post(client, "Observation", phq9(f"Patient/{pid}", score, f"2026-11-1{score}T10:00:00Z")))
    first = valid_response(validator_url, client.get(
        f"/fhir/Observation?subject=Patient/{pid}&_include=Observation:subject&_count=2&unknown-param=x"), label="searchset page 1")
    assert first["type"] == "searchset" and first["total"] == 5
    modes = [e["search"]["mode"] for e in first["entry"]]
    assert modes.count("match") == 2 and "include" in modes and "outcome" in modes
    assert link(first, "self") and link(first, "first") and link(first, "next")
    second = valid_response(validator_url, client.get(local(link(first, "next"))), label="searchset page 2")
    assert link(second, "previous")


def test_empty_searchset_and_summary_count_are_valid(client, validator_url):
    created(post(client, "Patient", patient(mrn="CONF-S2")))
    empty = valid_response(validator_url, client.get("/fhir/Patient?identifier=nobody"), label="empty searchset")
    assert empty["total"] == 0 and "entry" not in empty
    count = valid_response(validator_url, client.get("/fhir/Patient?_summary=count"), label="_summary=count")
    assert count["total"] == 1


def test_revinclude_and_sort_searchset_is_valid(client, validator_url, loaded):
    bundle = valid_response(validator_url, client.get(
        "/fhir/Patient?_id=iop-patient-1&_revinclude=Observation:subject&_revinclude=Condition:subject&_sort=-_lastUpdated"),
        label="_revinclude searchset")
    assert {e["search"]["mode"] for e in bundle["entry"]} == {"match", "include"}


# ------------------------------------------------------------------------------- _summary and _elements
@pytest.mark.parametrize("query", ["_summary=true", "_summary=text", "_summary=data", "_summary=false",
                                   "_elements=identifier,name", "_elements=Patient.gender,birthDate", "_elements=name"])
def test_summary_and_elements_on_read_are_valid(client, validator_url, loaded, query):
    for path in ("Patient/iop-patient-1", "Observation/iop-obs-1-phq9-20261116", "CarePlan/iop-careplan-1",
                 "Encounter/iop-enc-1-group-a-20261118", "MedicationRequest/iop-medrx-1-bup-nx", "Task/iop-task-1-referral",
                 "Consent/iop-consent-1-part2", "Group/iop-group-evening-a", "Coverage/iop-cov-1", "Appointment/iop-appt-group-a-20261118"):
        valid_response(validator_url, client.get(f"/fhir/{path}?{query}"), label=f"{path}?{query}")


@pytest.mark.parametrize("rtype", ["Patient", "Observation", "CarePlan", "Encounter", "Condition", "Goal", "Task", "Consent",
                                   "DocumentReference", "ServiceRequest", "EpisodeOfCare", "MedicationRequest", "Group",
                                   "Appointment", "CareTeam", "Coverage", "HealthcareService", "Location", "Organization",
                                   "Practitioner", "PractitionerRole", "RelatedPerson"])
def test_summary_and_elements_in_search_are_valid(client, validator_url, loaded, rtype):
    """_summary=true and _elements on every example type: subsets keep the elements R4 makes mandatory."""
    for query in ("_summary=true", "_summary=text", "_elements=id"):
        bundle = valid_response(validator_url, client.get(f"/fhir/{rtype}?{query}"), label=f"{rtype}?{query}")
        assert bundle["entry"], bundle
        for e in bundle["entry"]:
            tags = e["resource"]["meta"].get("tag", [])
            assert any(t.get("code") == "SUBSETTED" for t in tags), e


# ------------------------------------------------------------------------------- history
def test_history_bundles_with_a_delete_are_valid(client, validator_url):
    """Instance, type and system history, including a delete entry (request, response, no resource)."""
    first = created(post(client, "Patient", patient(mrn="CONF-H1")))
    pid = first["id"]
    put(client, f"Patient/{pid}", dict(first, active=True))
    created(post(client, "Observation", phq9(f"Patient/{pid}", 7)))
    gone = created(post(client, "Patient", patient(mrn="CONF-H2")))["id"]
    assert client.delete(f"/fhir/Patient/{gone}").status_code == 204
    instance = valid_response(validator_url, client.get(f"/fhir/Patient/{pid}/_history"), label="instance history")
    assert instance["type"] == "history" and instance["total"] == 2
    deleted = valid_response(validator_url, client.get(f"/fhir/Patient/{gone}/_history"), label="history with delete")
    assert deleted["entry"][0]["request"]["method"] == "DELETE" and "resource" not in deleted["entry"][0]
    valid_response(validator_url, client.get("/fhir/Patient/_history"), label="type history")
    since = first["meta"]["lastUpdated"]  # leave out the implementation guide stored at start-up
    system = valid_response(validator_url, client.get(f"/fhir/_history?_count=2&_since={since}"), label="system history page 1")
    assert system["total"] == 5 and link(system, "next")
    page2 = valid_response(validator_url, client.get(local(link(system, "next"))), label="system history page 2")
    valid_response(validator_url, client.get(local(link(page2, "previous"))), label="system history previous")


# ------------------------------------------------------------------------------- transaction and batch
def test_transaction_response_is_valid(client, validator_url):
    """A transaction with POST (urn:uuid), PUT, conditional create, DELETE and GET entries."""
    put(client, "Patient/conf-tx-old", patient(id="conf-tx-old"))
    put(client, "Patient/conf-tx-put", patient(id="conf-tx-put"))
    pu = "urn:uuid:6f0a3c0e-1c0d-4d53-9a59-0d6c2b1b7c01"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": pu, "resource": patient(mrn="CONF-TX1"), "request": {"method": "POST", "url": "Patient",
                                                                       "ifNoneExist": f"identifier={MRN}|CONF-TX1"}},
        {"resource": phq9(pu, 11), "request": {"method": "POST", "url": "Observation"}},
        {"resource": patient(id="conf-tx-put", active=True), "request": {"method": "PUT", "url": "Patient/conf-tx-put"}},
        {"request": {"method": "DELETE", "url": "Patient/conf-tx-old"}},
        {"request": {"method": "GET", "url": "Patient/conf-tx-put"}},
        {"request": {"method": "GET", "url": "Patient?identifier=CONF-TX1"}},
    ]}
    body = valid_response(validator_url, post(client, "", bundle), label="transaction-response")
    assert body["type"] == "transaction-response" and len(body["entry"]) == 6
    minimal = valid_response(validator_url, post(client, "", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(mrn="CONF-TX2"), "request": {"method": "POST", "url": "Patient"}}]}, Prefer="return=minimal"),
        label="transaction-response return=minimal")
    assert "resource" not in minimal["entry"][0]
    oo = valid_response(validator_url, post(client, "", {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(mrn="CONF-TX3"), "request": {"method": "POST", "url": "Patient"}}]}, Prefer="return=OperationOutcome"),
        label="transaction-response return=OperationOutcome")
    assert oo["entry"][0]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def test_batch_response_with_a_failed_entry_is_valid(client, validator_url):
    """A batch whose entries succeed and fail; a failed entry carries its status and outcome, no fullUrl."""
    put(client, "Patient/conf-b-1", patient(id="conf-b-1"))
    put(client, "Patient/conf-b-3", patient(id="conf-b-3", mrn="CONF-B3"))
    match = {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|CONF-B3"}
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(mrn="CONF-B1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": "bogus"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/does-not-exist"}},
        {"request": {"method": "GET", "url": "Patient/conf-b-1"}},
        {"request": {"method": "DELETE", "url": "Patient/conf-b-1"}},
        {"request": {"method": "GET", "url": "Patient?identifier=CONF-B1"}},
        {"resource": patient(id="conf-b-2"), "request": {"method": "PUT", "url": "Patient/conf-b-2", "ifMatch": 'W/"4"'}},
        {"resource": patient(mrn="CONF-B3"), "request": match},  # both conditional creates match conf-b-3
        {"resource": patient(mrn="CONF-B3"), "request": match},
    ]}
    body = valid_response(validator_url, post(client, "", bundle), label="batch-response")
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in body["entry"]]
    assert statuses == ["201", "400", "404", "200", "204", "200", "412", "200", "200"]
    for failed in (body["entry"][1], body["entry"][2], body["entry"][6]):
        assert failed["response"]["outcome"]["resourceType"] == "OperationOutcome"


# ------------------------------------------------------------------------------- error outcomes
def test_error_outcomes_are_valid(client, validator_url):
    """400, 404, 405, 406, 410, 412, 415 and 422 OperationOutcomes."""
    pid = created(post(client, "Patient", patient(mrn="CONF-E1")))["id"]
    valid_outcome(validator_url, post(client, "Patient", {"resourceType": "Patient", "gender": "bogus", "foo": 1}), 400)
    valid_outcome(validator_url, post(client, "Patient", "not a resource"), 400)
    valid_outcome(validator_url, client.post("/fhir/Patient", data="{bad json", headers={"Content-Type": FHIR}), 400)
    valid_outcome(validator_url, client.get("/fhir/Patient?birthdate=notadate"), 400)
    valid_outcome(validator_url, client.get("/fhir/Patient/nope"), 404, "not-found")
    valid_outcome(validator_url, client.get("/fhir/Spaceship/1"), 404, "not-supported")
    valid_outcome(validator_url, client.get("/not-fhir"), 404)
    valid_outcome(validator_url, client.post(f"/fhir/Patient/{pid}/_history/1", data="{}", headers={"Content-Type": FHIR}), 405)
    valid_outcome(validator_url, client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"}), 406)
    valid_outcome(validator_url, put(client, f"Patient/{pid}", patient(id=pid), **{"If-Match": 'W/"9"'}), 412)
    valid_outcome(validator_url, client.post("/fhir/Patient", data="<Patient/>", headers={"Content-Type": "application/fhir+xml"}), 415)
    test_fails = [{"op": "test", "path": "/gender", "value": "male"}]
    valid_outcome(validator_url, client.patch(f"/fhir/Patient/{pid}", data=json.dumps(test_fails), headers={"Content-Type": PATCH}), 422)
    client.delete(f"/fhir/Patient/{pid}")
    valid_outcome(validator_url, client.get(f"/fhir/Patient/{pid}"), 410, "deleted")


def test_transaction_failure_outcome_is_valid(client, validator_url):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient(mrn="CONF-TF"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "yesterday"}, "request": {"method": "POST", "url": "Patient"}}]}
    valid_outcome(validator_url, post(client, "", bundle), 400)
    valid_outcome(validator_url, post(client, "", {"resourceType": "Bundle", "type": "message"}), 400)


def test_prefer_operation_outcome_responses_are_valid(client, validator_url):
    resp = post(client, "Patient", patient(mrn="CONF-P1"), Prefer="return=OperationOutcome")
    body = valid_response(validator_url, resp, 201, "create return=OperationOutcome")
    pid = resp.headers["Location"].split("/")[-3]
    assert body["issue"][0]["severity"] == "information"
    valid_response(validator_url, client.delete(f"/fhir/Patient/{pid}", headers={"Prefer": "return=OperationOutcome"}), 200,
                   "delete return=OperationOutcome")


# ------------------------------------------------------------------------------- operations
def test_validate_operation_results_are_valid(client, validator_url):
    """$validate answers with an OperationOutcome for valid and invalid input, at type and instance level."""
    ok = valid_response(validator_url, post(client, "Patient/$validate", patient()), label="$validate valid")
    assert all(i["severity"] == "information" for i in ok["issue"])
    bad = valid_response(validator_url, post(client, "Patient/$validate", {"resourceType": "Patient", "gender": "bogus", "foo": 1}),
                         label="$validate invalid")
    assert any(i["severity"] == "error" for i in bad["issue"])
    params = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient()},
                                                          {"name": "mode", "valueCode": "create"}]}
    valid_response(validator_url, post(client, "Patient/$validate", params), label="$validate Parameters")
    pid = created(post(client, "Patient", patient(mrn="CONF-V1")))["id"]
    valid_response(validator_url, client.get(f"/fhir/Patient/{pid}/$validate"), label="instance $validate")
    mismatch = valid_response(validator_url, post(client, f"Patient/{pid}/$validate?mode=update", patient(id="other")),
                              label="$validate update mismatch")
    assert any(i["severity"] == "error" for i in mismatch["issue"])


def test_patient_everything_is_valid(client, validator_url, loaded):
    whole = valid_response(validator_url, client.get("/fhir/Patient/iop-patient-1/$everything"), label="$everything")
    assert whole["type"] == "searchset" and whole["entry"][0]["resource"]["resourceType"] == "Patient"
    page = valid_response(validator_url, client.get("/fhir/Patient/iop-patient-1/$everything?_count=2"), label="$everything page 1")
    assert link(page, "next")
    valid_response(validator_url, client.get(local(link(page, "next"))), label="$everything page 2")
    valid_response(validator_url, client.get("/fhir/Patient/iop-patient-1/$everything?_type=Observation,Condition"),
                   label="$everything _type")


# ------------------------------------------------------------------------------- capabilities
def test_capability_statement_is_valid(client, validator_url):
    body = valid_response(validator_url, client.get("/fhir/metadata"), label="CapabilityStatement")
    assert body["fhirVersion"] == "4.0.1" and body["kind"] == "instance"
    rest = body["rest"][0]
    patient_ = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"read", "search-type", "create"} <= {i["code"] for i in patient_["interaction"]}
