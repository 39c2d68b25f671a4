"""FhirClient: error mapping, timeouts, paging, rate spacing (HTTP stubbed with `responses`); adapting to the remote's
CapabilityStatement (transaction and conditional-create fallbacks) over real HTTP to the Medplum peer."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import responses
from peer_proxy import serving, without

from service import remote_capabilities
from service.fhir_fallback import PartialTransactionError
from service.fhirclient import (
    DEFAULT_TIMEOUT,
    FhirClient,
    FhirClientError,
    FhirRequestError,
    FhirServerError,
    FhirTransportError,
)

BASE = "https://hospital.example.org/fhir"
OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found", "diagnostics": "Task/9 is not known"}]}


def page(ids: list[str], next_url: str | None = None) -> dict:
    links = [{"relation": "self", "url": f"{BASE}/Task"}] + ([{"relation": "next", "url": next_url}] if next_url else [])
    return {"resourceType": "Bundle", "type": "searchset", "link": links,
            "entry": [{"resource": {"resourceType": "Task", "id": i}} for i in ids]}


@responses.activate
def test_read_returns_the_resource_and_sends_fhir_headers():
    """A read sends Accept: application/fhir+json and the bearer token; the answer is the parsed resource."""
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client = FhirClient(BASE, token="s3cret")
    assert client.read("Patient", "1") == {"resourceType": "Patient", "id": "1"}
    sent = responses.calls[0].request
    assert sent.headers["Accept"] == "application/fhir+json"
    assert sent.headers["Authorization"] == "Bearer s3cret"


@responses.activate
def test_a_404_carries_the_remote_operation_outcome():
    """4xx → FhirRequestError with status, the remote's OperationOutcome and its diagnostics; not retryable."""
    responses.get(f"{BASE}/Task/9", json=OUTCOME, status=404)
    with pytest.raises(FhirRequestError) as caught:
        FhirClient(BASE).read("Task", "9")
    err = caught.value
    assert err.status == 404 and err.outcome == OUTCOME and not err.retryable
    assert "Task/9 is not known" in str(err)


@pytest.mark.parametrize("status, kind, retryable", [(400, FhirRequestError, False), (401, FhirRequestError, False),
                                                     (408, FhirRequestError, True), (429, FhirRequestError, True),
                                                     (500, FhirServerError, True), (503, FhirServerError, True)])
@responses.activate
def test_status_codes_map_to_the_error_hierarchy(status, kind, retryable):
    """Each status maps to one error class; 408/429 and 5xx are retryable, other 4xx are not."""
    responses.get(f"{BASE}/metadata", body="<html>busy</html>", status=status, headers={"Retry-After": "7"})
    with pytest.raises(kind) as caught:
        FhirClient(BASE).capabilities()
    assert caught.value.retryable is retryable
    assert caught.value.outcome is None  # HTML is not an OperationOutcome
    assert caught.value.retry_after == 7.0


@responses.activate
def test_timeouts_are_transport_errors():
    """A connect or read timeout becomes FhirTransportError (retryable)."""
    responses.get(f"{BASE}/Patient/1", body=requests.exceptions.ConnectTimeout("connect timed out"))
    responses.get(f"{BASE}/Patient/2", body=requests.exceptions.ReadTimeout("read timed out"))
    client = FhirClient(BASE)
    for rid in ("1", "2"):
        with pytest.raises(FhirTransportError) as caught:
            client.read("Patient", rid)
        assert caught.value.retryable and caught.value.status is None


def test_every_request_has_connect_and_read_timeouts():
    """The session is always called with a (connect, read) timeout: requests would otherwise wait forever."""
    seen = {}

    class Recorder(requests.Session):
        def request(self, method, url, **kwargs):
            seen.update(kwargs)
            raise requests.exceptions.ConnectionError("stop here")

    with pytest.raises(FhirTransportError):
        FhirClient(BASE, session=Recorder()).read("Patient", "1")
    assert seen["timeout"] == DEFAULT_TIMEOUT and seen["allow_redirects"] is False


@pytest.mark.parametrize("timeout", [None, (3.0, None), (0, 30.0), 5.0])
def test_a_client_cannot_be_made_without_both_timeouts(timeout):
    """(connect, read), both above 0: a missing one would let requests wait forever."""
    with pytest.raises(ValueError, match="timeout"):
        FhirClient(BASE, timeout=timeout)


@responses.activate
def test_a_body_that_is_not_fhir_json_is_a_transport_error():
    """200 with HTML (a proxy's login page, say) is not a resource."""
    responses.get(f"{BASE}/Patient/1", body="<html>login</html>", status=200)
    with pytest.raises(FhirTransportError, match="not a FHIR JSON resource"):
        FhirClient(BASE).read("Patient", "1")


@responses.activate
def test_redirects_are_not_followed():
    """A redirect could carry the bearer token elsewhere: it is an error, not followed."""
    responses.get(f"{BASE}/Patient/1", status=302, headers={"Location": "https://elsewhere.example.org/fhir/Patient/1"})
    with pytest.raises(FhirRequestError, match="redirect"):
        FhirClient(BASE, token="t").read("Patient", "1")
    assert len(responses.calls) == 1


@responses.activate
def test_search_follows_next_links_up_to_max_pages():
    """search yields each page; it stops when there is no next link, or after max_pages."""
    responses.get(f"{BASE}/Task", json=page(["a"], f"{BASE}/Task?page=2"), match=[responses.matchers.query_param_matcher({"owner": "Organization/x"})])
    responses.get(f"{BASE}/Task", json=page(["b"], f"{BASE}/Task?page=3"), match=[responses.matchers.query_param_matcher({"page": "2"})])
    responses.get(f"{BASE}/Task", json=page(["c"]), match=[responses.matchers.query_param_matcher({"page": "3"})])
    client = FhirClient(BASE)
    ids = [e["resource"]["id"] for p in client.search("Task", [("owner", "Organization/x")]) for e in p["entry"]]
    assert ids == ["a", "b", "c"]
    assert len(list(client.search("Task", [("owner", "Organization/x")], max_pages=2))) == 2


@responses.activate
def test_a_next_link_to_another_server_is_refused():
    """The token is sent only under the base URL: a next link to another host is not followed."""
    responses.get(f"{BASE}/Task", json=page(["a"], "https://evil.example.org/fhir/Task?page=2"))
    pages = FhirClient(BASE, token="t").search("Task", [])
    next(pages)
    with pytest.raises(FhirClientError, match="not on"):
        next(pages)
    assert len(responses.calls) == 1


@responses.activate
def test_requests_are_spaced_by_the_minimum_interval():
    """With min_interval, the client waits so that requests start at least that long after the previous answer."""
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = FhirClient(BASE, min_interval=0.5, clock=lambda: now[0], sleep=sleep)
    client.read("Patient", "1")
    now[0] += 0.2
    client.read("Patient", "1")
    client.read("Patient", "1")
    assert slept == [pytest.approx(0.3), pytest.approx(0.5)]


@responses.activate
def test_an_oversized_body_is_refused(monkeypatch):
    """A remote cannot make us hold an unbounded body in memory."""
    monkeypatch.setattr("service.fhirclient.MAX_BODY_BYTES", 100)
    responses.get(f"{BASE}/Binary/1", body=b'{"resourceType":"Binary","data":"' + b"A" * 200 + b'"}')
    with pytest.raises(FhirTransportError, match="larger than"):
        FhirClient(BASE).read("Binary", "1")


# ------------------------------------------------------------------------------- adapting to the remote (real HTTP)
# The Medplum memory peer states transaction and conditional create; a tiny proxy in front of it states neither
# (its /metadata is rewritten, every other request is passed through): a test peer, not a mock of our code.
@pytest.fixture(scope="module")
def plain_server(peer_server) -> Iterator[str]:
    """The peer behind a proxy whose CapabilityStatement states no transaction and no conditional create/update."""
    with serving(peer_server, without("transaction", "batch", "conditional")) as url:
        yield url


MRN = "https://hospital.example.org/fhir/sid/mrn"


def referral_bundle(mrn: str = "SBX-1", order_id: str = "SR-1") -> dict:
    """Task first, then its ServiceRequest, then the Patient: each references the next by urn:uuid."""
    pat, sr, task = (f"urn:uuid:{u}" for u in ("0b9f1c2e-0000-4000-8000-000000000001", "0b9f1c2e-0000-4000-8000-000000000002",
                                                "0b9f1c2e-0000-4000-8000-000000000003"))
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": task, "resource": {"resourceType": "Task", "status": "requested", "intent": "order",
                                       "focus": {"reference": sr}, "for": {"reference": pat}},
         "request": {"method": "POST", "url": "Task"}},
        {"fullUrl": sr, "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                     "identifier": [{"system": "https://hospital.example.org/fhir/sid/order", "value": order_id}],
                                     "subject": {"reference": pat}},
         "request": {"method": "POST", "url": "ServiceRequest", "ifNoneExist": f"identifier=https://hospital.example.org/fhir/sid/order|{order_id}"}},
        {"fullUrl": pat, "resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": mrn}]},
         "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|{mrn}"}},
    ]}


def peer_log(peer: str) -> list[str]:
    """The FHIR requests the peer received, as "METHOD path" (the proxy's own /metadata reads included)."""
    log = requests.get(peer.rsplit("/fhir", 1)[0] + "/_peer/requests", timeout=10).json()
    return [f"{r['method']} {r['url'].split('?')[0]}" for r in log if r["url"].startswith("/fhir")]


def stored(peer: str, rtype: str) -> list[dict]:
    return [e["resource"] for e in requests.get(f"{peer}/{rtype}", timeout=10).json().get("entry", [])]


def test_the_capability_statement_is_read_once_and_understood(peer):
    """The peer states transaction, batch and conditional create; /metadata is fetched once per client."""
    client = FhirClient(peer)
    support = client.support
    assert support.transaction and support.batch and support.r4
    assert support.conditional_create("Patient") and support.conditional_update("Task") and support.supports("delete", "Task")
    assert not support.supports("create", "NoSuchType")
    assert client.support is support
    assert peer_log(peer) == ["GET /fhir/metadata"]


def test_a_statement_states_only_what_it_lists():
    """No server-mode rest: nothing is supported; a client-mode rest is not the server's."""
    assert not remote_capabilities.parse({"resourceType": "CapabilityStatement"}).transaction
    client_mode = {"rest": [{"mode": "client", "interaction": [{"code": "transaction"}]}]}
    assert not remote_capabilities.parse(client_mode).transaction
    odd = {"rest": [{"mode": "server", "interaction": "transaction", "resource": [{"type": "Task", "conditionalCreate": "yes"}]}]}
    assert not remote_capabilities.parse(odd).transaction and not remote_capabilities.parse(odd).conditional_create("Task")


def test_a_transaction_goes_as_one_request_when_the_server_supports_it(peer):
    """One POST [base]; the answer is the server's transaction-response."""
    response = FhirClient(peer).transaction(referral_bundle())
    assert response["type"] == "transaction-response" and [e["response"]["status"][:3] for e in response["entry"]] == ["201"] * 3
    assert peer_log(peer) == ["GET /fhir/metadata", "POST /fhir"]


def test_without_transaction_the_entries_go_one_by_one_referenced_first(peer, plain_server):
    """Patient, then ServiceRequest, then Task (the reverse of the Bundle), urn:uuid references rewritten; the
    conditional creates become searches (no conditional create either); the answer is in entry order."""
    response = FhirClient(plain_server).transaction(referral_bundle())

    assert [r for r in peer_log(peer) if r != "GET /fhir/metadata"] == ["GET /fhir/Patient", "POST /fhir/Patient", "GET /fhir/ServiceRequest", "POST /fhir/ServiceRequest",
                              "POST /fhir/Task"]
    [patient], [order], [task] = stored(peer, "Patient"), stored(peer, "ServiceRequest"), stored(peer, "Task")
    assert task["focus"]["reference"] == f"ServiceRequest/{order['id']}" and task["for"]["reference"] == f"Patient/{patient['id']}"
    assert order["subject"]["reference"] == f"Patient/{patient['id']}"
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201"] * 3
    assert response["entry"][0]["response"]["location"].split("/fhir/")[1].startswith(f"Task/{task['id']}")


def test_a_resend_one_by_one_does_not_duplicate_what_has_an_identifier(peer, plain_server):
    """The same Bundle again: Patient and ServiceRequest are found by identifier (200), only the plain POST Task repeats."""
    client = FhirClient(plain_server)
    client.transaction(referral_bundle())
    again = client.transaction(referral_bundle())
    assert [e["response"]["status"] for e in again["entry"]] == ["201", "200", "200"]
    assert (len(stored(peer, "Patient")), len(stored(peer, "ServiceRequest")), len(stored(peer, "Task"))) == (1, 1, 2)


def test_a_failure_part_way_says_what_was_applied(peer, plain_server):
    """The Task POST gets 503: PartialTransactionError (retryable, with the peer's OperationOutcome) names the entry
    that failed and those applied; sending again completes without duplicates."""
    requests.post(peer.rsplit("/fhir", 1)[0] + "/_peer/faults", json={"status": 503, "count": 1, "match": "POST /Task"},
                  timeout=5).raise_for_status()
    client = FhirClient(plain_server)
    with pytest.raises(PartialTransactionError) as caught:
        client.transaction(referral_bundle())
    err = caught.value
    assert (err.failed, err.done, err.status, err.retryable) == (0, [1, 2], 503, True)
    assert err.outcome["resourceType"] == "OperationOutcome" and "entries [1, 2] were applied" in str(err)
    assert stored(peer, "Task") == []

    client.transaction(referral_bundle())
    assert (len(stored(peer, "Patient")), len(stored(peer, "ServiceRequest")), len(stored(peer, "Task"))) == (1, 1, 1)


def test_conditional_create_falls_back_to_search_then_create(peer, plain_server):
    """No conditional create: a search, then a create (201); next time the match is returned (200), nothing created."""
    client = FhirClient(plain_server)
    patient = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "C-1"}]}
    first = client.conditional_create(patient, f"identifier={MRN}|C-1")
    second = client.conditional_create(patient, f"identifier={MRN}|C-1")
    assert (first.status, second.status) == (201, 200) and first.resource["id"] == second.resource["id"]
    assert second.location == f"Patient/{first.resource['id']}"
    assert "If-None-Exist" not in json.dumps(requests.get(peer.rsplit("/fhir", 1)[0] + "/_peer/requests", timeout=5).json())
    client.create(patient)
    with pytest.raises(FhirRequestError, match="more than one"):
        client.conditional_create(patient, f"identifier={MRN}|C-1")


def test_conditional_create_uses_if_none_exist_when_supported(peer):
    """The peer supports it: one POST with If-None-Exist, no search."""
    client = FhirClient(peer)
    patient = {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "C-2"}]}
    assert client.conditional_create(patient, f"identifier={MRN}|C-2").status == 201
    assert client.conditional_create(patient, f"identifier={MRN}|C-2").status == 200
    assert peer_log(peer) == ["GET /fhir/metadata", "POST /fhir/Patient", "POST /fhir/Patient"]


def test_a_conditional_update_entry_one_by_one(peer, plain_server):
    """PUT Patient?identifier=… without conditional update: created when absent, then the match is updated by id."""
    def bundle(name: str) -> dict:
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "identifier": [{"system": MRN, "value": "U-1"}], "name": [{"family": name}]},
             "request": {"method": "PUT", "url": f"Patient?identifier={MRN}|U-1"}}]}
    client = FhirClient(plain_server)
    client.transaction(bundle("First"))
    client.transaction(bundle("Second"))
    [patient] = stored(peer, "Patient")
    assert patient["name"][0]["family"] == "Second" and patient["meta"]["versionId"] != "1"


def test_entries_that_reference_each_other_in_a_cycle_are_refused_before_sending(peer, plain_server):
    """Two new resources naming each other cannot be created one at a time: refused, nothing sent."""
    a, b = "urn:uuid:0b9f1c2e-0000-4000-8000-00000000000a", "urn:uuid:0b9f1c2e-0000-4000-8000-00000000000b"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": a, "resource": {"resourceType": "Patient", "link": [{"other": {"reference": b}, "type": "seealso"}]},
         "request": {"method": "POST", "url": "Patient"}},
        {"fullUrl": b, "resource": {"resourceType": "Patient", "link": [{"other": {"reference": a}, "type": "seealso"}]},
         "request": {"method": "POST", "url": "Patient"}}]}
    with pytest.raises(FhirRequestError, match="cycle"):
        FhirClient(plain_server).transaction(bundle)
    assert stored(peer, "Patient") == []


def test_a_patch_entry_is_refused_before_sending_one_by_one(peer, plain_server):
    """A PATCH entry's body is a Binary JSON Patch: not sent as single requests (nothing is sent)."""
    bundle = referral_bundle()
    bundle["entry"].append({"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "W10="},
                            "request": {"method": "PATCH", "url": "Patient/1"}})
    with pytest.raises(FhirRequestError, match="PATCH"):
        FhirClient(plain_server).transaction(bundle)
    assert [r for r in peer_log(peer) if r != "GET /fhir/metadata"] == []


def test_the_remote_operation_outcome_of_a_refused_transaction_is_kept(peer):
    """A transaction the peer refuses: FhirRequestError with its OperationOutcome and diagnostics."""
    bad = referral_bundle()
    bad["entry"][0]["request"]["url"] = "NoSuchType"
    with pytest.raises(FhirClientError) as caught:
        FhirClient(peer).transaction(bad)
    assert caught.value.status in (400, 404) and caught.value.outcome["resourceType"] == "OperationOutcome"
