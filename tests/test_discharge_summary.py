"""EpisodeOfCare/[id]/$discharge-summary and the summary discharge writes: an iop-discharge-summary Composition with
the reason for referral, problems, latest scores, the reconciled discharge medications, the plan of care and the
support contacts, built from what is stored."""
from __future__ import annotations

from test_conformance import assert_valid
from test_referrals import search
from treatment_helpers import admitted, decision, intake_decisions, program_orders, reconcile

from helpers import assert_outcome, example, phq9, post, put

DS = "$discharge-summary"


def sections(composition: dict) -> dict[str, dict]:
    return {s["code"]["coding"][0]["code"]: s for s in composition["section"]}


def entries(section: dict) -> list[str]:
    return [e["reference"] for e in section.get("entry", [])]


def discharge(client, episode: dict, **extra) -> dict:
    current = client.get(f"/fhir/EpisodeOfCare/{episode['id']}").get_json()
    current.update(status="finished", period={"start": current["period"]["start"], "end": "2026-12-18"}, **extra)
    resp = put(client, f"EpisodeOfCare/{episode['id']}", current)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_the_summary_carries_referral_scores_reconciled_medications_plan_and_contacts(program, validator_url, ig_validator_url):
    client = program
    episode = admitted(client)
    orders = program_orders(client, episode)
    assert reconcile(client, episode, "intake", *intake_decisions(client, orders)).status_code == 200
    patient = episode["patient"]["reference"]
    for day, score in (("2026-12-01", 17), ("2026-12-15", 8)):
        assert post(client, "Observation", phq9(patient, score, f"{day}T18:00:00-06:00")).status_code == 201
    sister = dict(example("RelatedPerson-iop-relperson-1-spouse.json"), id="support-sister", patient=episode["patient"])
    assert put(client, "RelatedPerson/support-sister", sister).status_code == 201
    resp = reconcile(client, episode, "discharge", decision(orders["naltrexone"], "continued"),
                     decision(orders["sertraline"], "continued"), decision(orders["trazodone"], "stopped"),
                     date="2026-12-18T15:00:00-06:00")
    assert resp.status_code == 200
    listing = resp.get_json()

    resp = post(client, f"EpisodeOfCare/{episode['id']}/{DS}", {"resourceType": "Parameters", "parameter": [
        {"name": "author", "valueReference": {"reference": "Practitioner/iop-pract-therapist"}}]})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    summary = resp.get_json()
    assert summary["status"] == "preliminary"  # the enrollment is still active
    assert summary["author"] == [{"reference": "Practitioner/iop-pract-therapist"}]
    assert summary["custodian"]["reference"] == "Organization/iop-org-riverside"
    assert summary["event"][0]["detail"] == [{"reference": f"EpisodeOfCare/{episode['id']}"}]
    found = sections(summary)
    assert set(found) >= {"42349-1", "11450-4", "30954-2", "10160-0", "18776-5", "69730-0"}
    assert f"EpisodeOfCare/{episode['id']}" in entries(found["42349-1"])
    assert entries(found["10160-0"]) == [orders["naltrexone"], orders["sertraline"], orders["trazodone"]]
    assert "trazodone hydrochloride 50 MG Oral Tablet: stopped" in found["10160-0"]["text"]["div"]
    assert f"List/{listing['id']}" in found["10160-0"]["text"]["div"]
    assert "PHQ-9: 17 on 2026-12-01 to 8 on 2026-12-15" in found["30954-2"]["text"]["div"]
    assert "RelatedPerson/support-sister" in entries(found["69730-0"]) and "988" in found["69730-0"]["text"]["div"]
    assert_valid(validator_url, summary, "discharge summary")
    assert_valid(ig_validator_url, summary, "discharge summary")

    again = post(client, f"EpisodeOfCare/{episode['id']}/{DS}", {"resourceType": "Parameters"})
    assert again.get_json()["id"] == summary["id"] and again.get_json()["meta"]["versionId"] == "2"
    assert again.get_json()["author"] == [{"reference": "Practitioner/iop-pract-counselor"}]  # the care manager

    discharge(client, episode)  # a summary exists: discharge writes none, and the one stored stays
    [stored] = search(client, f"Composition?subject={patient}")
    assert stored["id"] == summary["id"] and stored["meta"]["versionId"] == "2"


def test_discharge_writes_a_final_summary_when_there_is_none(program, ig_validator_url):
    client = program
    episode = admitted(client)
    discharge(client, episode)
    [summary] = search(client, f"Composition?subject={episode['patient']['reference']}")
    assert summary["status"] == "final" and summary["identifier"]["value"] == f"DS-{episode['id']}"
    assert "not reconciled" in sections(summary)["10160-0"]["text"]["div"]
    assert_valid(ig_validator_url, summary, "discharge summary")


def test_bad_summary_requests_are_refused(program):
    client = program
    episode = admitted(client)
    url = f"EpisodeOfCare/{episode['id']}/{DS}"
    assert_outcome(post(client, url, {"resourceType": "Parameters", "parameter": [
        {"name": "author", "valueReference": {"reference": "Practitioner/nobody"}}]}), 422, expression="Parameters.parameter[author]")
    assert_outcome(post(client, url, {"resourceType": "Parameters", "parameter": [
        {"name": "author", "valueReference": {"reference": "Patient/x"}}]}), 400, expression="Parameters.parameter[author]")
    assert_outcome(post(client, url, {"resourceType": "Parameters", "parameter": [{"name": "style", "valueString": "x"}]}), 400)
    assert_outcome(post(client, f"EpisodeOfCare/nope/{DS}", {"resourceType": "Parameters"}), 404)
    assert search(client, "Composition") == []
