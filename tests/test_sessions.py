"""Group/[id]/$schedule-sessions (issue 9): one Appointment per session of the group's recurring schedule.

The evening group meets Mon/Wed/Thu 18:00-21:00 in America/Chicago; sessions are made for a number of weeks,
with the roster of each day and the facilitator, in the program's time zone across the end of daylight saving
time; scheduling again makes no second Appointment; bad input is a 4xx OperationOutcome and nothing is stored.
"""
from __future__ import annotations

import json

import pytest
import requests
from sessions_helpers import (
    COUNSELOR,
    GROUP,
    SID,
    THERAPIST,
    enroll,
    group,
    member,
    resources,
    schedule,
    schedule_ext,
    search,
    store,
)

from helpers import assert_outcome, count_rows


@pytest.fixture
def evening(program, client):
    """Riverside's evening group: p1 and p2 from October, p3 joins on 9 November, p4 left on 3 November."""
    for pid in ("p1", "p2", "p3", "p4"):
        enroll(client, pid)
    store(client, group(members=[member("p1"), member("p2"), member("p3", start="2026-11-09"),
                                 member("p4", end="2026-11-03")]))
    return client


def actors(appt: dict, prefix: str = "Patient/") -> list[str]:
    return [p["actor"]["reference"] for p in appt["participant"] if p["actor"]["reference"].startswith(prefix)]


def test_sessions_follow_the_weekly_schedule_in_the_program_time_zone(evening):
    """Two weeks from Monday 26 October: six sessions, 18:00 local before and after daylight saving time ends."""
    resp = schedule(evening, start="2026-10-26", weeks=2)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["resourceType"] == "Bundle" and body["type"] == "collection"
    appts = resources(body)
    assert [(a["start"], a["end"]) for a in appts] == [
        ("2026-10-26T18:00:00-05:00", "2026-10-26T21:00:00-05:00"),
        ("2026-10-28T18:00:00-05:00", "2026-10-28T21:00:00-05:00"),
        ("2026-10-29T18:00:00-05:00", "2026-10-29T21:00:00-05:00"),
        ("2026-11-02T18:00:00-06:00", "2026-11-02T21:00:00-06:00"),
        ("2026-11-04T18:00:00-06:00", "2026-11-04T21:00:00-06:00"),
        ("2026-11-05T18:00:00-06:00", "2026-11-05T21:00:00-06:00"),
    ]
    first = appts[0]
    assert first["status"] == "booked" and first["minutesDuration"] == 180
    assert first["identifier"] == [{"system": f"{SID}/appointment", "value": f"{GROUP}-20261026-1800"}]
    assert first["supportingInformation"][0]["reference"] == f"Group/{GROUP}"
    assert first["serviceType"][0]["coding"][0]["code"] == "76168009"
    assert first["reasonCode"][0]["coding"][0]["code"] == "720177001"
    facilitator = [p for p in first["participant"] if p.get("type")]
    assert facilitator[0]["actor"]["reference"] == THERAPIST
    assert facilitator[0]["type"][0]["coding"][0]["code"] == "PPRF"
    assert actors(first, "Location/") == ["Location/iop-loc-riverside-main"]


def test_each_session_lists_the_roster_of_its_day(evening):
    """p4 left on 3 November, p3 joined on 9 November: each Appointment lists who is on the roster that day."""
    appts = resources(schedule(evening, start="2026-11-02", weeks=2).get_json())
    by_day = {a["start"][:10]: actors(a) for a in appts}
    assert by_day["2026-11-02"] == ["Patient/p1", "Patient/p2", "Patient/p4"]
    assert by_day["2026-11-04"] == ["Patient/p1", "Patient/p2"]
    assert by_day["2026-11-09"] == ["Patient/p1", "Patient/p2", "Patient/p3"]


def test_scheduling_again_makes_no_duplicates(evening, app):
    """The identifier per group and session finds the Appointments already made; an overlapping range adds only the new."""
    first = resources(schedule(evening, start="2026-11-02", weeks=1).get_json())
    rows = count_rows(app)
    again = resources(schedule(evening, start="2026-11-02", weeks=1).get_json())
    assert [a["id"] for a in again] == [a["id"] for a in first]
    assert [a["meta"]["versionId"] for a in again] == ["1", "1", "1"]
    assert count_rows(app) == rows
    longer = resources(schedule(evening, start="2026-11-02", weeks=2).get_json())
    assert [a["id"] for a in longer[:3]] == [a["id"] for a in first] and len(longer) == 6
    assert len(search(evening, f"Appointment?supporting-info=Group/{GROUP}&_count=100")) == 6


def test_the_facilitator_parameter_overrides_the_schedule(evening):
    appts = resources(schedule(evening, start="2026-11-09", weeks=1, facilitator=COUNSELOR).get_json())
    assert all([p["actor"]["reference"] for p in a["participant"] if p.get("type")] == [COUNSELOR] for a in appts)


def test_two_times_a_week_make_two_kinds_of_sessions(evening):
    """A group with a Saturday morning session as well: one schedule extension per time."""
    store(evening, group(members=[member("p1")], schedules=[
        schedule_ext(), schedule_ext(days=("sat",), at="09:30:00", hours=1.5)]))
    appts = resources(schedule(evening, start="2026-11-09", weeks=1).get_json())
    assert [a["start"] for a in appts][-1] == "2026-11-14T09:30:00-06:00"
    assert appts[-1]["minutesDuration"] == 90 and len(appts) == 4


def test_generated_appointments_are_valid_with_our_guide(evening, ig_validator_url):
    """What the operation makes passes Medplum's validator with our implementation guide, and the Group too."""
    appts = resources(schedule(evening, start="2026-11-02", weeks=1).get_json())
    stored_group = evening.get(f"/fhir/Group/{GROUP}").get_json()
    for resource in appts[:1] + [stored_group]:
        issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(resource), timeout=30).json()["issue"]
        assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_the_capability_statement_lists_the_operations(client):
    meta = client.get("/fhir/metadata").get_json()
    ops = {r["type"]: {o["name"]: o["definition"] for o in r.get("operation", [])} for r in meta["rest"][0]["resource"]}
    assert ops["Group"]["schedule-sessions"].endswith("/OperationDefinition/Group-schedule-sessions")
    assert ops["Appointment"]["record-attendance"].endswith("/OperationDefinition/Appointment-record-attendance")
    for od in ("Group-schedule-sessions", "Appointment-record-attendance"):
        assert client.get(f"/fhir/OperationDefinition/{od}").status_code == 200


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("params, where", [
    ([{"name": "weeks", "valueInteger": 2}], "Parameters.parameter[start]"),
    ([{"name": "start", "valueDate": "2026-11-31"}, {"name": "weeks", "valueInteger": 2}], "Parameters.parameter[start]"),
    ([{"name": "start", "valueDate": "2026-11-02"}], "Parameters.parameter[weeks]"),
    ([{"name": "start", "valueDate": "2026-11-02"}, {"name": "weeks", "valueInteger": 0}], "Parameters.parameter[weeks]"),
    ([{"name": "start", "valueDate": "2026-11-02"}, {"name": "weeks", "valueInteger": 27}], "Parameters.parameter[weeks]"),
    ([{"name": "start", "valueDate": "2026-11-02"}, {"name": "weeks", "valueString": "2"}], "Parameters.parameter[weeks]"),
    ([{"name": "start", "valueDate": "2026-11-02"}, {"name": "weeks", "valueInteger": 1},
      {"name": "facilitator", "valueReference": {"reference": "Patient/p1"}}], "Parameters.parameter[facilitator]"),
    ([{"name": "start", "valueDate": "2026-11-02"}, {"name": "start", "valueDate": "2026-11-09"}], "Parameters.parameter[1]"),
    ([{"name": "begin", "valueDate": "2026-11-02"}], "Parameters.parameter[0]"),
])
def test_bad_parameters_are_400s_naming_the_parameter(evening, app, params, where):
    from helpers import post

    rows = count_rows(app)
    resp = post(evening, f"Group/{GROUP}/$schedule-sessions", {"resourceType": "Parameters", "parameter": params})
    assert_outcome(resp, 400, expression=where)
    assert count_rows(app) == rows


def test_a_group_without_schedule_or_facilitator_or_zone_is_a_422(evening, app):
    rows = count_rows(app)
    store(evening, group(gid="no-schedule", members=[member("p1")], schedules=[]))
    assert_outcome(schedule(evening, gid="no-schedule"), 422, expression="Group.extension")
    store(evening, group(gid="no-facilitator", members=[member("p1")], schedules=[schedule_ext(facilitator=None)]))
    assert_outcome(schedule(evening, gid="no-facilitator"), 422, expression="Parameters.parameter[facilitator]")
    store(evening, group(gid="bad-zone", members=[member("p1")], schedules=[schedule_ext(zone="Mars/Olympus")]))
    assert_outcome(schedule(evening, gid="bad-zone"), 422, expression="Group.extension[3].extension[timeZone]")
    no_days = schedule_ext()
    del no_days["extension"][0]["valueTiming"]["repeat"]["dayOfWeek"]
    store(evening, group(gid="no-days", members=[member("p1")], schedules=[no_days]))
    assert_outcome(schedule(evening, gid="no-days"), 422, expression="Group.extension[3].extension[timing]")
    assert count_rows(app) == rows + 4  # the four Groups, no Appointment


def test_an_unknown_group_or_facilitator(evening):
    assert_outcome(schedule(evening, gid="nope"), 404)
    assert_outcome(schedule(evening, facilitator="Practitioner/nobody"), 422,
                   expression="Parameters.parameter[facilitator].valueReference")


def test_schedule_sessions_takes_post_only(evening):
    assert_outcome(evening.get(f"/fhir/Group/{GROUP}/$schedule-sessions"), 405)
