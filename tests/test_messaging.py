"""FHIR messaging intake: POST [base]/$process-message with a BSeR referral message (examples/referral-message.json).

What a sender sees: a response message (MessageHeader.response quoting its message id, focus our stored Task), the
same response for a resent message, and a 4xx OperationOutcome pointing into its Bundle, with nothing stored, for a
message we cannot take.
"""
from __future__ import annotations

import copy
import json
import re
import threading

import pytest
import requests

from helpers import FHIR, assert_outcome, count_rows, example, post, put

MESSAGE = "referral-message.json"
SOURCE = "https://hospital.example.org/fhir/messaging"
HOSPITAL = "https://hospital.example.org/fhir"
BASE = "http://localhost/fhir"
EVENT = {"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "I12", "display": "REF/RRI - Patient referral"}
# Entries of the example: 0 MessageHeader, 1 Patient, 2 PractitionerRole, 3-4 Condition, 5 Coverage, 6 Consent,
# 7 DocumentReference, 8 ServiceRequest, 9 Task.
PATIENT, ROLE, SR, TASK = 1, 2, 8, 9
DIRECTORY = ("Organization-iop-org-riverside.json", "HealthcareService-iop-hs-adult-evening.json", "Location-iop-loc-riverside-main.json",
             "Organization-hosp-org-lakeside.json", "Organization-payer-org-examplecare.json",
             "Practitioner-hosp-pract-discharge-planner.json", "Practitioner-hosp-pract-psychiatrist.json")


@pytest.fixture
def directory(client, app) -> int:
    """Our program and the referrer's practitioners, as a running server has them; returns the rows they take."""
    for name in DIRECTORY:
        body = example(name)
        assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), name
    return count_rows(app)


def message() -> dict:
    return copy.deepcopy(example(MESSAGE))


def process(client, body: object, **headers):
    return post(client, "$process-message", body, **headers)


def search(client, path: str) -> list[dict]:
    bundle = client.get(f"/fhir/{path}").get_json()
    return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]


def header_of(response_body: dict) -> dict:
    assert response_body["resourceType"] == "Bundle" and response_body["type"] == "message", response_body
    header = response_body["entry"][0]["resource"]
    assert header["resourceType"] == "MessageHeader"
    return header


def medplum_errors(validator_url: str, body: dict) -> list[dict]:
    resp = requests.post(f"{validator_url}/validate", data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=30)
    return [i for i in resp.json()["issue"] if i["severity"] in ("error", "fatal")]


# ------------------------------------------------------------------------------- the good path
def test_a_referral_message_is_stored_and_acknowledged(client, directory):
    """The response message quotes the message id, names our endpoint and the sender's, and focuses the stored Task."""
    sent = message()
    resp = process(client, sent)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR
    body = resp.get_json()
    header = header_of(body)
    assert header["eventCoding"] == EVENT
    assert header["response"] == {"identifier": sent["entry"][0]["resource"]["id"], "code": "ok"}
    assert header["source"]["endpoint"] == BASE
    assert header["destination"][0]["endpoint"] == SOURCE
    assert header["sender"]["reference"] == f"{BASE}/Organization/iop-org-riverside"
    [task] = search(client, "Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0467")
    assert header["focus"] == [{"reference": f"{BASE}/Task/{task['id']}"}]
    assert body["entry"][1]["fullUrl"] == f"{BASE}/Task/{task['id']}"
    assert body["entry"][1]["resource"]["id"] == task["id"] and len(body["entry"]) == 2


def test_entries_are_stored_with_references_rewritten_and_the_header_is_not(client, directory):
    process(client, message())
    [patient] = search(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100467")
    [role] = search(client, "PractitionerRole?identifier=https://hospital.example.org/fhir/sid/practitioner-role|PR-DCP-0033")
    [sr] = search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0467")
    [task] = search(client, "Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0467")
    assert sr["subject"]["reference"] == f"Patient/{patient['id']}"
    assert sr["requester"]["reference"] == f"PractitionerRole/{role['id']}"
    assert task["focus"] == {"reference": f"ServiceRequest/{sr['id']}"}
    assert task["for"]["reference"] == f"Patient/{patient['id']}"
    assert task["owner"]["reference"] == "Organization/iop-org-riverside"  # relative in a urn:uuid entry: ours
    assert "urn:uuid:" not in json.dumps([patient, role, sr, task])
    conditions = search(client, f"Condition?subject=Patient/{patient['id']}")
    assert sorted(c["code"]["coding"][0]["code"] for c in conditions) == ["F11.20", "F43.10"]
    for rtype in ("Coverage", "Consent", "DocumentReference"):
        assert len(search(client, f"{rtype}?patient=Patient/{patient['id']}")) == 1, rtype
    assert search(client, "MessageHeader") == []
    assert len(search(client, f"Task?focus=ServiceRequest/{sr['id']}")) == 1  # the message's Task; no second one


def test_the_received_message_is_kept_as_a_receipt(client, directory):
    sent = message()
    process(client, sent)
    [receipt] = search(client, f"Bundle?identifier={SOURCE}|{sent['entry'][0]['resource']['id']}")
    assert receipt["type"] == "message" and receipt["entry"] == sent["entry"]  # as written


def test_the_response_message_is_valid_r4(client, directory, validator_url):
    body = process(client, message()).get_json()
    assert medplum_errors(validator_url, body) == []


def test_over_real_http(live_server, client, directory):
    resp = requests.post(f"{live_server}/$process-message", data=json.dumps(message()), headers={"Content-Type": FHIR}, timeout=30)
    assert resp.status_code == 200, resp.text
    header = header_of(resp.json())
    assert header["source"]["endpoint"] == live_server
    assert header["focus"][0]["reference"].startswith(f"{live_server}/Task/")


def test_parameters_with_content(client, directory):
    params = {"resourceType": "Parameters", "parameter": [{"name": "content", "resource": message()},
                                                          {"name": "async", "valueBoolean": False}]}
    resp = process(client, params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert header_of(resp.get_json())["response"]["code"] == "ok"


def test_the_operation_is_in_the_capability_statement(client):
    rest = client.get("/fhir/metadata").get_json()["rest"][0]
    assert {"name": "process-message", "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"} \
        in rest["operation"]


# ------------------------------------------------------------------------------- resends
def test_a_resent_message_gets_the_same_response_and_stores_nothing(client, app, directory):
    first = process(client, message())
    stored = count_rows(app)
    again = process(client, message())
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    new_envelope = dict(message(), id="0a6d2b1e-33f4-4f5e-8d0b-6c1f9f2e7a10", timestamp="2026-12-02T10:51:00-06:00")
    assert process(client, new_envelope).get_data() == first.get_data()  # same MessageHeader.id: the same message
    assert count_rows(app) == stored


def test_a_new_message_about_the_same_referral_creates_nothing_twice(client, app, directory):
    """Another message id (a new Bundle, e.g. after the sender lost its state): conditional creates match."""
    first = process(client, message()).get_json()
    stored = count_rows(app)
    body = message()
    body["entry"][0]["resource"]["id"] = "5e0b2a8c-6b7d-4f1e-9c3a-2d4f6a8b0c12"
    second = process(client, body).get_json()
    assert header_of(second)["response"]["identifier"] == "5e0b2a8c-6b7d-4f1e-9c3a-2d4f6a8b0c12"
    assert header_of(second)["focus"] == header_of(first)["focus"]
    assert count_rows(app) == stored + 2  # its receipt and its response, nothing clinical


def send_together(url: str, bodies: list[dict]) -> list[requests.Response]:
    """POST each body to url from its own thread, all released at the same moment."""
    start = threading.Barrier(len(bodies))
    results: list[requests.Response] = []

    def send(body: dict) -> None:
        start.wait()
        results.append(requests.post(url, data=json.dumps(body), headers={"Content-Type": FHIR}, timeout=60))

    threads = [threading.Thread(target=send, args=(body,)) for body in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * len(bodies), [r.text for r in results]
    return results


def test_two_copies_at_the_same_moment_store_one_set(live_server, client, directory):
    results = send_together(f"{live_server}/$process-message", [message(), message()])
    assert results[0].json() == results[1].json()
    assert len(search(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100467")) == 1
    assert len(search(client, "Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0467")) == 1
    assert len(search(client, "Bundle?type=message")) == 2  # one receipt, one response


def test_two_messages_about_one_referral_at_the_same_moment_create_it_once(live_server, client, directory):
    other = message()
    other["entry"][0]["resource"]["id"] = "5e0b2a8c-6b7d-4f1e-9c3a-2d4f6a8b0c12"
    results = send_together(f"{live_server}/$process-message", [message(), other])
    assert header_of(results[0].json())["focus"] == header_of(results[1].json())["focus"]
    assert len(search(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100467")) == 1
    assert len(search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0467")) == 1
    assert len(search(client, "Task")) == 1
    assert len(search(client, "Bundle?type=message")) == 4  # two receipts, two responses


# ------------------------------------------------------------------------------- focus and references
def test_a_message_focusing_a_bare_service_request_is_answered(client, directory):
    """No Task in the message: the answer focuses the Task that exists after processing, else the ServiceRequest."""
    body = message()
    sr_url = body["entry"][SR]["fullUrl"]
    del body["entry"][TASK]
    body["entry"][0]["resource"]["focus"] = [{"reference": sr_url}]
    resp = process(client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [sr] = search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0467")
    focus = header_of(resp.get_json())["focus"][0]["reference"]
    tasks = search(client, f"Task?focus=ServiceRequest/{sr['id']}")
    assert focus == (f"{BASE}/Task/{tasks[0]['id']}" if tasks else f"{BASE}/ServiceRequest/{sr['id']}")


def test_a_service_request_without_a_task_is_the_focus(client, directory):
    """A request no workflow makes a Task for (not an IOP referral): the response focuses the request itself."""
    body = message()
    sr = body["entry"][SR]["resource"]
    sr["meta"] = {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-servicerequest"]}
    sr["extension"] = [x for x in sr["extension"] if not x["url"].endswith("requested-level-of-care")]
    sr["code"] = {"coding": [sr["code"]["coding"][0]]}
    del body["entry"][TASK]
    body["entry"][0]["resource"]["focus"] = [{"reference": body["entry"][SR]["fullUrl"]}]
    resp = process(client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [stored] = search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0467")
    assert search(client, f"Task?focus=ServiceRequest/{stored['id']}") == []
    body = resp.get_json()
    assert header_of(body)["focus"] == [{"reference": f"{BASE}/ServiceRequest/{stored['id']}"}]
    assert body["entry"][1]["resource"]["resourceType"] == "ServiceRequest"


def restful(body: dict) -> dict:
    """The example with the Patient, ServiceRequest and Task on the sender's server (RESTful fullUrls), referring to each
    other by relative references, to the other entries by urn:uuid, and to our program by absolute URLs on our base."""
    named = {PATIENT: "p-467", SR: "sr-467", TASK: "task-467"}
    text = json.dumps(body)
    for index, rid in named.items():
        entry = body["entry"][index]
        text = text.replace(f'"{entry["fullUrl"]}"', f'"{HOSPITAL}/{entry["resource"]["resourceType"]}/{rid}"')
    out = json.loads(text)
    for index, rid in named.items():
        entry = out["entry"][index]
        entry["resource"]["id"] = rid
        resource = json.dumps(entry["resource"])
        for local in ("Organization/iop-org-riverside", "HealthcareService/iop-hs-adult-evening"):
            resource = resource.replace(f'"{local}"', f'"{BASE}/{local}"')
        for other in named.values():  # relative: resolved against the fullUrl's base
            resource = re.sub(rf'"{re.escape(HOSPITAL)}/([A-Za-z]+/{other})"', r'"\1"', resource)
        entry["resource"] = json.loads(resource)
    return out


def test_relative_references_resolve_against_a_restful_full_url(client, directory):
    body = restful(message())
    assert body["entry"][SR]["resource"]["subject"]["reference"] == "Patient/p-467"
    assert body["entry"][3]["resource"]["subject"]["reference"] == f"{HOSPITAL}/Patient/p-467"
    resp = process(client, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [patient] = search(client, "Patient?identifier=https://hospital.example.org/fhir/sid/mrn|H-100467")
    [sr] = search(client, "ServiceRequest?identifier=https://hospital.example.org/fhir/sid/referral|R-2026-0467")
    [task] = search(client, "Task?identifier=https://hospital.example.org/fhir/sid/referral-task|T-2026-0467")
    assert patient["id"] != "p-467" and sr["subject"]["reference"] == f"Patient/{patient['id']}"
    assert task["focus"]["reference"] == f"ServiceRequest/{sr['id']}"
    assert task["owner"]["reference"] == "Organization/iop-org-riverside"  # our absolute URL stored as a relative one
    assert sr["performer"][1]["reference"] == "HealthcareService/iop-hs-adult-evening"
    assert [c["subject"]["reference"] for c in search(client, "Condition")] == [f"Patient/{patient['id']}"] * 2
    assert header_of(resp.get_json())["focus"] == [{"reference": f"{BASE}/Task/{task['id']}"}]


# ------------------------------------------------------------------------------- bad input: 4xx, nothing stored
def _without_patient(body: dict) -> None:
    del body["entry"][PATIENT]


def _restful_without_patient(body: dict) -> None:
    body.update(restful(copy.deepcopy(body)))
    del body["entry"][PATIENT]


def _header_last(body: dict) -> None:
    body["entry"].append(body["entry"].pop(0))


def _set(path: tuple, value: object):
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


def _drop(path: tuple):
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


BAD = [
    ("transaction", _set(("type",), "transaction"), 400, "invalid", "Bundle.type"),
    ("no entries", _drop(("entry",)), 400, "required", "Bundle.entry"),
    ("other event", _set(("entry", 0, "resource", "eventCoding", "code"), "I14"), 422, "not-supported",
     "Bundle.entry[0].resource.eventCoding"),
    ("event uri", lambda b: b["entry"][0]["resource"].update(eventUri="http://example.org/event/admit") or
     b["entry"][0]["resource"].pop("eventCoding"), 422, "not-supported", "Bundle.entry[0].resource.eventUri"),
    ("header not first", _header_last, 400, "invariant", "Bundle.entry[0].resource.resourceType"),
    ("no header id", _drop(("entry", 0, "resource", "id")), 400, "required", "Bundle.entry[0].resource.id"),
    ("no focus", _drop(("entry", 0, "resource", "focus")), 422, "required", "Bundle.entry[0].resource.focus"),
    ("dangling focus", _set(("entry", 0, "resource", "focus"), [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}]),
     422, "not-found", "Bundle.entry[0].resource.focus[0]"),
    ("focus on a server", _set(("entry", 0, "resource", "focus"), [{"reference": "Task/iop-task-1-referral"}]), 422, "not-found",
     "Bundle.entry[0].resource.focus[0]"),
    ("focus on the patient", lambda b: b["entry"][0]["resource"].update(focus=[{"reference": b["entry"][PATIENT]["fullUrl"]}]),
     422, "business-rule", "Bundle.entry[0].resource.focus[0]"),
    ("entry without fullUrl", _drop(("entry", 3, "fullUrl")), 400, "required", "Bundle.entry[3].fullUrl"),
    ("relative fullUrl", _set(("entry", 3, "fullUrl"), "Condition/c1"), 400, "invalid", "Bundle.entry[3].fullUrl"),
    ("entry without resource", _drop(("entry", 3, "resource")), 400, "required", "Bundle.entry[3].resource"),
    ("entry with a request", _set(("entry", 3, "request"), {"method": "POST", "url": "Condition"}), 400, "invariant",
     "Bundle.entry[3].request"),
    ("same fullUrl twice", lambda b: b["entry"][4].update(fullUrl=b["entry"][3]["fullUrl"]), 400, "duplicate", "Bundle.entry[4].fullUrl"),
    ("same id twice", lambda b: [b["entry"][i]["resource"].update(id="c1") for i in (3, 4)], 400, "duplicate",
     "Bundle.entry[4].resource.id"),
    ("invalid resource", _set(("entry", PATIENT, "resource", "gender"), "bogus"), 400, "code-invalid",
     f"Bundle.entry[{PATIENT}].resource.gender"),
    ("unknown element", _set(("entry", 5, "resource", "colour"), "blue"), 400, "structure", "Bundle.entry[5].resource.colour"),
    ("profile rule broken", _drop(("entry", SR, "resource", "requester")), 422, None, f"Bundle.entry[{SR}].resource.requester"),
    ("referral without its patient", _without_patient, 422, "not-found", f"Bundle.entry[{SR - 1}].resource.subject"),
    ("restful referral without its patient", _restful_without_patient, 422, "not-found", f"Bundle.entry[{SR - 1}].resource.subject"),
]


@pytest.mark.parametrize("case, change, status, code, expression", BAD, ids=[b[0] for b in BAD])
def test_a_message_we_cannot_take_is_refused_and_nothing_is_stored(client, app, directory, case, change, status, code, expression):
    body = message()
    change(body)
    assert_outcome(process(client, body), status, code, expression)
    assert count_rows(app) == directory


@pytest.mark.parametrize("body", [{"resourceType": "Patient"}, [], "message"])
def test_a_body_that_is_not_a_bundle_is_refused(client, app, directory, body):
    assert_outcome(process(client, body), 400)
    assert count_rows(app) == directory


def test_async_is_not_supported(client, app, directory):
    assert_outcome(post(client, "$process-message?async=true", message()), 400, "not-supported", "async")
    params = {"resourceType": "Parameters", "parameter": [{"name": "content", "resource": message()},
                                                          {"name": "async", "valueBoolean": True},
                                                          {"name": "response-url", "valueUrl": "https://hospital.example.org/inbox"}]}
    assert_outcome(process(client, params), 400, "not-supported", "async")
    assert_outcome(post(client, "$process-message?async=maybe", message()), 400, "invalid", "async")
    assert_outcome(process(client, {"resourceType": "Parameters", "parameter": [{"name": "async", "valueBoolean": False}]}), 400,
                   "required")
    assert count_rows(app) == directory


def test_a_refused_message_can_be_corrected_and_sent_again_with_the_same_id(client, app, directory):
    """A refusal rolls everything back, receipt included: the corrected message is processed, not taken for a resend."""
    broken = message()
    del broken["entry"][SR]["resource"]["requester"]
    assert_outcome(process(client, broken), 422, expression=f"Bundle.entry[{SR}].resource.requester")
    assert count_rows(app) == directory
    resp = process(client, message())
    assert resp.status_code == 200 and header_of(resp.get_json())["response"]["code"] == "ok"


def test_the_stored_message_and_response_carry_the_part2_high_water_mark(program):
    """The receipt and response Bundles hold Part 2 data: R and 42CFRPart2 at Bundle level (DS4P), not SUD/NORDSCLCD."""
    client = program
    message = example("referral-message.json")
    assert post(client, "$process-message", message).status_code == 200
    bundles = [e["resource"] for e in client.get("/fhir/Bundle").get_json()["entry"]]
    assert len(bundles) == 2
    for bundle in bundles:
        codes = {label["code"] for label in bundle["meta"]["security"]}
        assert codes == {"R", "42CFRPart2"}, bundle["meta"]


def test_the_message_is_parsed_once_and_its_bundle_validated_once(client, directory, monkeypatch):
    """The scope check and the operation share one parse of the body; the receipt is not validated again (check() did)."""
    from service import validation, wire

    parsed, validated = [], []
    real_parse, real_validate = wire._parse_json, validation.validate
    monkeypatch.setattr(wire, "_parse_json", lambda req: parsed.append(1) or real_parse(req))
    monkeypatch.setattr(validation, "validate",
                        lambda res, *a, **k: validated.append((res["resourceType"], len(res.get("entry", [])))) or real_validate(res, *a, **k))
    assert process(client, message()).status_code == 200
    assert len(parsed) == 1
    incoming = len(message()["entry"])
    assert validated.count(("Bundle", incoming)) == 1, validated  # the message; its receipt is the same content
    assert ("Patient", 0) in validated and ("Bundle", 2) in validated  # entries as they are written; our response
