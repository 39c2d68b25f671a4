"""The profile validator's engine on small definitions: each supported construct, and each refusal at load."""
from __future__ import annotations

import pytest

from service.conformance import ProfileError, Registry

C = "https://iop.example.org/fhir"
SNOMED = "http://snomed.info/sct"


def sd(sd_id: str, rtype: str, elements: list[dict], *, base: str | None = None, kind: str = "resource") -> dict:
    return {"resourceType": "StructureDefinition", "id": sd_id, "url": f"{C}/StructureDefinition/{sd_id}", "name": sd_id,
            "status": "draft", "kind": kind, "abstract": False, "type": rtype, "derivation": "constraint",
            "baseDefinition": base or f"http://hl7.org/fhir/StructureDefinition/{rtype}",
            "differential": {"element": [{"id": rtype, "path": rtype}, *elements]}}


TRACKS = [
    {"resourceType": "CodeSystem", "id": "track", "url": f"{C}/CodeSystem/track", "status": "draft", "content": "complete",
     "concept": [{"code": "evening", "display": "Evening"}, {"code": "day", "display": "Day"}]},
    {"resourceType": "ValueSet", "id": "track", "url": f"{C}/ValueSet/track", "status": "draft",
     "compose": {"include": [{"system": f"{C}/CodeSystem/track"}]}},
    {"resourceType": "ValueSet", "id": "therapy", "url": f"{C}/ValueSet/therapy", "status": "draft",
     "compose": {"include": [{"system": SNOMED, "concept": [{"code": "76168009", "display": "Group psychotherapy"}]}]}},
]
TRACK_EXT = sd("track-ext", "Extension", [
    {"id": "Extension.url", "path": "Extension.url", "fixedUri": f"{C}/StructureDefinition/track-ext"},
    {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "code"}],
     "binding": {"strength": "required", "valueSet": f"{C}/ValueSet/track"}}], kind="complex-type")
REFERRAL = sd("referral", "ServiceRequest", [
    {"id": "ServiceRequest.extension", "path": "ServiceRequest.extension", "slicing": {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}},
    {"id": "ServiceRequest.extension:track", "path": "ServiceRequest.extension", "sliceName": "track", "min": 1, "max": "1",
     "type": [{"code": "Extension", "profile": [f"{C}/StructureDefinition/track-ext"]}]},
    {"id": "ServiceRequest.intent", "path": "ServiceRequest.intent", "fixedCode": "order"},
    {"id": "ServiceRequest.category", "path": "ServiceRequest.category", "min": 1,
     "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}], "rules": "closed"}},
    {"id": "ServiceRequest.category:counselling", "path": "ServiceRequest.category", "sliceName": "counselling", "min": 1, "max": "1",
     "patternCodeableConcept": {"coding": [{"system": SNOMED, "code": "409063005"}]}},
    {"id": "ServiceRequest.code", "path": "ServiceRequest.code", "binding": {"strength": "extensible", "valueSet": f"{C}/ValueSet/therapy"}},
    {"id": "ServiceRequest.subject", "path": "ServiceRequest.subject", "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]},
    {"id": "ServiceRequest.requester", "path": "ServiceRequest.requester", "min": 1},
    {"id": "ServiceRequest.note", "path": "ServiceRequest.note", "max": "0"},
    {"id": "ServiceRequest.occurrence[x]", "path": "ServiceRequest.occurrence[x]", "type": [{"code": "Period"}]},
    {"id": "ServiceRequest.occurrence[x]:occurrencePeriod.start", "path": "ServiceRequest.occurrence[x].start", "min": 1},
    {"id": "ServiceRequest", "path": "ServiceRequest", "constraint": [
        {"key": "t-1", "severity": "error", "human": "a reason is needed", "expression": "reasonCode.exists() or reasonReference.exists()",
         "source": f"{C}/StructureDefinition/referral"}]},
])
URL = REFERRAL["url"]


def good() -> dict:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "extension": [{"url": f"{C}/StructureDefinition/track-ext", "valueCode": "evening"}],
            "category": [{"coding": [{"system": SNOMED, "code": "409063005", "display": "Counselling"}]}],
            "code": {"coding": [{"system": SNOMED, "code": "76168009"}]}, "subject": {"reference": "Patient/p"},
            "requester": {"reference": "Practitioner/r"}, "reasonCode": [{"text": "step-down"}],
            "occurrencePeriod": {"start": "2026-12-01"}}


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry([*TRACKS, TRACK_EXT, REFERRAL])


def issues(registry: Registry, resource: dict) -> list[tuple[str, str, str]]:
    return [(i.severity, i.code, i.expression or "") for i in registry.validate(resource, [URL])]


def test_a_conforming_instance_has_no_issues(registry):
    assert issues(registry, good()) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: r.pop("requester"), ("error", "required", "ServiceRequest.requester")),
    (lambda r: r.update(note=[{"text": "a"}]), ("error", "structure", "ServiceRequest.note")),
    (lambda r: r.update(intent="plan"), ("error", "value", "ServiceRequest.intent")),
    (lambda r: r.update(category=[{"text": "other"}]), ("error", "required", "ServiceRequest.category")),
    (lambda r: r["category"].append({"text": "other"}), ("error", "structure", "ServiceRequest.category[1]")),
    (lambda r: r.update(subject={"reference": "Group/g"}), ("error", "value", "ServiceRequest.subject.reference")),
    (lambda r: r.update(extension=[]), ("error", "required", "ServiceRequest.extension")),
    (lambda r: r["extension"][0].update(valueCode="weekend"), ("error", "code-invalid", "ServiceRequest.extension[0].valueCode")),
    (lambda r: r.pop("reasonCode"), ("error", "invariant", "ServiceRequest")),
    (lambda r: r.update(occurrenceDateTime=r.pop("occurrencePeriod")["start"]), ("error", "structure", "ServiceRequest.occurrenceDateTime")),
    (lambda r: r.update(occurrencePeriod={"end": "2027-01-01"}), ("error", "required", "ServiceRequest.occurrencePeriod.start")),
    (lambda r: r.update(code={"coding": [{"system": SNOMED, "code": "1"}]}), ("warning", "code-invalid", "ServiceRequest.code")),
])
def test_each_rule_reports_its_element(registry, change, expected):
    resource = good()
    change(resource)
    assert expected in issues(registry, resource)


def test_extensible_binding_accepts_text_only(registry):
    resource = good()
    resource["code"] = {"text": "IOP evening group"}
    assert issues(registry, resource) == []


def test_parent_profile_rules_apply_to_the_child(registry):
    child = sd("child", "ServiceRequest", [{"id": "ServiceRequest.priority", "path": "ServiceRequest.priority", "min": 1}], base=URL)
    reg = Registry([*TRACKS, TRACK_EXT, REFERRAL, child])
    resource = good()
    resource.pop("requester")
    found = [(i.code, i.expression) for i in reg.validate(resource, [child["url"]])]
    assert ("required", "ServiceRequest.priority") in found and ("required", "ServiceRequest.requester") in found


def test_value_set_expansion_and_displays(registry):
    assert {c.code: c.display for c in registry.terminology.expand(f"{C}/ValueSet/track")} == {"evening": "Evening", "day": "Day"}
    assert registry.by_type() == {"ServiceRequest": [URL]}


@pytest.mark.parametrize(("element", "message"), [
    ({"id": "ServiceRequest.note", "path": "ServiceRequest.note", "maxLength": 10}, "maxLength"),
    ({"id": "ServiceRequest.category", "path": "ServiceRequest.category", "slicing": {"discriminator": [{"type": "exists", "path": "coding"}]}},
     "'exists' discriminator"),
    ({"id": "ServiceRequest.category", "path": "ServiceRequest.category", "slicing": {"discriminator": [{"type": "value", "path": "resolve()"}]}},
     "discriminator path"),
    ({"id": "ServiceRequest.code", "path": "ServiceRequest.code", "binding": {"strength": "required", "valueSet": f"{C}/ValueSet/none"}},
     "neither ours nor"),
    ({"id": "ServiceRequest.subject", "path": "ServiceRequest.subject", "type": [{"code": "Reference", "targetProfile": [f"{C}/StructureDefinition/nope"]}]},
     "neither a base type nor one of ours"),
    ({"id": "ServiceRequest", "path": "ServiceRequest", "constraint": [{"key": "x-1", "severity": "error", "human": "x", "expression": "((("}]},
     "cannot be compiled"),
])
def test_unsupported_constructs_are_refused_at_load(element, message):
    with pytest.raises(ProfileError, match=message):
        Registry([*TRACKS, sd("bad", "ServiceRequest", [element])])


def test_a_slice_that_fixes_nothing_at_its_discriminator_is_refused():
    sliced = sd("sliced", "ServiceRequest", [
        {"id": "ServiceRequest.category", "path": "ServiceRequest.category", "slicing": {"discriminator": [{"type": "value", "path": "coding.system"}]}},
        {"id": "ServiceRequest.category:a", "path": "ServiceRequest.category", "sliceName": "a", "min": 1}])
    with pytest.raises(ProfileError, match="fixes no value"):
        Registry([sliced])


def test_value_set_filters_are_refused():
    vs = {"resourceType": "ValueSet", "id": "f", "url": f"{C}/ValueSet/f", "status": "draft",
          "compose": {"include": [{"system": SNOMED, "filter": [{"property": "concept", "op": "is-a", "value": "1"}]}]}}
    with pytest.raises(ProfileError, match="filters are not supported"):
        Registry([vs])
