"""EpisodeOfCare/$program-outcomes: completion, length of stay, attendance, PHQ-9/GAD-7 change and 30/90-day
readmissions of a program's enrollments that ended in a period, as a MeasureReport whose figures equal the ones
computed by hand here from the enrollments, sessions and scores stored through the API."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
from test_conformance import assert_valid

from helpers import assert_outcome, phq9, post, put

OUTCOMES = "EpisodeOfCare/$program-outcomes"
PROGRAM = "Organization/iop-org-riverside"
OTHER = "Organization/aftercare-org-oakwood"
ATTENDANCE = "https://iop.example.org/fhir/StructureDefinition/attendance-status"
FIGURE = "https://iop.example.org/fhir/CodeSystem/iop-program-outcome-measure"


def enrollment(client, eid: str, patient: str, status: str, start: str, end: str | None = None, org: str = PROGRAM,
               history: tuple[str, ...] = ()) -> str:
    body = {"resourceType": "EpisodeOfCare", "id": eid, "status": status, "patient": {"reference": patient},
            "managingOrganization": {"reference": org}, "period": {"start": start, **({"end": end} if end else {})}}
    if history:
        body["statusHistory"] = [{"status": s, "period": {"start": start}} for s in history]
    assert put(client, f"EpisodeOfCare/{eid}", body).status_code == 201
    return f"EpisodeOfCare/{eid}"


def sessions(client, episode: str, patient: str, attended: int, no_show: int = 0, cancelled_by_program: int = 0) -> None:
    kinds = ["attended"] * attended + ["no-show"] * no_show + ["session-cancelled"] * cancelled_by_program
    for kind in kinds:
        body = {"resourceType": "Encounter", "status": "finished" if kind == "attended" else "cancelled",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": patient}, "episodeOfCare": [{"reference": episode}],
                "extension": [{"url": ATTENDANCE, "valueCodeableConcept": {"coding": [
                    {"system": "https://iop.example.org/fhir/CodeSystem/iop-attendance", "code": kind}]}}]}
        assert post(client, "Encounter", body).status_code == 201


def gad7(patient: str, score: int, when: str) -> dict:
    body = phq9(patient, score, when)
    body["code"] = {"coding": [{"system": "http://loinc.org", "code": "70274-6"}], "text": "GAD-7 total score"}
    return body


def scores(client, patient: str, make, *values: tuple[str, int]) -> None:
    for when, value in values:
        assert post(client, "Observation", make(patient, value, f"{when}T10:00:00Z")).status_code == 201


@pytest.fixture
def program_history(program):
    """Four enrollments of the program ending in the first half of 2026, and others that must not count."""
    client = program
    for pid in ("a", "b", "c", "d", "e"):
        assert put(client, f"Patient/out-{pid}", {"resourceType": "Patient", "id": f"out-{pid}"}).status_code == 201
    a, b, c, d, e = (f"Patient/out-{x}" for x in "abcde")
    e1 = enrollment(client, "out-e1", a, "finished", "2026-01-05", "2026-02-13")  # 39 days
    sessions(client, e1, a, attended=4, no_show=1, cancelled_by_program=1)
    scores(client, a, phq9, ("2026-01-06", 18), ("2026-01-20", 12), ("2026-02-10", 9))
    scores(client, a, gad7, ("2026-01-06", 15), ("2026-02-10", 8))
    scores(client, a, phq9, ("2025-12-20", 25))  # before the enrollment: not its first score
    enrollment(client, "out-e4", a, "active", "2026-03-01")  # A back 16 days after discharge
    e2 = enrollment(client, "out-e2", b, "finished", "2026-02-02", "2026-03-16")  # 42 days
    sessions(client, e2, b, attended=3, no_show=1)
    scores(client, b, phq9, ("2026-02-03", 14), ("2026-03-10", 10))
    scores(client, b, gad7, ("2026-02-03", 11))  # one GAD-7 score: no change to count
    e3 = enrollment(client, "out-e3", c, "cancelled", "2026-02-01", "2026-03-01", history=("planned", "active"))
    sessions(client, e3, c, attended=1, no_show=2)
    enrollment(client, "out-e5", b, "finished", "2026-05-20", "2026-06-25")  # B back 65 days after; 36 days
    enrollment(client, "out-e6", d, "cancelled", "2026-03-01", "2026-03-05", history=("waitlist",))  # never admitted
    enrollment(client, "out-e7", e, "finished", "2026-02-01", "2026-03-01", org=OTHER)  # another program
    enrollment(client, "out-e8", e, "finished", "2026-06-01", "2026-07-10")  # ends after the period
    return client


def report(client, start: str = "2026-01-01", end: str = "2026-06-30") -> dict:
    resp = client.get(f"/fhir/{OUTCOMES}?owner={PROGRAM}&period-start={start}&period-end={end}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def figures(body: dict) -> dict[str, tuple]:
    out = {}
    for group in body["group"]:
        counts = {p["code"]["coding"][0]["code"]: p["count"] for p in group["population"]}
        out[group["code"]["coding"][0]["code"]] = ((group.get("measureScore") or {}).get("value"), counts)
    return out


def test_the_figures_equal_the_ones_computed_by_hand(program_history, validator_url):
    body = report(program_history)
    assert_valid(validator_url, body, "program outcomes")
    assert body["measure"] == "https://iop.example.org/fhir/Measure/program-outcomes"
    assert sorted(r["reference"] for r in body["evaluatedResource"]) == [
        "EpisodeOfCare/out-e1", "EpisodeOfCare/out-e2", "EpisodeOfCare/out-e3", "EpisodeOfCare/out-e5"]
    got = figures(body)
    total = 4
    assert got["completion-rate"] == (0.75, {"initial-population": total, "denominator": 4, "numerator": 3})
    assert got["length-of-stay"] == (round((39 + 42 + 36) / 3, 4), {"initial-population": total, "measure-population": 3})
    # sessions the program cancelled are not the patient's absences: 5 + 4 + 3 scheduled, 4 + 3 + 1 attended
    assert got["attendance-rate"] == (round(8 / 12, 4), {"initial-population": total, "denominator": 12, "numerator": 8})
    assert got["phq9-change"] == (round(((9 - 18) + (10 - 14)) / 2, 4), {"initial-population": total, "measure-population": 2})
    assert got["gad7-change"] == (-7.0, {"initial-population": total, "measure-population": 1})
    # completed stays e1 (back after 16 days), e2 (back after 65 days), e5 (not back)
    assert got["readmission-30d"] == (round(1 / 3, 4), {"initial-population": total, "denominator": 3, "numerator": 1})
    assert got["readmission-90d"] == (round(2 / 3, 4), {"initial-population": total, "denominator": 3, "numerator": 2})
    units = {g["code"]["coding"][0]["code"]: g["measureScore"]["code"] for g in body["group"] if "measureScore" in g}
    assert units["length-of-stay"] == "d" and units["phq9-change"] == "{score}" and units["completion-rate"] == "1"


def test_a_readmission_rate_waits_until_its_days_have_passed(program):
    client = program
    assert put(client, "Patient/out-f", {"resourceType": "Patient", "id": "out-f"}).status_code == 201
    ended = date.today() - timedelta(days=10)
    enrollment(client, "out-recent", "Patient/out-f", "finished", (ended - timedelta(days=40)).isoformat(), ended.isoformat())
    got = figures(report(client, ended.isoformat(), ended.isoformat()))
    assert got["readmission-30d"] == (None, {"initial-population": 1, "denominator": 0, "numerator": 0})
    assert got["completion-rate"][0] == 1.0


def test_an_empty_period_reports_zero_populations_and_no_scores(program_history):
    got = figures(report(program_history, "2025-01-01", "2025-06-30"))
    assert all(score is None and counts["initial-population"] == 0 for score, counts in got.values())


def test_by_post_with_parameters(program_history):
    resp = post(program_history, OUTCOMES, {"resourceType": "Parameters", "parameter": [
        {"name": "owner", "valueString": PROGRAM}, {"name": "period-start", "valueDate": "2026-01-01"},
        {"name": "period-end", "valueDate": "2026-06-30"}]})
    assert resp.status_code == 200 and figures(resp.get_json())["completion-rate"][0] == 0.75


@pytest.mark.parametrize("query,status,expression", [
    ("period-start=2026-01-01&period-end=2026-06-30", 400, "owner"),
    (f"owner={PROGRAM}&period-end=2026-06-30", 400, "period-start"),
    (f"owner={PROGRAM}&period-start=2026-07-01&period-end=2026-06-30", 400, "period-end"),
    (f"owner={PROGRAM}&period-start=2026-02-30&period-end=2026-06-30", 400, "period-start"),
    ("owner=Patient/x&period-start=2026-01-01&period-end=2026-06-30", 400, "owner"),
    ("owner=Organization/nobody&period-start=2026-01-01&period-end=2026-06-30", 404, "owner"),
    (f"owner={PROGRAM}&period-start=2026-01-01&period-end=2026-06-30&track=x", 400, "track"),
])
def test_bad_parameters_are_refused(program, query, status, expression):
    assert_outcome(program.get(f"/fhir/{OUTCOMES}?{query}"), status, expression=expression)


def test_the_operation_is_in_the_capability_statement(client):
    [rest] = client.get("/fhir/metadata").get_json()["rest"]
    [eoc] = [r for r in rest["resource"] if r["type"] == "EpisodeOfCare"]
    assert {"name": "program-outcomes",
            "definition": "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-program-outcomes"} in eoc["operation"]
    assert client.get("/fhir/Measure?url=https://iop.example.org/fhir/Measure/program-outcomes").get_json()["total"] == 1
