"""Outbound sync to a partner EHR (the Medplum memory peer over real HTTP): PUT by id or identifier, order, consent, audit."""
from __future__ import annotations

import time

import requests
from exchange_helpers import careplan, endpoint, peer_history, peer_read, peer_writes, sync_rows
from subscription_helpers import deliver, fault, later

from helpers import patient, post, put


def test_a_careplan_change_is_put_on_the_partner_by_id(client, app, peer):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))
    pid = post(client, "Patient", patient()).get_json()["id"]
    cp = post(client, "CarePlan", careplan(pid, "v1")).get_json()
    assert [(r.kind, r.status) for r in sync_rows(app)] == [("update", "pending")]
    assert deliver(app) == {"delivered": 1}
    copy = peer_read(peer, f"CarePlan/{cp['id']}")
    assert copy["title"] == "v1"
    assert {"system": "http://localhost/fhir/CarePlan", "value": cp["id"], "use": "secondary"} in copy["identifier"]
    assert copy["meta"]["source"] == f"http://localhost/fhir/CarePlan/{cp['id']}/_history/1"
    put(client, f"CarePlan/{cp['id']}", careplan(pid, "v2", id=cp["id"]))
    assert deliver(app) == {"delivered": 1}
    assert [v["title"] for v in peer_history(peer, f"CarePlan/{cp['id']}")] == ["v1", "v2"]


def test_a_retried_version_that_already_arrived_is_not_written_again(client, app, peer):
    """The peer stored it but answered too late: the second attempt reads the copy and records it delivered."""
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"], timeout=0.3))
    pid = post(client, "Patient", patient()).get_json()["id"]
    cp = post(client, "CarePlan", careplan(pid, "v1")).get_json()
    fault(peer, status=0, count=1, delayMs=1500, match="PUT ")
    assert deliver(app) == {"pending": 1}
    assert "timed out" in sync_rows(app)[0].last_error.lower() or "timeout" in sync_rows(app)[0].last_error.lower()
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))  # the usual timeouts again (a slow machine reads slowly)
    time.sleep(1.6)  # the slow PUT completes at the peer
    assert deliver(app, now=later(1)) == {"delivered": 1}
    assert len(peer_history(peer, f"CarePlan/{cp['id']}")) == 1
    assert [r["method"] for r in peer_writes(peer)] == ["PUT"]  # the retry read, and did not write


def test_identifier_mode_lets_the_partner_keep_its_own_ids(client, app, peer):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"], mode="identifier"))
    pid = post(client, "Patient", patient()).get_json()["id"]
    cp = post(client, "CarePlan", careplan(pid, "v1")).get_json()
    put(client, f"CarePlan/{cp['id']}", careplan(pid, "v2", id=cp["id"]))
    assert deliver(app) == {"delivered": 2}
    found = requests.get(f"{peer}/CarePlan", params={"identifier": f"http://localhost/fhir/CarePlan|{cp['id']}"}, timeout=5).json()
    assert [e["resource"]["title"] for e in found["entry"]] == ["v2"]
    assert found["entry"][0]["resource"]["id"] != cp["id"]


def test_a_delete_is_sent_and_a_missing_copy_counts_as_deleted(client, app, peer):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))
    pid = post(client, "Patient", patient()).get_json()["id"]
    kept = post(client, "CarePlan", careplan(pid, "kept")).get_json()
    gone = post(client, "CarePlan", careplan(pid, "gone")).get_json()
    assert deliver(app) == {"delivered": 2}
    assert client.delete(f"/fhir/CarePlan/{gone['id']}").status_code in (200, 204)
    requests.delete(f"{peer}/CarePlan/{kept['id']}", timeout=5)  # the partner removed it already
    assert client.delete(f"/fhir/CarePlan/{kept['id']}").status_code in (200, 204)
    assert [r.kind for r in sync_rows(app, "pending")] == ["delete", "delete"]
    assert deliver(app) == {"delivered": 2}
    assert requests.get(f"{peer}/CarePlan/{gone['id']}", timeout=5).status_code in (404, 410)  # Medplum: 404


def test_a_misconfigured_or_inactive_endpoint_gets_nothing_and_says_why(client, app, peer):
    bad = endpoint(peer, push=["AuditEvent"])
    assert put(client, "Endpoint/partner", bad).status_code == 201
    no_direction = endpoint(peer, id="other")
    no_direction["extension"].append({"url": "https://iop.example.org/fhir/StructureDefinition/endpoint-sync",
                                      "extension": [{"url": "type", "valueCode": "CarePlan"}]})
    assert put(client, "Endpoint/other", no_direction).status_code == 201
    pid = post(client, "Patient", patient()).get_json()["id"]
    post(client, "CarePlan", careplan(pid, "v1"))
    assert sync_rows(app) == []
    listed = app.test_cli_runner().invoke(args=["sync", "endpoints"]).output
    assert "Endpoint/partner\tunusable: Endpoint/partner: https://iop.example.org/fhir/StructureDefinition/endpoint-sync type 'AuditEvent' cannot be synced" in listed
    assert "Endpoint/other\tunusable: Endpoint/other: https://iop.example.org/fhir/StructureDefinition/endpoint-sync needs one direction" in listed
    # an Endpoint switched off after a change was queued: the message is cancelled with the reason
    good = endpoint(peer, push=["CarePlan"])
    assert put(client, "Endpoint/partner", good).status_code == 200
    post(client, "CarePlan", careplan(pid, "v2"))
    assert put(client, "Endpoint/partner", dict(good, status="off")).status_code == 200
    assert deliver(app) == {"cancelled": 1}
    assert "Endpoint/partner is not active" in sync_rows(app, "cancelled")[0].last_error
