"""`flask sync pull`: the types an Endpoint pulls, read from the Medplum peer by _lastUpdated over real HTTP, written
through our write path; remote ids mapped through identifiers; the cursor follows commits; the aftercare loop closes."""
from __future__ import annotations

import json

import pytest
import requests
from exchange_helpers import careplan, endpoint, sync_rows
from subscription_helpers import deliver, fault
from test_exchange_aftercare import discharge, outputs

from helpers import put
from service import cursors


def on_peer(peer: str, body: dict) -> dict:
    response = requests.post(f"{peer}/{body['resourceType']}", json=body, headers={"Content-Type": "application/fhir+json"}, timeout=5)
    assert response.status_code == 201, response.text
    return response.json()


def pull(app, *args: str):
    return app.test_cli_runner().invoke(args=["sync", "pull", *args])


def search(client, query: str) -> list[dict]:
    return [e["resource"] for e in client.get(f"/fhir/{query}").get_json().get("entry", [])]


@pytest.fixture
def small_pages(app):
    settings = app.config["IOP"]
    before = settings["PULL_PAGE_SIZE"]
    settings["PULL_PAGE_SIZE"] = 2
    yield
    settings["PULL_PAGE_SIZE"] = before


def test_pull_follows_pages_maps_ids_through_identifiers_and_a_second_pull_changes_nothing(client, app, peer, small_pages):
    put(client, "Endpoint/partner", endpoint(peer, pull=["CarePlan"]))
    made = [on_peer(peer, careplan("remote-patient", f"plan {n}")) for n in range(5)]
    result = pull(app)
    assert result.exit_code == 0, result.output
    assert "Endpoint/partner CarePlan: 5 written, 0 unchanged, 0 skipped" in result.output
    for remote in made:
        [ours] = search(client, f"CarePlan?identifier={peer}/CarePlan|{remote['id']}")
        assert ours["title"] == remote["title"] and ours["id"] != remote["id"]
        assert ours["subject"]["reference"] == f"{peer}/Patient/remote-patient"  # not here: it still says where it is
    assert cursors.read(app.extensions["iop.db"], "sync-pull:Endpoint/partner/CarePlan") == made[-1]["meta"]["lastUpdated"]
    assert "0 written, 0 unchanged" in pull(app).output  # nothing changed there since the cursor
    changed = dict(made[2], title="plan 2, revised")
    requests.put(f"{peer}/CarePlan/{changed['id']}", json=changed, timeout=5).raise_for_status()
    assert "1 written" in pull(app).output
    [ours] = search(client, f"CarePlan?identifier={peer}/CarePlan|{changed['id']}")
    assert ours["title"] == "plan 2, revised" and ours["meta"]["versionId"] == "2"
    assert len(search(client, "CarePlan")) == 5


def test_what_we_refuse_is_skipped_and_counted_and_a_remote_outage_keeps_the_cursor(client, app, peer):
    put(client, "Endpoint/partner", endpoint(peer, pull=["CarePlan"]))
    on_peer(peer, careplan("p", "fine"))
    on_peer(peer, {"resourceType": "CarePlan", "status": "active", "intent": "plan", "title": "no subject"})  # subject is 1..1
    last = on_peer(peer, careplan("p", "fine too"))
    result = pull(app)
    assert "2 written, 0 unchanged, 1 skipped" in result.output, result.output
    row = cursors.row(app.extensions["iop.db"], "sync-pull:Endpoint/partner/CarePlan")
    assert row.value == last["meta"]["lastUpdated"] and row.error_count == 1 and "skipped: refused (400)" in row.last_error
    on_peer(peer, careplan("p", "later"))
    fault(peer, status=503, count=5, retryAfter="1")
    result = pull(app)
    assert result.exit_code == 1 and "stopped" in result.output and "HTTP 503" in result.output
    assert cursors.read(app.extensions["iop.db"], "sync-pull:Endpoint/partner/CarePlan") == last["meta"]["lastUpdated"]


def test_an_endpoint_that_cannot_pull_says_why(client, app, peer):
    put(client, "Endpoint/partner", endpoint(peer, push=["CarePlan"]))
    result = pull(app, "--endpoint", "partner")
    assert result.exit_code == 1 and "pulls no resource type" in result.output
    result = pull(app, "--endpoint", "nope")
    assert result.exit_code == 1 and "Endpoint/nope does not exist" in result.output
    listed = app.test_cli_runner().invoke(args=["sync", "endpoints"])
    assert "Endpoint/partner" in listed.output and "push [CarePlan] mode id" in listed.output


def test_the_provider_accepts_on_its_server_and_the_pull_closes_the_loop(client, app, peer):
    """Oakwood's EHR gets the aftercare transaction, accepts the Task there; the pull brings it back here."""
    discharge(client, app, peer)
    oakwood = client.get("/fhir/Endpoint/oakwood-ehr").get_json()
    put(client, "Endpoint/oakwood-ehr", endpoint(peer, id="oakwood-ehr", organization=oakwood["managingOrganization"]["reference"],
                                                 pull=["Task"]))
    assert deliver(app) == {"delivered": 2}
    ours = client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()
    assert "Task: 0 written, 2 unchanged" in pull(app).output  # the copies as we sent them: nothing new
    assert client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()["meta"]["versionId"] == ours["meta"]["versionId"]
    theirs = requests.get(f"{peer}/Task/iop-task-4-aftercare-therapy", timeout=5).json()
    theirs["status"] = "accepted"
    theirs["businessStatus"] = {"coding": [{"system": "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS", "code": "3.0",
                                            "display": "Service Request Accepted"}], "text": "First visit 2026-12-22"}
    requests.put(f"{peer}/Task/{theirs['id']}", data=json.dumps(theirs), headers={"Content-Type": "application/fhir+json"},
                 timeout=5).raise_for_status()
    result = pull(app)
    assert "Task: 1 written" in result.output, result.output
    task = client.get("/fhir/Task/iop-task-4-aftercare-therapy").get_json()
    assert task["status"] == "accepted" and task["meta"]["security"] == ours["meta"]["security"]
    assert outputs(client)["ServiceRequest/iop-aftercare-4-therapy"].endswith(" — aftercare accepted (First visit 2026-12-22)")
    assert [r.kind for r in sync_rows(app, "pending")] == []  # nothing echoed back to Oakwood
