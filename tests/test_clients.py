"""Real third-party clients against our server over HTTP: SMART's fhirclient, fhirpy, and the peer smoke script.

Each client parses what we send with its own R4 model or conventions, so these tests catch wire-level
surprises (capability parsing, Location/ETag handling, paging links) that our own tests cannot.
"""
from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.patient import Patient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

SMOKE = Path(__file__).resolve().parents[2] / "shared" / "tools" / "fhir-peer-smoke.py"
PAGE = 3
MANY = 7  # three pages of PAGE


def system() -> str:
    """A fresh identifier system, so each test's searches see only its own Patients."""
    return f"urn:iop-test:{uuid.uuid4().hex[:12]}"


def patient_json(sys_: str, value: str, family: str = "Clienttest") -> dict:
    return {"resourceType": "Patient", "identifier": [{"system": sys_, "value": value}],
            "name": [{"family": family, "given": ["Alex"]}], "gender": "other", "birthDate": "1990-02-03"}


# ------------------------------------------------------------------------------- SMART fhirclient 4.4.0 (R4 models)
@pytest.fixture
def smart(live_server):
    return smart_client.FHIRClient(settings={"app_id": "iop-conformance-tests", "api_base": live_server})


def test_fhirclient_reads_the_capability_statement(smart):
    """server.prepare() fetches /metadata and parses it strictly into the R4 CapabilityStatement model."""
    assert smart.prepare() is True  # no security section: the open server is ready at once
    cap = smart.server.capabilityStatement
    assert isinstance(cap, CapabilityStatement)
    assert cap.fhirVersion == "4.0.1" and cap.kind == "instance"
    patient = next(r for r in cap.rest[0].resource if r.type == "Patient")
    assert {"read", "create", "search-type"} <= {i.code for i in patient.interaction}
    assert "identifier" in {p.name for p in patient.searchParam}


def test_fhirclient_create_read_update_search_and_delete(smart):
    sys_ = system()
    smart.prepare()
    created = Patient(patient_json(sys_, "FC-1")).create(smart.server)
    pid = created["id"]
    read = Patient.read(pid, smart.server)
    assert read.id == pid and read.meta.versionId == "1" and read.identifier[0].value == "FC-1"
    assert read.name[0].family == "Clienttest" and read.birthDate.isostring == "1990-02-03"
    read.active = True
    updated = read.update()
    assert updated["meta"]["versionId"] == "2" and updated["active"] is True
    found = list(Patient.where(struct={"identifier": f"{sys_}|FC-1"}).perform_resources_iter(smart.server))
    assert [p.id for p in found] == [pid]
    read.delete()
    assert list(Patient.where(struct={"identifier": f"{sys_}|FC-1"}).perform_resources_iter(smart.server)) == []


def test_fhirclient_pages_through_a_multi_page_search(smart):
    """perform_iter follows Bundle.link[next] until the last page; every page parses as an R4 Bundle."""
    sys_ = system()
    smart.prepare()
    ids = {Patient(patient_json(sys_, f"FC-P{n}")).create(smart.server)["id"] for n in range(MANY)}
    search = Patient.where(struct={"identifier": f"{sys_}|", "_count": str(PAGE)})
    pages = list(search.perform_iter(smart.server))
    assert all(isinstance(b, Bundle) and b.type == "searchset" and b.total == MANY for b in pages)
    assert [len(b.entry) for b in pages] == [PAGE, PAGE, MANY - 2 * PAGE]
    resources = list(Patient.where(struct={"identifier": f"{sys_}|", "_count": str(PAGE)}).perform_resources_iter(smart.server))
    assert {p.id for p in resources} == ids and len(resources) == MANY


# ------------------------------------------------------------------------------- fhirpy 2.3.1
@pytest.fixture
def fhirpy(live_server):
    return SyncFHIRClient(live_server)


def test_fhirpy_create_read_search_and_capability(fhirpy):
    sys_ = system()
    pat = fhirpy.resource("Patient", **{k: v for k, v in patient_json(sys_, "FP-1").items() if k != "resourceType"})
    pat.save()
    assert pat.id and pat["meta"]["versionId"] == "1"
    read = fhirpy.reference("Patient", pat.id).to_resource()
    assert read["identifier"][0]["value"] == "FP-1"
    assert read.refresh()["meta"]["versionId"] == "1"  # conditional read with If-None-Match: 304 keeps the copy
    found = fhirpy.resources("Patient").search(identifier=f"{sys_}|FP-1").fetch_all()
    assert [p.id for p in found] == [pat.id]
    assert fhirpy.resources("Patient").search(identifier=f"{sys_}|FP-1").get().id == pat.id
    metadata = fhirpy.execute("metadata", method="get")
    assert metadata["resourceType"] == "CapabilityStatement" and metadata["fhirVersion"] == "4.0.1"


def test_fhirpy_update_and_delete(fhirpy):
    sys_ = system()
    pat = fhirpy.resource("Patient", **{k: v for k, v in patient_json(sys_, "FP-2").items() if k != "resourceType"})
    pat.save()
    pat["active"] = True
    pat.save()
    assert pat["meta"]["versionId"] == "2" and pat["active"] is True
    pat.delete()
    with pytest.raises(ResourceNotFound):
        fhirpy.reference("Patient", pat.id).to_resource()


def test_fhirpy_limit_and_fetch_all_page_over_several_pages(fhirpy):
    sys_ = system()
    ids = set()
    for n in range(MANY):
        pat = fhirpy.resource("Patient", **{k: v for k, v in patient_json(sys_, f"FP-P{n}").items() if k != "resourceType"})
        pat.save()
        ids.add(pat.id)
    search = fhirpy.resources("Patient").search(identifier=f"{sys_}|").limit(PAGE)
    assert len(search.fetch()) == PAGE  # one page
    everything = search.fetch_all()  # follows next links
    assert {p.id for p in everything} == ids and len(everything) == MANY
    assert search.count() == MANY
    assert [p["identifier"][0]["value"] for p in search.sort("-_lastUpdated").fetch_all()][0] == f"FP-P{MANY - 1}"


# ------------------------------------------------------------------------------- the peer smoke script
def test_fhir_peer_smoke_script_passes(live_server):
    """../shared/tools/fhir-peer-smoke.py: every REST basic passes against our server."""
    run = subprocess.run([sys.executable, str(SMOKE), live_server], capture_output=True, text=True,
                         timeout=300)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(lines) >= 11, run.stdout
    for line in lines:
        informational = "invalid CarePlan rejected" in line
        assert line.startswith("PASS") or (informational and line.startswith("INFO")), run.stdout
