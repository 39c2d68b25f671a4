"""Discharge frees the seat (issue 9): an enrollment that finishes ends the patient's roster membership in the same
transaction, so the track's open seats (HealthcareService?open-seats=) rise, as a client sees them through HTTP."""
from __future__ import annotations

from datetime import date

import pytest
from sessions_helpers import GROUP, ORG, enroll, episode, group, member, store

TRACK = "iop-hs-adult-evening"  # seat capacity 12; the evening group's track-service


def seats(client) -> int | None:
    """The open seats of the track as a client finds them: the n for which open-seats=n matches."""
    for n in range(0, 13):
        resp = client.get(f"/fhir/HealthcareService?open-seats={n}&_id={TRACK}")
        assert resp.status_code == 200, resp.get_data(as_text=True)
        if resp.get_json().get("entry"):
            return n
    return None


@pytest.fixture
def roster(program, client):
    for pid in ("p1", "p2", "p3"):
        enroll(client, pid)
    store(client, group(members=[member(p) for p in ("p1", "p2", "p3")]))
    return client


def test_seats_fall_as_patients_join_and_rise_when_they_are_discharged(roster):
    assert seats(roster) == 9
    enroll(roster, "p4")
    store(roster, group(members=[member(p) for p in ("p1", "p2", "p3", "p4")]))
    assert seats(roster) == 8
    today = date.today().isoformat()
    store(roster, episode("eoc-p2", "p2", status="finished", end=today))
    assert seats(roster) == 9
    stored = roster.get(f"/fhir/Group/{GROUP}").get_json()
    p2 = [m for m in stored["member"] if m["entity"]["reference"] == "Patient/p2"][0]
    assert p2["inactive"] is True and p2["period"] == {"start": "2026-10-01", "end": today}
    assert [m.get("inactive") for m in stored["member"] if m["entity"]["reference"] != "Patient/p2"] == [None] * 3
    discharged = roster.get("/fhir/EpisodeOfCare/eoc-p2").get_json()
    assert stored["meta"]["lastUpdated"] == discharged["meta"]["lastUpdated"]  # one transaction


def test_the_discharge_day_ends_the_membership_and_a_resend_changes_nothing(roster):
    store(roster, episode("eoc-p1", "p1", status="finished", end="2026-11-20"))
    first = roster.get(f"/fhir/Group/{GROUP}").get_json()
    assert first["member"][0]["period"]["end"] == "2026-11-20"
    body = episode("eoc-p1", "p1", status="finished", end="2026-11-20")
    body["careManager"]["display"] = "changed"  # another version of the finished episode
    store(roster, body)
    assert roster.get(f"/fhir/Group/{GROUP}").get_json()["meta"]["versionId"] == first["meta"]["versionId"]


def test_another_programs_discharge_leaves_our_roster_alone(roster):
    store(roster, episode("eoc-p3-elsewhere", "p3", status="active", org="Organization/aftercare-org-harbor"))
    store(roster, episode("eoc-p3-elsewhere", "p3", status="finished", org="Organization/aftercare-org-harbor",
                          end="2026-11-20"))
    assert seats(roster) == 9
    assert ORG in roster.get(f"/fhir/Group/{GROUP}").get_json()["managingEntity"]["reference"]
