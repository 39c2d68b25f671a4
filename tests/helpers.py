"""Test helpers: request shortcuts, assertions and small FHIR builders (plain functions)."""
from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import text

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FHIR = "application/fhir+json"

def example(name: str) -> dict:
    """An examples/ file as JSON."""
    return json.loads((EXAMPLES / name).read_text())


def assert_outcome(response, status: int, code: str | None = None, expression: str | None = None) -> dict:
    """Assert an OperationOutcome error response and return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == FHIR, response.mimetype
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"], body
    if code is not None:
        assert code in [i["code"] for i in body["issue"]], body
    if expression is not None:
        expressions = [e for i in body["issue"] for e in i.get("expression", [])]
        assert expression in expressions, body
    return body


def post(client, path: str, body: object, **headers):
    return client.post(f"/fhir/{path}".rstrip("/"), data=json.dumps(body), headers={"Content-Type": FHIR, **headers})


def put(client, path: str, body: object, **headers):
    return client.put(f"/fhir/{path}", data=json.dumps(body), headers={"Content-Type": FHIR, **headers})


GUIDE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem", "OperationDefinition", "Measure", "Questionnaire")


def count_rows(app, table: str = "resource") -> int:
    """Rows of `table` that tests wrote (the implementation guide's conformance resources and the audit trail's
    AuditEvents, one per write, not counted)."""
    key = "pk" if table == "resource" else "resource_pk"
    guide = f"SELECT pk FROM resource WHERE type IN {GUIDE_TYPES + ('AuditEvent',)}"
    with app.extensions["iop.db"].read() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table} WHERE {key} NOT IN ({guide})")).scalar_one()


def patient(family: str = "Testpatient", given: str = "Robin", mrn: str | None = None, **extra) -> dict:
    """A small synthetic Patient."""
    body = {"resourceType": "Patient", "name": [{"family": family, "given": [given]}], "gender": "female",
            "birthDate": "1988-04-12"}
    if mrn:
        body["identifier"] = [{"system": "https://iop.example.org/fhir/sid/mrn", "value": mrn}]
    body.update(extra)
    return body


def phq9(patient_ref: str, score: int, when: str = "2026-11-16T10:00:00Z") -> dict:
    """A PHQ-9 total score Observation (LOINC 44261-6)."""
    return {"resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}], "text": "PHQ-9 total score"},
            "subject": {"reference": patient_ref}, "effectiveDateTime": when, "valueInteger": score}


def created(response) -> dict:
    """The body of a 201 Created response."""
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json(force=True)


def load_examples(app, skip: tuple[str, ...] = ()) -> None:
    """Store the single-resource examples (not the Bundles) in name order, as `flask examples load` does.

    Referral workflows check that what a referral points at is on the server, so a test that writes one
    example alone loads the others first; `skip` leaves out resource types (file name prefixes).
    """
    from service import cli

    with app.app_context():
        for file in sorted(EXAMPLES.glob("*.json")):
            body = json.loads(file.read_text())
            if body["resourceType"] != "Bundle" and body["resourceType"] not in skip:
                cli.load_file(file)
