"""FhirClient unit tests: error mapping, timeouts, paging, rate spacing (HTTP stubbed with `responses`)."""
from __future__ import annotations

import pytest
import requests
import responses

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
