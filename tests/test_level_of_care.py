"""Level of care as the enrollment's history (PHP → IOP → OP and back up) and the readmission fast path (issue 9
part B): what is accepted, what is refused with a 422 naming the element, and that a refusal stores nothing."""
from __future__ import annotations

import copy

import pytest
from intensity_helpers import SD, C, get, level_change, load_network, named, parts, set_level

from helpers import post, put

IOP = ("asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services")
OP = ("asam-1", "ASAM Level 1 Outpatient Services")
PHP = ("asam-2.5", "ASAM Level 2.5 Partial Hospitalization Services")


def episode(client, eid: str) -> dict:
    return get(client, f"EpisodeOfCare/{eid}").get_json()


def step(body: dict, level: tuple[str, str], on: str, reason: str, admission: bool = False, **kwargs) -> dict:
    """The episode with its level changed and the decision appended (and the admission entry first when asked)."""
    out = copy.deepcopy(body)
    if admission:
        out["extension"].append(level_change(*IOP, out["period"]["start"], "Admission"))
    set_level(out, *level)
    out["extension"].append(level_change(*level, on, reason, **kwargs))
    return out


def refused(client, body: dict, message: str, where: str | None = None) -> None:
    before = episode(client, body["id"])["meta"]["versionId"]
    resp = put(client, f"EpisodeOfCare/{body['id']}", body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    issue = resp.get_json()["issue"][0]
    assert message in issue["diagnostics"], issue
    if where:
        assert issue["expression"] == [where], issue
    assert episode(client, body["id"])["meta"]["versionId"] == before


def test_step_down_to_op_and_back_up(client):
    """IOP → OP → IOP: each change is stored with its date, reason and who decided; the census shows the current level."""
    load_network(client)
    down = step(episode(client, "ops-eoc-4"), OP, "2026-10-05", "Goals met; step down to outpatient", admission=True)
    assert put(client, "EpisodeOfCare/ops-eoc-4", down).status_code == 200
    up = step(episode(client, "ops-eoc-4"), IOP, "2026-10-19", "Relapse risk rose: back to intensive outpatient")
    assert put(client, "EpisodeOfCare/ops-eoc-4", up).status_code == 200
    stored = episode(client, "ops-eoc-4")
    history = [{p["url"]: p for p in e["extension"]} for e in stored["extension"] if e["url"] == f"{SD}/level-of-care-change"]
    assert [(h["level"]["valueCodeableConcept"]["coding"][0]["code"], h["date"]["valueDate"]) for h in history] == [
        ("asam-2.1", "2026-09-07"), ("asam-1", "2026-10-05"), ("asam-2.1", "2026-10-19")]
    assert history[1]["reason"]["valueCodeableConcept"]["text"] == "Goals met; step down to outpatient"
    assert history[1]["decidedBy"]["valueReference"]["reference"] == "Practitioner/ops-pract-psychiatrist"
    weeks = [parts(p) for p in named(get(client, "EpisodeOfCare/ops-eoc-4/$hours?start=2026-09-28&end=2026-10-25").get_json(), "week")]
    assert [w["levelOfCare"]["code"] for w in weeks] == ["asam-2.1", "asam-1", "asam-1", "asam-2.1"]
    census = get(client, "EpisodeOfCare/$census?date=2026-10-21").get_json()
    row = next(parts(p) for p in named(census, "episode") if parts(p)["episode"]["reference"] == "EpisodeOfCare/ops-eoc-4")
    assert row["levelOfCare"]["code"] == "asam-2.1"


def test_php_history_of_the_example(client):
    """The example admitted at PHP and stepped down to IOP: weeks before the change are PHP, without IOP flags."""
    load_network(client)
    weeks = [parts(p) for p in named(get(client, "EpisodeOfCare/ops-eoc-5/$hours?start=2026-08-10&end=2026-08-30").get_json(), "week")]
    assert [(w["levelOfCare"]["code"], w.get("flag")) for w in weeks] == [
        ("asam-2.5", None), ("asam-2.5", None), ("asam-2.1", ["below-minimum", "fewer-than-3-days"])]


@pytest.mark.parametrize("case", ["no entry", "rewrite", "missing reason", "unknown clinician", "not a clinician", "out of order",
                                  "last entry differs", "not from admission", "removed"])
def test_bad_history_is_refused(client, case):
    """Each broken rule is a 422 naming the entry, and the episode keeps its version."""
    load_network(client)
    base = episode(client, "ops-eoc-5")  # history: PHP 2026-08-10, IOP 2026-08-24
    if case == "no entry":
        body = copy.deepcopy(base)
        set_level(body, *OP)
        refused(client, body, "without a level-of-care-change entry", "EpisodeOfCare.extension")
    elif case == "rewrite":
        body = copy.deepcopy(base)
        body["extension"][3]["extension"][2]["valueCodeableConcept"]["text"] = "Changed afterwards"
        refused(client, body, "cannot be changed or removed", "EpisodeOfCare.extension[3]")
    elif case == "removed":
        body = copy.deepcopy(base)
        del body["extension"][4]
        refused(client, body, "cannot be changed or removed")
    elif case == "missing reason":
        body = step(base, OP, "2026-10-05", "x")
        del body["extension"][-1]["extension"][2]
        refused(client, body, "needs reason", "EpisodeOfCare.extension[5]")
    elif case == "unknown clinician":
        refused(client, step(base, OP, "2026-10-05", "x", who="Practitioner/nobody"), "not on this server")
    elif case == "not a clinician":
        refused(client, step(base, OP, "2026-10-05", "x", who="Patient/ops-patient-5"), "Practitioner or PractitionerRole")
    elif case == "out of order":
        refused(client, step(base, OP, "2026-08-20", "x"), "before the one before it", "EpisodeOfCare.extension[5]")
    elif case == "last entry differs":
        body = step(base, OP, "2026-10-05", "x")
        set_level(body, *PHP)
        refused(client, body, "but the level-of-care is asam-2.5")
    elif case == "not from admission":
        body = step(episode(client, "ops-eoc-4"), OP, "2026-10-05", "x")
        refused(client, body, "starts at admission", "EpisodeOfCare.extension[3]")


def readmission(old: dict, start: str = "2026-10-12", new_id: str = "ops-eoc-7-r") -> dict:
    body = copy.deepcopy(old)
    body.pop("meta")
    body.update({"id": new_id, "status": "active", "period": {"start": start},
                 "statusHistory": [{"status": "active", "period": {"start": start}}],
                 "identifier": [{"system": f"{C}/sid/episode", "value": f"EOC-{new_id}"}]})
    body["extension"] = [e for e in body["extension"] if e["url"] != f"{SD}/level-of-care-change"]
    body["extension"] += [level_change(*IOP, start, "Symptoms returned after discharge: readmitted"),
                          {"url": f"{SD}/readmission-of", "valueReference": {"reference": f"EpisodeOfCare/{old['id']}"}}]
    return body


def discharge(client, eid: str, end: str) -> dict:
    body = episode(client, eid)
    body.update({"status": "finished", "period": {**body["period"], "end": end}})
    assert put(client, f"EpisodeOfCare/{eid}", body).status_code == 200
    return body


def test_readmission_fast_path(client):
    """A discharged patient comes back with a new enrollment that names the old one; the census counts it."""
    load_network(client)
    old = discharge(client, "ops-eoc-7", "2026-09-27")
    resp = put(client, "EpisodeOfCare/ops-eoc-7-r", readmission(old))
    assert resp.status_code == 201, resp.get_data(as_text=True)
    census = get(client, "EpisodeOfCare/$census?date=2026-10-18").get_json()
    assert (named(census, "total")[0]["valueInteger"], named(census, "readmissions")[0]["valueInteger"]) == (8, 1)
    row = next(parts(p) for p in named(census, "episode") if parts(p)["episode"]["reference"] == "EpisodeOfCare/ops-eoc-7-r")
    assert (row["readmissionOf"]["reference"], row["daysSinceAdmission"]) == ("EpisodeOfCare/ops-eoc-7", 6)


@pytest.mark.parametrize("case", ["still active", "another patient", "before discharge", "unknown", "itself"])
def test_bad_readmission_is_refused(client, case):
    """Readmission only of a finished enrollment of the same patient that ended before: otherwise 422, nothing stored."""
    load_network(client)
    old = episode(client, "ops-eoc-7") if case == "still active" else discharge(client, "ops-eoc-7", "2026-09-27")
    body = readmission(old, start="2026-09-20" if case == "before discharge" else "2026-10-12")
    link = body["extension"][-1]["valueReference"]
    if case == "another patient":
        body["patient"] = {"reference": "Patient/ops-patient-6"}
    if case == "unknown":
        link["reference"] = "EpisodeOfCare/nope"
    if case == "itself":
        link["reference"] = "EpisodeOfCare/ops-eoc-7-r"
    resp = put(client, "EpisodeOfCare/ops-eoc-7-r", body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert resp.get_json()["issue"][0]["expression"][0].startswith("EpisodeOfCare.extension[")
    assert get(client, "EpisodeOfCare/ops-eoc-7-r").status_code == 404
    body.pop("id")
    assert post(client, "EpisodeOfCare", body).status_code == 422
