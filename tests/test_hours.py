"""EpisodeOfCare/$hours: weekly hours computed from the attended Encounters on request (issue 9 part B).

The Lakeview program (examples/program-operations-1-network.json) counts weeks in America/Chicago; every figure is
worked out by hand in the test."""
from __future__ import annotations

import requests
from intensity_helpers import (
    PSYCHIATRIST,
    at,
    attendance,
    get,
    group_session,
    level_change,
    load_network,
    named,
    parts,
    record,
    set_level,
    store,
)

from helpers import post, put


def hours(client, eid: str, query: str = "") -> dict:
    resp = get(client, f"EpisodeOfCare/{eid}/$hours{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def week(body: dict, label: str) -> dict:
    return next(parts(p) for p in named(body, "week") if parts(p)["week"] == label)


def evening_week(client, monday: str, wednesday: str, thursday: str, patients: dict) -> None:
    for day in (monday, wednesday, thursday):
        record(client, group_session("ops-group-evening-a", at(day, "18:00"), at(day, "21:00"), patients))


def test_a_full_week_with_an_individual_session(client, validator_url):
    """Three 3-hour groups and a 50-minute individual session: 9.83 h on 4 days, no flag; valid R4 Parameters."""
    load_network(client)
    evening_week(client, "2026-09-07", "2026-09-09", "2026-09-10", {"ops-patient-1": ("ops-eoc-1", "attended")})
    record(client, attendance("ops-patient-1", "ops-eoc-1", at("2026-09-08", "10:00"), at("2026-09-08", "10:50"), "individual"))
    body = hours(client, "ops-eoc-1", "?week=2026-W37")
    assert named(body, "timeZone")[0]["valueCode"] == "America/Chicago"
    w = week(body, "2026-W37")
    assert (w["start"], w["end"], w["hours"], w["daysAttended"], w["minimumHours"]) == ("2026-09-07", "2026-09-13", 9.83, 4, 9)
    assert w["sessions"] == {"group": 3, "individual": 1, "family": 0, "psychiatric": 0, "other": 0}
    assert [(d["date"], d["services"], d["hours"]) for d in w["day"]] == [
        ("2026-09-07", 1, 3.0), ("2026-09-08", 1, 0.83), ("2026-09-09", 1, 3.0), ("2026-09-10", 1, 3.0)]
    assert "flag" not in w and w["levelOfCare"]["code"] == "asam-2.1"
    assert (w["daysWith3Services"], w["daysWith4OrMoreServices"]) == (0, 0)
    issues = requests.post(f"{validator_url}/validate", json=body, timeout=30).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_absences_flag_the_week_and_a_late_correction_shows_at_once(client):
    """A no-show leaves 6 h on 2 days (below 9 h, fewer than 3 days); recording the missed session afterwards
    (a correction) clears both flags on the next request: nothing is stored that could go stale."""
    load_network(client)
    p2 = {"ops-patient-2": ("ops-eoc-2", "attended")}
    record(client, group_session("ops-group-evening-a", at("2026-09-14", "18:00"), at("2026-09-14", "21:00"), p2))
    record(client, group_session("ops-group-evening-a", at("2026-09-17", "18:00"), at("2026-09-17", "21:00"), p2))
    result = record(client, group_session("ops-group-evening-a", at("2026-09-16", "18:00"), at("2026-09-16", "21:00"),
                                          {"ops-patient-2": ("ops-eoc-2", "no-show")}))
    session, missed = (e["response"]["location"].split("/")[1] for e in result["entry"])
    w = week(hours(client, "ops-eoc-2", "?week=2026-W38"), "2026-W38")
    assert (w["hours"], w["daysAttended"], w["flag"]) == (6.0, 2, ["below-minimum", "fewer-than-3-days"])
    corrected = attendance("ops-patient-2", "ops-eoc-2", at("2026-09-16", "18:30"), at("2026-09-16", "21:00"), "group", "late",
                           session=f"Encounter/{session}")
    assert put(client, f"Encounter/{missed}", {**corrected, "id": missed}).status_code == 200
    w = week(hours(client, "ops-eoc-2", "?week=2026-W38"), "2026-W38")
    assert (w["hours"], w["daysAttended"], w.get("flag")) == (8.5, 3, ["below-minimum"])


def test_above_19_hours_and_the_medicare_service_tiers(client):
    """Four 5-hour days (20 h) flag above-maximum; a day of 3 services and a day of 4 are the two per-diem tiers."""
    load_network(client)
    for day in ("2026-09-14", "2026-09-15", "2026-09-16", "2026-09-17"):
        record(client, attendance("ops-patient-1", "ops-eoc-1", at(day, "09:00"), at(day, "14:00"), "individual"))
    for clock, kind in (("15:00", "individual"), ("16:00", "psychiatric")):
        record(client, attendance("ops-patient-1", "ops-eoc-1", at("2026-09-15", clock), at("2026-09-15", clock[:2] + ":30"), kind))
    record(client, attendance("ops-patient-1", "ops-eoc-1", at("2026-09-16", "15:00"), at("2026-09-16", "15:30"), "family"))
    w = week(hours(client, "ops-eoc-1", "?week=2026-W38"), "2026-W38")
    assert (w["hours"], w["daysAttended"], w["flag"]) == (21.5, 4, ["above-maximum"])
    assert (w["daysWith3Services"], w["daysWith4OrMoreServices"]) == (1, 0)
    record(client, attendance("ops-patient-1", "ops-eoc-1", at("2026-09-15", "17:00"), at("2026-09-15", "17:30"), "family"))
    record(client, attendance("ops-patient-1", "ops-eoc-1", at("2026-09-16", "17:00"), at("2026-09-16", "17:30"), "individual"))
    w = week(hours(client, "ops-eoc-1", "?week=2026-W38"), "2026-W38")
    assert (w["hours"], w["daysWith3Services"], w["daysWith4OrMoreServices"]) == (22.5, 1, 1)
    assert [(d["date"], d["services"]) for d in w["day"]] == [
        ("2026-09-14", 1), ("2026-09-15", 4), ("2026-09-16", 3), ("2026-09-17", 1)]
    assert w["sessions"] == {"group": 0, "individual": 6, "family": 2, "psychiatric": 1, "other": 0}


def test_adolescent_minimum_by_age_on_the_weeks_monday(client):
    """Under 18 on the week's Monday the minimum is 6 h: 6 h on 2 days flags only fewer-than-3-days. A patient who
    turns 18 on the Wednesday is still 17 that week (6 h) and an adult the next (9 h)."""
    load_network(client)
    b = {"ops-patient-8": ("ops-eoc-8", "attended")}
    for day in ("2026-09-15", "2026-09-16"):
        record(client, group_session("ops-group-day-b", at(day, "09:00"), at(day, "12:00"), b))
    w = week(hours(client, "ops-eoc-8", "?week=2026-W38"), "2026-W38")
    assert (w["hours"], w["minimumHours"], w["flag"]) == (6.0, 6, ["fewer-than-3-days"])
    patient = get(client, "Patient/ops-patient-8").get_json()
    store(client, {**patient, "birthDate": "2008-09-16"})
    body = hours(client, "ops-eoc-8", "?start=2026-09-14&end=2026-09-27")
    assert [week(body, w)["minimumHours"] for w in ("2026-W38", "2026-W39")] == [6, 9]
    assert week(body, "2026-W39")["flag"] == ["below-minimum", "fewer-than-3-days"]


def test_weeks_follow_the_programs_time_zone(client):
    """A session from 23:30 Sunday to 00:30 Monday in Chicago counts in the Sunday's week; a program without a time
    zone counts in America/New_York, where it starts at 00:30 on Monday."""
    load_network(client)
    record(client, attendance("ops-patient-1", "ops-eoc-1", "2026-09-20T23:30:00-05:00", "2026-09-21T00:30:00-05:00", "individual"))
    body = hours(client, "ops-eoc-1", "?start=2026-09-14&end=2026-09-27")
    assert (week(body, "2026-W38")["hours"], week(body, "2026-W39")["hours"]) == (1.0, 0.0)
    org = get(client, "Organization/ops-org-lakeview").get_json()
    org.pop("extension")
    store(client, org)
    body = hours(client, "ops-eoc-1", "?start=2026-09-14&end=2026-09-27")
    assert named(body, "timeZone")[0]["valueCode"] == "America/New_York"
    assert (week(body, "2026-W38")["hours"], week(body, "2026-W39")["hours"]) == (0.0, 1.0)


def test_no_flags_at_an_outpatient_level(client):
    """After a step down to outpatient care (ASAM 1) the week has its figures but no intensity flags; the weeks before
    keep the IOP level and its flags."""
    load_network(client)
    episode = get(client, "EpisodeOfCare/ops-eoc-4").get_json()
    set_level(episode, "asam-1", "ASAM Level 1 Outpatient Services")
    episode["extension"] += [
        level_change("asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services", "2026-09-07", "Admission"),
        level_change("asam-1", "ASAM Level 1 Outpatient Services", "2026-09-21", "Goals met; step down")]
    store(client, episode)
    record(client, attendance("ops-patient-4", "ops-eoc-4", at("2026-09-22", "10:00"), at("2026-09-22", "10:50"), "individual"))
    body = hours(client, "ops-eoc-4", "?start=2026-09-14&end=2026-09-27")
    w38, w39 = week(body, "2026-W38"), week(body, "2026-W39")
    assert (w38["levelOfCare"]["code"], w38["flag"]) == ("asam-2.1", ["below-minimum", "fewer-than-3-days"])
    assert (w39["levelOfCare"]["code"], w39["hours"], w39.get("flag")) == ("asam-1", 0.83, None)


def test_default_period_and_post(client):
    """Without a week, from admission up to the given end; POST takes the same inputs as a Parameters body."""
    load_network(client)
    body = hours(client, "ops-eoc-3", "?end=2026-09-06")
    assert [parts(p)["week"] for p in named(body, "week")] == ["2026-W34", "2026-W35", "2026-W36"]
    resp = post(client, "EpisodeOfCare/ops-eoc-3/$hours", {"resourceType": "Parameters", "parameter": [
        {"name": "week", "valueString": "2026-W35"}]})
    assert resp.status_code == 200 and [parts(p)["week"] for p in named(resp.get_json(), "week")] == ["2026-W35"]


def test_bad_input(client):
    """Unknown episode 404; a malformed week or date, week with start, end before start, an unknown or repeated
    parameter, too long a period, or a body that is not Parameters: 400 naming the parameter."""
    load_network(client)
    assert get(client, "EpisodeOfCare/nope/$hours").status_code == 404
    for query, where in (("?week=2026-W60", "week"), ("?week=2026-47", "week"), ("?week=2026-W47&start=2026-11-16", "week"),
                         ("?start=2026-09-20&end=2026-09-10", "end"), ("?start=2026-02-30", "start"), ("?colour=red", "colour"),
                         ("?week=2026-W37&week=2026-W38", "week"), ("?start=2020-01-01&end=2026-01-01", "end")):
        resp = get(client, f"EpisodeOfCare/ops-eoc-1/$hours{query}")
        assert resp.status_code == 400, query
        assert resp.get_json()["issue"][0]["expression"] == [where], (query, resp.get_json())
    resp = post(client, "EpisodeOfCare/ops-eoc-1/$hours", {"resourceType": "Patient"})
    assert resp.status_code == 400
    resp = post(client, "EpisodeOfCare/ops-eoc-1/$hours", {"resourceType": "Parameters", "parameter": [{"name": "week"}]})
    assert resp.status_code == 400
    assert client.delete("/fhir/EpisodeOfCare/ops-eoc-1/$hours").status_code in (404, 405)
    assert PSYCHIATRIST  # the helpers' constants are the example's
