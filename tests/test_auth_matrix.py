"""The authorization matrix: each client × each interaction × each kind of data, with and without a Part 2 consent.

Every cell states the exact status (no unexpected allow, no unexpected deny). 0 in a search or include cell means
"200, but the resource is left out". Clients: the program's staff tool (inside the program), hospital A and
hospital B (referrers: system/Task.cruds system/ServiceRequest.cr system/Patient.cr system/*.rs) and the
aftercare provider (system/Task.rus system/*.rs). Data:
  ref-a   hospital A's referral Task (A wrote it), focus sr-a        ref-b  hospital B's referral Task
  aft     the program's aftercare Task owned by the aftercare provider; Part 2 (its focus is labelled)
  doc-l   a labelled document the program sent back to A in ref-a's output;  doc-u  an unlabelled one
  cond    the program's own labelled Condition (sent to nobody)
The consent (when present) is the patient's, for hospital A and the aftercare provider, purpose TREAT.
"""
from __future__ import annotations

import json

import pytest
from auth_helpers import bearer, make_client
from test_privacy import ACT, LABELS, consent, created, document

from helpers import FHIR, post, put

REFERRER = "system/Task.cruds system/ServiceRequest.cr system/Patient.cr system/*.rs"
CLIENTS = {"staff": ("system/*.cruds", "Organization/iop", True), "hosp_a": (REFERRER, "Organization/hosp-a", False),
           "hosp_b": (REFERRER, "Organization/hosp-b", False), "after": ("system/Task.rus system/*.rs", "Organization/after-c", False)}
TARGETS = ("ref-a", "ref-b", "aft", "doc-l", "doc-u", "cond")
TYPES = {"ref-a": "Task", "ref-b": "Task", "aft": "Task", "doc-l": "DocumentReference", "doc-u": "DocumentReference", "cond": "Condition"}

# read (and instance history, which answers the same), per target
READ = {
    ("staff", False): [200, 200, 200, 200, 200, 200],
    ("hosp_a", False): [200, 404, 404, 403, 200, 404],
    ("hosp_a", True): [200, 404, 404, 200, 200, 404],
    ("hosp_b", False): [404, 200, 404, 404, 404, 404],
    ("after", False): [404, 404, 403, 404, 404, 404],
    ("after", True): [404, 404, 200, 404, 404, 404],
}
READ[("staff", True)], READ[("hosp_b", True)] = READ[("staff", False)], READ[("hosp_b", False)]
# search Type?_id=…: 200 when the resource is in the Bundle, 0 when it is left out
SEARCH = {key: [status if status == 200 else 0 for status in row] for key, row in READ.items()}
# Task?_id=…&_include=Task:focus on ref-a, ref-b, aft: is the focus ServiceRequest included
INCLUDE = {
    "staff": {False: [200, 200, 200], True: [200, 200, 200]},
    "hosp_a": {False: [200, 0, 0], True: [200, 0, 0]},
    "hosp_b": {False: [0, 200, 0], True: [0, 200, 0]},
    "after": {False: [0, 0, 0], True: [0, 0, 200]},
}
# update (PUT of the resource as stored, with a change), per target: scopes first (403), then visibility (404), then Part 2 (403)
UPDATE = {
    ("staff", False): [200, 200, 200, 200, 200, 200],
    ("hosp_a", False): [200, 404, 404, 403, 403, 403],
    ("hosp_b", False): [404, 200, 404, 403, 403, 403],
    ("after", False): [404, 404, 403, 403, 403, 403],
    ("after", True): [404, 404, 200, 403, 403, 403],
}
UPDATE[("staff", True)], UPDATE[("hosp_b", True)] = UPDATE[("staff", False)], UPDATE[("hosp_b", False)]
UPDATE[("hosp_a", True)] = UPDATE[("hosp_a", False)]
DELETE = {"staff": [204, 204, 204, 204, 204, 204], "hosp_a": [204, 404, 404, 403, 403, 403],
          "hosp_b": [404, 204, 404, 403, 403, 403], "after": [403, 403, 403, 403, 403, 403]}
CREATE_TYPES = ("Task", "ServiceRequest", "DocumentReference", "Condition")
CREATE = {"staff": [201, 201, 201, 201], "hosp_a": [201, 201, 403, 403], "hosp_b": [201, 201, 403, 403],
          "after": [403, 403, 403, 403]}


def task(requester: str, owner: str, focus: str, patient: str) -> dict:
    return {"resourceType": "Task", "status": "requested", "intent": "order", "requester": {"reference": requester},
            "owner": {"reference": owner}, "focus": {"reference": focus}, "for": {"reference": patient}}


def service_request(patient: str, **extra) -> dict:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": patient}, **extra}


@pytest.fixture
def matrix(client, auth_app, auth_client):
    """The data above and a bearer header per client; returns (headers by client, ids by target, focus by target)."""
    for oid in ("hosp-a", "hosp-b", "after-c", "iop"):
        created(client, {"resourceType": "Organization", "id": oid, "name": oid})
    created(client, {"resourceType": "Patient", "id": "p1"})
    created(client, {"resourceType": "Patient", "id": "p2"})
    headers = {}
    for name, (scopes, org, internal) in CLIENTS.items():
        cid, key = make_client(auth_app, name, scopes, organization=org, internal=internal)
        headers[name] = bearer(auth_client, auth_app, cid, key)
    ids, focus = {}, {}
    for name, org, patient in (("ref-a", "hosp-a", "p1"), ("ref-b", "hosp-b", "p2")):
        sr = post(auth_client, "ServiceRequest", service_request(f"Patient/{patient}"), **headers[f"hosp_{name[-1]}"]).get_json()
        body = task(f"Organization/{org}", "Organization/iop", f"ServiceRequest/{sr['id']}", f"Patient/{patient}")
        ids[name], focus[name] = post(auth_client, "Task", body, **headers[f"hosp_{name[-1]}"]).get_json()["id"], sr["id"]
    sr = created(client, service_request("Patient/p1", meta={"security": LABELS}))
    ids["aft"] = created(client, task("Organization/iop", "Organization/after-c", f"ServiceRequest/{sr['id']}", "Patient/p1"))["id"]
    focus["aft"] = sr["id"]
    ids["doc-l"] = created(client, document("doc-l", {"system": ACT, "code": "42CFRPart2"}))["id"]
    ids["doc-u"] = created(client, document("doc-u"))["id"]
    ids["cond"] = created(client, {"resourceType": "Condition", "id": "cond", "subject": {"reference": "Patient/p1"},
                                   "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F11.20"}]}})["id"]
    ref_a = client.get(f"/fhir/Task/{ids['ref-a']}").get_json()
    ref_a["output"] = [{"type": {"text": "sent back"}, "valueReference": {"reference": f"DocumentReference/{d}"}} for d in ("doc-l", "doc-u")]
    put(client, f"Task/{ids['ref-a']}", ref_a)
    return headers, ids, focus


def with_consent(client, given: bool) -> None:
    if given:
        created(client, consent("c-a", "Organization/hosp-a"))
        created(client, consent("c-after", "Organization/after-c"))


def path(ids: dict, target: str) -> str:
    return f"{TYPES[target]}/{ids[target]}"


@pytest.mark.parametrize("consented", [False, True], ids=["no-consent", "consent"])
@pytest.mark.parametrize("who", list(CLIENTS))
def test_read_search_history_include_update_create(matrix, client, auth_client, who, consented):
    headers, ids, focus = matrix
    with_consent(client, consented)
    h = headers[who]
    seen = {"read": [], "history": [], "search": [], "include": [], "update": [], "create": []}
    for target in TARGETS:
        seen["read"].append(auth_client.get(f"/fhir/{path(ids, target)}", headers=h).status_code)
        seen["history"].append(auth_client.get(f"/fhir/{path(ids, target)}/_history", headers=h).status_code)
        found = auth_client.get(f"/fhir/{TYPES[target]}?_id={ids[target]}", headers=h)
        assert found.status_code == 200
        seen["search"].append(200 if any(e.get("resource", {}).get("id") == ids[target] for e in found.get_json().get("entry", [])) else 0)
    for target in ("ref-a", "ref-b", "aft"):
        bundle = auth_client.get(f"/fhir/Task?_id={ids[target]}&_include=Task:focus", headers=h).get_json()
        seen["include"].append(200 if any(e["resource"]["id"] == focus[target] for e in bundle.get("entry", [])
                                          if e.get("search", {}).get("mode") == "include") else 0)
    for target in TARGETS:
        body = client.get(f"/fhir/{path(ids, target)}").get_json()
        body["meta"] = {}
        body["language"] = "en"  # a change
        seen["update"].append(auth_client.put(f"/fhir/{path(ids, target)}", data=json.dumps(body),
                                              headers={**h, "Content-Type": FHIR}).status_code)
    for rtype in CREATE_TYPES:
        body = {"Task": task("Organization/hosp-a", "Organization/iop", "ServiceRequest/x", "Patient/p1"),
                "ServiceRequest": service_request("Patient/p1"), "DocumentReference": document("new-doc") | {"id": None},
                "Condition": {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}}}[rtype]
        body = {k: v for k, v in body.items() if v is not None}
        seen["create"].append(post(auth_client, rtype, body, **h).status_code)
    expected = {"read": READ[(who, consented)], "history": READ[(who, consented)], "search": SEARCH[(who, consented)],
                "include": INCLUDE[who][consented], "update": UPDATE[(who, consented)], "create": CREATE[who]}
    assert seen == expected


@pytest.mark.parametrize("who", list(CLIENTS))
def test_delete(matrix, auth_client, who):
    headers, ids, _ = matrix
    order = ("doc-l", "doc-u", "cond", "aft", "ref-b", "ref-a")  # the referral Tasks last: they make the documents visible
    seen = {t: auth_client.delete(f"/fhir/{path(ids, t)}", headers=headers[who]).status_code for t in order}
    assert [seen[t] for t in TARGETS] == DELETE[who]
