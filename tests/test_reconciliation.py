"""EpisodeOfCare/[id]/$reconcile-medications: the referral's medications against the program's orders at intake, the
program's orders at discharge, as an iop-medication-reconciliation List; bad input is a 4xx with nothing stored."""
from __future__ import annotations

import pytest
from test_conformance import assert_valid
from test_referrals import referral_bundle, search
from treatment_helpers import admitted, decision, flags, hospital_order, intake_decisions, program_orders, reconcile

from helpers import assert_outcome, count_rows

SID = "https://iop.example.org/fhir/sid/medication-reconciliation"


@pytest.fixture
def enrolled(program):
    episode = admitted(program)
    return program, episode, program_orders(program, episode)


def test_intake_reconciliation_lists_each_medication_with_its_decision_who_and_when(enrolled, validator_url, ig_validator_url):
    client, episode, orders = enrolled
    resp = reconcile(client, episode, "intake", *intake_decisions(client, orders))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    listing = resp.get_json()
    assert listing["resourceType"] == "List" and listing["mode"] == "changes" and listing["status"] == "current"
    assert listing["code"]["coding"][0]["code"] == "42346-7"
    assert listing["source"] == {"reference": "Practitioner/iop-pract-psychiatrist"}
    assert listing["date"] == "2026-11-30T18:00:00-06:00" and listing["subject"] == episode["patient"]
    assert flags(listing) == {orders["naltrexone"]: "continued", orders["sertraline"]: "changed", orders["trazodone"]: "new"}
    assert listing["identifier"] == [{"system": SID, "value": f"{episode['id']}-intake"}]
    assert "42CFRPart2" in {s["code"] for s in listing["meta"]["security"]}
    assert "Taken in the morning" in listing["text"]["div"]
    assert_valid(validator_url, listing, "intake List")
    assert_valid(ig_validator_url, listing, "intake List")
    assert search(client, f"List?identifier={SID}|{episode['id']}-intake")[0]["id"] == listing["id"]


def test_the_referrals_medication_may_be_stopped_and_is_then_marked_deleted(enrolled):
    client, episode, orders = enrolled
    resp = reconcile(client, episode, "intake", decision(hospital_order(client, "55101"), "continued", orders["naltrexone"]),
                     decision(hospital_order(client, "55102"), "stopped", note="Replaced"),
                     decision(orders["sertraline"], "new"), decision(orders["trazodone"], "new"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [stopped] = [e for e in resp.get_json()["entry"] if e["flag"]["coding"][0]["code"] == "stopped"]
    assert stopped["item"]["reference"] == hospital_order(client, "55102") and stopped["deleted"] is True
    hospital = client.get(f"/fhir/{hospital_order(client, '55102')}").get_json()
    assert hospital["status"] == "active"  # the hospital's prescription is theirs: recorded as stopped, not rewritten


def test_discharge_reconciliation_stops_what_is_stopped_and_a_repeat_replaces_the_list(enrolled, ig_validator_url):
    client, episode, orders = enrolled
    assert reconcile(client, episode, "intake", *intake_decisions(client, orders)).status_code == 200
    discharge = [decision(orders["naltrexone"], "continued"), decision(orders["sertraline"], "continued"),
                 decision(orders["trazodone"], "stopped", note="Sleeping well")]
    first = reconcile(client, episode, "discharge", *discharge, date="2026-12-18T15:00:00-06:00")
    assert first.status_code == 200, first.get_data(as_text=True)
    listing = first.get_json()
    assert listing["code"]["coding"][0]["code"] == "75311-1"
    assert flags(listing) == {orders["naltrexone"]: "continued", orders["sertraline"]: "continued", orders["trazodone"]: "stopped"}
    trazodone = client.get(f"/fhir/{orders['trazodone']}").get_json()
    assert trazodone["status"] == "stopped" and "discharge" in trazodone["statusReason"]["text"]
    assert_valid(ig_validator_url, trazodone, "stopped order")
    # the stopped order no longer needs a decision; asking again replaces the discharge list (a new version)
    again = reconcile(client, episode, "discharge", *discharge[:2], date="2026-12-18T16:00:00-06:00")
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.get_json()["id"] == listing["id"] and again.get_json()["meta"]["versionId"] == "2"
    assert len(search(client, f"List?identifier={SID}|{episode['id']}-discharge")) == 1


def bad_cases(client, orders: dict) -> list[tuple[list, int, str]]:
    nal, ser = hospital_order(client, "55101"), hospital_order(client, "55102")
    good = [decision(nal, "continued", orders["naltrexone"]), decision(ser, "changed", orders["sertraline"]),
            decision(orders["trazodone"], "new")]
    where = "Parameters.parameter[medication]"
    return [
        ([decision("MedicationRequest/no-such-order", "continued")] + good, 422, f"{where}[0].part[item]"),
        (good[:2], 422, where),  # trazodone has no decision
        ([decision(nal, "continued", orders["naltrexone"]), decision(ser, "changed"), good[2]], 422, f"{where}[1].part[order]"),
        (good + [decision(orders["naltrexone"], "stopped")], 422, f"{where}[3].part[item]"),  # two decisions
        ([decision(nal, "new")] + good[1:], 422, f"{where}[0].part[action]"),
        ([decision(nal, "continued", ser)] + good[1:], 422, f"{where}[0].part[order]"),
        ([decision(nal, "paused", orders["naltrexone"])] + good[1:], 400, f"{where}[0].part[action]"),
        ([decision("Observation/x", "continued")] + good, 400, f"{where}[0].part[item]"),
    ]


def test_bad_reconciliations_are_refused_and_nothing_is_stored(enrolled, validator_url):
    client, episode, orders = enrolled
    for decisions, status, expression in bad_cases(client, orders):
        before = count_rows(client.application)
        resp = reconcile(client, episode, "intake", *decisions)
        body = assert_outcome(resp, status, expression=expression)
        assert_valid(validator_url, body)
        assert count_rows(client.application) == before, expression
    assert search(client, "List") == []


def test_another_patients_medication_is_refused(enrolled):
    client, episode, orders = enrolled
    other = client.get(f"/fhir/{orders['trazodone']}").get_json()
    other.update(id="someone-elses", subject={"reference": "Patient/iop-patient-5"})
    assert client.put("/fhir/MedicationRequest/someone-elses", json=other).status_code == 201
    decisions = intake_decisions(client, orders) + [decision("MedicationRequest/someone-elses", "continued")]
    assert_outcome(reconcile(client, episode, "intake", *decisions), 422, "business-rule",
                   "Parameters.parameter[medication][3].part[item]")
    assert search(client, "List") == []


@pytest.mark.parametrize("params,status,expression", [
    ([{"name": "phase", "valueCode": "midway"}], 400, "Parameters.parameter[phase]"),
    ([{"name": "phase", "valueCode": "intake"}], 400, "Parameters.parameter[reconciler]"),
    ([{"name": "phase", "valueCode": "intake"}, {"name": "reconciler", "valueReference": {"reference": "Practitioner/nobody"}}],
     422, "Parameters.parameter[reconciler]"),
    ([{"name": "phase", "valueCode": "intake"}, {"name": "reconciler", "valueReference": {"reference": "Patient/x"}}],
     400, "Parameters.parameter[reconciler]"),
    ([{"name": "phase", "valueCode": "intake"}, {"name": "who", "valueString": "me"}], 400, "Parameters.parameter[who]"),
])
def test_bad_parameters_are_refused(enrolled, params, status, expression):
    client, episode, _ = enrolled
    resp = client.post(f"/fhir/EpisodeOfCare/{episode['id']}/$reconcile-medications",
                       json={"resourceType": "Parameters", "parameter": params})
    assert_outcome(resp, status, expression=expression)
    assert search(client, "List") == []


def test_an_unknown_episode_is_404_and_get_is_not_allowed(enrolled):
    client, episode, orders = enrolled
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "phase", "valueCode": "discharge"},
        {"name": "reconciler", "valueReference": {"reference": "Practitioner/iop-pract-psychiatrist"}}]}
    assert_outcome(client.post("/fhir/EpisodeOfCare/nope/$reconcile-medications", json=params), 404)
    assert_outcome(client.get(f"/fhir/EpisodeOfCare/{episode['id']}/$reconcile-medications?phase=intake"), 405)


def with_statement(bundle: dict) -> dict:
    """journey-01 with a MedicationStatement (what the patient says she takes) among the referral's supporting info."""
    patient = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    statement = {"resourceType": "MedicationStatement", "status": "active",
                 "identifier": [{"system": "https://hospital.example.org/fhir/sid/med-statement", "value": "MS-2026-1"}],
                 "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                           "code": "310385", "display": "fluoxetine 20 MG Oral Capsule"}]},
                 "subject": {"reference": patient}, "dateAsserted": "2026-11-25"}
    url = "urn:uuid:9a0e3e36-8d0e-4c55-a6a1-6f2b1c3d4e5f"
    bundle["entry"].insert(0, {"fullUrl": url, "resource": statement, "request": {"method": "POST", "url": "MedicationStatement"}})
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "ServiceRequest":
            entry["resource"]["supportingInfo"].append({"reference": url, "display": "Fluoxetine (patient report)"})
    return bundle


def test_a_medication_statement_the_referral_brought_needs_its_decision(program):
    client = program
    episode = admitted(client, with_statement(referral_bundle()))
    orders = program_orders(client, episode)
    [statement] = search(client, f"MedicationStatement?subject={episode['patient']['reference']}")
    ref = f"MedicationStatement/{statement['id']}"
    body = assert_outcome(reconcile(client, episode, "intake", *intake_decisions(client, orders)), 422, "required",
                          "Parameters.parameter[medication]")
    assert ref in body["issue"][0]["diagnostics"]
    resp = reconcile(client, episode, "intake", *intake_decisions(client, orders), decision(ref, "stopped", note="Duplicate SSRI"))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert flags(resp.get_json())[ref] == "stopped"
