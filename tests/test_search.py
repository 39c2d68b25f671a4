"""Search (https://hl7.org/fhir/R4/search.html): parameter types, modifiers, prefixes, chains, result
controls, keyset paging links, _include/_revinclude, POST _search and error handling.

Every test asserts what a client sees: the status, Bundle.total, the ids of the matches (and of the
included resources), the links and the OperationOutcome of a refused search.
"""
from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from helpers import FHIR, assert_outcome, patient, phq9, put

BASE = "http://localhost/fhir"
MRN = "https://iop.example.org/fhir/sid/mrn"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
FORM = "application/x-www-form-urlencoded"


# ------------------------------------------------------------------------------- helpers
def store(client, resource: dict) -> dict:
    """PUT a resource under its own id (create or update) and return what the server stored."""
    resp = put(client, f"{resource['resourceType']}/{resource['id']}", resource)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def remove(client, ref: str) -> None:
    """DELETE [base]/ref (asserting success)."""
    resp = client.delete(f"/fhir/{ref}")
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)


def search(client, query: str, **headers) -> dict:
    """GET [base]/query and return the searchset Bundle (asserting 200)."""
    resp = client.get(query if query.startswith("http") else f"/fhir/{query}", headers=headers)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == FHIR
    body = resp.get_json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset", body
    return body


def entries(bundle: dict, mode: str) -> list[str]:
    """Type/id of the entries with search.mode `mode`, in bundle order."""
    return [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle.get("entry", [])
            if e["search"]["mode"] == mode]


def matches(bundle: dict) -> list[str]:
    """Ids of the matches, in bundle order."""
    return [ref.split("/")[1] for ref in entries(bundle, "match")]


def found(client, query: str, **headers) -> list[str]:
    """Sorted ids matched by a one-page search; checks total and that no match repeats."""
    bundle = search(client, query, **headers)
    ids = matches(bundle)
    assert len(ids) == len(set(ids)), ids
    assert bundle["total"] == len(ids), bundle
    return sorted(ids)


def link(bundle: dict, relation: str) -> str | None:
    """The URL of the Bundle link with `relation`, or None."""
    urls = [ln["url"] for ln in bundle.get("link", []) if ln["relation"] == relation]
    assert len(urls) <= 1, bundle["link"]
    return urls[0] if urls else None


def follow(client, bundle: dict, relation: str = "next") -> list[list[str]]:
    """The match ids of every page reached by following `relation` links from `bundle`."""
    pages = []
    for _ in range(100):
        url = link(bundle, relation)
        if url is None:
            return pages
        assert url.startswith(f"{BASE}/")
        bundle = search(client, url)
        pages.append(matches(bundle))
    raise AssertionError(f"{relation} links never end")


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def outcome_entries(bundle: dict) -> list[dict]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "outcome"]


def observation(oid: str, subject: str | dict | None = "Patient/p1", **extra) -> dict:
    """A minimal final Observation (LOINC 8867-4 heart rate) with `extra` elements."""
    body = {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]}}
    if subject is not None:
        body["subject"] = subject if isinstance(subject, dict) else {"reference": subject}
    body.update(extra)
    return body


def quantity(value: float, code: str = "mm[Hg]", system: str | None = UCUM) -> dict:
    q = {"value": value, "unit": code, "code": code}
    if system:
        q["system"] = system
    return q


def encounter(eid: str, start: str | None, end: str | None) -> dict:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return {"resourceType": "Encounter", "id": eid, "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB"}, "period": period}


def task(tid: str, focus: str) -> dict:
    return {"resourceType": "Task", "id": tid, "status": "requested", "intent": "order", "focus": {"reference": focus}}


def care_plan(cid: str, subject: str) -> dict:
    return {"resourceType": "CarePlan", "id": cid, "status": "active", "intent": "plan", "subject": {"reference": subject}}


def provenance(pid: str, *targets: str) -> dict:
    return {"resourceType": "Provenance", "id": pid, "target": [{"reference": t} for t in targets],
            "recorded": "2026-11-16T10:00:00Z", "agent": [{"who": {"display": "Intake service"}}]}


def organization(oid: str, name: str) -> dict:
    return {"resourceType": "Organization", "id": oid, "name": name}


# ------------------------------------------------------------------------------- string
def test_string_matches_the_start_of_a_value_ignoring_case_and_accents(client):
    """A plain string search is a case- and accent-insensitive starts-with match."""
    store(client, patient("Muñoz", "Ana", id="munoz"))
    store(client, patient("Munster", "Ben", id="munster"))
    store(client, patient("Smith", "Émile", id="smith"))
    assert found(client, "Patient?family=munoz") == ["munoz"]
    assert found(client, "Patient?family=MUÑOZ") == ["munoz"]
    assert found(client, "Patient?family=Mun") == ["munoz", "munster"]
    assert found(client, "Patient?given=emile") == ["smith"]
    assert found(client, "Patient?family=oz") == []  # not a substring search
    assert found(client, "Patient?family=munozz") == []


def test_string_exact_is_case_and_accent_sensitive_and_whole_value(client):
    """family:exact matches the whole value with its case and accents."""
    store(client, patient("Muñoz", "Ana", id="munoz"))
    store(client, patient("Muñozson", "Ben", id="munozson"))
    assert found(client, "Patient?family:exact=Muñoz") == ["munoz"]
    assert found(client, "Patient?family:exact=Munoz") == []
    assert found(client, "Patient?family:exact=muñoz") == []
    assert found(client, "Patient?family:exact=Muñ") == []


def test_string_contains_matches_anywhere_and_treats_wildcards_literally(client):
    """:contains matches a substring (case/accent-insensitive); % and _ are not wildcards."""
    store(client, patient("Muñoz", "Ana", id="munoz"))
    store(client, patient("Munster", "Ben", id="munster"))
    store(client, patient("Dale_Cooper", "Dana", id="dale"))
    store(client, patient("Perc%nt", "Pia", id="percent"))
    assert found(client, "Patient?family:contains=ÑO") == ["munoz"]
    assert found(client, "Patient?family:contains=ster") == ["munster"]
    assert found(client, "Patient?family:contains=un") == ["munoz", "munster"]
    assert found(client, "Patient?family:contains=_") == ["dale"]
    assert found(client, "Patient?family:contains=%25") == ["percent"]


def test_name_searches_every_part_of_a_human_name(client):
    """name matches family, given, prefix, suffix and text; family and given only their part."""
    store(client, patient("Okafor", "Chidi", id="p1", name=[
        {"use": "official", "family": "Okafor", "given": ["Chidi", "Emeka"], "prefix": ["Dr."], "suffix": ["PhD"]},
        {"use": "nickname", "text": "Chief"}]))
    store(client, patient("Emerson", "Lake", id="p2"))
    assert found(client, "Patient?name=okafor") == ["p1"]
    assert found(client, "Patient?name=emeka") == ["p1"]
    assert found(client, "Patient?name=dr") == ["p1"]
    assert found(client, "Patient?name=phd") == ["p1"]
    assert found(client, "Patient?name=chief") == ["p1"]
    assert found(client, "Patient?name=eme") == ["p1", "p2"]
    assert found(client, "Patient?given=eme") == ["p1"]
    assert found(client, "Patient?family=eme") == ["p2"]
    assert found(client, "Patient?family=chidi") == []


def test_address_searches_every_part_and_the_specific_parameters(client):
    """address matches line, city, state, postal code and country; address-* match one part."""
    store(client, patient(id="p1", address=[{"use": "home", "line": ["12 Rue de Rivoli"], "city": "Paris",
                                              "state": "Île-de-France", "postalCode": "75001", "country": "FR"}]))
    store(client, patient(id="p2", address=[{"use": "work", "line": ["1 Parish Road"], "city": "Leeds",
                                              "postalCode": "LS1 1AA", "country": "GB"}]))
    assert found(client, "Patient?address=paris") == ["p1"]  # not p2: its line "1 Parish Road" starts with "1"
    assert found(client, "Patient?address=12 rue") == ["p1"]
    assert found(client, "Patient?address=ile-de") == ["p1"]
    assert found(client, "Patient?address-city=par") == ["p1"]
    assert found(client, "Patient?address-postalcode=ls1") == ["p2"]
    assert found(client, "Patient?address-country=fr") == ["p1"]
    assert found(client, "Patient?address-state=ile") == ["p1"]
    assert found(client, "Patient?address-use=work") == ["p2"]


def test_string_escaped_comma_is_part_of_the_value(client):
    """A '\\,' is a literal comma, while an unescaped comma separates OR'd values."""
    store(client, patient("Smith,Jr", "Al", id="smithjr"))
    store(client, patient("Smith", "Bo", id="smith"))
    store(client, patient("Jr", "Cy", id="jr"))
    assert found(client, "Patient?family=Smith\\,Jr") == ["smithjr"]
    assert found(client, "Patient?family=Smith,Jr") == ["jr", "smith", "smithjr"]
    assert found(client, "Patient?family:exact=Smith\\,Jr,Jr") == ["jr", "smithjr"]


# ------------------------------------------------------------------------------- token
def test_token_code_system_and_code_and_explicitly_no_system(client):
    """code, system|code, |code (no system) and system| each select as the spec says."""
    store(client, observation("loinc"))
    store(client, observation("local", code={"coding": [{"system": "http://example.org/codes", "code": "8867-4"}]}))
    store(client, observation("nosys", code={"coding": [{"code": "8867-4"}]}))
    store(client, observation("other", code={"coding": [{"system": LOINC, "code": "29463-7"}]}))
    assert found(client, "Observation?code=8867-4") == ["local", "loinc", "nosys"]
    assert found(client, f"Observation?code={LOINC}|8867-4") == ["loinc"]
    assert found(client, "Observation?code=|8867-4") == ["nosys"]
    assert found(client, f"Observation?code={LOINC}|") == ["loinc", "other"]
    assert found(client, "Observation?code=http://example.org/other|8867-4") == []
    assert found(client, "Observation?code=8867") == []  # tokens are not prefix matches


def test_token_text_matches_codeable_concept_text_and_coding_display(client):
    """code:text searches CodeableConcept.text and Coding.display (case/accent-insensitive)."""
    store(client, phq9("Patient/p1", 7) | {"id": "phq"})
    store(client, observation("hr"))
    assert found(client, "Observation?code:text=phq-9") == ["phq"]
    assert found(client, "Observation?code:text=HEART") == ["hr"]
    assert found(client, "Observation?code:text=44261-6") == []  # the code itself is not text


def test_token_not_excludes_matches_and_keeps_resources_without_a_value(client):
    """gender:not=male returns everything that is not male, including patients with no gender."""
    store(client, patient(id="f", gender="female"))
    store(client, patient(id="m", gender="male"))
    store(client, patient(id="u", gender="unknown"))
    nogender = patient(id="none")
    del nogender["gender"]
    store(client, nogender)
    assert found(client, "Patient?gender:not=male") == ["f", "none", "u"]
    assert found(client, "Patient?gender:not=male,female") == ["none", "u"]
    assert found(client, "Patient?gender:not=male&gender:not=female") == ["none", "u"]


def test_token_implicit_system_of_a_code_element(client):
    """A code element carries its value set's system: gender=system|code works, a wrong system does not."""
    store(client, patient(id="f", gender="female"))
    store(client, patient(id="m", gender="male"))
    assert found(client, "Patient?gender=female") == ["f"]
    assert found(client, "Patient?gender=http://hl7.org/fhir/administrative-gender|female") == ["f"]
    assert found(client, "Patient?gender=http://hl7.org/fhir/administrative-gender|") == ["f", "m"]
    assert found(client, "Patient?gender=http://example.org/gender|female") == []
    assert found(client, "Patient?gender=|female") == []


def test_token_deceased(client):
    """deceased=true matches deceasedBoolean true or a deceasedDateTime; false matches the others."""
    store(client, patient(id="dead", deceasedBoolean=True))
    store(client, patient(id="died", deceasedDateTime="2020-02-02"))
    store(client, patient(id="alive", deceasedBoolean=False))
    store(client, patient(id="unknown"))
    assert found(client, "Patient?deceased=true") == ["dead", "died"]
    assert found(client, "Patient?deceased=false") == ["alive", "unknown"]
    assert found(client, "Patient?death-date=2020") == ["died"]


def test_token_boolean(client):
    """active=true and active=false match the boolean; a patient without active matches neither."""
    store(client, patient(id="yes", active=True))
    store(client, patient(id="no", active=False))
    store(client, patient(id="unset"))
    assert found(client, "Patient?active=true") == ["yes"]
    assert found(client, "Patient?active=false") == ["no"]
    assert found(client, "Patient?active:missing=true") == ["unset"]


def test_token_identifier_forms_and_escaping(client):
    """identifier by value, system|value, system| and |value; '\\|' and '\\,' are literal."""
    store(client, patient(id="a", mrn="M1"))
    store(client, patient(id="b", identifier=[{"system": MRN, "value": "M2"}, {"value": "M1"}]))
    store(client, patient(id="c", identifier=[{"system": "urn:oid:1.2.3", "value": "x|y,z"}]))
    assert found(client, "Patient?identifier=M1") == ["a", "b"]
    assert found(client, f"Patient?identifier={MRN}|M1") == ["a"]
    assert found(client, f"Patient?identifier={MRN}|") == ["a", "b"]
    assert found(client, "Patient?identifier=|M1") == ["b"]
    assert found(client, "Patient?identifier=urn:oid:1.2.3|x\\|y\\,z") == ["c"]
    assert found(client, f"Patient?identifier={MRN}|M1,{MRN}|M2") == ["a", "b"]


def test_identifier_of_type(client):
    """identifier:of-type=type-system|type-code|value matches on the identifier's type and value."""
    store(client, patient(id="mr", identifier=[{"type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                                                "system": MRN, "value": "12345"}]))
    store(client, patient(id="dl", identifier=[{"type": {"coding": [{"system": V2_0203, "code": "DL"}]},
                                                "system": "urn:oid:2.16.840.1.113883.4.3.25", "value": "12345"}]))
    assert found(client, f"Patient?identifier:of-type={V2_0203}|MR|12345") == ["mr"]
    assert found(client, f"Patient?identifier:of-type={V2_0203}|DL|12345") == ["dl"]
    assert found(client, f"Patient?identifier:of-type={V2_0203}|MR|99999") == []
    assert_outcome(client.get("/fhir/Patient?identifier:of-type=MR|12345"), 400)


def test_contact_point_email_phone_and_telecom(client):
    """email and phone match ContactPoint values of that system; telecom takes system|value."""
    store(client, patient(id="p1", telecom=[{"system": "email", "value": "ana@example.org"},
                                            {"system": "phone", "value": "+33 1 23 45 67 89"}]))
    store(client, patient(id="p2", telecom=[{"system": "phone", "value": "ana@example.org"}]))
    assert found(client, "Patient?email=ana@example.org") == ["p1"]
    assert found(client, "Patient?telecom=email|ana@example.org") == ["p1"]
    assert found(client, "Patient?telecom=ana@example.org") == ["p1", "p2"]
    assert found(client, "Patient?telecom=phone|ana@example.org") == ["p2"]
    assert found(client, "Patient?phone=%2B33%201%2023%2045%2067%2089") == ["p1"]
    assert found(client, "Patient?email=bob@example.org") == []


# ------------------------------------------------------------------------------- reference
def test_reference_by_type_and_id_bare_id_and_absolute_url(client):
    """subject=Patient/x, subject=x and subject=[our base]/Patient/x find the same references."""
    store(client, observation("o1", "Patient/p1"))
    store(client, observation("o2", "Patient/p2"))
    store(client, observation("o3", "Patient/p1/_history/1"))
    store(client, observation("o4", f"{BASE}/Patient/p1"))
    store(client, observation("o5", "http://other.example.org/fhir/Patient/p1"))
    store(client, observation("o6", "Group/p1"))
    assert found(client, "Observation?subject=Patient/p1") == ["o1", "o3", "o4"]
    assert found(client, f"Observation?subject={BASE}/Patient/p1") == ["o1", "o3", "o4"]
    assert found(client, "Observation?subject=p1") == ["o1", "o3", "o4", "o6"]
    assert found(client, "Observation?subject=http://other.example.org/fhir/Patient/p1") == ["o5"]
    assert found(client, "Observation?subject=Patient/p1,Patient/p2") == ["o1", "o2", "o3", "o4"]


def test_reference_type_modifier(client):
    """subject:Patient=x restricts the target type; a contradicting Type/id matches nothing."""
    store(client, observation("o1", "Patient/x"))
    store(client, observation("o2", "Group/x"))
    assert found(client, "Observation?subject:Patient=x") == ["o1"]
    assert found(client, "Observation?subject:Group=x") == ["o2"]
    assert found(client, "Observation?subject:Patient=Patient/x") == ["o1"]
    assert found(client, "Observation?subject:Group=Patient/x") == []


def test_reference_identifier_modifier(client):
    """subject:identifier matches Reference.identifier like a token (system|value, value, |value)."""
    store(client, observation("o1", {"identifier": {"system": MRN, "value": "M1"}}))
    store(client, observation("o2", {"identifier": {"value": "M1"}}))
    store(client, observation("o3", {"reference": "Patient/p1", "identifier": {"system": MRN, "value": "M3"}}))
    assert found(client, f"Observation?subject:identifier={MRN}|M1") == ["o1"]
    assert found(client, "Observation?subject:identifier=M1") == ["o1", "o2"]
    assert found(client, "Observation?subject:identifier=|M1") == ["o2"]
    assert found(client, f"Observation?subject:identifier={MRN}|") == ["o1", "o3"]
    assert found(client, "Observation?subject=Patient/p1") == ["o3"]


def test_canonical_reference_ignores_the_version(client):
    """questionnaire=url matches a canonical stored with or without |version."""
    for rid, canonical in (("v1", "http://example.org/Questionnaire/phq9|1.0"),
                           ("plain", "http://example.org/Questionnaire/phq9"),
                           ("other", "http://example.org/Questionnaire/gad7")):
        store(client, {"resourceType": "QuestionnaireResponse", "id": rid, "status": "completed", "questionnaire": canonical})
    assert found(client, "QuestionnaireResponse?questionnaire=http://example.org/Questionnaire/phq9") == ["plain", "v1"]
    assert found(client, "QuestionnaireResponse?questionnaire=http://example.org/Questionnaire/phq9|1.0") == ["plain", "v1"]


def test_chained_search_one_level(client):
    """subject:Patient.identifier, subject.name and patient.family follow the reference."""
    store(client, patient("Muñoz", "Ana", id="p1", mrn="M1"))
    store(client, patient("Smith", "Bo", id="p2", mrn="M2"))
    store(client, care_plan("cp1", "Patient/p1"))
    store(client, care_plan("cp2", "Patient/p2"))
    store(client, observation("o1", "Patient/p1"))
    store(client, observation("o2", "Patient/p2"))
    store(client, observation("o3", "Patient/unknown"))
    assert found(client, f"CarePlan?subject:Patient.identifier={MRN}|M1") == ["cp1"]
    assert found(client, "CarePlan?subject.identifier=M2") == ["cp2"]
    assert found(client, "Observation?subject.name=munoz") == ["o1"]
    assert found(client, "Observation?subject:Patient.name=smith,munoz") == ["o1", "o2"]
    assert found(client, "Observation?patient.family:exact=Smith") == ["o2"]
    assert found(client, "Observation?subject.name=nobody") == []


def test_chained_search_two_levels(client):
    """subject:Patient.organization.name follows two references."""
    store(client, organization("acme", "Acme Health"))
    store(client, organization("zen", "Zenith Care"))
    store(client, patient(id="p1", managingOrganization={"reference": "Organization/acme"}))
    store(client, patient(id="p2", managingOrganization={"reference": "Organization/zen"}))
    store(client, observation("o1", "Patient/p1"))
    store(client, observation("o2", "Patient/p2"))
    assert found(client, "Observation?subject:Patient.organization.name=acme") == ["o1"]
    assert found(client, "Observation?patient.organization.name=zen") == ["o2"]
    assert found(client, "Observation?patient.organization._id=acme,zen") == ["o1", "o2"]


def test_chained_search_skips_deleted_targets(client):
    """A chain never matches through a deleted resource."""
    store(client, patient("Muñoz", id="p1"))
    store(client, observation("o1", "Patient/p1"))
    assert found(client, "Observation?subject.family=munoz") == ["o1"]
    remove(client, "Patient/p1")
    assert found(client, "Observation?subject.family=munoz") == []
    assert found(client, "Observation?subject=Patient/p1") == ["o1"]  # the reference itself still matches


# ------------------------------------------------------------------------------- date
@pytest.fixture
def timed(client):
    """Observations at known instants, one of them given in another time zone."""
    store(client, observation("nov16", effectiveDateTime="2026-11-16T10:00:00Z"))
    store(client, observation("nov20", effectiveDateTime="2026-11-20T10:00:00Z"))
    store(client, observation("jun25", effectiveDateTime="2025-06-01"))
    store(client, observation("nov17", effectiveDateTime="2026-11-16T23:30:00-05:00"))  # 2026-11-17T04:30Z
    store(client, observation("undated"))
    return client


def test_date_partial_values_are_ranges(timed):
    """date=2026, 2026-11 and 2026-11-16 each match what falls within that year, month or day."""
    assert found(timed, "Observation?date=2026") == ["nov16", "nov17", "nov20"]
    assert found(timed, "Observation?date=2026-11") == ["nov16", "nov17", "nov20"]
    assert found(timed, "Observation?date=2026-11-16") == ["nov16"]
    assert found(timed, "Observation?date=eq2026-11-17") == ["nov17"]
    assert found(timed, "Observation?date=2025") == ["jun25"]
    assert found(timed, "Observation?date=2025-06-01T12:00:00Z") == []  # a day is not inside a second


@pytest.mark.parametrize("prefix, expected", [
    ("eq", ["nov16"]),
    ("ne", ["jun25", "nov17", "nov20"]),
    ("gt", ["nov17", "nov20"]),
    ("ge", ["nov16", "nov17", "nov20"]),
    ("lt", ["jun25"]),
    ("le", ["jun25", "nov16"]),
    ("sa", ["nov17", "nov20"]),
    ("eb", ["jun25"]),
])
def test_date_prefixes_on_a_day(timed, prefix, expected):
    """Each prefix against the day 2026-11-16 (the stored times fall inside or outside it)."""
    assert found(timed, f"Observation?date={prefix}2026-11-16") == expected


def test_date_prefixes_on_an_instant_and_time_zones(timed):
    """Instants compare in UTC whatever offset the search or the resource used."""
    assert found(timed, "Observation?date=ge2026-11-16T10:00:00Z") == ["nov16", "nov17", "nov20"]
    assert found(timed, "Observation?date=gt2026-11-16T10:00:00Z") == ["nov17", "nov20"]
    assert found(timed, "Observation?date=le2026-11-16T10:00:00Z") == ["jun25", "nov16"]
    assert found(timed, "Observation?date=2026-11-16T12:00:00%2B02:00") == ["nov16"]
    assert found(timed, "Observation?date=2026-11-17T04:30:00Z") == ["nov17"]
    assert found(timed, "Observation?date=lt2026-11-16T23:00:00-05:00") == ["jun25", "nov16"]


def test_date_ap_matches_nearby_values_only(timed):
    """ap is approximately: values near the date match, far ones do not."""
    near = found(timed, "Observation?date=ap2026-11-16")
    assert "nov16" in near and "jun25" not in near


def test_date_and_makes_a_range(timed):
    """Repeating date ANDs the conditions: ge…&lt… is a window."""
    assert found(timed, "Observation?date=ge2026-11-16&date=lt2026-11-20") == ["nov16", "nov17"]
    assert found(timed, "Observation?date=gt2026&date=lt2025") == []


@pytest.fixture
def periods(client):
    """Encounters with periods around November 2026."""
    store(client, encounter("nov", "2026-11-01", "2026-11-30"))
    store(client, encounter("open", "2026-12-01T08:00:00Z", None))
    store(client, encounter("oct", "2026-10-25", "2026-11-01"))  # ends on 2026-11-01
    store(client, encounter("long", "2026-01-01", "2026-12-31"))
    return client


@pytest.mark.parametrize("query, expected", [
    ("date=2026-11", ["nov"]),
    ("date=2026", ["long", "nov", "oct"]),
    ("date=ne2026-11", ["long", "oct", "open"]),
    ("date=gt2026-11-15", ["long", "nov", "open"]),
    ("date=lt2026-11-01", ["long", "oct"]),
    # ge/le: "the range above (below) the search value overlaps, or the search range contains the target"
    ("date=ge2026-11-01", ["long", "nov", "open"]),
    ("date=le2026-11-30", ["long", "nov", "oct"]),
    ("date=le2026-11-01", ["long", "oct"]),
    ("date=sa2026-11-30", ["open"]),
    ("date=eb2026-11-01", []),
    ("date=eb2026-11-02", ["oct"]),
    ("date=ge2030", ["open"]),
])
def test_date_prefixes_on_periods(periods, query, expected):
    """A Period is a range: prefixes compare ranges as search.html#prefix defines."""
    assert found(periods, f"Encounter?{query}") == expected


def test_date_type_birthdate_prefixes(client):
    """A date element (birthdate) compares as the day it names."""
    store(client, patient(id="old", birthDate="1950-03-04"))
    store(client, patient(id="mid", birthDate="1988-04-12"))
    store(client, patient(id="young", birthDate="2010"))
    assert found(client, "Patient?birthdate=1988-04-12") == ["mid"]
    assert found(client, "Patient?birthdate=1988") == ["mid"]
    assert found(client, "Patient?birthdate=lt1988-04-12") == ["old"]
    assert found(client, "Patient?birthdate=le1988-04-12") == ["mid", "old"]
    assert found(client, "Patient?birthdate=gt1988-04-12") == ["young"]
    assert found(client, "Patient?birthdate=ge2010-06-01") == ["young"]  # the year 2010 extends past June
    assert found(client, "Patient?birthdate=2010-06-01") == []  # but is not within that day


# ------------------------------------------------------------------------------- number and quantity
@pytest.fixture
def risks(client):
    """RiskAssessments with probabilities 0.2, 0.5 and 0.8, and a builder for more."""
    def risk(rid: str, probability: float) -> dict:
        return {"resourceType": "RiskAssessment", "id": rid, "status": "final", "subject": {"reference": "Patient/p1"},
                "prediction": [{"probabilityDecimal": probability}]}
    for rid, p in (("low", 0.2), ("half", 0.5), ("high", 0.8)):
        store(client, risk(rid, p))
    return client, risk


@pytest.mark.parametrize("query, expected", [
    ("0.5", ["half"]), ("eq0.5", ["half"]), ("ne0.5", ["high", "low"]), ("gt0.5", ["high"]), ("lt0.5", ["low"]),
    ("ge0.5", ["half", "high"]), ("le0.5", ["half", "low"]), ("sa0.5", ["high"]), ("eb0.5", ["low"]),
    ("ap0.5", ["half"]), ("0.2,0.8", ["high", "low"]),
])
def test_number_prefixes(risks, query, expected):
    """probability with each prefix."""
    client, _ = risks
    assert found(client, f"RiskAssessment?probability={query}") == expected


def test_number_precision_of_the_search_value(risks):
    """0.5 matches [0.45, 0.55); 0.50 matches [0.495, 0.505); ge/le include what eq includes."""
    client, risk = risks
    store(client, risk("near", 0.54))
    assert found(client, "RiskAssessment?probability=0.5") == ["half", "near"]
    assert found(client, "RiskAssessment?probability=0.50") == ["half"]
    assert found(client, "RiskAssessment?probability=5e-1") == ["half", "near"]
    assert found(client, "RiskAssessment?probability=le0.5") == ["half", "low", "near"]
    assert found(client, "RiskAssessment?probability=ge0.50") == ["half", "high", "near"]


@pytest.fixture
def vitals(client):
    """Observations with quantities around 100 in mm[Hg], kg and a bare unit, and one with a string value."""
    store(client, observation("v80", valueQuantity=quantity(80)))
    store(client, observation("v100", valueQuantity=quantity(100)))
    store(client, observation("v100p4", valueQuantity=quantity(100.4)))
    store(client, observation("v120", valueQuantity=quantity(120)))
    store(client, observation("kg100", valueQuantity=quantity(100, "kg")))
    store(client, observation("unitonly", valueQuantity={"value": 100, "unit": "mmHg"}))
    store(client, observation("text", valueString="normal"))
    return client


@pytest.mark.parametrize("query, expected", [
    ("100", ["kg100", "unitonly", "v100", "v100p4"]),
    ("100.0", ["kg100", "unitonly", "v100"]),
    (f"100|{UCUM}|mm[Hg]", ["v100", "v100p4"]),
    ("100||kg", ["kg100"]),
    ("100||mmHg", ["unitonly"]),
    (f"100|{UCUM}|", ["kg100", "v100", "v100p4"]),
    ("100|http://example.org/units|kg", []),
    (f"gt110|{UCUM}|mm[Hg]", ["v120"]),
    (f"lt90|{UCUM}|mm[Hg]", ["v80"]),
    (f"ge100|{UCUM}|mm[Hg]", ["v100", "v100p4", "v120"]),
    (f"le100|{UCUM}|mm[Hg]", ["v100", "v100p4", "v80"]),
    (f"ne100|{UCUM}|mm[Hg]", ["v120", "v80"]),
    (f"sa110|{UCUM}|mm[Hg]", ["v120"]),
    (f"eb90|{UCUM}|mm[Hg]", ["v80"]),
    (f"ap120|{UCUM}|mm[Hg]", ["v120"]),
])
def test_quantity_value_system_code_and_prefixes(vitals, query, expected):
    """value-quantity takes [prefix]number|system|code; code also matches the unit."""
    assert found(vitals, f"Observation?value-quantity={query}") == expected


# ------------------------------------------------------------------------------- uri
def test_uri_url_exact_below_and_above(client):
    """url matches exactly; :below matches URLs under a path; :above matches parents of the value."""
    store(client, {"resourceType": "ValueSet", "id": "a", "status": "active", "url": "http://example.org/fhir/ValueSet/a"})
    store(client, {"resourceType": "ValueSet", "id": "ab", "status": "active", "url": "http://example.org/fhir/ValueSet/a/b"})
    store(client, {"resourceType": "ValueSet", "id": "other", "status": "active", "url": "http://example.net/vs"})
    store(client, {"resourceType": "CodeSystem", "id": "cs", "status": "active", "content": "complete",
                   "url": "http://example.org/fhir/CodeSystem/cs"})
    assert found(client, "ValueSet?url=http://example.org/fhir/ValueSet/a") == ["a"]
    assert found(client, "ValueSet?url=http://example.org/fhir/ValueSet") == []  # no prefix match for uri
    assert found(client, "ValueSet?url:below=http://example.org/fhir/") == ["a", "ab"]
    assert found(client, "ValueSet?url:above=http://example.org/fhir/ValueSet/a/b/c") == ["a", "ab"]
    assert found(client, "CodeSystem?url=http://example.org/fhir/CodeSystem/cs") == ["cs"]


# ------------------------------------------------------------------------------- :missing
def test_missing_true_and_false_on_every_kind(client):
    """:missing=true finds resources without a value, :missing=false those with one."""
    bare = {"resourceType": "Patient", "id": "bare"}
    store(client, bare)
    store(client, patient(id="full", generalPractitioner=[{"reference": "Practitioner/dr"}],
                          meta={"profile": ["http://example.org/StructureDefinition/p"]}))
    for code in ("family", "gender", "birthdate", "general-practitioner", "_profile"):  # string, token, date, reference, uri
        assert found(client, f"Patient?{code}:missing=true") == ["bare"], code
        assert found(client, f"Patient?{code}:missing=false") == ["full"], code
    store(client, observation("with", valueQuantity=quantity(1)))
    store(client, observation("without", None))
    assert found(client, "Observation?value-quantity:missing=true") == ["without"]
    assert found(client, "Observation?value-quantity:missing=false") == ["with"]
    assert found(client, "Observation?subject:missing=true") == ["without"]
    assert found(client, "Patient?_lastUpdated:missing=false") == ["bare", "full"]
    assert found(client, "Patient?_lastUpdated:missing=true") == []
    assert_outcome(client.get("/fhir/Patient?family:missing=maybe"), 400)


# ------------------------------------------------------------------------------- common parameters
def test_id_parameter(client):
    """_id matches ids exactly, with OR by comma."""
    for pid in ("a", "b", "ab"):
        store(client, patient(id=pid))
    assert found(client, "Patient?_id=a") == ["a"]
    assert found(client, "Patient?_id=a,ab") == ["a", "ab"]
    assert found(client, "Patient?_id=A") == []
    assert found(client, "Patient?_id=zzz") == []


def test_last_updated_with_prefixes(client):
    """_lastUpdated compares meta.lastUpdated with every prefix, at any precision."""
    first = store(client, patient(id="first"))["meta"]["lastUpdated"]
    time.sleep(0.01)
    second = store(client, patient(id="second"))["meta"]["lastUpdated"]
    assert first < second
    year = first[:4]
    assert found(client, f"Patient?_lastUpdated={year}") == ["first", "second"]
    assert found(client, f"Patient?_lastUpdated={first}") == ["first"]
    assert found(client, f"Patient?_lastUpdated=eq{second}") == ["second"]
    assert found(client, f"Patient?_lastUpdated=ne{second}") == ["first"]
    assert found(client, f"Patient?_lastUpdated=gt{first}") == ["second"]
    assert found(client, f"Patient?_lastUpdated=ge{second}") == ["second"]
    assert found(client, f"Patient?_lastUpdated=lt{second}") == ["first"]
    assert found(client, f"Patient?_lastUpdated=le{first}") == ["first"]
    assert found(client, f"Patient?_lastUpdated=sa{first}") == ["second"]
    assert found(client, f"Patient?_lastUpdated=eb{second}") == ["first"]
    assert found(client, "Patient?_lastUpdated=gt2000-01-01") == ["first", "second"]
    assert found(client, "Patient?_lastUpdated=lt2000") == []
    assert found(client, f"Patient?_lastUpdated=ap{first}") == ["first", "second"]


def test_tag_profile_and_security(client):
    """_tag and _security are tokens on meta; _profile is a uri on meta.profile."""
    store(client, patient(id="sud", meta={
        "security": [{"system": ACT_CODE, "code": "42CFRPart2"}],
        "tag": [{"system": "http://example.org/tags", "code": "intake"}],
        "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]}))
    store(client, patient(id="plain", meta={"tag": [{"system": "http://example.org/tags", "code": "followup"}]}))
    assert found(client, f"Patient?_security={ACT_CODE}|42CFRPart2") == ["sud"]
    assert found(client, "Patient?_security=42CFRPart2") == ["sud"]
    assert found(client, f"Patient?_security:not={ACT_CODE}|42CFRPart2") == ["plain"]
    assert found(client, "Patient?_tag=http://example.org/tags|intake") == ["sud"]
    assert found(client, "Patient?_tag=http://example.org/tags|") == ["plain", "sud"]
    assert found(client, "Patient?_profile=http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient") == ["sud"]
    assert found(client, "Patient?_profile:below=http://hl7.org/fhir/us/core/") == ["sud"]


# ------------------------------------------------------------------------------- AND / OR
def test_or_by_comma_and_by_repetition(client):
    """Comma-separated values are OR'd; repeated parameters are AND'd."""
    store(client, patient("Lee", "Ann", id="p1", name=[{"family": "Lee", "given": ["Ann", "Marie"]}]))
    store(client, patient("Lee", "Ann", id="p2"))
    store(client, patient("Kim", "Marie", id="p3"))
    assert found(client, "Patient?given=ann,marie") == ["p1", "p2", "p3"]
    assert found(client, "Patient?given=ann&given=marie") == ["p1"]
    assert found(client, "Patient?family=lee&given=marie") == ["p1"]
    assert found(client, "Patient?family=lee,kim&given=marie") == ["p1", "p3"]
    assert found(client, "Patient?family=lee&family=kim") == []


# ------------------------------------------------------------------------------- sorting
@pytest.fixture
def people(client):
    """Patients with mixed-case and accented family names, tied birth dates and one without a name."""
    store(client, patient("Baker", "Zoe", id="baker", birthDate="1990-01-01"))
    store(client, patient("adams", "Yan", id="adams", birthDate="1985-05-05"))
    store(client, patient("Ávila", "Xia", id="avila", birthDate="1990-01-01"))
    store(client, patient("Cole", "Wu", id="cole", birthDate="1970-07-07"))
    nameless = patient(id="nameless", birthDate="2000-02-02")
    del nameless["name"]
    store(client, nameless)
    return client


def test_sort_by_string_ascending_and_descending(people):
    """_sort=family sorts case/accent-insensitively; -family reverses; patients without one come last."""
    assert matches(search(people, "Patient?_sort=family")) == ["adams", "avila", "baker", "cole", "nameless"]
    assert matches(search(people, "Patient?_sort=-family")) == ["cole", "baker", "avila", "adams", "nameless"]


def test_sort_by_date_and_by_several_keys(people):
    """_sort=birthdate, -birthdate, and birthdate then family for ties."""
    assert matches(search(people, "Patient?_sort=birthdate")) == ["cole", "adams", "baker", "avila", "nameless"]
    assert matches(search(people, "Patient?_sort=-birthdate,family")) == ["nameless", "avila", "baker", "adams", "cole"]
    assert matches(search(people, "Patient?_sort=birthdate,-family")) == ["cole", "adams", "baker", "avila", "nameless"]


def test_sort_by_last_updated_descending(people):
    """_sort=-_lastUpdated lists the most recently changed first."""
    time.sleep(0.01)
    store(people, patient("Adams", "Yan", id="adams", birthDate="1985-05-06"))
    assert matches(search(people, "Patient?_sort=-_lastUpdated"))[0] == "adams"
    assert matches(search(people, "Patient?_sort=_lastUpdated"))[-1] == "adams"


@pytest.fixture
def sortable(client):
    """Observations with dates (a Period too), quantities, codes and subjects, some missing."""
    def obs(oid, when, value, code, subject):
        extra = {"code": {"coding": [{"system": LOINC, "code": code}]}}
        if isinstance(when, tuple):
            extra["effectivePeriod"] = {"start": when[0], "end": when[1]}
        elif when:
            extra["effectiveDateTime"] = when
        if value is not None:
            extra["valueQuantity"] = quantity(value)
        store(client, observation(oid, subject, **extra))
    obs("a", "2026-01-01", 5, "X", "Patient/p2")
    obs("b", "2025-01-01", 10, "Y", "Patient/p1")
    obs("c", None, 7, "X", "Patient/p3")
    obs("d", "2026-01-01", None, "Z", None)
    obs("e", "2024-06-01", 5, "Y", "Patient/p1")
    obs("f", ("2025-01-01", "2027"), 1.5, "W", "Patient/p2")
    obs("g", None, None, "A", None)
    return client


@pytest.mark.parametrize("sort, expected", [
    ("date", ["e", "b", "f", "a", "d", "c", "g"]),
    ("-date", ["f", "a", "d", "b", "e", "c", "g"]),  # descending by the end of each range
    ("value-quantity", ["f", "a", "e", "c", "b", "d", "g"]),
    ("-value-quantity", ["b", "c", "a", "e", "f", "d", "g"]),
    ("code", ["g", "f", "a", "c", "b", "e", "d"]),
    ("-subject,-date", ["c", "f", "a", "b", "e", "d", "g"]),
    ("_id", ["a", "b", "c", "d", "e", "f", "g"]),
    ("-_id", ["g", "f", "e", "d", "c", "b", "a"]),
])
def test_sort_orders_and_paging_agree(sortable, sort, expected):
    """Each sort gives the expected order; paging it two at a time yields the same order, both ways."""
    assert matches(search(sortable, f"Observation?_sort={sort}&_count=50")) == expected
    first = search(sortable, f"Observation?_sort={sort}&_count=2")
    pages = [matches(first)] + follow(sortable, first)
    assert [pid for page in pages for pid in page] == expected
    last = first
    for _ in pages[1:]:
        last = search(sortable, link(last, "next"))
    assert follow(sortable, last, "previous") == pages[-2::-1]


def test_sort_by_unknown_parameter_is_400(people):
    """_sort on a parameter the type does not have is refused with 400 naming _sort."""
    assert_outcome(people.get("/fhir/Patient?_sort=shoe-size"), 400, expression="_sort")


# ------------------------------------------------------------------------------- paging
def test_paging_links_reach_every_match_exactly_once(client):
    """_count pages carry self/first/next/previous links; next visits each match once, previous goes back."""
    for i in range(11):
        store(client, patient(f"Page{i % 4}", id=f"p{i:02d}"))  # ties in family exercise the tiebreak
    first = search(client, "Patient?_sort=family&_count=3")
    assert first["total"] == 11 and len(matches(first)) == 3
    assert link(first, "previous") is None
    assert dict(query_of(link(first, "self"))) == {"_sort": "family", "_count": "3"}
    assert link(first, "first") == link(first, "self")
    pages = [matches(first)] + follow(client, first)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    flat = [pid for page in pages for pid in page]
    assert sorted(flat) == [f"p{i:02d}" for i in range(11)]
    assert flat == sorted(flat, key=lambda pid: (int(pid[1:]) % 4, pid))
    last = search(client, _walk(client, first, 3))
    assert link(last, "next") is None
    back = follow(client, last, "previous")
    assert back == pages[-2::-1]


def _walk(client, bundle: dict, steps: int) -> str:
    """The self link of the page `steps` next links after `bundle`."""
    for _ in range(steps):
        bundle = search(client, link(bundle, "next"))
    return link(bundle, "self")


def test_every_page_keeps_the_search_parameters_and_total(client):
    """Links repeat the criteria and controls; each page reports the same total."""
    for i in range(5):
        store(client, patient("Same", id=f"s{i}"))
    store(client, patient("Other", id="o"))
    first = search(client, "Patient?family=same&_count=2")
    second = search(client, link(first, "next"))
    assert second["total"] == 5
    params = dict(query_of(link(second, "next")))
    assert params["family"] == "same" and params["_count"] == "2" and "_cursor" in params
    assert "_cursor" in dict(query_of(link(second, "self")))
    assert "_cursor" not in dict(query_of(link(second, "first")))
    assert matches(search(client, link(second, "first"))) == matches(first)


@pytest.mark.parametrize("sort", ["_sort=family&", ""])
def test_next_links_stay_correct_while_data_changes(client, sort):
    """Creates and deletes between pages neither duplicate nor skip resources that existed throughout."""
    for i in range(1, 11):
        store(client, patient(f"Fam{i:02d}", id=f"f{i:02d}"))
    first = search(client, f"Patient?{sort}_count=3")
    assert matches(first) == ["f01", "f02", "f03"]
    store(client, patient("Fam00", id="a00"))  # sorts before the cursor (family) / after everything (default)
    store(client, patient("Fam045", id="f045"))  # sorts after the cursor
    remove(client, "Patient/f02")  # already served
    remove(client, "Patient/f05")  # not served yet
    store(client, patient("Fam07", "Changed", id="f07"))  # updated, same sort key: still served once
    rest = [pid for page in follow(client, first) for pid in page]
    seen = matches(first) + rest
    assert len(seen) == len(set(seen)), seen
    survivors = [f"f{i:02d}" for i in range(1, 11) if i not in (2, 5)]
    assert [pid for pid in seen if pid in survivors or pid == "f02"] == ["f01", "f02", "f03"] + survivors[2:]
    assert "f05" not in rest
    assert set(rest) - set(survivors) <= {"a00", "f045"}
    if sort:
        assert "f045" in rest and "a00" not in rest


def test_previous_link_after_a_deletion_returns_the_remaining_rows(client):
    """Going back after a deletion shows the rows still before the page, without gaps or repeats."""
    for i in range(6):
        store(client, patient(f"Back{i}", id=f"b{i}"))
    first = search(client, "Patient?_sort=family&_count=2")
    second = search(client, link(first, "next"))
    assert matches(second) == ["b2", "b3"]
    remove(client, "Patient/b1")
    assert matches(search(client, link(second, "previous"))) == ["b0"]


def test_invalid_cursor_is_400(client):
    """A damaged, mismatched or forged _cursor is refused with 400 naming _cursor."""
    for i in range(3):
        store(client, patient(f"C{i}", id=f"c{i}", birthDate=f"199{i}-01-01"))
    page = search(client, "Patient?_sort=family&_count=1")
    cursor = dict(query_of(link(page, "next")))["_cursor"]
    assert_outcome(client.get("/fhir/Patient?_cursor=not-a-cursor"), 400, expression="_cursor")
    assert_outcome(client.get(f"/fhir/Patient?_sort=birthdate&_count=1&_cursor={cursor}"), 400, expression="_cursor")
    for forged in ({"d": "a", "v": ["x"], "k": ["pk"]}, {"d": "a", "v": [1, 2], "k": ["string", "pk"]},
                   {"d": "a", "v": [None, 1], "k": ["date", "pk"]}, {"d": "x", "v": [1], "k": ["pk"]},
                   {"d": "a", "v": [10 ** 20], "k": ["pk"]}, {"d": "a", "v": ["a\u0000", 1], "k": ["string", "pk"]}):
        token = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
        sort = {"pk": "", "string": "_sort=family&", "date": "_sort=birthdate&"}[forged["k"][0]]
        assert_outcome(client.get(f"/fhir/Patient?{sort}_cursor={token}"), 400, expression="_cursor")


# ------------------------------------------------------------------------------- totals and summaries
def test_total_none_summary_count_and_count_zero(client):
    """_total=none omits total; _summary=count and _count=0 give the total without entries."""
    for i in range(3):
        store(client, patient("Tot", id=f"t{i}"))
    bundle = search(client, "Patient?family=tot&_total=none")
    assert "total" not in bundle and len(matches(bundle)) == 3
    counted = search(client, "Patient?family=tot&_summary=count")
    assert counted["total"] == 3 and "entry" not in counted
    zero = search(client, "Patient?family=tot&_count=0")
    assert zero["total"] == 3 and "entry" not in zero and link(zero, "next") is None
    assert search(client, "Patient?family=nobody&_summary=count")["total"] == 0


def test_summary_and_elements_mark_entries_subsetted(client):
    """_elements returns only the named elements (plus mandatory ones), tagged SUBSETTED."""
    store(client, patient("Elem", id="e1", active=True))
    entry = search(client, "Patient?_id=e1&_elements=active")["entry"][0]["resource"]
    assert entry["active"] is True and "name" not in entry
    assert "SUBSETTED" in [t["code"] for t in entry["meta"]["tag"]]


# ------------------------------------------------------------------------------- _include / _revinclude
def test_include_and_typed_include(client):
    """_include=Task:focus adds the focus; :Patient restricts to Patient targets; modes are match/include."""
    store(client, patient(id="p1"))
    store(client, observation("o1", "Patient/p1"))
    store(client, task("t1", "Patient/p1"))
    store(client, task("t2", "Observation/o1"))
    store(client, task("t3", "Patient/p1"))
    bundle = search(client, "Task?_include=Task:focus")
    assert sorted(entries(bundle, "match")) == ["Task/t1", "Task/t2", "Task/t3"]
    assert sorted(entries(bundle, "include")) == ["Observation/o1", "Patient/p1"]
    assert bundle["total"] == 3  # included resources are not counted
    typed = search(client, "Task?_include=Task:focus:Patient")
    assert entries(typed, "include") == ["Patient/p1"]
    for e in bundle["entry"]:
        assert e["fullUrl"] == f"{BASE}/{e['resource']['resourceType']}/{e['resource']['id']}"


def test_include_care_plan_subject_and_iterate(client):
    """_include:iterate follows references from included resources too."""
    store(client, organization("org", "Acme"))
    store(client, patient(id="p1", managingOrganization={"reference": "Organization/org"}))
    store(client, care_plan("cp1", "Patient/p1"))
    plain = search(client, "CarePlan?_include=CarePlan:subject&_include=Patient:organization")
    assert entries(plain, "include") == ["Patient/p1"]
    deep = search(client, "CarePlan?_include=CarePlan:subject&_include:iterate=Patient:organization")
    assert sorted(entries(deep, "include")) == ["Organization/org", "Patient/p1"]


def test_revinclude_and_revinclude_iterate(client):
    """_revinclude adds resources pointing at the matches; :iterate continues from them."""
    store(client, patient(id="p1"))
    store(client, patient(id="p2"))
    store(client, observation("o1", "Patient/p1"))
    store(client, observation("o2", "Patient/p2"))
    store(client, provenance("prov-p1", "Patient/p1"))
    store(client, provenance("prov-o1", "Observation/o1"))
    bundle = search(client, "Patient?_id=p1&_revinclude=Provenance:target")
    assert entries(bundle, "match") == ["Patient/p1"] and entries(bundle, "include") == ["Provenance/prov-p1"]
    both = search(client, "Patient?_id=p1&_revinclude=Observation:subject&_revinclude:iterate=Provenance:target")
    assert sorted(entries(both, "include")) == ["Observation/o1", "Provenance/prov-o1", "Provenance/prov-p1"]
    assert entries(search(client, "Patient?_id=p1&_revinclude=Provenance:target:Observation"), "include") == []


def test_included_resources_appear_once_and_never_duplicate_a_match(client):
    """A resource referenced many times is included once; one that also matches appears only as a match."""
    store(client, patient(id="p1", link=[{"other": {"reference": "Patient/p2"}, "type": "seealso"}]))
    store(client, patient(id="p2", link=[{"other": {"reference": "Patient/p1"}, "type": "seealso"}]))
    store(client, patient(id="p3"))
    for i in range(3):
        store(client, observation(f"o{i}", "Patient/p3"))
    linked = search(client, "Patient?_id=p1,p2&_include=Patient:link")
    assert sorted(entries(linked, "match")) == ["Patient/p1", "Patient/p2"] and entries(linked, "include") == []
    obs = search(client, "Observation?_include=Observation:subject&_include=Observation:patient")
    assert entries(obs, "include") == ["Patient/p3"]


def test_deleted_resources_are_not_included(client):
    """_include and _revinclude skip deleted resources."""
    store(client, patient(id="p1"))
    store(client, task("t1", "Patient/p1"))
    store(client, provenance("prov", "Task/t1"))
    remove(client, "Patient/p1")
    remove(client, "Provenance/prov")
    bundle = search(client, "Task?_include=Task:focus&_revinclude=Provenance:target")
    assert entries(bundle, "match") == ["Task/t1"] and entries(bundle, "include") == []


def test_bad_include_is_400(client):
    """A malformed _include/_revinclude, a non-reference parameter or an unknown modifier is 400."""
    assert_outcome(client.get("/fhir/Task?_include=Task:status"), 400, expression="_include")
    assert_outcome(client.get("/fhir/Task?_include=Task"), 400, expression="_include")
    assert_outcome(client.get("/fhir/Patient?_revinclude=Nope:subject"), 400, expression="_revinclude")
    assert_outcome(client.get("/fhir/Task?_include:deep=Task:focus"), 400, expression="_include:deep")


# ------------------------------------------------------------------------------- POST _search
def test_post_search_with_a_form_body(client):
    """POST Type/_search takes form-encoded parameters (combined with the query string)."""
    store(client, patient("Muñoz", id="p1", gender="female"))
    store(client, patient("Muñoz", id="p2", gender="male"))
    resp = client.post("/fhir/Patient/_search", data={"family": "munoz", "_count": "1"})
    assert resp.status_code == 200 and resp.mimetype == FHIR
    bundle = resp.get_json()
    assert bundle["total"] == 2 and len(matches(bundle)) == 1
    assert dict(query_of(link(bundle, "next")))["family"] == "munoz"
    both = client.post("/fhir/Patient/_search?gender=male", data="family=mu%C3%B1oz", content_type=FORM).get_json()
    assert matches(both) == ["p2"]


def test_post_search_with_another_content_type_is_415(client):
    """POST _search with a JSON body is refused with 415."""
    resp = client.post("/fhir/Patient/_search", data=json.dumps({"family": "x"}), content_type="application/json")
    assert_outcome(resp, 415)


# ------------------------------------------------------------------------------- errors and handling
def test_unknown_parameter_is_ignored_with_a_warning_by_default_and_when_lenient(client):
    """An unknown parameter is ignored, reported in a search.mode=outcome entry and left out of the links."""
    store(client, patient("Known", id="p1"))
    store(client, patient("Other", id="p2"))
    for headers in ({}, {"Prefer": "handling=lenient"}):
        bundle = search(client, "Patient?family=known&shoe-size=42", **headers)
        assert matches(bundle) == ["p1"] and bundle["total"] == 1
        [outcome] = outcome_entries(bundle)
        assert outcome["resourceType"] == "OperationOutcome"
        assert any("shoe-size" in i["diagnostics"] and i["severity"] == "warning" for i in outcome["issue"])
        assert "shoe-size" not in dict(query_of(link(bundle, "self")))


def test_unknown_parameter_is_400_when_strict(client):
    """Prefer: handling=strict refuses an unknown parameter (plain or chained)."""
    assert_outcome(client.get("/fhir/Patient?shoe-size=42", headers={"Prefer": "handling=strict"}), 400,
                   expression="shoe-size")
    assert_outcome(client.get("/fhir/Observation?subject.shoe-size=42", headers={"Prefer": "handling=strict"}), 400)
    assert search(client, "Patient?family=x", Prefer="handling=strict")["total"] == 0


def test_unknown_chained_parameter_is_ignored_when_lenient(client):
    """A chain naming an unknown parameter at any hop is ignored and reported, or refused when strict."""
    store(client, observation("o1"))
    for query in ("Observation?subject.shoe-size=42", "Observation?subject:Patient.organization.shoe-size=42"):
        bundle = search(client, query)
        assert matches(bundle) == ["o1"] and outcome_entries(bundle), query
        assert_outcome(client.get(f"/fhir/{query}", headers={"Prefer": "handling=strict"}), 400)


def test_nul_characters_are_400(client):
    """A NUL character in a search parameter is refused (it cannot be compared in the database)."""
    for query in ("Patient?family=a%00b", "Patient?_id=a%00", "Patient?identifier=a%00|b", "Patient?family%00=x"):
        assert_outcome(client.get(f"/fhir/{query}"), 400)


@pytest.mark.parametrize("query", ["Patient?family:sounds-like=x", "Patient?gender:exact=male",
                                   "Patient?birthdate:contains=2020", "Patient?name:of-type=a|b|c",
                                   "Observation?subject:Spaceship=1"])
def test_unknown_or_unsupported_modifier_is_always_400(client, query):
    """A modifier the server does not support is an error even under lenient handling."""
    assert_outcome(client.get(f"/fhir/{query}"), 400)
    assert_outcome(client.get(f"/fhir/{query}", headers={"Prefer": "handling=lenient"}), 400)


@pytest.mark.parametrize("query, expression", [
    ("Patient?birthdate=1988-13-01", "birthdate"),
    ("Patient?birthdate=ge", "birthdate"),
    ("Patient?birthdate=yesterday", "birthdate"),
    ("Patient?_lastUpdated=gt2026-02-30", "_lastUpdated"),
    ("Observation?subject.birthdate=not-a-date", "subject.birthdate"),
    ("RiskAssessment?probability=high", "probability"),
    ("RiskAssessment?probability=gtNaN", "probability"),
    ("Observation?value-quantity=lots|http://unitsofmeasure.org|kg", "value-quantity"),
    ("Observation?value-quantity=5|kg", "value-quantity"),
    ("Patient?_count=ten", "_count"),
    ("Patient?_total=maybe", "_total"),
])
def test_bad_values_are_400_with_an_expression(client, query, expression):
    """A malformed date, number or quantity is refused with 400 naming the parameter."""
    assert_outcome(client.get(f"/fhir/{query}"), 400, expression=expression)


def test_unknown_resource_type_is_404(client):
    """Searching a type the server does not serve is 404 not-supported."""
    assert_outcome(client.get("/fhir/Spaceship?name=x"), 404, "not-supported")


# ------------------------------------------------------------------------------- lifecycle
def test_deleted_resources_never_appear(client):
    """A deleted resource is gone from matches, totals, _id searches and paging."""
    for i in range(4):
        store(client, patient("Gone", id=f"g{i}"))
    remove(client, "Patient/g1")
    assert found(client, "Patient?family=gone") == ["g0", "g2", "g3"]
    assert found(client, "Patient?_id=g1") == []
    assert search(client, "Patient?_summary=count")["total"] == 3
    pages = [matches(search(client, "Patient?_count=1"))] + follow(client, search(client, "Patient?_count=1"))
    assert sorted(pid for page in pages for pid in page) == ["g0", "g2", "g3"]
    store(client, patient("Back", id="g1"))  # re-created by update-as-create: found by its new values only
    assert found(client, "Patient?family=gone") == ["g0", "g2", "g3"]
    assert found(client, "Patient?family=back") == ["g1"]


def test_updated_resources_are_found_by_new_values_only(client):
    """After an update the old index values no longer match and the new ones do."""
    store(client, patient("Before", "Old", id="u1", mrn="OLD-1", birthDate="1980-01-01"))
    store(client, observation("o1", "Patient/u1"))
    store(client, patient("After", "New", id="u1", mrn="NEW-1", birthDate="1999-09-09"))
    assert found(client, "Patient?family=before") == []
    assert found(client, "Patient?family=after") == ["u1"]
    assert found(client, f"Patient?identifier={MRN}|OLD-1") == []
    assert found(client, f"Patient?identifier={MRN}|NEW-1") == ["u1"]
    assert found(client, "Patient?birthdate=1980") == []
    assert found(client, "Patient?birthdate=1999-09-09") == ["u1"]
    assert found(client, "Observation?subject.family=after") == ["o1"]
    assert found(client, "Observation?subject.family=before") == []
    store(client, observation("o1", "Patient/other"))
    assert found(client, "Observation?subject=Patient/u1") == []
