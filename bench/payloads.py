"""What the benchmark stores and sends: a ~1 KB Patient and transaction Bundles linked by urn:uuid.

Seeded Patient i has the deterministic id `patient_id(i)` (a UUID, like server-assigned ids) and the
identifier `SEED_SYSTEM|identifier_value(i)`, so read and search targets are drawn at random without
asking the database. Bodies sent under load are templates: `TOKEN` is replaced per request by a
unique string (in wrk's Lua or in the Python load generator), so every created Patient is distinct.
"""
from __future__ import annotations

import json
import uuid

SEED_SYSTEM = "https://bench.iop.example.org/fhir/sid/seed-mrn"
LOAD_SYSTEM = "https://bench.iop.example.org/fhir/sid/load-mrn"
TOKEN = "@N@"
_NAMESPACE = uuid.UUID("5b0f6a8e-2d47-4c1e-9a53-1f0e1c6a7b42")
_GIVEN = ["Jamie", "Robin", "Alex", "Sam", "Casey", "Jordan", "Riley", "Morgan", "Taylor", "Quinn"]
_FAMILY = ["Testpatient", "Example", "Sample", "Benchmark", "Synthetic", "Placeholder", "Fixture"]


def patient_id(i: int) -> str:
    """The logical id of seeded Patient i."""
    return str(uuid.uuid5(_NAMESPACE, f"patient-{i}"))


def identifier_value(i: int) -> str:
    """The seed identifier value of Patient i."""
    return f"MRN-{i:08d}"


def compact(resource: dict) -> str:
    return json.dumps(resource, separators=(",", ":"), ensure_ascii=False)


def patient(i: int, *, system: str = SEED_SYSTEM, value: str | None = None) -> dict:
    """A realistic ~1 KB US-Core-like Patient (identifier, name, telecom, address, communication)."""
    given, family = _GIVEN[i % len(_GIVEN)], _FAMILY[i % len(_FAMILY)]
    return {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                                 "display": "Medical record number"}]},
            "system": system,
            "value": value if value is not None else identifier_value(i),
        }],
        "active": True,
        "name": [{"use": "official", "family": family, "given": [given, chr(65 + i % 26)]}],
        "telecom": [
            {"system": "phone", "value": f"+1-217-555-{i % 10000:04d}", "use": "mobile"},
            {"system": "email", "value": f"{given.lower()}.{family.lower()}{i}@example.org", "use": "home"},
        ],
        "gender": ("female", "male", "other", "unknown")[i % 4],
        "birthDate": f"{1940 + i % 65}-{1 + i % 12:02d}-{1 + i % 28:02d}",
        "address": [{"use": "home", "type": "physical", "line": [f"{1 + i % 999} Example St"], "city": "Springfield",
                     "state": "IL", "postalCode": f"62{i % 1000:03d}", "country": "US"}],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US",
                                                    "display": "English (United States)"}]}, "preferred": True}],
        "managingOrganization": {"display": "Riverside Behavioral Health IOP"},
    }


def _uuid(k: int) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'entry-{k}')}"


def transaction(entries: int, *, value: str = TOKEN) -> dict:
    """A transaction Bundle: a Patient, an Encounter of it, and entries-2 Observations of both (urn:uuid links)."""
    assert entries >= 2
    pat, enc = _uuid(0), _uuid(1)
    items = [
        (pat, patient(0, system=LOAD_SYSTEM, value=value)),
        (enc, {"resourceType": "Encounter", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
               "subject": {"reference": pat}, "period": {"start": "2026-11-18T17:00:00Z", "end": "2026-11-18T20:00:00Z"}}),
    ]
    for k in range(2, entries):
        items.append((_uuid(k), {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": pat}, "encounter": {"reference": enc},
            "effectiveDateTime": f"2026-11-18T{17 + k % 3:02d}:{k % 60:02d}:00Z",
            "valueQuantity": {"value": 60 + k % 40, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
        }))
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": url, "resource": res, "request": {"method": "POST", "url": res["resourceType"]}}
                      for url, res in items]}


def create_template() -> str:
    """The body of a create under load (TOKEN marks the unique identifier value)."""
    return compact(patient(7, system=LOAD_SYSTEM, value=TOKEN))


def transaction_template(entries: int = 10) -> str:
    """The body of a transaction under load (TOKEN marks the Patient's unique identifier value)."""
    return compact(transaction(entries))


def seed_bundle(first: int, count: int) -> dict:
    """Seeded Patients first..first+count-1 with their ids, as a collection Bundle (the peer's --seed file)."""
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": {**patient(i), "id": patient_id(i)}} for i in range(first, first + count)]}
