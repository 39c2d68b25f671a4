"""EpisodeOfCare/$census: every active enrollment with this week's hours, flags, days since admission and next
recertification, for one program or all (issue 9 part B). Figures by hand from the example program
(examples/program-operations-1-network.json) on Sunday 2026-09-13, before any attendance is recorded."""
from __future__ import annotations

import copy

import requests
from intensity_helpers import ORG, at, attendance, get, load_network, named, parts, record

from helpers import post, put


def census(client, query: str = "") -> dict:
    resp = get(client, f"EpisodeOfCare/$census{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def rows(body: dict) -> dict[str, dict]:
    return {parts(p)["episode"]["reference"].split("/")[1]: parts(p) for p in named(body, "episode")}


def test_census_of_the_example_program(client, validator_url):
    """Eight active enrollments; with nothing attended every IOP week is flagged (the adolescent's minimum is 6 h)."""
    load_network(client)
    body = census(client, "?date=2026-09-13&organization=Organization/ops-org-lakeview")
    assert (named(body, "total")[0]["valueInteger"], named(body, "readmissions")[0]["valueInteger"]) == (8, 0)
    found = rows(body)
    assert sorted(found) == [f"ops-eoc-{n}" for n in range(1, 9)]
    assert {k: (r["daysSinceAdmission"], r["nextRecertification"], r["recertificationStatus"]) for k, r in found.items()} == {
        "ops-eoc-1": (6, "2026-11-06", "current"), "ops-eoc-2": (20, "2026-10-23", "current"),
        "ops-eoc-3": (27, "2026-10-16", "current"), "ops-eoc-4": (6, "2026-11-06", "current"),
        "ops-eoc-5": (34, "2026-10-09", "current"), "ops-eoc-6": (6, "2026-09-07", "overdue"),
        "ops-eoc-7": (6, "2026-11-06", "current"), "ops-eoc-8": (6, "2026-11-06", "current")}
    one = found["ops-eoc-8"]
    assert (one["week"], one["weekComplete"], one["hours"], one["minimumHours"], one["daysAttended"]) == ("2026-W37", True, 0.0, 6, 0)
    assert one["flag"] == ["below-minimum", "fewer-than-3-days"]
    assert (one["patient"]["reference"], one["organization"]["reference"], one["admitted"]) == ("Patient/ops-patient-8", ORG, "2026-09-07")
    issues = requests.post(f"{validator_url}/validate", json=body, timeout=30).json()["issue"]
    assert not [i for i in issues if i["severity"] in ("error", "fatal")], issues


def test_this_weeks_hours_up_to_the_census_date(client):
    """Midweek the census counts the week so far (weekComplete false); a session after the census date is not in it."""
    load_network(client)
    for day in ("2026-09-14", "2026-09-16", "2026-09-17"):
        record(client, attendance("ops-patient-1", "ops-eoc-1", at(day, "09:00"), at(day, "12:00"), "individual"))
    row = rows(census(client, "?date=2026-09-16"))["ops-eoc-1"]
    assert (row["week"], row["weekComplete"], row["hours"], row["daysAttended"], row["flag"]) == (
        "2026-W38", False, 6.0, 2, ["below-minimum", "fewer-than-3-days"])
    row = rows(census(client, "?date=2026-09-20"))["ops-eoc-1"]
    assert (row["hours"], row["daysAttended"], row.get("flag")) == (9.0, 3, None)


def test_one_program_or_all(program):
    """Without organization= the census holds every program's active enrollments; a finished one is not in it."""
    client = program
    load_network(client)
    other = copy.deepcopy(get(client, "EpisodeOfCare/ops-eoc-1").get_json())
    other.update({"id": "other-program-eoc", "managingOrganization": {"reference": "Organization/iop-org-riverside"}})
    other.pop("meta")
    assert put(client, "EpisodeOfCare/other-program-eoc", other).status_code == 201
    done = get(client, "EpisodeOfCare/ops-eoc-2").get_json()
    done.update({"status": "finished", "period": {"start": "2026-08-24", "end": "2026-09-11"}})
    assert put(client, "EpisodeOfCare/ops-eoc-2", done).status_code == 200
    assert named(census(client, "?date=2026-09-13"), "total")[0]["valueInteger"] == 8
    assert sorted(rows(census(client, "?date=2026-09-13&organization=Organization/iop-org-riverside"))) == ["other-program-eoc"]
    assert named(census(client, "?organization=Organization/nowhere"), "total")[0]["valueInteger"] == 0
    resp = post(client, "EpisodeOfCare/$census", {"resourceType": "Parameters", "parameter": [
        {"name": "organization", "valueString": "Organization/ops-org-lakeview"}, {"name": "date", "valueDate": "2026-09-13"}]})
    assert resp.status_code == 200 and named(resp.get_json(), "total")[0]["valueInteger"] == 7


def test_bad_input(client):
    for query, where in (("?date=2026-13-01", "date"), ("?organization=ops-org-lakeview", "organization"),
                         ("?program=x", "program"), ("?date=2026-09-13&date=2026-09-14", "date")):
        resp = get(client, f"EpisodeOfCare/$census{query}")
        assert resp.status_code == 400 and resp.get_json()["issue"][0]["expression"] == [where], query
    assert post(client, "EpisodeOfCare/$census", {"resourceType": "Bundle"}).status_code == 400
    assert 400 <= client.put("/fhir/EpisodeOfCare/$census", json={}).status_code < 500


def test_staff_only(auth_client, auth_app):
    """The three operations need EpisodeOfCare scopes and are the program's own: an outside organization's client
    (a referring hospital) gets 403 even with the scopes; the program's client gets the figures."""
    from auth_helpers import bearer, make_client

    staff = bearer(auth_client, auth_app, *make_client(auth_app, "staff", "system/EpisodeOfCare.rs", internal=True))
    hospital = bearer(auth_client, auth_app, *make_client(auth_app, "hospital", "system/EpisodeOfCare.rs",
                                                            organization="Organization/hosp-org-lakeside"))
    nothing = bearer(auth_client, auth_app, *make_client(auth_app, "no-scope", "system/Patient.r", internal=True))
    for path in ("EpisodeOfCare/$census", "EpisodeOfCare/$recertification-due", "EpisodeOfCare/x/$hours"):
        assert auth_client.get(f"/fhir/{path}", headers=hospital).status_code == 403, path
        assert auth_client.get(f"/fhir/{path}", headers=nothing).status_code == 403, path
        assert auth_client.get(f"/fhir/{path}", headers=staff).status_code in (200, 404), path
