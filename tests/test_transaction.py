"""Batch and transaction Bundles (https://hl7.org/fhir/R4/http.html#transaction)."""
from __future__ import annotations

import base64
import json
import uuid

from helpers import assert_outcome, count_rows, created, patient, phq9, post, put


def urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def tx(*entries: dict, type_: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": type_, "entry": list(entries)}


def e_post(resource: dict, full_url: str | None = None, if_none_exist: str | None = None) -> dict:
    entry: dict = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    if full_url:
        entry["fullUrl"] = full_url
    if if_none_exist:
        entry["request"]["ifNoneExist"] = if_none_exist
    return entry


def e_put(resource: dict, url: str, if_match: str | None = None) -> dict:
    entry = {"resource": resource, "request": {"method": "PUT", "url": url}}
    if if_match:
        entry["request"]["ifMatch"] = if_match
    return entry


def test_transaction_rewrites_urn_uuid_references_everywhere(client):
    """urn:uuid references become Type/id in references, uri elements and narrative links."""
    p, o = urn(), urn()
    obs = phq9(p, 12)
    obs["text"] = {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{p}">patient</a></div>'}
    prov = {"resourceType": "Provenance", "target": [{"reference": o}], "recorded": "2026-11-24T10:00:00Z",
            "agent": [{"who": {"reference": p}}], "policy": [p]}
    resp = post(client, "", tx(e_post(patient(mrn="TX-1"), p), e_post(obs, o), e_post(prov)))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created"] * 3
    pid = body["entry"][0]["resource"]["id"]
    oid = body["entry"][1]["resource"]["id"]
    stored_obs = client.get(f"/fhir/Observation/{oid}").get_json()
    assert stored_obs["subject"]["reference"] == f"Patient/{pid}"
    assert f'href="Patient/{pid}"' in stored_obs["text"]["div"]
    stored_prov = body["entry"][2]["resource"]
    assert stored_prov["target"][0]["reference"] == f"Observation/{oid}"
    assert stored_prov["policy"] == [f"Patient/{pid}"]
    assert body["entry"][0]["response"]["location"] == f"Patient/{pid}/_history/1"
    assert body["entry"][0]["fullUrl"] == f"http://localhost/fhir/Patient/{pid}"


def test_transaction_rewrites_absolute_full_urls_and_relative_references(client):
    """A POSTed entry with an absolute fullUrl is referred to by Type/id relative to its base."""
    pat = e_post(patient(), "http://hospital.example.org/fhir/Patient/h1")
    obs = e_post(phq9("Patient/h1", 5), "http://hospital.example.org/fhir/Observation/o1")
    body = post(client, "", tx(pat, obs)).get_json()
    pid = body["entry"][0]["resource"]["id"]
    assert pid != "h1"
    assert body["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{pid}"


def test_transaction_if_none_exist_matches_existing_and_reuses_its_id(client):
    existing = created(post(client, "Patient", patient(mrn="TX-2")))
    p = urn()
    crit = "identifier=https://iop.example.org/fhir/sid/mrn|TX-2"
    body = post(client, "", tx(e_post(patient(mrn="TX-2", given="Changed"), p, crit), e_post(phq9(p, 3)))).get_json()
    assert body["entry"][0]["response"]["status"] == "200 OK"
    assert body["entry"][0]["resource"]["id"] == existing["id"]
    assert body["entry"][0]["resource"]["name"][0]["given"] == ["Robin"]  # a match is not an update
    assert body["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"


def test_resending_a_transaction_creates_nothing_twice(client, app):
    p = urn()
    crit = "identifier=https://iop.example.org/fhir/sid/mrn|TX-3"
    bundle = tx(e_post(patient(mrn="TX-3"), p, crit),
                e_post(dict(phq9(p, 9), identifier=[{"system": "urn:x", "value": "o-3"}]), None, "identifier=urn:x|o-3"))
    first = post(client, "", bundle).get_json()
    second = post(client, "", bundle).get_json()
    assert [e["response"]["status"] for e in second["entry"]] == ["200 OK", "200 OK"]
    assert [e["resource"]["id"] for e in first["entry"]] == [e["resource"]["id"] for e in second["entry"]]
    assert count_rows(app) == 2


def test_conditional_reference_resolves_to_the_single_match(client):
    existing = created(post(client, "Patient", patient(mrn="TX-4")))
    ref = "Patient?identifier=https://iop.example.org/fhir/sid/mrn|TX-4"
    body = post(client, "", tx(e_post(phq9(ref, 4)))).get_json()
    assert body["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{existing['id']}"


def test_conditional_reference_to_an_entry_of_the_same_transaction(client):
    """A conditional reference equal to another entry's ifNoneExist resolves to that entry."""
    crit = "identifier=https://iop.example.org/fhir/sid/mrn|TX-5"
    body = post(client, "", tx(e_post(phq9(f"Patient?{crit}", 4)), e_post(patient(mrn="TX-5"), urn(), crit))).get_json()
    pid = body["entry"][1]["resource"]["id"]
    assert body["entry"][0]["resource"]["subject"]["reference"] == f"Patient/{pid}"


def test_conditional_reference_without_a_single_match_fails_the_transaction(client, app):
    resp = post(client, "", tx(e_post(patient(mrn="TX-6")), e_post(phq9("Patient?identifier=nobody", 1))))
    body = assert_outcome(resp, 412)
    assert any(e.startswith("Bundle.entry[1]") for i in body["issue"] for e in i.get("expression", []))
    assert count_rows(app) == 0


def test_transaction_is_all_or_nothing(client, app):
    """One invalid entry rolls back every entry; the error names the entry and element."""
    bad = {"resourceType": "CarePlan", "status": "bogus", "intent": "plan", "subject": {"reference": "Patient/x"}}
    resp = post(client, "", tx(e_post(patient()), e_post(bad)))
    assert_outcome(resp, 400, "code-invalid", "Bundle.entry[1].resource.status")
    assert count_rows(app) == 0
    assert count_rows(app, "resource_version") == 0
    assert count_rows(app, "sp_string") == 0


def test_transaction_processing_order_delete_post_put_get(client):
    """DELETE, then POST, then PUT/PATCH, then GET, whatever the entry order (http.html#trules)."""
    doomed = created(post(client, "Patient", patient(mrn="TX-ORD")))
    entries = [
        {"request": {"method": "GET", "url": "Patient?identifier=TX-ORD"}},
        e_put(patient(id="tx-put", mrn="TX-ORD"), "Patient/tx-put"),
        e_post(patient(mrn="TX-ORD")),
        {"request": {"method": "DELETE", "url": f"Patient/{doomed['id']}"}},
    ]
    body = post(client, "", tx(*entries)).get_json()
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["200 OK", "201 Created", "201 Created", "204 No Content"]
    searchset = body["entry"][0]["resource"]
    assert searchset["type"] == "searchset" and searchset["total"] == 2  # sees the POST and PUT, not the deleted one


def test_transaction_if_match(client, app):
    put(client, "Patient/txm", patient(id="txm"))
    resp = post(client, "", tx(e_post(patient()), e_put(patient(id="txm", given="B"), "Patient/txm", 'W/"5"')))
    assert_outcome(resp, 412)
    assert count_rows(app) == 1
    ok = post(client, "", tx(e_put(patient(id="txm", given="B"), "Patient/txm", 'W/"1"'))).get_json()
    assert ok["entry"][0]["response"]["etag"] == 'W/"2"'


def test_transaction_conditional_put_and_patch_entries(client):
    created(post(client, "Patient", patient(mrn="TX-CP")))
    ops = [{"op": "add", "path": "/active", "value": True}]
    binary = {"resourceType": "Binary", "contentType": "application/json-patch+json",
              "data": base64.b64encode(json.dumps(ops).encode()).decode()}
    entries = [e_put(patient(mrn="TX-NEW"), "Patient?identifier=TX-NEW"),
               {"resource": binary, "request": {"method": "PATCH", "url": "Patient?identifier=TX-CP"}}]
    body = post(client, "", tx(*entries)).get_json()
    assert [e["response"]["status"] for e in body["entry"]] == ["201 Created", "200 OK"]
    assert body["entry"][1]["resource"]["active"] is True


def test_duplicate_full_urls_or_targets_are_400(client, app):
    p = urn()
    assert_outcome(post(client, "", tx(e_post(patient(), p), e_post(patient(), p))), 400, "duplicate")
    assert_outcome(post(client, "", tx(e_put(patient(id="d"), "Patient/d"), {"request": {"method": "DELETE", "url": "Patient/d"}})),
                   400, "duplicate")
    assert count_rows(app) == 0


def test_unresolved_urn_uuid_is_rejected(client, app):
    assert_outcome(post(client, "", tx(e_post(phq9(urn(), 2)))), 400, "not-found", "Bundle.entry[0].resource.subject.reference")
    assert count_rows(app) == 0


def test_malformed_bundles_are_400(client):
    assert_outcome(post(client, "", {"resourceType": "Patient"}), 400)
    assert_outcome(post(client, "", {"resourceType": "Bundle", "type": "collection"}), 400, expression="Bundle.type")
    assert_outcome(post(client, "", tx({"resource": patient()})), 400, expression="Bundle.entry[0].request")
    assert_outcome(post(client, "", tx({"resource": patient(), "request": {"method": "FETCH", "url": "Patient"}})), 400, "code-invalid")
    assert_outcome(post(client, "", tx({"resource": patient(), "request": {"method": "POST", "url": "Observation"}})), 400)
    assert_outcome(post(client, "", tx({"request": {"method": "POST", "url": "Patient"}})), 400, "required")
    assert_outcome(post(client, "", tx(e_post(patient()), type_="batch") | {"bogus": 1}), 400, expression="Bundle.bogus")


def test_batch_reports_each_entry_outcome_and_keeps_the_good_ones(client, app):
    bad = {"resourceType": "CarePlan", "status": "bogus", "intent": "plan", "subject": {"reference": "Patient/x"}}
    entries = [e_post(patient(mrn="B-1")), e_post(bad), {"request": {"method": "GET", "url": "Patient/none"}},
               e_post(phq9(urn(), 1))]
    resp = post(client, "", tx(*entries, type_="batch"))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201 Created", "400 Bad Request", "404 Not Found", "400 Bad Request"]
    outcome = body["entry"][1]["response"]["outcome"]
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["Bundle.entry[1].resource.status"]
    assert count_rows(app) == 1


def test_batch_get_entries_read_and_search(client):
    pid = created(post(client, "Patient", patient(mrn="B-G")))["id"]
    entries = [{"request": {"method": "GET", "url": f"Patient/{pid}"}}, {"request": {"method": "GET", "url": "Patient?identifier=B-G"}}]
    body = post(client, "", tx(*entries, type_="batch")).get_json()
    assert body["entry"][0]["resource"]["id"] == pid
    assert body["entry"][1]["resource"]["total"] == 1


def test_prefer_minimal_omits_resources_from_the_response(client):
    body = post(client, "", tx(e_post(patient())), Prefer="return=minimal").get_json()
    assert "resource" not in body["entry"][0]
    assert body["entry"][0]["response"]["location"].startswith("Patient/")


def test_thousand_entry_transaction(client, app):
    p = urn()
    entries = [e_post(patient(mrn="BIG"), p)] + [e_post(phq9(p, i % 27)) for i in range(999)]
    resp = post(client, "", tx(*entries), Prefer="return=minimal")
    assert resp.status_code == 200
    assert len(resp.get_json()["entry"]) == 1000
    assert count_rows(app) == 1000
    found = client.get("/fhir/Observation?subject:Patient.identifier=BIG&_summary=count").get_json()
    assert found["total"] == 999


def test_entry_limit_is_enforced(client, app):
    app.config["IOP"]["MAX_BUNDLE_ENTRIES"], old = 2, app.config["IOP"]["MAX_BUNDLE_ENTRIES"]
    try:
        assert_outcome(post(client, "", tx(e_post(patient()), e_post(patient()), e_post(patient()))), 400, "too-costly")
    finally:
        app.config["IOP"]["MAX_BUNDLE_ENTRIES"] = old
