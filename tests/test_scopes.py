"""SMART v2 scopes on each interaction (type-level letters c r u d s): allowed with the letter, 403 naming the
scope without it; transaction entries, batch entries, _include and $everything.
Clients here are internal (the program's staff tools) so that only scopes decide, not 42 CFR Part 2 rules."""
from __future__ import annotations

import json

import pytest
from auth_helpers import bearer, make_client

from helpers import assert_outcome

PATIENT = {"resourceType": "Patient", "name": [{"family": "Scopetest"}], "gender": "other"}
PATCH = [{"op": "replace", "path": "/gender", "value": "female"}]


@pytest.fixture
def seeded(client):
    """Patient/p1 and an Observation about it, stored with auth off."""
    assert client.put("/fhir/Patient/p1", json={**PATIENT, "id": "p1"}).status_code == 201
    obs = {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}}
    assert client.put("/fhir/Observation/o1", json=obs).status_code == 201
    return client


def headers_for(auth_app, auth_client, scopes: str) -> dict:
    client_id, key = make_client(auth_app, "Staff tool", scopes, internal=True)
    return bearer(auth_client, auth_app, client_id, key)


# interaction → (method, path, body, content type, letters it needs on Patient)
CASES = {
    "read": ("GET", "/fhir/Patient/p1", None, None, "r"),
    "vread": ("GET", "/fhir/Patient/p1/_history/1", None, None, "r"),
    "instance history": ("GET", "/fhir/Patient/p1/_history", None, None, "r"),
    "search": ("GET", "/fhir/Patient?family=Scopetest", None, None, "s"),
    "search by POST": ("POST", "/fhir/Patient/_search", "family=Scopetest", "application/x-www-form-urlencoded", "s"),
    "type history": ("GET", "/fhir/Patient/_history", None, None, "s"),
    "create": ("POST", "/fhir/Patient", PATIENT, "application/fhir+json", "c"),
    "conditional create": ("POST", "/fhir/Patient?family=Nobody", PATIENT, "application/fhir+json", "cs"),
    "update": ("PUT", "/fhir/Patient/p1", {**PATIENT, "id": "p1"}, "application/fhir+json", "u"),
    "conditional update": ("PUT", "/fhir/Patient?family=Scopetest", {**PATIENT, "id": "p1"}, "application/fhir+json", "us"),
    "patch": ("PATCH", "/fhir/Patient/p1", PATCH, "application/json-patch+json", "u"),
    "delete": ("DELETE", "/fhir/Patient/p1", None, None, "d"),
    "conditional delete": ("DELETE", "/fhir/Patient?family=Scopetest", None, None, "ds"),
}


def _send(auth_client, method, path, body, ctype, headers):
    data = body if isinstance(body, str) or body is None else json.dumps(body)
    return auth_client.open(path, method=method, data=data, headers={**headers, **({"Content-Type": ctype} if ctype else {})})


@pytest.mark.parametrize("name", list(CASES))
def test_interaction_with_its_letters(auth_app, auth_client, seeded, name):
    method, path, body, ctype, letters = CASES[name]
    resp = _send(auth_client, method, path, body, ctype, headers_for(auth_app, auth_client, f"system/Patient.{letters}"))
    assert resp.status_code < 400, (name, resp.status_code, resp.get_data(as_text=True)[:300])


@pytest.mark.parametrize("name", list(CASES))
def test_interaction_without_one_of_its_letters(auth_app, auth_client, seeded, name):
    method, path, body, ctype, letters = CASES[name]
    for missing in letters:
        others = "".join(c for c in "cruds" if c != missing)
        resp = _send(auth_client, method, path, body, ctype, headers_for(auth_app, auth_client, f"system/Patient.{others} system/Observation.cruds"))
        assert_outcome(resp, 403, "forbidden")
        assert f"system/Patient.{missing}" in json.dumps(resp.get_json())
    # nothing changed
    assert seeded.get("/fhir/Patient/p1").get_json()["meta"]["versionId"] == "1"


def test_system_history_needs_a_wildcard_search_scope(auth_app, auth_client, seeded):
    assert_outcome(auth_client.get("/fhir/_history", headers=headers_for(auth_app, auth_client, "system/Patient.rs")), 403, "forbidden")
    assert auth_client.get("/fhir/_history", headers=headers_for(auth_app, auth_client, "system/*.s")).status_code == 200


def test_transaction_with_one_forbidden_entry_stores_nothing(auth_app, auth_client, seeded):
    headers = headers_for(auth_app, auth_client, "system/Patient.cruds")
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:11111111-1111-4111-8111-111111111111", "resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "y"}}, "request": {"method": "POST", "url": "Observation"}},
    ]}
    resp = auth_client.post("/fhir", json=bundle, headers=headers)
    assert_outcome(resp, 403, "forbidden")
    assert "system/Observation.c" in json.dumps(resp.get_json()) and "Bundle.entry[1]" in json.dumps(resp.get_json())
    assert seeded.get("/fhir/Patient?family=Scopetest").get_json()["total"] == 1


def test_batch_refuses_only_the_forbidden_entry(auth_app, auth_client, seeded):
    headers = headers_for(auth_app, auth_client, "system/Patient.cruds")
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": PATIENT, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Observation/o1"}},
        {"request": {"method": "GET", "url": "Patient/p1"}},
    ]}
    resp = auth_client.post("/fhir", json=bundle, headers=headers)
    assert resp.status_code == 200
    statuses = [e["response"]["status"] for e in resp.get_json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("403") and statuses[2].startswith("200")
    assert "system/Observation.r" in json.dumps(resp.get_json()["entry"][1]["response"]["outcome"])


def test_includes_of_unreadable_types_are_left_out(auth_app, auth_client, seeded):
    url = "/fhir/Observation?_id=o1&_include=Observation:subject"
    both = auth_client.get(url, headers=headers_for(auth_app, auth_client, "system/Observation.rs system/Patient.r")).get_json()
    assert [e["search"]["mode"] for e in both["entry"]] == ["match", "include"]
    only = auth_client.get(url, headers=headers_for(auth_app, auth_client, "system/Observation.rs")).get_json()
    modes = [e["search"]["mode"] for e in only["entry"]]
    assert modes == ["match", "outcome"]
    assert "Patient" in only["entry"][-1]["resource"]["issue"][0]["diagnostics"]
    rev = auth_client.get("/fhir/Patient?_id=p1&_revinclude=Observation:subject", headers=headers_for(auth_app, auth_client, "system/Patient.rs")).get_json()
    assert [e["search"]["mode"] for e in rev["entry"]] == ["match", "outcome"]


def test_everything_returns_only_readable_types(auth_app, auth_client, seeded):
    url = "/fhir/Patient/p1/$everything"
    full = auth_client.get(url, headers=headers_for(auth_app, auth_client, "system/Patient.r system/Observation.r")).get_json()
    assert {e["resource"]["resourceType"] for e in full["entry"]} == {"Patient", "Observation"}
    part = auth_client.get(url, headers=headers_for(auth_app, auth_client, "system/Patient.r")).get_json()
    assert {e["resource"]["resourceType"] for e in part["entry"]} == {"Patient"}
    asked = auth_client.get(url + "?_type=Observation", headers=headers_for(auth_app, auth_client, "system/Patient.r")).get_json()
    assert asked.get("entry", []) == []
    assert_outcome(auth_client.get(url, headers=headers_for(auth_app, auth_client, "system/Observation.r")), 403, "forbidden")


def test_operations_scopes(auth_app, auth_client, seeded):
    none = headers_for(auth_app, auth_client, "system/Observation.r")
    resp = auth_client.post("/fhir/Patient/$validate", json=PATIENT, headers=none)
    assert resp.status_code == 200  # $validate needs no data scope
    assert auth_client.get("/fhir/StructureDefinition?_count=1", headers=none).status_code == 200  # definitional
    assert_outcome(auth_client.post("/fhir/Task/t1/$triage", headers=none), 403, "forbidden")
    assert_outcome(auth_client.get("/fhir/Task/$referral-metrics", headers=none), 403, "forbidden")
    assert_outcome(auth_client.get("/fhir/Subscription/s1/$status", headers=none), 403, "forbidden")
    message = {"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader"}}]}
    resp = auth_client.post("/fhir/$process-message", json=message, headers=none)
    assert_outcome(resp, 403, "forbidden")
    assert "system/MessageHeader.c" in json.dumps(resp.get_json())


def test_wildcard_scope_allows_every_type(auth_app, auth_client, seeded):
    headers = headers_for(auth_app, auth_client, "system/*.rs")
    assert auth_client.get("/fhir/Observation/o1", headers=headers).status_code == 200
    assert auth_client.get("/fhir/Patient?family=Scopetest", headers=headers).status_code == 200
    assert_outcome(auth_client.delete("/fhir/Patient/p1", headers=headers), 403, "forbidden")


# ------------------------------------------------------------------------------- Subscription notification payloads
def _event_payloads(app) -> list[dict]:
    from sqlalchemy import select

    from service.db import get_db
    from service.tables import outbox_message
    with app.app_context(), get_db().read() as conn:
        rows = conn.execute(select(outbox_message.c.payload).where(outbox_message.c.kind == "event-notification")
                            .order_by(outbox_message.c.pk)).scalars()
        return [json.loads(p) for p in rows]


def test_full_resource_notifications_follow_the_subscribers_task_scope(app, client, auth_app, auth_client, seeded, peer_server):
    from subscription_helpers import deliver, reset, subscription, task

    from service import clients as registry
    from service.db import get_db

    client_id, key = make_client(auth_app, "Staff tool", "system/Subscription.cruds system/Task.rs", internal=True)
    headers = bearer(auth_client, auth_app, client_id, key)
    reset(peer_server)
    created = auth_client.post("/fhir/Subscription", json=subscription(f"{peer_server}/Bundle"), headers=headers)
    assert created.status_code == 201, created.get_json()
    deliver(app)  # the handshake: the Subscription is active
    assert client.post("/fhir/Task", json=task()).status_code == 201
    first = _event_payloads(app)[-1]
    assert first["entry"][1]["resource"]["resourceType"] == "Task"  # full-resource: the client may read Tasks
    with auth_app.app_context(), get_db().write() as conn:  # the operator narrows the client's scopes
        conn.execute(registry.auth_client.update().where(registry.auth_client.c.client_id == client_id).values(scopes="system/Subscription.cruds"))
    assert client.post("/fhir/Task", json=task()).status_code == 201
    second = _event_payloads(app)[-1]
    assert "resource" not in second["entry"][1] and "/Task/" in second["entry"][1]["fullUrl"]  # id-only
    with auth_app.app_context(), get_db().write() as conn:
        registry.set_status(conn, client_id, registry.DISABLED)
        conn.execute(registry.auth_client.update().where(registry.auth_client.c.client_id == client_id).values(scopes="system/*.cruds"))
    assert client.post("/fhir/Task", json=task()).status_code == 201
    assert "resource" not in _event_payloads(app)[-1]["entry"][1]  # a disabled client's Subscription: ids only


def test_subscription_created_with_auth_off_keeps_its_payload(client, app, seeded, peer_server):
    from subscription_helpers import reset, subscribe, task

    reset(peer_server)
    subscribe(client, app, peer_server)
    assert client.post("/fhir/Task", json=task()).status_code == 201
    assert _event_payloads(app)[-1]["entry"][1]["resource"]["resourceType"] == "Task"
