"""REST interactions: read, vread, create, update, delete, history, headers, Prefer, negotiation, PATCH."""
from __future__ import annotations

import json
import threading
import time

from helpers import FHIR, assert_outcome, count_rows, created, patient, post, put


def test_create_returns_201_with_location_etag_and_meta(client):
    """A create assigns id and meta and answers 201 with Location, ETag and Last-Modified."""
    resp = post(client, "Patient", patient(mrn="M1"))
    body = created(resp)
    assert resp.headers["Location"] == f"http://localhost/fhir/Patient/{body['id']}/_history/1"
    assert resp.headers["ETag"] == 'W/"1"'
    assert resp.headers["Last-Modified"].endswith("GMT")
    assert body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"].endswith("Z")
    assert resp.mimetype == FHIR


def test_create_ignores_a_client_id_and_keeps_element_order(client):
    """POST assigns its own id; the stored JSON keeps the client's element order after id and meta."""
    body = created(post(client, "Patient", {"resourceType": "Patient", "id": "mine", "gender": "male", "active": True}))
    assert body["id"] != "mine"
    assert list(body) == ["resourceType", "id", "meta", "gender", "active"]


def test_read_serves_the_stored_bytes(client):
    """A read returns exactly the JSON that the create returned."""
    resp = post(client, "Patient", patient())
    read = client.get(f"/fhir/Patient/{resp.get_json()['id']}")
    assert read.status_code == 200
    assert read.get_data() == resp.get_data()
    assert read.headers["ETag"] == 'W/"1"'


def test_read_unknown_is_404_and_unknown_type_is_404_not_supported(client):
    assert_outcome(client.get("/fhir/Patient/nope"), 404, "not-found")
    assert_outcome(client.get("/fhir/Spaceship/1"), 404, "not-supported")


def test_read_invalid_id_is_400(client):
    assert_outcome(client.get("/fhir/Patient/" + "x" * 65), 400)


def test_update_creates_a_new_version_and_vread_serves_both(client):
    body = created(post(client, "Patient", patient()))
    pid = body["id"]
    body["active"] = True
    resp = put(client, f"Patient/{pid}", body)
    assert resp.status_code == 200
    assert resp.get_json()["meta"]["versionId"] == "2"
    assert resp.headers["ETag"] == 'W/"2"'
    v1 = client.get(f"/fhir/Patient/{pid}/_history/1").get_json()
    v2 = client.get(f"/fhir/Patient/{pid}/_history/2").get_json()
    assert "active" not in v1 and v2["active"] is True
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/3"), 404)


def test_update_as_create_with_client_id(client):
    """PUT to an unknown id creates the resource with that id (201)."""
    resp = put(client, "Patient/iop-p-77", patient(id="iop-p-77"))
    assert resp.status_code == 201
    assert resp.headers["Location"].endswith("/Patient/iop-p-77/_history/1")
    assert client.get("/fhir/Patient/iop-p-77").status_code == 200


def test_update_with_identical_content_makes_no_new_version(client):
    """Resending the same resource is a no-op: same version, no history entry."""
    put(client, "Patient/same", patient(id="same"))
    resp = put(client, "Patient/same", patient(id="same"))
    assert resp.status_code == 200
    assert resp.get_json()["meta"]["versionId"] == "1"
    assert client.get("/fhir/Patient/same/_history").get_json()["total"] == 1


def test_update_id_mismatch_or_missing_is_400(client, app):
    assert_outcome(put(client, "Patient/a", patient(id="b")), 400, expression="Patient.id")
    assert_outcome(put(client, "Patient/a", patient()), 400, expression="Patient.id")
    assert count_rows(app) == 0


def test_if_match_mismatch_is_412_and_match_updates(client):
    body = created(post(client, "Patient", patient()))
    pid = body["id"]
    assert_outcome(put(client, f"Patient/{pid}", body, **{"If-Match": 'W/"7"'}), 412)
    assert put(client, f"Patient/{pid}", dict(body, active=True), **{"If-Match": 'W/"1"'}).status_code == 200
    assert_outcome(put(client, f"Patient/{pid}", dict(body, active=False), **{"If-Match": 'W/"1"'}), 412)


def test_concurrent_puts_with_if_match_lose_no_update(live_server):
    """Eight clients PUT version 1 at once with If-Match: exactly one wins, the rest get 412."""
    import requests

    s = requests.Session()
    h = {"Content-Type": FHIR}
    base = live_server
    s.put(f"{base}/Patient/race", data=json.dumps(patient(id="race")), headers=h).raise_for_status()
    statuses: list[int] = []

    def writer(n: int) -> None:
        body = patient(id="race", given=f"Writer{n}")
        r = requests.put(f"{base}/Patient/race", data=json.dumps(body), headers={**h, "If-Match": 'W/"1"'}, timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [412] * 7
    history = s.get(f"{base}/Patient/race/_history").json()
    assert history["total"] == 2


def test_concurrent_puts_without_if_match_each_get_a_version(live_server):
    """Unconditional concurrent updates serialise: versions 2..n+1, none lost."""
    import requests

    h = {"Content-Type": FHIR}
    requests.put(f"{live_server}/Patient/many", data=json.dumps(patient(id="many")), headers=h, timeout=30).raise_for_status()
    versions: list[str] = []

    def writer(n: int) -> None:
        r = requests.put(f"{live_server}/Patient/many", data=json.dumps(patient(id="many", given=f"W{n}")), headers=h, timeout=30)
        versions.append(r.json()["meta"]["versionId"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions, key=int) == [str(v) for v in range(2, 8)]


def test_delete_then_read_is_410_and_history_keeps_the_deletion(client):
    pid = created(post(client, "Patient", patient()))["id"]
    resp = client.delete(f"/fhir/Patient/{pid}")
    assert resp.status_code == 204
    assert resp.headers["ETag"] == 'W/"2"'
    assert_outcome(client.get(f"/fhir/Patient/{pid}"), 410, "deleted")
    assert client.get(f"/fhir/Patient/{pid}/_history/1").status_code == 200
    assert_outcome(client.get(f"/fhir/Patient/{pid}/_history/2"), 410)
    history = client.get(f"/fhir/Patient/{pid}/_history").get_json()
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    assert client.delete(f"/fhir/Patient/{pid}").status_code == 204  # deleting again changes nothing
    assert_outcome(client.delete("/fhir/Patient/never-was"), 404)


def test_update_after_delete_recreates_with_next_version(client):
    put(client, "Patient/back", patient(id="back"))
    client.delete("/fhir/Patient/back")
    resp = put(client, "Patient/back", patient(id="back"))
    assert resp.status_code == 201
    assert resp.get_json()["meta"]["versionId"] == "3"


def test_deleted_resource_leaves_search(client):
    pid = created(post(client, "Patient", patient(mrn="DEL-1")))["id"]
    client.delete(f"/fhir/Patient/{pid}")
    bundle = client.get("/fhir/Patient?identifier=DEL-1").get_json()
    assert bundle["total"] == 0


def test_conditional_create(client):
    """If-None-Exist: none → 201; one → 200 with the existing resource; many → 412."""
    header = {"If-None-Exist": "identifier=https://iop.example.org/fhir/sid/mrn|CC-1"}
    first = post(client, "Patient", patient(mrn="CC-1"), **header)
    second = post(client, "Patient", patient(mrn="CC-1", given="Other"), **header)
    assert first.status_code == 201 and second.status_code == 200
    assert first.get_json()["id"] == second.get_json()["id"]
    assert second.get_json()["name"][0]["given"] == ["Robin"]
    post(client, "Patient", patient(mrn="CC-2"))
    post(client, "Patient", patient(mrn="CC-2"))
    assert_outcome(post(client, "Patient", patient(mrn="CC-2"), **{"If-None-Exist": "identifier=CC-2"}), 412)


def test_conditional_create_bad_criteria_is_400(client, app):
    assert_outcome(post(client, "Patient", patient(), **{"If-None-Exist": "nonsense=1"}), 400)
    assert count_rows(app) == 0


def test_conditional_create_under_concurrency_creates_once(live_server):
    """Ten identical conditional creates at the same moment leave exactly one resource."""
    import requests

    h = {"Content-Type": FHIR, "If-None-Exist": "identifier=https://iop.example.org/fhir/sid/mrn|RACE-1"}
    statuses: list[int] = []
    barrier = threading.Barrier(10)

    def send() -> None:
        barrier.wait()
        r = requests.post(f"{live_server}/Patient", data=json.dumps(patient(mrn="RACE-1")), headers=h, timeout=30)
        statuses.append(r.status_code)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] * 9 + [201]
    found = requests.get(f"{live_server}/Patient?identifier=RACE-1", timeout=30).json()
    assert found["total"] == 1


def test_conditional_update(client):
    """PUT Type?criteria: no match creates, one match updates, several is 412."""
    url = "Patient?identifier=https://iop.example.org/fhir/sid/mrn|CU-1"
    first = put(client, url, patient(mrn="CU-1"))
    assert first.status_code == 201
    second = put(client, url, patient(mrn="CU-1", active=True))
    assert second.status_code == 200
    assert second.get_json()["id"] == first.get_json()["id"] and second.get_json()["active"] is True
    post(client, "Patient", patient(mrn="CU-2"))
    post(client, "Patient", patient(mrn="CU-2"))
    assert_outcome(put(client, "Patient?identifier=CU-2", patient(mrn="CU-2")), 412)


def test_conditional_delete(client):
    pid = created(post(client, "Patient", patient(mrn="CD-1")))["id"]
    assert client.delete("/fhir/Patient?identifier=CD-1").status_code == 204
    assert client.get(f"/fhir/Patient/{pid}").status_code == 410
    post(client, "Patient", patient(mrn="CD-2"))
    post(client, "Patient", patient(mrn="CD-2"))
    assert_outcome(client.delete("/fhir/Patient?identifier=CD-2"), 412)


def test_prefer_return_minimal_and_operation_outcome(client):
    minimal = post(client, "Patient", patient(), Prefer="return=minimal")
    assert minimal.status_code == 201 and minimal.get_data() == b"" and "Location" in minimal.headers
    oo = post(client, "Patient", patient(), Prefer="return=OperationOutcome")
    assert oo.status_code == 201
    assert oo.get_json()["resourceType"] == "OperationOutcome"
    assert oo.get_json()["issue"][0]["severity"] == "information"


def test_accept_and_format_negotiation(client):
    pid = created(post(client, "Patient", patient()))["id"]
    assert client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/json"}).mimetype == "application/json"
    assert client.get(f"/fhir/Patient/{pid}", headers={"Accept": "*/*"}).mimetype == FHIR
    assert client.get(f"/fhir/Patient/{pid}?_format=json").mimetype == FHIR
    assert_outcome(client.get(f"/fhir/Patient/{pid}", headers={"Accept": "application/fhir+xml"}), 406)
    assert_outcome(client.get(f"/fhir/Patient/{pid}?_format=xml"), 406)


def test_unsupported_request_media_type_is_415(client, app):
    resp = client.post("/fhir/Patient", data="<Patient xmlns='http://hl7.org/fhir'/>", headers={"Content-Type": "application/fhir+xml"})
    assert_outcome(resp, 415)
    assert_outcome(client.post("/fhir/Patient", data=json.dumps(patient())), 415)  # no Content-Type
    assert count_rows(app) == 0


def test_pretty_output(client):
    pid = created(post(client, "Patient", patient()))["id"]
    assert b"\n  " in client.get(f"/fhir/Patient/{pid}?_pretty=true").get_data()


def test_summary_and_elements_on_read(client):
    body = patient(text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Robin</div>'},
                   maritalStatus={"text": "Married"})
    pid = created(post(client, "Patient", body))["id"]
    summary = client.get(f"/fhir/Patient/{pid}?_summary=true").get_json()
    assert "name" in summary and "maritalStatus" not in summary and "text" not in summary
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
            "display": "As requested, resource is not fully detailed."} in summary["meta"]["tag"]
    data = client.get(f"/fhir/Patient/{pid}?_summary=data").get_json()
    assert "text" not in data and "maritalStatus" in data
    text = client.get(f"/fhir/Patient/{pid}?_summary=text").get_json()
    assert "text" in text and "name" not in text
    only = client.get(f"/fhir/Patient/{pid}?_elements=gender,birthDate").get_json()
    assert set(only) == {"resourceType", "id", "meta", "gender", "birthDate"}


def test_if_none_match_gives_304(client):
    pid = created(post(client, "Patient", patient()))["id"]
    resp = client.get(f"/fhir/Patient/{pid}", headers={"If-None-Match": 'W/"1"'})
    assert resp.status_code == 304 and resp.get_data() == b""


def test_json_patch(client):
    pid = created(post(client, "Patient", patient()))["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "male"}, {"op": "add", "path": "/active", "value": True}]
    resp = client.patch(f"/fhir/Patient/{pid}", data=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["gender"] == "male" and resp.get_json()["meta"]["versionId"] == "2"


def test_json_patch_errors(client):
    pid = created(post(client, "Patient", patient()))["id"]
    h = {"Content-Type": "application/json-patch+json"}
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data=json.dumps({"op": "x"}), headers=h), 400)
    test_fails = [{"op": "test", "path": "/gender", "value": "male"}]
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data=json.dumps(test_fails), headers=h), 422)
    bad_value = [{"op": "replace", "path": "/gender", "value": "bogus"}]
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data=json.dumps(bad_value), headers=h), 400, "code-invalid", "Patient.gender")
    change_id = [{"op": "replace", "path": "/id", "value": "other"}]
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data=json.dumps(change_id), headers=h), 422)
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data="[]", headers={"Content-Type": FHIR}), 415)
    assert_outcome(client.patch(f"/fhir/Patient/{pid}", data=json.dumps(test_fails), headers={**h, "If-Match": 'W/"9"'}), 412)
    assert client.get(f"/fhir/Patient/{pid}").get_json()["meta"]["versionId"] == "1"


def test_history_levels_since_and_paging(client):
    first = created(post(client, "Patient", patient()))
    time.sleep(0.01)
    put(client, f"Patient/{first['id']}", dict(first, active=True))
    created(post(client, "Observation", {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}))
    instance = client.get(f"/fhir/Patient/{first['id']}/_history").get_json()
    assert instance["type"] == "history" and instance["total"] == 2
    assert [e["response"]["etag"] for e in instance["entry"]] == ['W/"2"', 'W/"1"']
    assert client.get("/fhir/Patient/_history").get_json()["total"] == 2
    since = first["meta"]["lastUpdated"]  # system history also holds the implementation guide stored at start-up
    system = client.get(f"/fhir/_history?_count=2&_since={since}").get_json()
    assert system["total"] == 3 and len(system["entry"]) == 2
    next_url = next(link["url"] for link in system["link"] if link["relation"] == "next")
    page2 = client.get(next_url.replace("http://localhost", "")).get_json()
    assert len(page2["entry"]) == 1 and page2["entry"][0]["response"]["etag"] == 'W/"1"'
    assert client.get(f"/fhir/_history?_since={since}").get_json()["total"] == 3
    assert client.get("/fhir/_history").get_json()["total"] >= 3
    assert_outcome(client.get("/fhir/_history?_since=yesterday"), 400, expression="_since")


def test_method_not_allowed_is_405_outcome(client):
    assert_outcome(client.post("/fhir/Patient/123/_history/1", data="{}", headers={"Content-Type": FHIR}), 405)


def test_unknown_endpoint_is_404_outcome(client):
    assert_outcome(client.get("/not-fhir"), 404)


def test_create_with_criteria_in_the_url_is_a_conditional_create(client):
    """POST Patient?identifier=… (fhirpy's create(**criteria)) matches instead of duplicating."""
    first = post(client, "Patient?identifier=https://iop.example.org/fhir/sid/mrn|URL-1", patient(mrn="URL-1"))
    second = post(client, "Patient?identifier=https://iop.example.org/fhir/sid/mrn|URL-1", patient(mrn="URL-1"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.get_json()["id"] == second.get_json()["id"]
    both = post(client, "Patient?identifier=URL-1", patient(), **{"If-None-Exist": "identifier=URL-2"})
    assert_outcome(both, 400)


def test_request_id_is_echoed(client):
    assert client.get("/fhir/metadata", headers={"X-Request-Id": "abc-123"}).headers["X-Request-Id"] == "abc-123"
    assert "X-Request-Id" not in client.get("/fhir/metadata", headers={"X-Request-Id": "bad id <script>"}).headers


def test_a_write_that_keeps_losing_races_is_409_not_500(app):
    """When concurrent writers win every retry, the client gets 409 Conflict and nothing is stored."""
    import pytest

    from service import interactions
    from service.errors import Conflict, RetryableConflict

    attempts = []

    def always_loses(unit):
        attempts.append(1)
        interactions.create(unit, patient())
        raise RetryableConflict("simulated race")

    with pytest.raises(Conflict) as caught:
        interactions.run(app.extensions["iop.db"], always_loses)
    assert caught.value.status == 409 and len(attempts) == interactions.MAX_ATTEMPTS
    assert count_rows(app) == 0
