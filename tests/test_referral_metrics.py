"""Task/$referral-metrics: a program's referral service levels as a MeasureReport, from referrals driven through the API.

Task versions are stamped with the server clock, so a test cannot choose when a step happened. The tests first
check what holds whatever the clock says (counts, durations >= 0, acknowledge <= decision <= first session), then
set each Task version's time directly in resource_version (last_updated and meta.lastUpdated, see `stamp`) to
assert exact medians and which referrals fall in a period.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, select, update
from test_conformance import assert_valid
from test_referrals import PROGRAM, attend_intake, decide, referral_bundle, search

from helpers import assert_outcome, post, put
from service import dates
from service.tables import resource_version

METRICS = "Task/$referral-metrics"
FIGURE = "https://iop.example.org/fhir/CodeSystem/iop-referral-measure"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
TRACK = "HealthcareService/iop-hs-adult-evening"
MARCH = datetime(2026, 3, 2, 8, 0)  # stamped receipt times start here


# ------------------------------------------------------------------------------- driving referrals
def referral(client, n: int, owner: str | None = None) -> str:
    """journey-01's referral as referral number n (its own ServiceRequest and Task); returns the Task id."""
    task_id = f"metrics-task-{n}"

    def service_request(entry: dict) -> None:
        value = f"R-METRICS-{n}"
        entry["resource"]["identifier"][0]["value"] = value
        entry["request"]["ifNoneExist"] = f"identifier=https://hospital.example.org/fhir/sid/referral|{value}"

    def task(entry: dict) -> None:
        entry["resource"].update(id=task_id, identifier=[{"system": "https://hospital.example.org/fhir/sid/referral-task",
                                                          "value": f"T-METRICS-{n}"}])
        entry["request"]["url"] = f"Task/{task_id}"
        if owner:
            entry["resource"]["owner"] = {"reference": owner}

    resp = post(client, "", referral_bundle(ServiceRequest=service_request, Task=task))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return task_id


def triage(client, task_id: str) -> None:
    assert post(client, f"Task/{task_id}/$triage", {"resourceType": "Parameters"}).status_code == 200


def accept(client, task_id: str) -> dict:
    """Accept with an intake appointment; returns the referral's intake Appointment."""
    resp = decide(client, task_id, "accept", intakeStart={"valueDateTime": "2026-11-30T16:00:00-06:00"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    [appointment] = search(client, f"Appointment?based-on={focus(client, task_id)}")
    return appointment


def focus(client, task_id: str) -> str:
    return client.get(f"/fhir/Task/{task_id}").get_json()["focus"]["reference"]


def attend(client, task_id: str) -> None:
    """The intake session is attended: the enrollment becomes active and the referral admitted."""
    [episode] = search(client, f"EpisodeOfCare?incoming-referral={focus(client, task_id)}")
    attend_intake(client, episode)


def set_status(client, appointment: dict, status: str) -> None:
    current = client.get(f"/fhir/Appointment/{appointment['id']}").get_json()
    current["status"] = status
    assert put(client, f"Appointment/{appointment['id']}", current).status_code == 200


def statuses(client, task_id: str) -> list[tuple[str, str | None]]:
    """(status, step) of every version of a Task, oldest first."""
    history = client.get(f"/fhir/Task/{task_id}/_history").get_json()
    out = []
    for entry in reversed(history["entry"]):
        task = entry["resource"]
        steps = [c["code"] for c in task["businessStatus"]["coding"] if c["system"].endswith("/iop-referral-step")]
        out.append((task["status"], steps[0] if steps else None))
    return out


IDS = {"declined": "metrics-task-1", "admitted": "metrics-task-2", "no-show": "metrics-task-3", "waiting": "metrics-task-4",
       "untouched": "metrics-task-5"}


@pytest.fixture
def referrals(program):
    """Five referrals: declined, admitted (appointment left booked), no-show, accepted and waiting, untouched."""
    client = program
    declined, admitted, no_show = referral(client, 1), referral(client, 2), referral(client, 3, owner=TRACK)
    waiting, untouched = referral(client, 4), referral(client, 5)
    for task_id in (declined, admitted, no_show, waiting):
        triage(client, task_id)
    assert decide(client, declined, "decline", reason={"valueString": "Needs residential care"}).status_code == 200
    accept(client, admitted)
    attend(client, admitted)
    set_status(client, accept(client, no_show), "noshow")
    accept(client, waiting)
    assert (declined, admitted, no_show, waiting, untouched) == tuple(IDS.values())
    return client


# ------------------------------------------------------------------------------- reading a report
def metrics(client, start: str, end: str, owner: str = PROGRAM) -> dict:
    resp = client.get(f"/fhir/{METRICS}?owner={owner}&period-start={start}&period-end={end}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["resourceType"] == "MeasureReport"
    return body


def group(report: dict, code: str) -> dict:
    [found] = [g for g in report["group"] if (g["code"]["coding"][0]["system"], g["code"]["coding"][0]["code"]) == (FIGURE, code)]
    return found


def counts(report: dict, code: str) -> dict[str, int]:
    out = {}
    for population in group(report, code)["population"]:
        coding = population["code"]["coding"][0]
        assert coding["system"] == POPULATION
        out[coding["code"]] = population["count"]
    return out


def score(report: dict, code: str) -> float | None:
    quantity = group(report, code).get("measureScore")
    if quantity is None:
        return None
    unit = "1" if code == "first-appointment-kept" else "h"
    assert (quantity["system"], quantity["code"]) == ("http://unitsofmeasure.org", unit), quantity
    return quantity["value"]


def today(days: int = 0) -> str:
    return (dates.utcnow() + timedelta(days=days)).date().isoformat()


# ------------------------------------------------------------------------------- the figures
def test_the_figures_count_each_referral_once_with_durations_in_order(referrals, validator_url):
    client = referrals
    report = metrics(client, today(-1), today(1))
    assert_valid(validator_url, report, "MeasureReport")
    assert report["status"] == "complete" and report["type"] == "summary"
    assert report["measure"] == "https://iop.example.org/fhir/Measure/referral-service-levels"
    assert report["reporter"] == {"reference": PROGRAM} and report["period"] == {"start": today(-1), "end": today(1)}
    assert sorted(r["reference"] for r in report["evaluatedResource"]) == [f"Task/metrics-task-{n}" for n in range(1, 6)]
    assert counts(report, "time-to-acknowledge") == {"initial-population": 5, "measure-population": 4}
    assert counts(report, "time-to-decision") == {"initial-population": 5, "measure-population": 4}
    assert counts(report, "time-to-first-session") == {"initial-population": 5, "measure-population": 1}
    # admitted: kept; no-show: not kept; waiting (booked, no outcome), declined and untouched: not in the denominator
    assert counts(report, "first-appointment-kept") == {"initial-population": 5, "denominator": 2, "numerator": 1}
    assert score(report, "first-appointment-kept") == 0.5
    ack, decision, session = (score(report, c) for c in ("time-to-acknowledge", "time-to-decision", "time-to-first-session"))
    assert 0 <= ack <= decision <= session


def stamp(app, task_id: str, hours: list[float]) -> None:
    """Set the time of each version of a Task (oldest first) to MARCH + hours, in the column and in meta.lastUpdated."""
    V = resource_version
    with app.extensions["iop.db"].write() as conn:
        rows = conn.execute(select(V.c.pk, V.c.content).where(V.c.type == "Task", V.c.id == task_id).order_by(V.c.version)).all()
        assert len(rows) == len(hours), f"Task/{task_id} has {len(rows)} versions"
        for (pk, content), offset in zip(rows, hours, strict=True):
            at = MARCH + timedelta(hours=offset)
            body = json.loads(content)
            body["meta"]["lastUpdated"] = dates.instant(at)
            conn.execute(update(V).where(V.c.pk == pk).values(last_updated=at, content=json.dumps(body)))


def test_exact_medians_from_the_task_versions_and_the_period_by_first_version(referrals, app):
    client, ids = referrals, IDS
    assert statuses(client, ids["declined"]) == [("requested", None), ("received", "eligibility-checked"), ("rejected", "declined")]
    assert statuses(client, ids["admitted"]) == [("requested", None), ("received", "eligibility-checked"), ("accepted", "accepted"),
                                                 ("accepted", "intake-scheduled"), ("in-progress", "admitted")]
    assert statuses(client, ids["no-show"])[-1] == ("accepted", "no-show")
    stamp(app, ids["declined"], [0, 2, 10])
    stamp(app, ids["admitted"], [24, 28, 44, 44, 124])
    stamp(app, ids["no-show"], [48, 54, 78, 78, 98])
    stamp(app, ids["waiting"], [72, 80, 112, 112])
    stamp(app, ids["untouched"], [-48])  # received on 28 February
    march = metrics(client, "2026-03", "2026-03")
    assert counts(march, "time-to-acknowledge") == {"initial-population": 4, "measure-population": 4}
    assert score(march, "time-to-acknowledge") == 5.0  # median of 2, 4, 6, 8
    assert score(march, "time-to-decision") == 25.0  # median of 10, 20, 30, 40
    assert score(march, "time-to-first-session") == 100.0
    assert score(march, "first-appointment-kept") == 0.5
    february = metrics(client, "2026-02-01", "2026-02-28")
    assert february["evaluatedResource"] == [{"reference": f"Task/{ids['untouched']}"}]
    assert counts(february, "time-to-acknowledge") == {"initial-population": 1, "measure-population": 0}
    assert "measureScore" not in group(february, "time-to-acknowledge")
    assert counts(metrics(client, "2026-03-02", "2026-03-02"), "time-to-decision")["initial-population"] == 1  # only 08:00 that day


def test_an_appointment_status_decides_before_the_task(referrals, app):
    client = referrals
    waiting = search(client, f"Appointment?based-on={focus(client, IDS['waiting'])}")[0]
    set_status(client, waiting, "fulfilled")
    report = metrics(client, today(-1), today(1))
    assert counts(report, "first-appointment-kept") == {"initial-population": 5, "denominator": 3, "numerator": 2}
    assert score(report, "first-appointment-kept") == 0.6667


def test_a_cancelled_first_appointment_is_not_the_intake_appointment(referrals):
    client = referrals
    [missed] = search(client, f"Appointment?based-on={focus(client, IDS['no-show'])}")
    set_status(client, missed, "cancelled")  # rescheduled: the no-show step on the Task still counts
    report = metrics(client, today(-1), today(1))
    assert counts(report, "first-appointment-kept") == {"initial-population": 5, "denominator": 2, "numerator": 1}


def test_a_program_without_referrals_reports_empty_populations(referrals, validator_url):
    report = metrics(referrals, today(-1), today(1), owner="Organization/hosp-org-lakeside")
    assert_valid(validator_url, report, "empty MeasureReport")
    assert "evaluatedResource" not in report
    for code in ("time-to-acknowledge", "time-to-decision", "time-to-first-session", "first-appointment-kept"):
        assert set(counts(report, code).values()) == {0} and "measureScore" not in group(report, code)


def test_post_parameters_gives_the_same_report(referrals):
    client = referrals
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "owner", "valueReference": {"reference": PROGRAM}},
        {"name": "period-start", "valueDate": today(-1)}, {"name": "period-end", "valueDate": today(1)}]}
    resp = post(client, METRICS, params)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    by_post, by_get = resp.get_json(), metrics(client, today(-1), today(1))
    assert by_post["group"] == by_get["group"] and by_post["evaluatedResource"] == by_get["evaluatedResource"]


def test_the_queries_do_not_grow_with_the_number_of_referrals(program, app):
    client = program
    referral(client, 1)
    few = statements(app, client)
    for n in range(2, 6):
        referral(client, n)
    assert statements(app, client) == few


def statements(app, client) -> int:
    engine = app.extensions["iop.db"].engine
    seen, here = [], threading.get_ident()

    def count(*_args) -> None:
        if threading.get_ident() == here:  # not the audit trail's background writer (service/audit.py)
            seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        metrics(client, today(-1), today(1))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


# ------------------------------------------------------------------------------- declared and defined
def test_the_operation_measure_and_code_system_are_served_and_valid(client, validator_url):
    statement = client.get("/fhir/metadata").get_json()
    [task] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Task"]
    definition = "https://iop.example.org/fhir/OperationDefinition/Task-referral-metrics"
    assert {"name": "referral-metrics", "definition": definition} in task["operation"]
    found = client.get(f"/fhir/OperationDefinition?url={definition}").get_json()["entry"][0]["resource"]
    assert found["code"] == "referral-metrics" and found["type"] is True and found["affectsState"] is False
    measure = client.get("/fhir/Measure/referral-service-levels").get_json()
    codes = client.get(f"/fhir/CodeSystem?url={FIGURE}").get_json()["entry"][0]["resource"]
    assert [g["code"]["coding"][0]["code"] for g in measure["group"]] == [c["code"] for c in codes["concept"]]
    for resource in (found, measure, codes):
        assert_valid(validator_url, resource)


def test_the_measure_cannot_be_changed_through_the_api(client):
    measure = client.get("/fhir/Measure/referral-service-levels").get_json()
    measure["status"] = "retired"
    assert_outcome(put(client, "Measure/referral-service-levels", measure), 422, "business-rule")


# ------------------------------------------------------------------------------- bad input
GOOD = {"owner": PROGRAM, "period-start": "2026-03-01", "period-end": "2026-03-31"}


@pytest.mark.parametrize("change, where", [
    ({"owner": None}, "owner"),
    ({"period-start": None}, "period-start"),
    ({"period-end": None}, "period-end"),
    ({"owner": "Patient/p1"}, "owner"),
    ({"owner": "https://other.example.org/fhir/Organization/x"}, "owner"),
    ({"period-start": "2026-13-01"}, "period-start"),
    ({"period-start": "2026-03-01T10:00:00Z"}, "period-start"),
    ({"period-end": "March"}, "period-end"),
    ({"period-end": "2026-02-28"}, "period-end"),
    ({"periodStart": "2026-03-01"}, "periodStart"),
])
def test_bad_input_is_a_400_naming_the_parameter(client, change, where):
    args = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    query = "&".join(f"{k}={v}" for k, v in args.items())
    assert_outcome(client.get(f"/fhir/{METRICS}?{query}"), 400, expression=where)


def test_a_repeated_parameter_is_a_400(client):
    query = "&".join(f"{k}={v}" for k, v in GOOD.items())
    assert_outcome(client.get(f"/fhir/{METRICS}?{query}&owner={PROGRAM}"), 400, expression="owner")


@pytest.mark.parametrize("body, where", [
    ({"resourceType": "Patient"}, "Parameters"),
    ({"resourceType": "Parameters", "parameter": [{"name": "owner", "valueString": PROGRAM},
                                                  {"name": "period-start", "valueDate": "2026-03-01"}]},
     "Parameters.parameter[period-end]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "owner", "valueString": PROGRAM},
                                                  {"name": "period-start", "valueDate": "2026-03-05"},
                                                  {"name": "period-end", "valueDate": "2026-03-04"}]},
     "Parameters.parameter[period-end]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "owner", "valueReference": PROGRAM},
                                                  {"name": "period-start", "valueDate": "2026-03-01"},
                                                  {"name": "period-end", "valueDate": "2026-03-31"}]},
     "Parameters.parameter[owner]"),
    ({"resourceType": "Parameters", "parameter": [{"name": "owner", "valueString": PROGRAM},
                                                  {"name": "owner", "valueString": PROGRAM}]},
     "Parameters.parameter[owner]"),
])
def test_bad_parameters_bodies_are_a_400(client, body, where):
    assert_outcome(post(client, METRICS, body), 400, expression=where)


def test_an_unknown_organization_is_a_404(client):
    query = "&".join(f"{k}={v}" for k, v in {**GOOD, "owner": "Organization/nope"}.items())
    assert_outcome(client.get(f"/fhir/{METRICS}?{query}"), 404, "not-found", "owner")
