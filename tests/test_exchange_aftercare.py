"""Discharge to aftercare (the Medplum peer is Oakwood's EHR): a transaction per aftercare referral, only under a
42 CFR Part 2 consent naming the recipient; held (and why) otherwise; audited; the loop closes on the referral Task."""
from __future__ import annotations

import json

import requests
from exchange_helpers import endpoint, peer_read, sync_rows
from subscription_helpers import deliver

from helpers import EXAMPLES, load_examples, post, put

OAKWOOD = "Organization/aftercare-org-oakwood"
SENT = ["Patient", "ServiceRequest", "Task", "Composition", "DocumentReference"]


def journey(client, *names: str) -> None:
    for name in names:
        bundle = json.loads((EXAMPLES / f"journey-{name}.json").read_text())
        response = post(client, "", bundle)
        assert response.status_code == 200, (name, response.get_data(as_text=True)[:500])


def discharge(client, app, peer, *, consent_names_oakwood: bool = True) -> None:
    """Journeys 01-09 (referral to aftercare referrals), Oakwood's Endpoint, then journey 10 (discharge)."""
    load_examples(app, skip=("Bundle",))
    journey(client, "01-referral", "02-triage-accept", "03-enrollment", "04-careplan", "05-medications", "06-week1-sessions",
            "07-week2-sessions", "08-week3-sessions", "09-aftercare-referrals")
    put(client, "Endpoint/oakwood-ehr", endpoint(peer, id="oakwood-ehr", organization=OAKWOOD))
    consent = client.get("/fhir/Consent/iop-consent-4-tpo").get_json()
    consent["provision"]["period"] = {"start": "2020-01-01"}  # in effect today (the journeys are dated in the future)
    if not consent_names_oakwood:
        consent["provision"]["actor"] = [a for a in consent["provision"]["actor"] if a["reference"]["reference"] != OAKWOOD]
    assert put(client, "Consent/iop-consent-4-tpo", consent).status_code == 200
    journey(client, "10-discharge")


def on_peer(peer: str, key: str) -> dict | None:
    response = requests.get(f"{peer}/{key}", timeout=5)
    return response.json() if response.status_code == 200 else None


def test_discharge_sends_each_aftercare_referral_with_the_summary_when_the_consent_names_the_provider(client, app, peer):
    discharge(client, app, peer)
    queued = sync_rows(app)
    assert [r.last_error for r in queued] == [None, None]
    assert [(r.kind, r.status, r.target) for r in queued] == [("aftercare", "pending", "Endpoint/oakwood-ehr")] * 2  # Harbor has no Endpoint
    assert deliver(app) == {"delivered": 2}
    for service in ("therapy", "psychiatry"):
        assert on_peer(peer, f"ServiceRequest/iop-aftercare-4-{service}")["performer"][0]["reference"] == OAKWOOD
        task = on_peer(peer, f"Task/iop-task-4-aftercare-{service}")
        assert task["focus"]["reference"] == f"ServiceRequest/iop-aftercare-4-{service}"
        ours = client.get(f"/fhir/Task/iop-task-4-aftercare-{service}").get_json()
        assert ours["businessStatus"]["text"].startswith("Sent to Oakwood Community Counseling (Endpoint/oakwood-ehr)")
    assert on_peer(peer, "Composition/iop-discharge-summary-4")["status"] == "final"
    assert on_peer(peer, "DocumentReference/iop-discharge-doc-4") is not None
    assert on_peer(peer, "MedicationRequest/iop-medrx-4-naltrexone") is not None  # what the summary's sections reference
    assert on_peer(peer, "Task/iop-task-4-aftercare-peer") is None  # Harbor's referral did not go to Oakwood
    disclosures = client.get("/fhir/AuditEvent?subtype=http://dicom.nema.org/resources/ontology/DCM|110106&outcome=0").get_json()
    sent = [e["resource"] for e in disclosures.get("entry", []) if "Endpoint/oakwood-ehr" in e["resource"].get("outcomeDesc", "")]
    assert len(sent) == 2 and all(e["outcomeDesc"].startswith(f"sent to {OAKWOOD} at Endpoint/oakwood-ehr") for e in sent)
    assert any(ent["what"]["reference"].startswith("Composition/iop-discharge-summary-4") for ent in sent[0]["entity"])


def test_without_a_consent_naming_the_provider_nothing_leaves_and_the_operator_sees_why(client, app, peer):
    discharge(client, app, peer, consent_names_oakwood=False)
    held = sync_rows(app, "held")
    assert len(held) == 2
    assert all(r.last_error.startswith(f"no active 42 CFR Part 2 consent names {OAKWOOD} as recipient for TREAT (patient Patient/")
               for r in held)
    assert deliver(app) == {}
    assert requests.get(f"{peer.rsplit('/fhir', 1)[0]}/_peer/dump", timeout=5).json().get("entry", []) == []
    task = client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()
    assert task["statusReason"]["text"].startswith("Held, not sent to Organization/aftercare-org-oakwood: no active 42 CFR Part 2")
    assert task["businessStatus"]["text"] == task["statusReason"]["text"]
    listed = app.test_cli_runner().invoke(args=["outbox", "list", "--status", "held"])
    assert listed.exit_code == 0 and listed.output.count("\theld\t") == 2
    assert listed.output.count(f"no active 42 CFR Part 2 consent names {OAKWOOD} as recipient") == 2  # within the listed 100 characters
    # the patient consents; the operator sends them again
    consent = client.get("/fhir/Consent/iop-consent-4-tpo").get_json()
    consent["provision"]["actor"].append({"role": consent["provision"]["actor"][0]["role"], "reference": {"reference": OAKWOOD}})
    assert put(client, "Consent/iop-consent-4-tpo", consent).status_code == 200
    for row in held:
        assert app.test_cli_runner().invoke(args=["outbox", "retry", str(row.pk)]).exit_code == 0
    assert deliver(app) == {"delivered": 2}
    assert peer_read(peer, "Task/iop-task-4-aftercare-therapy")["status"] == "requested"
    task = client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()
    assert "statusReason" not in task and task["businessStatus"]["text"].startswith("Sent to ")


def test_a_consent_revoked_before_delivery_holds_the_row_when_it_is_sent(client, app, peer):
    discharge(client, app, peer)
    consent = client.get("/fhir/Consent/iop-consent-4-tpo").get_json()
    consent["status"] = "inactive"
    assert put(client, "Consent/iop-consent-4-tpo", consent).status_code == 200
    assert deliver(app) == {"held": 2}
    assert requests.get(f"{peer.rsplit('/fhir', 1)[0]}/_peer/dump", timeout=5).json().get("entry", []) == []
    refused = client.get("/fhir/AuditEvent?subtype=http://dicom.nema.org/resources/ontology/DCM|110106&outcome=4").get_json()
    assert len([e for e in refused.get("entry", []) if f"held, not sent to {OAKWOOD} at Endpoint/oakwood-ehr" in e["resource"]["outcomeDesc"]]) == 2


def test_aftercare_outcomes_roll_up_into_the_referral_task(client, app, peer):
    """Oakwood accepts therapy and declines psychiatry (journey 11), then completes therapy with a first visit (12)."""
    discharge(client, app, peer)
    journey(client, "11-aftercare-responses")
    rolled = outputs(client)
    assert rolled["ServiceRequest/iop-aftercare-4-therapy"].endswith(" — aftercare accepted (Accepted; first appointment booked for 2026-12-22)")
    assert " — aftercare rejected" in rolled["ServiceRequest/iop-aftercare-4-psychiatry"]
    assert " — aftercare accepted" in rolled["ServiceRequest/iop-aftercare-4-peer"]
    journey(client, "12-aftercare-outcome")
    rolled = outputs(client)
    assert " — aftercare completed" in rolled["ServiceRequest/iop-aftercare-4-therapy"]
    assert rolled["ServiceRequest/iop-aftercare-4-therapy"].count(" — aftercare ") == 1
    assert any(ref.startswith("Encounter/") and "iop-aftercare-4-therapy" in text for ref, text in rolled.items())  # the first visit
    assert client.get("/fhir/Task/iop-task-4-referral").get_json()["status"] == "completed"


def outputs(client) -> dict[str, str]:
    referral = client.get("/fhir/Task/iop-task-4-referral").get_json()
    return {o["valueReference"]["reference"]: o["type"].get("text", "") for o in referral["output"]}


def test_a_misconfigured_provider_endpoint_does_not_stop_the_discharge_and_the_task_says_why(client, app, peer):
    load_examples(app, skip=("Bundle",))
    journey(client, "01-referral", "02-triage-accept", "03-enrollment", "04-careplan", "05-medications", "06-week1-sessions",
            "07-week2-sessions", "08-week3-sessions", "09-aftercare-referrals")
    broken = endpoint(peer, id="oakwood-ehr", organization=OAKWOOD)
    broken["extension"].append({"url": "https://iop.example.org/fhir/StructureDefinition/endpoint-token-env", "valueString": "HOME"})
    assert put(client, "Endpoint/oakwood-ehr", broken).status_code == 201
    journey(client, "10-discharge")
    assert sync_rows(app) == []
    task = client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()
    assert task["statusReason"]["text"].startswith(f"Not sent to {OAKWOOD}: Endpoint/oakwood-ehr")
    assert client.get("/fhir/EpisodeOfCare/iop-eoc-4").get_json()["status"] == "finished"
