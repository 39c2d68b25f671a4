"""The audit trail (service/audit.py, audit_chain.py): an AuditEvent for every interaction, append-only, chained."""
from __future__ import annotations

import base64
import json
import threading
from urllib.parse import quote

import pytest
import requests
from fhir.resources.R4B.auditevent import AuditEvent
from sqlalchemy import text

from helpers import FHIR, assert_outcome, created, patient, post, put
from service import audit, audit_chain, repository
from service.access import Access, Scope

AGENT = f"{audit.CLIENT_ID_SYSTEM}|development"
INTERACTION = "http://hl7.org/fhir/restful-interaction"


def events(client, query: str) -> list[dict]:
    """AuditEvents matching `query`, oldest first, after writing the waiting read audits."""
    audit.flush_all()
    body = client.get(f"/fhir/AuditEvent?{query}&_count=200").get_json()
    found = [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]
    return sorted(found, key=lambda e: (e["recorded"], e["meta"]["lastUpdated"]))


def subtypes(ev: dict) -> list[str]:
    return [c["code"] for c in ev["subtype"]]


def whats(ev: dict) -> list[str]:
    return [e["what"]["reference"] for e in ev.get("entity", []) if "what" in e]


def new_patient(client, mrn: str = "A-1") -> str:
    return created(post(client, "Patient", patient(mrn=mrn)))["id"]


def verify(app) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["audit", "verify"])
    return result.exit_code, result.output


# ------------------------------------------------------------------------------- writes
def test_create_update_patch_delete_each_leave_one_event_in_the_write_transaction(client):
    pid = new_patient(client)
    body = client.get(f"/fhir/Patient/{pid}").get_json()
    assert put(client, f"Patient/{pid}", dict(body, gender="other")).status_code == 200
    patched = client.patch(f"/fhir/Patient/{pid}", data=json.dumps([{"op": "add", "path": "/active", "value": True}]),
                           headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204

    writes = [e for e in events(client, f"entity=Patient/{pid}") if e["action"] != "R"]
    assert [(e["action"], subtypes(e)[0], whats(e)) for e in writes] == [
        ("C", "create", [f"Patient/{pid}/_history/1"]), ("U", "update", [f"Patient/{pid}/_history/2"]),
        ("U", "update", [f"Patient/{pid}/_history/3"]), ("D", "delete", [f"Patient/{pid}/_history/4"])]
    ev = writes[0]
    assert ev["type"]["code"] == "rest" and ev["outcome"] == "0"
    assert ev["agent"][0]["who"]["identifier"] == {"system": audit.CLIENT_ID_SYSTEM, "value": "development"}
    assert ev["agent"][0]["requestor"] is True
    assert ev["purposeOfEvent"][0]["coding"][0] == {"system": audit.ACT_REASON, "code": "TREAT"}
    assert ev["entity"][0]["role"]["code"] == "1"  # a Patient is the patient entity (object-role 1)
    assert ev["source"]["observer"]["display"]
    AuditEvent.model_validate(ev)  # a valid R4(B) AuditEvent


def test_every_resource_of_a_transaction_is_audited_once(client):
    entries = [{"fullUrl": f"urn:uuid:{i:08d}-0000-4000-8000-000000000000", "resource": patient(mrn=f"T-{i}"),
                "request": {"method": "POST", "url": "Patient"}} for i in range(3)]
    resp = post(client, "", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert resp.status_code == 200
    ids = [e["response"]["location"].split("/")[1] for e in resp.get_json()["entry"]]
    creates = events(client, "action=C")
    assert sorted(w for e in creates for w in whats(e)) == sorted(f"Patient/{i}/_history/1" for i in ids)


def test_a_rolled_back_write_leaves_no_write_audit_but_its_failure_is_audited(client):
    bad = {"resourceType": "Patient", "gender": "not-a-gender"}
    entries = [{"resource": patient(mrn="RB-1"), "request": {"method": "POST", "url": "Patient"}},
               {"resource": bad, "request": {"method": "POST", "url": "Patient"}}]
    resp = post(client, "", {"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert resp.status_code == 400
    assert events(client, "action=C") == []
    failed = events(client, "subtype=transaction")
    assert len(failed) == 1 and failed[0]["outcome"] == "4" and failed[0]["outcomeDesc"]
    assert client.get("/fhir/Patient").get_json()["total"] == 0


def test_a_write_that_changes_nothing_is_still_audited(client):
    pid = new_patient(client)
    body = client.get(f"/fhir/Patient/{pid}").get_json()
    assert put(client, f"Patient/{pid}", body).status_code == 200  # no new version
    updates = [e for e in events(client, f"entity=Patient/{pid}") if subtypes(e)[0] == "update"]
    assert len(updates) == 1 and updates[0]["outcome"] == "0"


# ------------------------------------------------------------------------------- reads, searches, operations
def test_read_vread_search_history_and_operations_are_audited(client):
    pid = new_patient(client)
    assert client.get(f"/fhir/Patient/{pid}").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/_history").status_code == 200
    assert client.get("/fhir/Patient?identifier=A-1&_count=5").status_code == 200
    assert client.post("/fhir/Patient/_search", data={"gender": "male"}).status_code == 200
    assert client.get(f"/fhir/Patient/{pid}/$everything").status_code == 200

    read, vread = events(client, "subtype=read"), events(client, "subtype=vread")
    assert [(e["action"], whats(e)) for e in read] == [("R", [f"Patient/{pid}/_history/1"])]
    assert [whats(e) for e in vread] == [[f"Patient/{pid}/_history/1"]]
    assert [whats(e) for e in events(client, "subtype=history-instance")] == [[f"Patient/{pid}"]]
    searches = events(client, "subtype=search-type")
    queries = [base64.b64decode(e["entity"][0]["query"]).decode() for e in searches]
    queries = [q for q in queries if "_count=200" not in q]  # not the test's own searches of the audit trail
    assert queries == ["identifier=A-1&_count=5", "gender=male"]
    assert all(e["action"] == "E" and e["entity"][0]["role"]["code"] == "24" for e in searches)
    op = events(client, "subtype=operation")
    assert len(op) == 1 and op[0]["action"] == "E" and whats(op[0]) == [f"Patient/{pid}"]
    for ev in read + searches + op:
        AuditEvent.model_validate(ev)


def test_a_failed_read_is_audited_with_its_outcome(client):
    assert_outcome(client.get("/fhir/Patient/nobody"), 404)
    [ev] = events(client, "subtype=read")
    assert ev["outcome"] == "4" and "nobody" in ev["outcomeDesc"] and whats(ev) == ["Patient/nobody"]


def test_audit_events_are_searchable_by_entity_agent_date_subtype_and_outcome(client):
    pid = new_patient(client)
    client.get(f"/fhir/Patient/{pid}")
    audit.flush_all()
    assert len(events(client, f"entity=Patient/{pid}")) == 2
    assert len(events(client, f"agent:identifier={quote(AGENT)}&entity=Patient/{pid}")) == 2
    assert len(events(client, f"subtype={INTERACTION}|read&outcome=0&date=ge2020-01-01")) == 1
    assert events(client, "outcome=8") == []


# ------------------------------------------------------------------------------- disclosures and refusals (the API)
LABELLED = {"resourceType": "Condition", "id": "sud", "meta": {"versionId": "2", "security": [
    {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "42CFRPart2"},
    {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}


def _stored(resource: dict) -> repository.Stored:
    return repository.Stored(1, resource["resourceType"], resource["id"], 2, None, False, json.dumps(resource))  # type: ignore[arg-type]


def test_an_external_client_served_part2_data_is_a_disclosure(app, client):
    outside = Access("hospital-1", (Scope("system", "*", "rs"),), "Organization/hosp", False, "TREAT")
    with app.test_request_context("/fhir/Condition/sud"):
        from service import access
        access.set_current(outside)
        audit.record_access("read", [_stored(LABELLED)], 0)
        audit.record_refusal([_stored(LABELLED)], "No active 42 CFR Part 2 consent covers Organization/hosp")
    disclosed = events(client, "subtype=http://dicom.nema.org/resources/ontology/DCM|110106")
    assert len(disclosed) == 2
    served, refused = sorted(disclosed, key=lambda e: e["outcome"])
    assert served["entity"][0]["securityLabel"] == LABELLED["meta"]["security"]
    assert served["agent"][0]["who"]["identifier"]["value"] == "hospital-1"
    assert served["agent"][1]["who"]["reference"] == "Organization/hosp"
    assert refused["outcome"] == "4" and "consent" in refused["outcomeDesc"]
    AuditEvent.model_validate(served)


def test_inside_the_program_labelled_data_is_not_a_disclosure(app, client):
    with app.test_request_context("/fhir/Condition/sud"):
        audit.record_access("read", [_stored(LABELLED)], 0)
    [ev] = events(client, "subtype=read")
    assert "110106" not in subtypes(ev) and "securityLabel" not in ev["entity"][0]


def test_the_buffer_writes_what_it_holds_and_reports_how_many(app):
    with app.test_request_context("/fhir/Patient/x"):
        for _ in range(3):
            audit.record_access("read", ["Patient/x"], 0)
    assert audit.flush(app) == 3
    assert audit.flush(app) == 0


def test_a_large_batch_of_read_audits_is_stored_searchable_and_chained(app, client):
    with app.test_request_context("/fhir/Patient/x"):
        for i in range(audit_chain.FEW * 3):
            audit.record_access("read", [f"Patient/p{i}/_history/1"], 0)
    assert audit.flush(app) == audit_chain.FEW * 3
    assert whats(events(client, "entity=Patient/p7")[0]) == ["Patient/p7/_history/1"]
    assert verify(app) == (0, f"OK: {audit_chain.FEW * 3 + 1} audit events, chain intact\n")  # and the search


# ------------------------------------------------------------------------------- append-only through the API
def _audit_event_body() -> dict:
    return {"resourceType": "AuditEvent", "id": "forged", "type": audit.REST, "recorded": "2026-01-01T00:00:00Z",
            "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}


@pytest.mark.parametrize("method,path", [
    ("POST", "AuditEvent"), ("PUT", "AuditEvent/forged"), ("PUT", "AuditEvent?outcome=0"),
    ("PATCH", "AuditEvent/forged"), ("PATCH", "AuditEvent?outcome=0"), ("DELETE", "AuditEvent/forged"),
    ("DELETE", "AuditEvent?outcome=0")])
def test_audit_events_cannot_be_written_through_rest(client, method, path):
    new_patient(client)  # there is an AuditEvent to aim at
    [target] = events(client, "outcome=0")
    path = path.replace("forged", target["id"])
    ctype = "application/json-patch+json" if method == "PATCH" else FHIR
    body = [{"op": "replace", "path": "/outcome", "value": "8"}] if method == "PATCH" else dict(_audit_event_body(), id=target["id"])
    resp = client.open(f"/fhir/{path}", method=method, data=json.dumps(body), headers={"Content-Type": ctype})
    assert_outcome(resp, 405, "not-supported")
    assert client.get(f"/fhir/AuditEvent/{target['id']}").get_json() == target
    assert all(e["outcome"] != "8" for e in events(client, "_count=200"))


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize("request_", [{"method": "POST", "url": "AuditEvent"}, {"method": "PUT", "url": "AuditEvent/forged"},
                                      {"method": "PUT", "url": "AuditEvent?outcome=0"},
                                      {"method": "DELETE", "url": "AuditEvent?outcome=0"}])
def test_audit_events_cannot_be_written_in_a_bundle(client, kind, request_):
    new_patient(client)
    before = events(client, "action=C")
    entry = {"request": request_} | ({} if request_["method"] == "DELETE" else {"resource": _audit_event_body()})
    resp = post(client, "", {"resourceType": "Bundle", "type": kind, "entry": [entry]})
    if kind == "transaction":
        assert_outcome(resp, 405, "not-supported")
    else:
        assert resp.status_code == 200 and resp.get_json()["entry"][0]["response"]["status"].startswith("405")
    assert client.get("/fhir/AuditEvent/forged").status_code == 404
    assert events(client, "action=C") == before


# ------------------------------------------------------------------------------- the hash chain
def sql(app, statement: str, **params) -> None:
    with app.extensions["iop.db"].write() as conn:
        conn.execute(text(statement), params)


def test_verify_is_ok_then_finds_a_changed_event(app, client):
    pid = new_patient(client)
    client.get(f"/fhir/Patient/{pid}")
    audit.flush_all()
    code, output = verify(app)
    assert code == 0 and "OK: 2 audit events" in output
    [created_ev] = events(client, "action=C")
    assert created_ev["id"] == "1"  # an event's id is its link in the chain
    with app.extensions["iop.db"].read() as conn:
        stored = conn.execute(text("SELECT event FROM audit_log WHERE seq = 1")).scalar_one()
    assert '"o":"0"' in stored  # the compact record (service/audit_log.py)
    sql(app, "UPDATE audit_log SET event = :e WHERE seq = 1", e=stored.replace('"o":"0"', '"o":"4"'))
    code, output = verify(app)
    assert code == 1 and "BROKEN at link 1" in output and "AuditEvent/1 was changed" in output


def test_verify_finds_a_changed_search_column_and_entity_row(app, client):
    pid = new_patient(client)
    sql(app, "UPDATE audit_log SET outcome = '4' WHERE seq = 1")  # the event would no longer be found as outcome=0
    code, output = verify(app)
    assert code == 1 and "AuditEvent/1: its search columns (outcome) differ" in output
    sql(app, "UPDATE audit_log SET outcome = '0' WHERE seq = 1")
    assert verify(app)[0] == 0
    sql(app, "DELETE FROM audit_log_entity WHERE reference = :r", r=f"Patient/{pid}")  # hidden from entity=
    code, output = verify(app)
    assert code == 1 and "an entity it names is missing" in output
    sql(app, "INSERT INTO audit_log_entity (reference, seq) VALUES (:r, 1), ('Patient/other', 1)", r=f"Patient/{pid}")
    code, output = verify(app)  # an entity row pointing a search at an event that does not name it
    assert code == 1 and "audit_log_entity holds 2 rows, the events name 1" in output


def test_verify_finds_a_deleted_link(app, client):
    for mrn in ("D-1", "D-2", "D-3"):
        new_patient(client, mrn)
    sql(app, "DELETE FROM audit_log WHERE seq = 2")
    code, output = verify(app)
    assert code == 1 and "BROKEN at link 2" in output and "link 2 is missing" in output
    sql(app, "DELETE FROM audit_log WHERE seq = 1")
    assert "link 1 is missing" in verify(app)[1]
    sql(app, "DELETE FROM audit_log")
    sql(app, "DELETE FROM audit_log_entity")
    assert verify(app) == (0, "OK: 0 audit events, chain intact\n")


def test_concurrent_writers_and_readers_keep_one_valid_chain(app, live_server):
    def work(n: int) -> None:
        with requests.Session() as s:
            for i in range(6):
                r = s.post(f"{live_server}/Patient", json=patient(mrn=f"C-{n}-{i}"), headers={"Content-Type": FHIR}, timeout=30)
                assert r.status_code == 201
                assert s.get(f"{live_server}/Patient/{r.json()['id']}", timeout=30).status_code == 200

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    audit.flush_all()
    code, output = verify(app)
    assert code == 0 and "OK: 48 audit events" in output, output


def test_the_capability_statement_declares_audit_events_read_only(client):
    rest = client.get("/fhir/metadata").get_json()["rest"][0]
    [declared] = [r for r in rest["resource"] if r["type"] == "AuditEvent"]
    assert {i["code"] for i in declared["interaction"]} == {"read", "vread", "search-type", "history-instance", "history-type"}
    assert declared["conditionalCreate"] is False and declared["conditionalDelete"] == "not-supported"


def test_an_authorized_client_is_the_agent_and_a_refused_scope_is_audited(client, auth_app, auth_client):
    from auth_helpers import bearer, make_client

    client_id, key = make_client(auth_app, "Hospital reader", "system/Patient.rs", organization="Organization/hosp")
    headers = bearer(auth_client, auth_app, client_id, key)
    assert auth_client.get("/fhir/Patient?identifier=x", headers=headers).status_code == 200
    assert_outcome(auth_client.get("/fhir/Task", headers=headers), 403)
    mine = events(client, f"agent:identifier={quote(audit.CLIENT_ID_SYSTEM)}|{client_id}")  # the staff's view of the trail
    assert [(subtypes(e)[0], e["outcome"]) for e in mine] == [("search-type", "0"), ("search-type", "4")]
    assert mine[0]["agent"][1]["who"]["reference"] == "Organization/hosp"
    assert "Task" in mine[1]["outcomeDesc"]


# ------------------------------------------------------------------------------- AuditEvent through the API (the log)
def record_reads(app, n: int, prefix: str = "p") -> None:
    with app.test_request_context("/fhir/Patient/x"):
        for i in range(n):
            audit.record_access("read", [f"Patient/{prefix}{i}/_history/1"], 0)
    audit.flush(app)


@pytest.mark.parametrize("query,named", [
    ("address=127.0.0.1", "address"), ("entity-name=x", "entity-name"), ("_sort=-date", "_sort"),
    ("entity:missing=true", "entity:missing"), ("agent:text=x", "agent:text"), ("_include=AuditEvent:agent", "_include"),
    ("_elements=id", "_elements"), ("_summary=true", "_summary"), ("_has:Patient:link:name=x", "_has:Patient:link:name")])
def test_an_unsupported_search_parameter_is_refused_by_name(client, query, named):
    resp = client.get(f"/fhir/AuditEvent?{query}")
    assert_outcome(resp, 400, "not-supported")
    assert resp.get_json()["issue"][0]["expression"] == [named]


@pytest.mark.parametrize("query,named", [
    ("date=yesterday", "date"), ("patient=Organization/o1", "patient"), ("entity=justanid", "entity"), ("_count=-1", "_count"),
    ("_cursor=abc", "_cursor"), ("outcome=", "outcome"), ("_total=maybe", "_total")])
def test_a_malformed_search_value_is_a_400(client, query, named):
    resp = client.get(f"/fhir/AuditEvent?{query}")
    assert_outcome(resp, 400)
    assert named in json.dumps(resp.get_json())


def test_revinclude_of_audit_events_is_refused(client):
    assert_outcome(client.get("/fhir/Patient?_revinclude=AuditEvent:entity"), 400, "not-supported")


def test_paging_newest_first_with_next_links_and_no_duplicates(app, client):
    record_reads(app, 25)
    first = client.get("/fhir/AuditEvent?subtype=read&_count=10").get_json()
    assert "total" not in first and len(first["entry"]) == 10  # more follow: no COUNT unless asked (_total=accurate)
    seen, page = [], first
    while True:
        seen += [int(e["resource"]["id"]) for e in page["entry"]]
        nxt = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not nxt:
            break
        page = client.get(nxt[0].removeprefix("http://localhost")).get_json()
    assert len(seen) == 25 and seen == sorted(seen, reverse=True)
    assert whats(first["entry"][0]["resource"]) == ["Patient/p24/_history/1"]
    assert client.get("/fhir/AuditEvent?subtype=read&_count=10&_total=accurate").get_json()["total"] == 25
    assert client.get("/fhir/AuditEvent?subtype=read&_count=100").get_json()["total"] == 25  # one complete page
    assert "total" not in client.get("/fhir/AuditEvent?subtype=read&_count=100&_total=none").get_json()
    counted = client.get("/fhir/AuditEvent?subtype=read&_summary=count").get_json()
    assert (counted["type"], counted["total"], counted.get("entry")) == ("searchset", 25, None)


def test_search_filters_combine(app, client):
    record_reads(app, 3)
    pid = new_patient(client)
    assert [whats(e) for e in events(client, "patient=p1")] == [["Patient/p1/_history/1"]]
    assert [whats(e) for e in events(client, f"entity=Patient/p0,Patient/{pid}&action=R")] == [["Patient/p0/_history/1"]]
    assert len(events(client, f"entity=http://localhost/fhir/Patient/{pid}")) == 1  # an absolute reference to us
    assert len(events(client, "type=http://terminology.hl7.org/CodeSystem/audit-event-type|rest&subtype=read")) == 3
    assert events(client, "type=other") == [] and events(client, "agent:identifier=other|development") == []
    assert len(events(client, "agent:identifier=development&subtype=read,create")) == 4
    assert events(client, "date=lt2020-01-01") == [] and events(client, "date=gt2020&date=lt2020") == []
    assert len(events(client, "_id=1,2&date=ge2020-01-01")) == 2


def test_read_vread_and_history_of_an_event(app, client):
    record_reads(app, 2)
    ev = client.get("/fhir/AuditEvent/2")
    assert ev.status_code == 200 and ev.headers["ETag"] == 'W/"1"' and ev.headers["Last-Modified"]
    body = ev.get_json()
    assert body["id"] == "2" and body["meta"]["versionId"] == "1" and whats(body) == ["Patient/p1/_history/1"]
    AuditEvent.model_validate(body)
    assert client.get("/fhir/AuditEvent/2/_history/1").get_json() == body
    assert_outcome(client.get("/fhir/AuditEvent/2/_history/2"), 404)
    for missing in ("99", "abc", "0"):
        assert_outcome(client.get(f"/fhir/AuditEvent/{missing}"), 404)
    [entry] = client.get("/fhir/AuditEvent/2/_history").get_json()["entry"]
    assert entry["resource"] == body and entry["response"]["status"] == "201 Created"
    history = client.get("/fhir/AuditEvent/_history?_count=1").get_json()  # newest first (the reads above are audited too)
    [newest] = [e["resource"]["id"] for e in history["entry"]]
    assert history["link"][1]["relation"] == "next" and history["link"][1]["url"].endswith(f"_before={newest}")
    older = client.get(f"/fhir/AuditEvent/_history?_count=1&_before={newest}").get_json()["entry"]
    assert int(older[0]["resource"]["id"]) < int(newest)
    assert_outcome(client.get("/fhir/AuditEvent/_history?_at=2020"), 400, "not-supported")


def test_a_client_outside_the_program_sees_no_audit_event(client, auth_app, auth_client):
    from auth_helpers import bearer, make_client

    new_patient(client)
    client_id, key = make_client(auth_app, "Hospital auditor", "system/AuditEvent.rs", organization="Organization/hosp")
    headers = bearer(auth_client, auth_app, client_id, key)
    bundle = auth_client.get("/fhir/AuditEvent", headers=headers).get_json()
    assert bundle["type"] == "searchset" and "entry" not in bundle and "total" not in bundle
    assert_outcome(auth_client.get("/fhir/AuditEvent/1", headers=headers), 404)
    staff_id, staff_key = make_client(auth_app, "Staff auditor", "system/AuditEvent.rs", internal=True)
    staff = bearer(auth_client, auth_app, staff_id, staff_key)
    assert auth_client.get("/fhir/AuditEvent/1", headers=staff).get_json()["action"] == "C"


# ------------------------------------------------------------------------------- what a crash can lose
CRASH = """
import os, signal, sys, time
from service import audit, create_app
app = create_app({"DATABASE_URL": sys.argv[1], "AUTH": "off", "LOG_LEVEL": "WARNING", "AUTO_MIGRATE": False})
def reads(prefix):
    with app.test_request_context("/fhir/Patient/x"):
        for i in range(40):
            audit.record_access("read", [f"Patient/{prefix}{i}"], 0)
reads("early")
time.sleep(audit.FLUSH_INTERVAL * 5)  # the background writer has had its turn
buffer, deadline = app.extensions["iop.audit"], time.monotonic() + 20
while (buffer._events or buffer._writing.locked()) and time.monotonic() < deadline:  # a slow database (shared machine)
    time.sleep(0.05)
reads("late")
if sys.argv[2] == "crash":
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no flush
"""


def run_process(database_url: str, how: str) -> int:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-c", CRASH, database_url, how], timeout=120).returncode


def test_a_crash_loses_only_the_read_audits_of_its_last_flush_interval(app, client, database_url):
    assert run_process(database_url, "crash") == -9
    early = [e for e in events(client, "subtype=read") if whats(e)[0].startswith("Patient/early")]
    assert len(early) == 40  # recorded more than FLUSH_INTERVAL before the crash: stored
    assert verify(app)[0] == 0  # whatever the crash cut off, the chain is whole (a batch is one transaction)


def test_a_normal_exit_writes_every_waiting_read_audit(app, client, database_url):
    assert run_process(database_url, "exit") == 0
    assert len(events(client, "subtype=read")) == 80
    assert verify(app) == (0, "OK: 81 audit events, chain intact\n")  # and the search above


# ------------------------------------------------------------------------------- migration 0005
def test_migration_moves_resource_audit_events_into_the_log_keeping_the_chain(tmp_path):
    """Events stored as resources with audit_chain links (revision 0004) keep their seq, hash and searchability."""
    from alembic import command
    from alembic.config import Config

    from service import create_app
    from service.db import MIGRATIONS, Database

    url = f"sqlite:///{tmp_path}/old.db"
    db = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.write() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    prev = audit_chain.GENESIS
    with db.write() as conn:
        for seq, (ref, action) in enumerate([("Patient/old-1/_history/1", "C"), ("Patient/old-1/_history/1", "R")], 1):
            ev = {"resourceType": "AuditEvent", "id": f"uuid-{seq}", "meta": {"versionId": "1", "lastUpdated": "2026-11-20T10:00:00.000Z"},
                  "type": audit.REST, "subtype": [{"system": INTERACTION, "code": "create" if action == "C" else "read"}],
                  "action": action, "recorded": "2026-11-20T10:00:00.000Z", "outcome": "0",
                  "agent": [{"who": {"identifier": {"system": audit.CLIENT_ID_SYSTEM, "value": "development"}}, "requestor": True}],
                  "source": {"observer": {"display": "IOP FHIR service"}}, "entity": [{"what": {"reference": ref}}]}
            content = json.dumps(ev)
            conn.execute(text("INSERT INTO resource (type, id, version, last_updated, deleted, content) "
                              "VALUES ('AuditEvent', :id, 1, '2026-11-20 10:00:00.000000', 0, :c)"), {"id": ev["id"], "c": content})
            conn.execute(text("INSERT INTO resource_version (resource_pk, type, id, version, last_updated, method, content) "
                              "SELECT pk, type, id, 1, last_updated, 'POST', content FROM resource WHERE id = :id"), {"id": ev["id"]})
            digest = audit_chain.link(prev, audit_chain.canonical(ev).decode())
            conn.execute(text("INSERT INTO audit_chain VALUES (:s, :id, :p, :h)"), {"s": seq, "id": ev["id"], "p": prev, "h": digest})
            prev = digest
    db.dispose()
    app = create_app({"DATABASE_URL": url, "AUTH": "off", "LOG_LEVEL": "WARNING"})  # migrates to head
    try:
        assert verify(app) == (0, "OK: 2 audit events, chain intact\n")
        with app.extensions["iop.db"].read() as conn:
            assert conn.execute(text("SELECT count(*) FROM resource WHERE type = 'AuditEvent'")).scalar_one() == 0
            assert conn.execute(text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one() == prev
        found = app.test_client().get("/fhir/AuditEvent?entity=Patient/old-1&action=R").get_json()["entry"]
        assert [e["resource"]["id"] for e in found] == ["2"]
    finally:
        app.extensions["iop.db"].dispose()


def test_served_audit_events_are_valid_r4(app, client, validator_url):
    from test_conformance import assert_valid

    pid = new_patient(client)
    client.get(f"/fhir/Patient/{pid}")
    client.get("/fhir/Patient?identifier=A-1")
    assert_outcome(client.get("/fhir/Patient/nobody"), 404)
    outside = Access("hospital-1", (Scope("system", "*", "rs"),), "Organization/hosp", False, "TREAT")
    with app.test_request_context("/fhir/Condition/sud"):
        from service import access
        access.set_current(outside)
        audit.record_access("search-type", [_stored(LABELLED)], 0, "code=x")
    served = events(client, "_count=50")
    assert {subtypes(e)[0] for e in served} >= {"create", "read", "search-type"}
    for ev in served:
        assert_valid(validator_url, ev, f"AuditEvent {subtypes(ev)}")
    bundle = client.get("/fhir/AuditEvent?_count=2").get_json()
    assert_valid(validator_url, bundle, "AuditEvent searchset")


def test_the_capability_statement_lists_only_the_audit_search_parameters_served(client):
    rest = client.get("/fhir/metadata").get_json()["rest"][0]
    [declared] = [r for r in rest["resource"] if r["type"] == "AuditEvent"]
    names = {p["name"] for p in declared["searchParam"]}
    assert {"date", "entity", "patient", "agent", "type", "subtype", "action", "outcome"} <= names
    assert not names & {"address", "entity-name", "site", "policy"} and not declared.get("searchRevInclude")
    for resource in rest["resource"]:
        assert not [r for r in resource.get("searchRevInclude", []) if r.startswith("AuditEvent:")], resource["type"]
    for p in declared["searchParam"]:  # and each one answers
        assert client.get(f"/fhir/AuditEvent?{p['name']}=x").status_code != 500
