"""Bad input gets a clean 4xx OperationOutcome with an expression, never a 5xx, and nothing is stored."""
from __future__ import annotations

import json

import pytest

from helpers import FHIR, assert_outcome, count_rows, patient, post
from service import validation

H = {"Content-Type": FHIR}


@pytest.fixture(autouse=True)
def nothing_stored(app):
    """Every test in this module must leave the database empty."""
    yield
    assert count_rows(app) == 0
    assert count_rows(app, "resource_version") == 0


def test_malformed_json(client):
    body = assert_outcome(client.post("/fhir/Patient", data='{"resourceType": "Patient",', headers=H), 400, "structure")
    assert "not valid JSON" in body["issue"][0]["diagnostics"]


def test_invalid_utf8(client):
    resp = client.post("/fhir/Patient", data=b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}', headers=H)
    assert_outcome(resp, 400, "structure")


def test_duplicate_json_keys(client):
    resp = client.post("/fhir/Patient", data='{"resourceType":"Patient","gender":"male","gender":"female"}', headers=H)
    assert "duplicate" in assert_outcome(resp, 400)["issue"][0]["diagnostics"]


def test_nan_and_infinity_are_not_json(client):
    obs = '{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":NaN}}'
    assert_outcome(client.post("/fhir/Observation", data=obs, headers=H), 400)


def test_body_not_an_object_or_without_resource_type(client):
    assert_outcome(post(client, "Patient", [1, 2]), 400)
    assert_outcome(post(client, "Patient", {"name": [{"family": "x"}]}), 400)


def test_wrong_resource_type_for_the_url(client):
    assert_outcome(post(client, "Patient", {"resourceType": "Observation"}), 400, expression="resourceType")


def test_unknown_element(client):
    assert_outcome(post(client, "Patient", patient(foo=1)), 400, "structure", "Patient.foo")


def test_r4b_only_element_is_unknown_in_r4(client):
    """R4B added elements that R4 does not have; we serve R4, so they are unknown."""
    sr = {"resourceType": "ServiceRequest", "status": "active", "intent": "order", "subject": {"reference": "Patient/x"},
          "code": {"text": "x"}, "bodyStructure": {"reference": "BodyStructure/b"}}
    assert_outcome(post(client, "ServiceRequest", sr), 400, expression="ServiceRequest.bodyStructure")


def test_wrong_json_types(client):
    assert_outcome(post(client, "Patient", patient(active="true")), 400, "value", "Patient.active")
    assert_outcome(post(client, "Patient", patient(name={"family": "x"})), 400, "structure", "Patient.name")
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": "1.5"}}
    assert_outcome(post(client, "Observation", obs), 400, "value", "Observation.valueQuantity.value")


def test_empty_values_and_nulls(client):
    assert_outcome(post(client, "Patient", patient(name=[{}])), 400, expression="Patient.name[0]")
    assert_outcome(post(client, "Patient", patient(identifier=[])), 400, expression="Patient.identifier")
    assert_outcome(post(client, "Patient", patient(gender=None)), 400, expression="Patient.gender")
    assert_outcome(post(client, "Patient", patient(gender="")), 400, expression="Patient.gender")


def test_missing_required_element(client):
    obs = {"resourceType": "Observation", "status": "final"}
    assert_outcome(post(client, "Observation", obs), 400, "required", "Observation.code")


def test_required_binding_violations(client):
    careplan = {"resourceType": "CarePlan", "status": "bogus", "intent": "plan", "subject": {"reference": "Patient/p"}}
    assert_outcome(post(client, "CarePlan", careplan), 400, "code-invalid", "CarePlan.status")
    assert_outcome(post(client, "Patient", patient(gender="woman")), 400, "code-invalid", "Patient.gender")
    telecom = patient(telecom=[{"system": "pigeon", "value": "x"}])
    assert_outcome(post(client, "Patient", telecom), 400, "code-invalid", "Patient.telecom[0].system")
    task = {"resourceType": "Task", "status": "requested", "intent": "order",
            "businessStatus": {"text": "free text is fine"}, "priority": "whenever"}
    assert_outcome(post(client, "Task", task), 400, "code-invalid", "Task.priority")


def test_reference_formats(client):
    bad = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    where = "Observation.subject.reference"
    for literal in ("Patient/", "patient 1", "Spaceship/1"):
        assert_outcome(post(client, "Observation", dict(bad, subject={"reference": literal})), 400, expression=where)
    wrong_target = dict(bad, subject={"reference": "Medication/1"})
    assert_outcome(post(client, "Observation", wrong_target), 400, expression="Observation.subject.reference")


def test_id_format(client):
    assert_outcome(client.put("/fhir/Patient/bad id", data=json.dumps(patient(id="bad id")), headers=H), 400)
    long_id = "x" * 65
    assert_outcome(client.put(f"/fhir/Patient/{long_id}", data=json.dumps(patient(id=long_id)), headers=H), 400)


def test_id_in_body_differs_from_url(client):
    assert_outcome(client.put("/fhir/Patient/a", data=json.dumps(patient(id="b")), headers=H), 400, expression="Patient.id")


def test_narrative_must_be_safe_xhtml(client):
    no_div = patient(text={"status": "generated", "div": "<p>hi</p>"})
    assert_outcome(post(client, "Patient", no_div), 400, "invariant", "Patient.text.div")
    script = patient(text={"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></div>'})
    assert_outcome(post(client, "Patient", script), 400, "invariant", "Patient.text.div")


def test_contained_resource_rules(client):
    unknown = patient(contained=[{"resourceType": "Nope", "id": "n"}])
    assert_outcome(post(client, "Patient", unknown), 400)
    unreferenced = patient(contained=[{"resourceType": "Practitioner", "id": "gp"}])
    assert_outcome(post(client, "Patient", unreferenced), 400, "invariant", "Patient.contained[0]")


def test_oversized_body_is_413(client):
    big = patient(name=[{"family": "x" * (5 * 1024 * 1024)}])
    resp = client.post("/fhir/Patient", data=json.dumps(big), headers=H)
    assert_outcome(resp, 413)


def test_very_deep_nesting(client):
    deep: dict = {"url": "http://x", "valueString": "leaf"}
    for _ in range(200):
        deep = {"url": "http://x", "extension": [deep]}
    assert_outcome(post(client, "Patient", patient(extension=[deep])), 400)
    bomb = '{"resourceType":"Patient","extension":' + "[" * 100000 + "]" * 100000 + "}"
    assert_outcome(client.post("/fhir/Patient", data=bomb, headers=H), 400)


def test_bad_search_values_are_400(client):
    assert_outcome(client.get("/fhir/Patient?birthdate=yesterday"), 400)
    assert_outcome(client.get("/fhir/Patient?_count=-1"), 400, expression="_count")
    assert_outcome(client.get("/fhir/Patient?name:bogus=x"), 400)


def test_control_characters_in_strings(client):
    """NUL and other control characters (but tab, CR and LF) are refused with the element's path."""
    assert_outcome(post(client, "Patient", patient(name=[{"family": "a\u0000b"}])), 400, "value", "Patient.name[0].family")
    assert_outcome(post(client, "Patient", patient(name=[{"text": "bell\u0007"}])), 400, "value", "Patient.name[0].text")


OBS = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}


@pytest.mark.parametrize(("resource", "where"), [
    (patient(birthDate="2026-02-30"), "Patient.birthDate"),  # the pattern allows it; the calendar does not
    (patient(birthDate="26-02-01"), "Patient.birthDate"),
    ({**OBS, "effectiveDateTime": "2026-01-05T10:00:00"}, "Observation.effectiveDateTime"),  # a time needs a zone
    ({**OBS, "effectiveDateTime": "2026-01-05T25:00:00Z"}, "Observation.effectiveDateTime"),
    ({**OBS, "issued": "2026-01-05"}, "Observation.issued"),  # an instant is a full timestamp
    ({**OBS, "valueTime": "9:30"}, "Observation.valueTime"),
    ({**OBS, "status": "final "}, "Observation.status"),  # a code has no outer whitespace
    (patient(identifier=[{"system": "http://x y", "value": "x"}]), "Patient.identifier[0].system"),
    (patient(photo=[{"data": "not base64!"}]), "Patient.photo[0].data"),
])
def test_primitive_formats(client, resource, where):
    """The R4 primitive formats (datatypes.html#primitive) are checked by our own walk, also where the fhir.resources
    parse is skipped (resources the server builds): a 400 naming the element."""
    assert_outcome(post(client, resource["resourceType"], resource), 400, "value", where)
    assert {i.expression for i in validation.validate(resource, parse=False)} == {where}
