"""The program directory (issue 9): find an IOP track near a point that fits the person, with open seats.

A small network in fictional towns: Location?near=… and HealthcareService?location.near=… in distance
order, filtered by track, schedule, condition, payer and open seats; open seats computed from the rosters
(Group members linked with track-service), falling as patients join and rising as they leave; bad near
input is a 400 OperationOutcome naming the parameter.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from helpers import assert_outcome, patient, put

BASE = "http://localhost/fhir"
SD = "https://iop.example.org/fhir/StructureDefinition"
CS = "https://iop.example.org/fhir/CodeSystem"
HOME = "39.7817|-89.6501"  # Maple Falls (fictional), the searcher's point

SITES = {  # Location id: (latitude, longitude); distance from HOME
    "maple": (39.7817, -89.6501),     # 0 km
    "cedar": (39.8000, -89.6000),     # ~4.7 km
    "lakeport": (40.0500, -89.4500),  # ~34 km (21 mi)
    "far": (41.0000, -88.0000),       # ~195 km
}
TRACKS = {  # HealthcareService id: (Location, specialized track, schedule, payer, capacity, conditions)
    "maple-women": ("maple", "women", "evening", "payer-a", 2, ["depression", "ptsd"]),
    "maple-veterans": ("maple", "veterans", "day", "payer-b", 10, ["ptsd", "alcohol-drug-dependence"]),
    "cedar-women": ("cedar", "women", "day", "payer-a", 8, ["eating-disorders"]),
    "lakeport-women": ("lakeport", "women", "virtual", "payer-b", 5, ["depression"]),
    "far-women": ("far", "women", "evening", "payer-a", 5, ["depression"]),
}


# ------------------------------------------------------------------------------- the network
def store(client, body: dict) -> dict:
    resp = put(client, f"{body['resourceType']}/{body['id']}", body)
    assert resp.status_code in (200, 201), resp.get_data(as_text=True)
    return resp.get_json()


def coded(extension: str, system: str, code: str) -> dict:
    return {"url": f"{SD}/{extension}", "valueCodeableConcept": {"coding": [{"system": f"{CS}/{system}", "code": code}]}}


def location(lid: str, lat: float, lng: float) -> dict:
    return {"resourceType": "Location", "id": lid, "status": "active", "name": f"{lid.title()} IOP site",
            "address": {"line": ["1 Example St"], "city": f"{lid.title()} (fictional)", "country": "US"},
            "position": {"latitude": lat, "longitude": lng}, "managingOrganization": {"reference": f"Organization/{lid}"}}


def service(sid: str, loc: str, track: str, schedule: str, payer: str, capacity: int, conditions: list[str]) -> dict:
    extension = [coded("specialized-track", "iop-specialized-track", track),
                 coded("schedule-track", "iop-schedule-track", schedule),
                 *[coded("condition-served", "iop-condition-served", c) for c in conditions],
                 {"url": f"{SD}/accepted-payer", "valueReference": {"reference": f"Organization/{payer}"}},
                 {"url": f"{SD}/seat-capacity", "valueUnsignedInt": capacity}]
    return {"resourceType": "HealthcareService", "id": sid, "extension": extension, "active": True,
            "providedBy": {"reference": f"Organization/{loc}"}, "location": [{"reference": f"Location/{loc}"}],
            "name": f"{sid} track", "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}]}


def roster(gid: str, track: str, members: list[dict], active: bool = True) -> dict:
    return {"resourceType": "Group", "id": gid, "active": active, "type": "person", "actual": True, "name": f"Roster {gid}",
            "extension": [{"url": f"{SD}/track-service", "valueReference": {"reference": f"HealthcareService/{track}"}}],
            "managingEntity": {"reference": "Organization/maple"}, "member": members}


def member(pid: str, start: str | None = None, end: str | None = None, inactive: bool = False) -> dict:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    body = {"entity": {"reference": f"Patient/{pid}"}, **({"period": period} if period else {})}
    return {**body, "inactive": True} if inactive else body


def day(offset: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


@pytest.fixture
def network(client):
    for oid in [*SITES, "payer-a", "payer-b"]:
        store(client, {"resourceType": "Organization", "id": oid, "active": True, "name": f"{oid} (fictional)"})
    for lid, (lat, lng) in SITES.items():
        store(client, location(lid, lat, lng))
    store(client, {"resourceType": "Location", "id": "nowhere", "status": "active", "name": "No position"})
    for sid, spec in TRACKS.items():
        store(client, service(sid, *spec))
    for n in range(1, 5):
        store(client, {**patient(given=f"P{n}"), "id": f"p{n}"})
    return client


def ids(client, query: str, kind: str = "match") -> list[str]:
    resp = client.get(f"/fhir/{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [e["resource"]["id"] for e in resp.get_json().get("entry", []) if e["search"]["mode"] == kind]


def seats(client, sid: str) -> int | None:
    """The open seats of a track as a client finds them: the n for which open-seats=n matches."""
    for n in range(0, 20):
        if sid in ids(client, f"HealthcareService?open-seats={n}&_id={sid}"):
            return n
    return None


# ------------------------------------------------------------------------------- near
def test_near_returns_the_sites_within_the_distance_nearest_first(network):
    assert ids(network, f"Location?near={HOME}|50|km") == ["maple", "cedar", "lakeport"]
    assert ids(network, f"Location?near={HOME}|10|km") == ["maple", "cedar"]
    assert ids(network, "Location?near=40.05|-89.45|300|km") == ["lakeport", "cedar", "maple", "far"]
    assert ids(network, f"Location?near={HOME}|1|km") == ["maple"]
    assert ids(network, "Location?near=-33.9|151.2|100|km") == []


def test_near_takes_miles_and_defaults_to_km_and_50_km(network):
    assert ids(network, f"Location?near={HOME}|15|[mi_us]") == ["maple", "cedar"]
    assert ids(network, f"Location?near={HOME}|30|mi") == ["maple", "cedar", "lakeport"]
    assert ids(network, f"Location?near={HOME}|30|[mi_i]") == ["maple", "cedar", "lakeport"]
    assert ids(network, f"Location?near={HOME}|20") == ["maple", "cedar"]
    assert ids(network, f"Location?near={HOME}") == ["maple", "cedar", "lakeport"]


def test_near_pages_in_distance_order_with_total(network):
    resp = network.get(f"/fhir/Location?near={HOME}|50|km&_count=1").get_json()
    assert resp["total"] == 3
    seen = [resp["entry"][0]["resource"]["id"]]
    while (nxt := next((link["url"] for link in resp["link"] if link["relation"] == "next"), None)):
        resp = network.get(nxt.replace(BASE, "/fhir")).get_json()
        seen += [e["resource"]["id"] for e in resp.get("entry", [])]
    assert seen == ["maple", "cedar", "lakeport"]
    prev = next(link["url"] for link in resp["link"] if link["relation"] == "previous")
    assert [e["resource"]["id"] for e in network.get(prev.replace(BASE, "/fhir")).get_json()["entry"]] == ["cedar"]
    assert network.get(f"/fhir/Location?near={HOME}|50|km&_summary=count").get_json()["total"] == 3


def test_near_with_revinclude_brings_the_tracks_of_each_site(network):
    query = f"Location?near={HOME}|10|km&_revinclude=HealthcareService:location"
    assert ids(network, query) == ["maple", "cedar"]
    assert sorted(ids(network, query, "include")) == ["cedar-women", "maple-veterans", "maple-women"]


def test_near_combines_with_other_location_parameters(network):
    store(network, {**location("cedar", *SITES["cedar"]), "status": "inactive"})
    assert ids(network, f"Location?near={HOME}|50|km&status=active") == ["maple", "lakeport"]
    network.delete("/fhir/Location/maple")
    assert ids(network, f"Location?near={HOME}|50|km") == ["cedar", "lakeport"]


def test_a_moved_site_is_found_at_its_new_position(network):
    store(network, location("far", *SITES["cedar"]))
    assert ids(network, f"Location?near={HOME}|10|km") == ["maple", "cedar", "far"]


# ------------------------------------------------------------------------------- tracks near a point
def test_tracks_near_a_point_filtered_by_track_schedule_condition_payer_and_language(network):
    near = f"HealthcareService?location.near={HOME}|50|km"
    assert ids(network, f"{near}&specialized-track=women") == ["maple-women", "cedar-women", "lakeport-women"]
    assert ids(network, f"{near}&specialized-track={CS}/iop-specialized-track|veterans") == ["maple-veterans"]
    assert ids(network, f"{near}&specialized-track=women&accepted-payer=Organization/payer-a") == ["maple-women", "cedar-women"]
    assert ids(network, f"{near}&schedule-track=day") == ["maple-veterans", "cedar-women"]
    assert ids(network, f"{near}&condition-served=depression") == ["maple-women", "lakeport-women"]
    assert ids(network, f"{near}&language=urn:ietf:bcp:47|en&specialized-track=women&schedule-track=virtual") == ["lakeport-women"]
    assert ids(network, "HealthcareService?specialized-track=women&accepted-payer=Organization/payer-a&_sort=_id") == \
        ["cedar-women", "far-women", "maple-women"]


def test_open_seats_filter_near_a_point(network):
    store(network, roster("maple-women-eve", "maple-women", [member("p1", day(-10)), member("p2", day(-3))]))
    near = f"HealthcareService?location.near={HOME}|50|km&specialized-track=women"
    assert ids(network, f"{near}&open-seats=ge1") == ["cedar-women", "lakeport-women"]
    assert ids(network, f"{near}&open-seats=0") == ["maple-women"]
    assert ids(network, f"{near}&open-seats=gt6") == ["cedar-women"]


# ------------------------------------------------------------------------------- open seats from the rosters
def test_seats_fall_as_patients_join_and_rise_as_they_leave_or_are_discharged(network):
    assert seats(network, "maple-women") == 2
    store(network, roster("g1", "maple-women", [member("p1", day(-10))]))
    assert seats(network, "maple-women") == 1
    store(network, roster("g1", "maple-women", [member("p1", day(-10)), member("p2", day(0))]))
    assert seats(network, "maple-women") == 0
    assert "maple-women" not in ids(network, "HealthcareService?open-seats=ge1")
    store(network, roster("g1", "maple-women", [member("p1", day(-10), day(-1)), member("p2", day(0))]))  # left
    assert seats(network, "maple-women") == 1
    store(network, roster("g1", "maple-women", [member("p1", day(-10), day(-1)), member("p2", day(0), inactive=True)]))
    assert seats(network, "maple-women") == 2  # discharged: marked inactive on the roster
    assert seats(network, "maple-veterans") == 10


def test_seats_count_only_current_members_of_active_rosters_of_the_track(network):
    store(network, roster("g1", "maple-women", [member("p1", day(7))]))  # joins next week
    store(network, roster("g2", "maple-women", [member("p2")], active=False))  # a roster no longer meeting
    store(network, roster("g3", "cedar-women", [member("p3"), member("p4", day(-30))]))
    assert seats(network, "maple-women") == 2
    assert seats(network, "cedar-women") == 6
    store(network, roster("g2", "maple-women", [member("p2")]))
    assert seats(network, "maple-women") == 1
    assert network.delete("/fhir/Group/g2").status_code in (200, 204)
    assert seats(network, "maple-women") == 2


def test_a_track_without_capacity_has_no_open_seats_value(network):
    body = service("no-cap", "maple", "men", "day", "payer-a", 0, [])
    body["extension"] = [e for e in body["extension"] if not e["url"].endswith("/seat-capacity")]
    store(network, body)
    assert "no-cap" not in ids(network, "HealthcareService?open-seats=ge0")
    assert ids(network, "HealthcareService?open-seats:missing=true") == ["no-cap"]


def test_open_seats_show_no_patient_data(network):
    store(network, roster("g1", "maple-women", [member("p1", day(-10))]))
    text = network.get("/fhir/HealthcareService?open-seats=1&_revinclude=Group:track-service").get_data(as_text=True)
    assert '"maple-women"' in text
    found = network.get("/fhir/HealthcareService?open-seats=1").get_data(as_text=True)
    assert "Patient/" not in found and "p1" not in found


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("value", [
    "39.78", "39.78|", "|-89.65|10|km", "abc|-89.65|10|km", "39.78|-89.65|ten|km", "39.78|-89.65|10|furlongs",
    "91|-89.65|10|km", "39.78|-181|10|km", "39.78|-89.65|-5|km", "39.78|-89.65|10|km|x", "nan|0|1|km",
    "39.78|inf|1|km", "39.78|-89.65|10|km,40|-89|10|km",
])
def test_bad_near_input_is_a_400_naming_the_parameter(network, value):
    assert_outcome(network.get(f"/fhir/Location?near={value}"), 400, expression="near")
    assert_outcome(network.get(f"/fhir/HealthcareService?location.near={value}"), 400, expression="location.near")


@pytest.mark.parametrize("query, where", [
    (f"Location?near={HOME}|10|km&_sort=name", "_sort"),
    ("Location?near:missing=true", "near:missing"),
    (f"Location?near={HOME}&near={HOME}", "near"),
    (f"HealthcareService?location.partof.near={HOME}", "location.partof.near"),
    ("HealthcareService?open-seats=many", "open-seats"),
    ("HealthcareService?_sort=open-seats", "_sort"),
])
def test_bad_directory_searches_are_400s(network, query, where):
    assert_outcome(network.get(f"/fhir/{query}"), 400, expression=where)


def test_the_capability_statement_lists_the_directory_parameters(client):
    rest = client.get("/fhir/metadata").get_json()["rest"][0]
    params = {r["type"]: {p["name"]: p for p in r.get("searchParam", [])} for r in rest["resource"]}
    assert params["Location"]["near"]["type"] == "special"
    for code in ("specialized-track", "schedule-track", "condition-served", "accepted-payer", "open-seats", "modality"):
        assert params["HealthcareService"][code]["definition"].startswith("https://iop.example.org/fhir/SearchParameter/")
    assert params["HealthcareService"]["open-seats"]["type"] == "number"


# ------------------------------------------------------------------------------- the example network
def test_the_example_network_is_valid_with_our_guide_and_searchable(client, ig_validator_url):
    import json

    import requests

    from helpers import example, post

    network = example("directory-network.json")
    for name in ("Organization-iop-org-riverside.json", "Location-iop-loc-riverside-main.json",
                 "HealthcareService-iop-hs-adult-evening.json", "Group-iop-group-evening-a.json"):
        body = example(name)
        assert put(client, f"{body['resourceType']}/{body['id']}", body).status_code in (200, 201), name
        network["entry"].append({"resource": body})
    for entry in network["entry"]:
        issues = requests.post(f"{ig_validator_url}/validate", data=json.dumps(entry["resource"]), timeout=30).json()["issue"]
        assert not [i for i in issues if i["severity"] in ("error", "fatal")], (entry["resource"]["id"], issues)
    assert post(client, "", example("directory-network.json")).status_code == 200
    springfield = "39.7817|-89.6501"
    assert ids(client, f"Location?near={springfield}|100|km") == ["iop-loc-riverside-main", "dir-loc-maple-falls",
                                                                  "dir-loc-cedar-junction"]
    assert ids(client, f"HealthcareService?location.near={springfield}|20|mi&open-seats=ge1&accepted-payer=Organization/"
                       "payer-org-examplecare") == ["iop-hs-adult-evening", "dir-hs-maple-women-day", "dir-hs-maple-general-virtual"]
    assert ids(client, "HealthcareService?open-seats=1&specialized-track=substance-use") == ["dir-hs-cedar-sud-evening"]
    assert ids(client, "HealthcareService?open-seats=9&_id=iop-hs-adult-evening") == ["iop-hs-adult-evening"]
    assert ids(client, "Organization?accreditation=carf") == ["dir-org-cedar-junction"]
    assert ids(client, "HealthcareService?modality=http://snomed.info/sct|449030000") == ["dir-hs-cedar-veterans-day"]
