"""Physician certification and recertification every 60 days, and EpisodeOfCare/$recertification-due (issue 9 part
B). The example program's certifications (examples/program-operations-1-network.json), judged on 2026-10-18:
ops-eoc-6 has none (due on admission 2026-09-07), ops-eoc-3 was certified 2026-08-17 (due 2026-10-16), ops-eoc-2 on
2026-08-24 (due 2026-10-23, in 5 days); the others are due in November or December."""
from __future__ import annotations

import copy

import requests
from intensity_helpers import PSYCHIATRIST, C, get, level_change, load_network, named, parts, set_level

from helpers import example, post, put


def worklist(client, query: str) -> list[tuple]:
    resp = get(client, f"EpisodeOfCare/$recertification-due{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    rows = [parts(p) for p in named(body, "recertification")]
    assert named(body, "total")[0]["valueInteger"] == len(rows)
    return [(r["episode"]["reference"].split("/")[1], r.get("lastCertification"), r["due"], r["daysUntilDue"], r["status"])
            for r in rows]


def certification(eid: str, pid: str, day: str, kind: str = "recertification") -> dict:
    doc = copy.deepcopy(next(e["resource"] for e in example("program-operations-1-network.json")["entry"]
                             if e["resource"]["id"] == "ops-cert-1-20260907"))
    doc.update({"id": f"cert-{eid}-{day}", "subject": {"reference": f"Patient/{pid}"}, "date": f"{day}T09:00:00-05:00"})
    doc["type"]["coding"][0].update({"code": kind, "display": "IOP physician recertification"})
    doc["context"] = {"encounter": [{"reference": f"EpisodeOfCare/{eid}"}], "period": {"start": day}}
    return doc


def test_worklist_of_the_example_program(client, validator_url):
    """Overdue first (earliest due first), then due within 7 days; valid R4 Parameters."""
    load_network(client)
    assert worklist(client, "?date=2026-10-18") == [
        ("ops-eoc-6", None, "2026-09-07", -41, "overdue"),
        ("ops-eoc-3", "2026-08-17", "2026-10-16", -2, "overdue"),
        ("ops-eoc-2", "2026-08-24", "2026-10-23", 5, "due")]
    assert worklist(client, "?date=2026-10-15") == [
        ("ops-eoc-6", None, "2026-09-07", -38, "overdue"), ("ops-eoc-3", "2026-08-17", "2026-10-16", 1, "due")]
    body = get(client, "EpisodeOfCare/$recertification-due?date=2026-10-18").get_json()
    issues = requests.post(f"{validator_url}/validate", json=body, timeout=30).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_a_recertification_moves_the_due_date(client):
    """A signed recertification on 2026-10-17 takes ops-eoc-3 off the list (next due 2026-12-16); a draft, or one
    nobody authenticated, counts for nothing."""
    load_network(client)
    draft = certification("ops-eoc-3", "ops-patient-3", "2026-10-17")
    draft.update({"docStatus": "preliminary", "meta": {}})
    unsigned = certification("ops-eoc-3", "ops-patient-3", "2026-10-17")
    unsigned.pop("authenticator")
    unsigned.update({"id": "cert-unsigned", "meta": {}})
    for doc in (draft, unsigned):
        assert put(client, f"DocumentReference/{doc['id']}", doc).status_code == 201
    assert [r[0] for r in worklist(client, "?date=2026-10-18")] == ["ops-eoc-6", "ops-eoc-3", "ops-eoc-2"]
    doc = certification("ops-eoc-3", "ops-patient-3", "2026-10-17")  # the draft, signed: final and authenticated
    assert put(client, f"DocumentReference/{doc['id']}", doc).status_code == 200
    assert [r[0] for r in worklist(client, "?date=2026-10-18")] == ["ops-eoc-6", "ops-eoc-2"]
    census = get(client, "EpisodeOfCare/$census?date=2026-10-18").get_json()
    row = next(parts(p) for p in named(census, "episode") if parts(p)["episode"]["reference"] == "EpisodeOfCare/ops-eoc-3")
    assert (row["nextRecertification"], row["recertificationStatus"]) == ("2026-12-16", "current")


def test_outpatient_level_needs_no_recertification(client):
    """An enrollment stepped down to outpatient care leaves the worklist (the certification is for IOP services)."""
    load_network(client)
    episode = get(client, "EpisodeOfCare/ops-eoc-6").get_json()
    set_level(episode, "asam-1", "ASAM Level 1 Outpatient Services")
    episode["extension"] += [level_change("asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services", "2026-09-07", "Admission"),
                             level_change("asam-1", "ASAM Level 1 Outpatient Services", "2026-10-12", "Step down", PSYCHIATRIST)]
    assert put(client, "EpisodeOfCare/ops-eoc-6", episode).status_code == 200
    assert [r[0] for r in worklist(client, "?date=2026-10-18")] == ["ops-eoc-3", "ops-eoc-2"]


def test_program_filter_and_post(client):
    """organization= limits the list to one program; POST takes the same inputs."""
    load_network(client)
    assert worklist(client, "?date=2026-10-18&organization=Organization/iop-org-riverside") == []
    assert len(worklist(client, "?date=2026-10-18&organization=Organization/ops-org-lakeview")) == 3
    resp = post(client, "EpisodeOfCare/$recertification-due", {"resourceType": "Parameters", "parameter": [
        {"name": "date", "valueDate": "2026-10-18"}, {"name": "organization", "valueReference": {"reference": "Organization/ops-org-lakeview"}}]})
    assert resp.status_code == 200 and named(resp.get_json(), "total")[0]["valueInteger"] == 3


def test_bad_input(client):
    load_network(client)
    for query, where in (("?date=18-10-2026", "date"), ("?organization=Patient/x", "organization"),
                         ("?organization=Organization/a/b", "organization"), ("?when=today", "when")):
        resp = get(client, f"EpisodeOfCare/$recertification-due{query}")
        assert resp.status_code == 400 and resp.get_json()["issue"][0]["expression"] == [where], query


def test_a_certification_must_be_for_the_patients_enrollment(client):
    """A certification of another patient's enrollment, or of an Encounter: 422, nothing stored."""
    load_network(client)
    cases = [("EpisodeOfCare/ops-eoc-2", "ops-patient-3", "is not an enrollment of Patient/ops-patient-3"),
             ("Encounter/nope", "ops-patient-3", "must reference an EpisodeOfCare")]
    for target, pid, message in cases:
        doc = certification("ops-eoc-3", pid, "2026-10-17")
        doc["context"]["encounter"] = [{"reference": target}]
        doc.pop("meta")
        resp = put(client, f"DocumentReference/{doc['id']}", doc)
        assert resp.status_code == 422 and message in resp.get_json()["issue"][0]["diagnostics"], resp.get_data(as_text=True)
        assert get(client, f"DocumentReference/{doc['id']}").status_code == 404
    assert C  # canonical of the example
