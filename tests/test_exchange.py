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
