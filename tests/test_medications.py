"""Medication orders: the MedicationRequest status machine (422 naming the allowed next statuses, nothing stored),
the schedule a long-acting injection needs, and MedicationRequest/$due (injections and refills due), through HTTP."""
from __future__ import annotations

import copy

import pytest
from test_conformance import assert_valid, valid_response

from helpers import assert_outcome, example, post, put

XR = "MedicationRequest-iop-medrx-5-naltrexone-xr.json"
ACAMPROSATE = "MedicationRequest-iop-medrx-5-acamprosate.json"
ADMIN = "MedicationAdministration-iop-medadmin-5-naltrexone-xr-1.json"
DUE = "MedicationRequest/$due"


def store(client, name: str, **changes) -> dict:
    body = copy.deepcopy(example(name))
    body.update(changes)
    resp = put(client, f"{body['resourceType']}/{body['id']}", body)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def set_status(client, order: dict, status: str):
    current = client.get(f"/fhir/MedicationRequest/{order['id']}").get_json()
    current["status"] = status
    return put(client, f"MedicationRequest/{order['id']}", current)


def versions(client, order: dict) -> int:
    return client.get(f"/fhir/MedicationRequest/{order['id']}/_history").get_json()["total"]


def due(client, **params) -> list[dict]:
    query = "&".join(f"{k.replace('_', '-')}={v}" for k, v in params.items())
    resp = client.get(f"/fhir/{DUE}?{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [{p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in item["part"]}
            for item in resp.get_json()["parameter"] if item["name"] == "due"]


# ------------------------------------------------------------------------------- status machine
@pytest.mark.parametrize("path", [("active", "on-hold", "active", "stopped"), ("draft", "active", "completed"),
                                  ("active", "cancelled"), ("draft", "cancelled"), ("on-hold", "completed"),
                                  ("active", "entered-in-error"), ("on-hold", "stopped")])
def test_legal_status_changes_are_stored(client, path):
    order = store(client, ACAMPROSATE, status=path[0])
    for status in path[1:]:
        assert set_status(client, order, status).status_code == 200, status
    assert client.get(f"/fhir/MedicationRequest/{order['id']}").get_json()["status"] == path[-1]
    assert versions(client, order) == len(path)


@pytest.mark.parametrize("before,after,allowed", [
    ("stopped", "active", "none"), ("completed", "active", "none"), ("cancelled", "on-hold", "none"),
    ("entered-in-error", "active", "none"), ("active", "draft", "on-hold, stopped, completed, cancelled, entered-in-error"),
    ("draft", "on-hold", "active, cancelled, entered-in-error")])
def test_an_illegal_status_change_is_a_422_naming_the_allowed_ones_and_stores_nothing(client, before, after, allowed):
    order = store(client, ACAMPROSATE, status=before)
    resp = set_status(client, order, after)
    body = assert_outcome(resp, 422, "business-rule", "MedicationRequest.status")
    assert f"from '{before}' to '{after}'" in body["issue"][0]["diagnostics"]
    assert f"may go to: {allowed}" in body["issue"][0]["diagnostics"]
    assert client.get(f"/fhir/MedicationRequest/{order['id']}").get_json()["status"] == before
    assert versions(client, order) == 1


def test_stopped_to_active_in_a_transaction_stores_nothing(client):
    order = store(client, ACAMPROSATE, status="stopped")
    restarted = dict(client.get(f"/fhir/MedicationRequest/{order['id']}").get_json(), status="active")
    other = copy.deepcopy(example(XR))
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": other, "request": {"method": "PUT", "url": f"MedicationRequest/{other['id']}"}},
        {"resource": restarted, "request": {"method": "PUT", "url": f"MedicationRequest/{order['id']}"}}]}
    assert_outcome(post(client, "", bundle), 422, "business-rule")
    assert client.get(f"/fhir/MedicationRequest/{other['id']}").status_code == 404
    assert versions(client, order) == 1


def test_a_scheduled_injection_needs_its_interval(client):
    body = copy.deepcopy(example(XR))
    del body["dosageInstruction"][0]["timing"]["repeat"]["period"]
    resp = put(client, f"MedicationRequest/{body['id']}", body)
    assert_outcome(resp, 422, "required", "MedicationRequest.dosageInstruction[0].timing.repeat")
    assert client.get(f"/fhir/MedicationRequest/{body['id']}").status_code == 404


def test_the_addiction_medication_examples_are_valid_with_our_guide(client, validator_url, ig_validator_url):
    for name in (XR, ACAMPROSATE, "MedicationRequest-iop-medrx-1-bup-nx.json", ADMIN):
        stored = store(client, name)
        assert_valid(validator_url, stored, name)
        assert_valid(ig_validator_url, stored, name)


# ------------------------------------------------------------------------------- $due
def test_the_injection_is_due_on_its_first_day_then_every_four_weeks_after_the_last_dose(client, validator_url):
    store(client, XR)
    [item] = due(client, as_of="2026-11-12", days=7)
    assert item["medicationRequest"]["reference"] == "MedicationRequest/iop-medrx-5-naltrexone-xr"
    assert (item["kind"], item["dueDate"], item["overdue"]) == ("injection", "2026-11-18", False)
    assert item["patient"]["reference"] == "Patient/iop-patient-5"
    store(client, ADMIN)  # given 2026-11-18: the next dose is due 28 days later
    assert due(client, as_of="2026-11-19", days=7) == []
    [item] = due(client, as_of="2026-12-10", days=7)
    assert (item["dueDate"], item["overdue"], item["lastGiven"]) == ("2026-12-16", False, "2026-11-18T17:45:00-06:00")
    [late] = due(client, as_of="2026-12-20", days=0)
    assert late["overdue"] is True
    valid_response(validator_url, client.get(f"/fhir/{DUE}?as-of=2026-12-10"), label="$due")


def test_a_refill_is_due_when_the_last_supply_runs_out(client):
    store(client, ACAMPROSATE)  # 30 days from 2026-11-16
    assert [(i["kind"], i["dueDate"]) for i in due(client, as_of="2026-12-10", days=7)] == [("refill", "2026-12-16")]
    dispense = {"resourceType": "MedicationDispense", "status": "completed",
                "medicationCodeableConcept": example(ACAMPROSATE)["medicationCodeableConcept"],
                "subject": {"reference": "Patient/iop-patient-5"}, "whenHandedOver": "2026-12-14T10:00:00-06:00",
                "authorizingPrescription": [{"reference": "MedicationRequest/iop-medrx-5-acamprosate"}]}
    assert post(client, "MedicationDispense", dispense).status_code == 201
    assert due(client, as_of="2026-12-10", days=7) == []
    assert [i["dueDate"] for i in due(client, as_of="2027-01-10", days=7)] == ["2027-01-13"]


def test_only_the_programs_active_orders_are_on_the_worklist(client):
    store(client, XR)
    store(client, ACAMPROSATE, status="on-hold")
    hospital = copy.deepcopy(example(ACAMPROSATE))
    hospital.update(id="hospital-discharge-rx", category=[{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category", "code": "discharge"}]}])
    assert put(client, "MedicationRequest/hospital-discharge-rx", hospital).status_code == 201
    other = copy.deepcopy(example(XR))
    other.update(id="xr-other-patient", subject={"reference": "Patient/someone-else"})
    assert put(client, "MedicationRequest/xr-other-patient", other).status_code == 201
    everyone = due(client, as_of="2026-12-31", days=30)
    assert sorted(i["medicationRequest"]["reference"] for i in everyone) == [
        "MedicationRequest/iop-medrx-5-naltrexone-xr", "MedicationRequest/xr-other-patient"]
    mine = due(client, as_of="2026-12-31", days=30, patient="Patient/iop-patient-5")
    assert [i["medicationRequest"]["reference"] for i in mine] == ["MedicationRequest/iop-medrx-5-naltrexone-xr"]


def test_due_by_post_with_parameters(client):
    store(client, XR)
    body = {"resourceType": "Parameters", "parameter": [{"name": "as-of", "valueDate": "2026-11-12"},
                                                        {"name": "days", "valueInteger": 10}]}
    resp = post(client, DUE, body)
    assert resp.status_code == 200
    assert [p["valueDate"] for p in resp.get_json()["parameter"] if p["name"] == "until"] == ["2026-11-22"]


@pytest.mark.parametrize("query,expression", [("days=abc", "days"), ("days=91", "days"), ("as-of=2026-13-01", "as-of"),
                                              ("as-of=tomorrow", "as-of"), ("patient=Group/x", "patient"),
                                              ("owner=Organization/x", "owner"), ("days=1&days=2", "days")])
def test_bad_due_parameters_are_a_400_naming_the_parameter(client, query, expression):
    assert_outcome(client.get(f"/fhir/{DUE}?{query}"), 400, expression=expression)


def test_due_is_listed_in_the_capability_statement(client):
    meta = client.get("/fhir/metadata").get_json()
    [rest] = meta["rest"]
    [mr] = [r for r in rest["resource"] if r["type"] == "MedicationRequest"]
    assert {"name": "due", "definition": "https://iop.example.org/fhir/OperationDefinition/MedicationRequest-due"} in mr["operation"]
    assert client.get("/fhir/OperationDefinition/MedicationRequest-due").status_code == 200


def test_the_issue_10c_operations_are_for_the_programs_staff(auth_client, auth_app, client):
    """An outside client (a hospital) is refused $due, $reconcile-medications, $discharge-summary and $program-outcomes
    (403) even with every scope: they read the program's 42 CFR Part 2 records. Staff tools (internal) are served."""
    from auth_helpers import bearer, make_client

    store(client, XR)
    hospital, key = make_client(auth_app, "Hospital EHR", "system/*.cruds", organization="Organization/hosp-org-lakeside")
    outside = bearer(auth_client, auth_app, hospital, key)
    body = {"resourceType": "Parameters"}
    for method, url in (("get", f"/fhir/{DUE}?as-of=2026-11-12"), ("post", "/fhir/EpisodeOfCare/x/$reconcile-medications"),
                        ("post", "/fhir/EpisodeOfCare/x/$discharge-summary"),
                        ("get", "/fhir/EpisodeOfCare/$program-outcomes?owner=Organization/x&period-start=2026-01-01&period-end=2026-02-01")):
        resp = getattr(auth_client, method)(url, headers=outside, **({"json": body} if method == "post" else {}))
        assert_outcome(resp, 403)
    staff, staff_key = make_client(auth_app, "IOP staff app", "system/*.cruds", internal=True)
    resp = auth_client.get(f"/fhir/{DUE}?as-of=2026-11-12", headers=bearer(auth_client, auth_app, staff, staff_key))
    assert resp.status_code == 200 and len([p for p in resp.get_json()["parameter"] if p["name"] == "due"]) == 1
