"""Hostile or odd requests are answered with a 4xx OperationOutcome (or success), never a 5xx."""
from __future__ import annotations

import json

import pytest

from helpers import FHIR, put

H = {"Content-Type": FHIR}
P = {"resourceType": "Patient", "id": "p1"}

WRITES = [
    ("PUT", "Patient/p1", {**P, "meta": "x"}),
    ("PUT", "Patient/p1", {**P, "meta": {"profile": "x"}}),
    ("PUT", "Patient/p1", {**P, "meta": {"lastUpdated": 5}}),
    ("PUT", "Patient/p1", {"resourceType": "Patient", "id": 5}),
    ("PUT", "Patient/p1", {**P, "contained": ["x"]}),
    ("PUT", "Patient/p1", {**P, "contained": [{"resourceType": "Patient"}]}),
    ("PUT", "Patient/p1", {**P, "_gender": "x", "gender": "male"}),
    ("PUT", "Patient/p1", {**P, "name": [None]}),
    ("PUT", "Patient/p1", {**P, "extension": [{"url": 5}]}),
    ("PUT", "Patient/p1", {**P, "generalPractitioner": [{"reference": 5}]}),
    ("PUT", "Patient/p1", {**P, "name": [{"family": "a\u0000b"}]}),
    ("PUT", "Patient/p1", {**P, "multipleBirthInteger": 99999999999999999999}),
    ("PUT", "Patient/p1", {**P, "birthDate": "0000-01-01"}),
    ("PUT", "Observation/o1", {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                               "effectiveDateTime": "9999-12-31T23:59:59.9999999+14:00"}),
    ("PUT", "Observation/o1", {"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"},
                               "effectivePeriod": {"start": "0001-01-01T00:00:00-14:00"}}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction", "entry": "x"}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"request": {"method": "POST", "url": "Patient"}, "resource": "x"}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "GET", "url": "Patient?_count=x"}}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"request": {"method": "GET", "url": "Patient/p1/_history/x"}}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": "Patient?"}}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"fullUrl": 5, "request": {"method": "POST", "url": "Patient"}, "resource": {"resourceType": "Patient"}}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"request": {"method": "POST", "url": "Patient", "ifNoneExist": 5}, "resource": {"resourceType": "Patient"}}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction",
                  "entry": [{"request": {"method": "PUT", "url": "Patient/p1", "ifMatch": 5}, "resource": P}]}),
    ("POST", "", {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "PATCH", "url": "Patient/p1"},
                  "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": "!!"}}]}),
    ("POST", "Patient/$validate", {"resourceType": "Parameters", "parameter": "x"}),
    ("POST", "Patient/$validate", {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": "x"}]}),
    ("POST", "Patient/$validate", {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": 5}]}),
]

READS = [
    "Patient?_count=99999999999999999999999", "Patient?_sort=-", "Patient?_sort=", "Patient?_include=Patient:", "Patient?_include=:",
    "Patient?birthdate=ge", "Patient?birthdate=2020-13-45", "Patient?_lastUpdated=gt9999-12-31T23:59:59Z",
    "Patient?_lastUpdated=lt0001-01-01", "Patient?identifier=%00", "Patient/%00", "Patient/p1/_history/99999999999999999999999",
    "_history?_count=x", "_history?_before=99999999999999999999999", "Patient/p1/$everything?_count=x",
    "Patient/p1/$everything?_cursor=99999999999999999999999", "Patient/p1/$everything?_since=x", "Observation?subject.foo.bar=x",
    "Observation?subject:Spaceship.name=x", "Observation?value-quantity=5|a|b|c", "Observation?value-quantity=abc",
    "Observation?code:in=x", "Observation?date=ap2020", "Patient?birthdate=eb0001", "Patient?birthdate=sa9999-12-31",
    "Patient?_elements=", "Patient/p1?_elements=,", "Patient/p1?_summary=bogus", "Patient?_cursor=%%%",
]

HEADERS = [{"If-Match": "garbage"}, {"If-None-Match": "\x00"}, {"Prefer": "return=;;;"}, {"Accept": "garbage/;;q=x"},
           {"If-None-Exist": "%%%"}, {"If-None-Exist": "_count=1"}]


@pytest.fixture(autouse=True)
def existing_patient(client):
    put(client, "Patient/p1", P)


def _no_server_error(resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        assert resp.get_json(force=True)["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=[f"{m} {p} {i}" for i, (m, p, _) in enumerate(WRITES)])
def test_odd_writes(client, method, path, body):
    _no_server_error(client.open(f"/fhir/{path}".rstrip("/"), method=method, data=json.dumps(body), headers=H))


@pytest.mark.parametrize("path", READS)
def test_odd_reads(client, path):
    _no_server_error(client.get(f"/fhir/{path}"))


@pytest.mark.parametrize("header", HEADERS, ids=[next(iter(h)) + str(i) for i, h in enumerate(HEADERS)])
def test_odd_headers(client, header):
    _no_server_error(client.put("/fhir/Patient/p1", data=json.dumps(P), headers={**H, **header}))
    _no_server_error(client.post("/fhir/Patient", data=json.dumps({"resourceType": "Patient"}), headers={**H, **header}))
