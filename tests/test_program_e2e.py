"""Issue 9 part B, end to end through HTTP only, from examples/program-operations-1-network.json: two groups whose
recurring schedules are turned into six weeks of Appointments by Group/$schedule-sessions, attendance recorded by
Appointment/$record-attendance (individual and family sessions get their own Appointment), meeting three times a week (ISO weeks 2026-W37 to W42, America/Chicago), eight patients with realistic
absences, individual and family sessions; one patient steps down to outpatient care, one is discharged and comes
back (a readmission). Weekly hours, flags, the census and the recertification dates are compared with figures
worked out by hand (literal numbers below).

Evening group A (Mon/Wed/Thu 18:00-21:00): patients 1-4. Day group B (Tue/Wed/Fri 09:00-12:00): patients 5-8
(patient 8 is 16: minimum 6 h). Patient 1 also has individual psychotherapy every Tuesday 10:00-10:50; patient 2 a
family session with the partner on Friday 2026-09-25 16:00-17:00; patient 5 an individual session and a psychiatric
follow-up after group on Wednesday 2026-09-30 (3 services that day). Absences: patient 2 no-show Wed 2026-09-16,
patient 3 late (18:45) Mon 2026-09-28, patient 5 excused Tue 2026-09-22, patient 6 left early (11:00) Fri
2026-10-16, patient 8 excused Fri 2026-09-18. Patient 4 steps down to ASAM 1 from Mon 2026-10-05 and then has only
an individual session on Tuesdays. Patient 7 is discharged on 2026-09-27 and readmitted on 2026-10-12.
"""
from __future__ import annotations

from datetime import date, timedelta

from intensity_helpers import (
    KIND,
    PSYCHIATRIST,
    SD,
    THERAPIST,
    C,
    at,
    get,
    level_change,
    load_network,
    named,
    parts,
    set_level,
    store,
)

from helpers import example, post

MONDAYS = [date(2026, 9, 7) + timedelta(weeks=w) for w in range(6)]
WEEKS = [f"2026-W{37 + w}" for w in range(6)]
GROUP_A = ("ops-group-evening-a", (0, 2, 3), "18:00", "21:00")
GROUP_B = ("ops-group-day-b", (1, 2, 4), "09:00", "12:00")
# (patient number, week index, weekday) -> state [, start, end]
EXCEPTIONS = {(2, 1, 2): ("no-show",), (3, 3, 0): ("late", "18:45", "21:00"), (5, 2, 1): ("excused",),
              (6, 5, 4): ("left-early", "09:00", "11:00"), (8, 1, 4): ("excused",)}


def day(w: int, weekday: int) -> str:
    return (MONDAYS[w] + timedelta(days=weekday)).isoformat()


def roster(group: tuple, w: int) -> list[int]:
    """The patients (numbers) in this group in week w."""
    if group is GROUP_A:
        return [n for n in (1, 2, 3, 4) if not (n == 4 and w >= 4)]
    return [5, 6, 8] + ([7] if w <= 2 or w == 5 else [])


def schedule(client) -> dict[tuple[str, str], str]:
    """Six weeks of both groups' sessions from their recurring schedules: (group, day) -> Appointment id."""
    out = {}
    for gid in (GROUP_A[0], GROUP_B[0]):
        resp = post(client, f"Group/{gid}/$schedule-sessions", {"resourceType": "Parameters", "parameter": [
            {"name": "start", "valueDate": "2026-09-07"}, {"name": "weeks", "valueInteger": 6}]})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        appointments = [e["resource"] for e in resp.get_json()["entry"]]
        assert len(appointments) == 18
        out.update(((gid, a["start"][:10]), a["id"]) for a in appointments)
    return out


def record_attendance(client, appt_id: str, marks: dict[str, tuple]) -> None:
    """Appointment/$record-attendance: patient -> (state[, start, end])."""
    params = []
    for pid, (state, *times) in marks.items():
        part = [{"name": "patient", "valueReference": {"reference": f"Patient/{pid}"}}, {"name": "state", "valueCode": state}]
        if times:
            part += [{"name": "start", "valueDateTime": times[0]}, {"name": "end", "valueDateTime": times[1]}]
        params.append({"name": "attendance", "part": part})
    resp = post(client, f"Appointment/{appt_id}/$record-attendance", {"resourceType": "Parameters", "parameter": params})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def one_to_one(client, pid: str, start: str, end: str, kind: str, family: str | None = None) -> None:
    """An individual, family or psychiatric session: its Appointment, then its attendance."""
    code, display = KIND[kind]
    actors = [{"actor": {"reference": f"Patient/{pid}"}, "status": "accepted"},
              {"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PPRF"}]}],
               "actor": {"reference": PSYCHIATRIST if kind == "psychiatric" else THERAPIST}, "status": "accepted"},
              {"actor": {"reference": "HealthcareService/ops-hs-lakeview-adult"}, "status": "accepted"}]
    if family:
        actors.append({"actor": {"reference": family}, "status": "accepted"})
    appt = {"resourceType": "Appointment", "meta": {"profile": [f"{SD}/iop-session-appointment"]}, "status": "booked",
            "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}],
            "start": start, "end": end, "participant": actors}
    resp = post(client, "Appointment", appt)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    record_attendance(client, resp.get_json()["id"], {pid: ("attended",)})


def record_week(client, w: int, sessions: dict) -> None:
    for group in (GROUP_A, GROUP_B):
        gid, weekdays, _, _ = group
        for weekday in weekdays:
            when = day(w, weekday)
            marks = {}
            for n in roster(group, w):
                state, *times = EXCEPTIONS.get((n, w, weekday), ("attended",))
                marks[f"ops-patient-{n}"] = (state, *(at(when, t) for t in times))
            record_attendance(client, sessions[(gid, when)], marks)
    one_to_one(client, "ops-patient-1", at(day(w, 1), "10:00"), at(day(w, 1), "10:50"), "individual")
    if w >= 4:
        one_to_one(client, "ops-patient-4", at(day(w, 1), "10:00"), at(day(w, 1), "10:50"), "individual")
    if w == 2:
        one_to_one(client, "ops-patient-2", at(day(w, 4), "16:00"), at(day(w, 4), "17:00"), "family",
                   family="RelatedPerson/ops-relperson-2-partner")
    if w == 3:
        for start, end, kind in (("13:00", "13:50", "individual"), ("14:00", "14:30", "psychiatric")):
            one_to_one(client, "ops-patient-5", at(day(w, 2), start), at(day(w, 2), end), kind)


def step_down_patient_4(client) -> None:
    episode = get(client, "EpisodeOfCare/ops-eoc-4").get_json()
    set_level(episode, "asam-1", "ASAM Level 1 Outpatient Services")
    episode["extension"] += [
        level_change("asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services", "2026-09-07", "Admission"),
        level_change("asam-1", "ASAM Level 1 Outpatient Services", "2026-10-05", "Treatment goals met; step down to outpatient")]
    episode["extension"] = [e for e in episode["extension"] if not e["url"].endswith("/target-hours-per-week")] + [
        {"url": f"{SD}/target-hours-per-week", "valueQuantity": {"value": 1, "unit": "h", "system": "http://unitsofmeasure.org", "code": "h"}}]
    store(client, episode)
    leave_or_join(client, GROUP_A[0], "ops-patient-4", end="2026-10-04")


def leave_or_join(client, gid: str, pid: str, end: str | None = None, start: str | None = None) -> None:
    group = get(client, f"Group/{gid}").get_json()
    if end:
        for m in group["member"]:
            if m["entity"]["reference"] == f"Patient/{pid}":
                m["period"]["end"] = end
    if start:
        group["member"].append({"entity": {"reference": f"Patient/{pid}"}, "period": {"start": start}})
    store(client, group)


def discharge_patient_7(client) -> None:
    episode = get(client, "EpisodeOfCare/ops-eoc-7").get_json()
    episode.update({"status": "finished", "period": {"start": "2026-09-07", "end": "2026-09-27"}})
    episode["statusHistory"] = [{"status": "active", "period": {"start": "2026-09-07", "end": "2026-09-27"}}]
    store(client, episode)


def readmit_patient_7(client) -> None:
    """The fast path: a new enrollment naming the finished one, and its certification, in one transaction."""
    old = get(client, "EpisodeOfCare/ops-eoc-7").get_json()
    new = {k: v for k, v in old.items() if k not in ("meta", "statusHistory")}
    new.update({"id": "ops-eoc-7-r", "status": "active", "period": {"start": "2026-10-12"},
                "identifier": [{"system": f"{C}/sid/episode", "value": "EOC-2026-0307-R"}]})
    new["extension"] = new["extension"] + [
        level_change("asam-2.1", "ASAM Level 2.1 Intensive Outpatient Services", "2026-10-12", "Symptoms returned after discharge"),
        {"url": f"{SD}/readmission-of", "valueReference": {"reference": "EpisodeOfCare/ops-eoc-7"}}]
    cert = next(e["resource"] for e in example("program-operations-1-network.json")["entry"] if e["resource"]["id"] == "ops-cert-7-20260907")
    cert = {**cert, "id": "ops-cert-7r-20261012", "date": "2026-10-12T10:00:00-05:00",
            "context": {"encounter": [{"reference": "EpisodeOfCare/ops-eoc-7-r"}], "period": {"start": "2026-10-12", "end": "2026-12-11"}}}
    signature = {"resourceType": "Provenance", "target": [{"reference": "DocumentReference/ops-cert-7r-20261012"}],
                 "recorded": "2026-10-12T10:00:00-05:00", "agent": [{"who": {"reference": PSYCHIATRIST}}],
                 "signature": [{"type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
                                "when": "2026-10-12T10:00:00-05:00", "who": {"reference": PSYCHIATRIST},
                                "sigFormat": "text/plain", "data": "U2lnbmVk"}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": new, "request": {"method": "PUT", "url": "EpisodeOfCare/ops-eoc-7-r"}},
        {"resource": cert, "request": {"method": "PUT", "url": f"DocumentReference/{cert['id']}"}},
        {"resource": signature, "request": {"method": "POST", "url": "Provenance"}}]}
    resp = post(client, "", bundle)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    leave_or_join(client, GROUP_B[0], "ops-patient-7", start="2026-10-12")


def weekly(client, eid: str, query: str = "") -> list[tuple]:
    resp = get(client, f"EpisodeOfCare/{eid}/$hours{query}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [(w["week"], w["hours"], w["daysAttended"], w.get("flag", [])) for w in map(parts, named(resp.get_json(), "week"))]


def census_rows(client, query: str) -> tuple[dict, dict]:
    body = get(client, f"EpisodeOfCare/$census{query}").get_json()
    return body, {parts(p)["episode"]["reference"].split("/")[1]: parts(p) for p in named(body, "episode")}


BELOW, ABOVE, FEW = "below-minimum", "above-maximum", "fewer-than-3-days"
W = "2026-W"


def test_six_weeks_of_a_program(client):
    load_network(client)
    sessions = schedule(client)
    for w in range(6):
        if w == 3:
            discharge_patient_7(client)
        if w == 4:
            step_down_patient_4(client)
        if w == 5:
            readmit_patient_7(client)
        record_week(client, w, sessions)
    period = "?start=2026-09-07&end=2026-10-18"

    assert weekly(client, "ops-eoc-1", period) == [(f"{W}{37 + w}", 9.83, 4, []) for w in range(6)]
    assert weekly(client, "ops-eoc-2", period) == [
        (f"{W}37", 9.0, 3, []), (f"{W}38", 6.0, 2, [BELOW, FEW]), (f"{W}39", 10.0, 4, []),
        (f"{W}40", 9.0, 3, []), (f"{W}41", 9.0, 3, []), (f"{W}42", 9.0, 3, [])]
    assert weekly(client, "ops-eoc-3", period) == [
        (f"{W}37", 9.0, 3, []), (f"{W}38", 9.0, 3, []), (f"{W}39", 9.0, 3, []),
        (f"{W}40", 8.25, 3, [BELOW]), (f"{W}41", 9.0, 3, []), (f"{W}42", 9.0, 3, [])]
    assert weekly(client, "ops-eoc-4", period) == [
        (f"{W}37", 9.0, 3, []), (f"{W}38", 9.0, 3, []), (f"{W}39", 9.0, 3, []),
        (f"{W}40", 9.0, 3, []), (f"{W}41", 0.83, 1, []), (f"{W}42", 0.83, 1, [])]
    assert weekly(client, "ops-eoc-5", period) == [
        (f"{W}37", 9.0, 3, []), (f"{W}38", 9.0, 3, []), (f"{W}39", 6.0, 2, [BELOW, FEW]),
        (f"{W}40", 10.33, 3, []), (f"{W}41", 9.0, 3, []), (f"{W}42", 9.0, 3, [])]
    assert weekly(client, "ops-eoc-6", period)[-1] == (f"{W}42", 8.0, 3, [BELOW])
    assert weekly(client, "ops-eoc-7") == [(f"{W}37", 9.0, 3, []), (f"{W}38", 9.0, 3, []), (f"{W}39", 9.0, 3, [])]
    assert weekly(client, "ops-eoc-7-r", "?end=2026-10-18") == [(f"{W}42", 9.0, 3, [])]
    assert weekly(client, "ops-eoc-8", period)[:2] == [(f"{W}37", 9.0, 3, []), (f"{W}38", 6.0, 2, [FEW])]

    w40 = parts(named(get(client, "EpisodeOfCare/ops-eoc-5/$hours?week=2026-W40").get_json(), "week")[0])
    assert w40["sessions"] == {"group": 3, "individual": 1, "family": 0, "psychiatric": 1, "other": 0}
    assert (w40["daysWith3Services"], w40["daysWith4OrMoreServices"]) == (1, 0)
    w41 = parts(named(get(client, "EpisodeOfCare/ops-eoc-4/$hours?week=2026-W41").get_json(), "week")[0])
    assert w41["levelOfCare"]["code"] == "asam-1"
    w39 = parts(named(get(client, "EpisodeOfCare/ops-eoc-2/$hours?week=2026-W39").get_json(), "week")[0])
    assert w39["sessions"]["family"] == 1

    body, rows = census_rows(client, "?date=2026-10-18&organization=Organization/ops-org-lakeview")
    assert (named(body, "total")[0]["valueInteger"], named(body, "readmissions")[0]["valueInteger"]) == (8, 1)
    assert {k: (r["hours"], r["daysAttended"], r.get("flag", []), r["daysSinceAdmission"], r.get("nextRecertification"),
                r.get("recertificationStatus")) for k, r in rows.items()} == {
        "ops-eoc-1": (9.83, 4, [], 41, "2026-11-06", "current"),
        "ops-eoc-2": (9.0, 3, [], 55, "2026-10-23", "due"),
        "ops-eoc-3": (9.0, 3, [], 62, "2026-10-16", "overdue"),
        "ops-eoc-4": (0.83, 1, [], 41, None, None),
        "ops-eoc-5": (9.0, 3, [], 69, "2026-12-04", "current"),
        "ops-eoc-6": (8.0, 3, [BELOW], 41, "2026-09-07", "overdue"),
        "ops-eoc-7-r": (9.0, 3, [], 6, "2026-12-11", "current"),
        "ops-eoc-8": (9.0, 3, [], 41, "2026-11-06", "current")}
    assert rows["ops-eoc-7-r"]["readmissionOf"]["reference"] == "EpisodeOfCare/ops-eoc-7"
    assert (rows["ops-eoc-4"]["levelOfCare"]["code"], rows["ops-eoc-8"]["minimumHours"]) == ("asam-1", 6)

    due = get(client, "EpisodeOfCare/$recertification-due?date=2026-10-18").get_json()
    assert [(parts(p)["episode"]["reference"], parts(p)["due"], parts(p)["status"]) for p in named(due, "recertification")] == [
        ("EpisodeOfCare/ops-eoc-6", "2026-09-07", "overdue"), ("EpisodeOfCare/ops-eoc-3", "2026-10-16", "overdue"),
        ("EpisodeOfCare/ops-eoc-2", "2026-10-23", "due")]
    due = get(client, "EpisodeOfCare/$recertification-due?date=2026-10-31").get_json()
    assert [parts(p)["episode"]["reference"].split("/")[1] for p in named(due, "recertification")] == [
        "ops-eoc-6", "ops-eoc-3", "ops-eoc-2", "ops-eoc-1", "ops-eoc-8"]

    # A late correction: patient 6 stayed on Friday 2026-10-16 after all; the next answers reflect it.
    record_attendance(client, sessions[(GROUP_B[0], "2026-10-16")], {"ops-patient-6": ("attended",)})
    assert weekly(client, "ops-eoc-6", "?week=2026-W42") == [(f"{W}42", 9.0, 3, [])]
    assert census_rows(client, "?date=2026-10-18")[1]["ops-eoc-6"].get("flag") is None
    assert ABOVE  # no one went above 19 h in these six weeks
