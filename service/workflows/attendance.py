"""A session's attendance in one unit of work: the session Encounter, one Encounter per patient, the Appointment.

Domain brief §3.2: attended, late and left early → the patient's Encounter finished (attendance-status attended or
partial, period the actual times, length the minutes present) and the Appointment participant accepted; excused →
cancelled, excused-absence, participant declined; no-show → cancelled, no-show, participant needs-action (staff
follow up; R4 has no participant no-show). Each patient Encounter is partOf the session Encounter (group sessions,
iop-13) and names the patient's enrollment of this program. Encounters are found again by their Appointment, so
recording twice changes nothing and a new state for one patient corrects that patient's Encounter only.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property

from sqlalchemy import text

from .. import dates, interactions, program_data
from ..errors import Issue, NotFound, Unprocessable
from ..interactions import Unit
from . import records, referral, sessions

PRESENT = ("attended", "late", "left-early")
STATES = {  # state -> (Encounter.status, attendance-status code and display, Appointment.participant.status)
    "attended": ("finished", "attended", "Attended", "accepted"),
    "late": ("finished", "partial", "Attended in part", "accepted"),
    "left-early": ("finished", "partial", "Attended in part", "accepted"),
    "excused": ("cancelled", "excused-absence", "Excused absence", "declined"),
    "no-show": ("cancelled", "no-show", "No-show", "needs-action"),
}
ATTENDANCE_CS = f"{records.CS}/iop-attendance"
GROUP_TYPES = {"76168009", "1555005", "28868002"}  # iop-13: group psychotherapy needs partOf
AMB = records.coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory")
VR = records.coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "VR", "virtual")
PSYCHOTHERAPY = {"coding": [records.coding(sessions.SNOMED, "75516001", "Psychotherapy (regime/therapy)")]}
ENCOUNTER_ID = f"{records.SID}/encounter"
US_CORE_ENCOUNTER = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"
UCUM = "http://unitsofmeasure.org"
CANCELLATION = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"


@dataclass(frozen=True)
class Mark:
    """One patient's attendance as sent: `where` is the parameter's expression (Parameters.parameter[i])."""

    patient: str  # Patient/id
    state: str
    start: str | None
    end: str | None
    where: str


@dataclass
class Session:
    """What the Encounters take from the Appointment and its Group."""

    appt: dict
    group: dict | None
    program: dict | None  # the Organization running the session
    start: datetime  # naive UTC
    end: datetime
    day: date  # in the program's time zone (the Appointment's own offset)
    topic: dict

    # cached: each is read for every Encounter of the session
    @cached_property
    def facilitators(self) -> list[dict]:
        return [p["actor"] for p in self.appt.get("participant", [])
                if (records.ref_text(p.get("actor")) or "").split("/")[0] in ("Practitioner", "PractitionerRole")]

    @cached_property
    def modality(self) -> dict:
        """VR for a group of the virtual schedule track, else AMB (in person)."""
        virtual = self.group is not None and "virtual" in records.extension_codes(self.group, "schedule-track")
        return VR if virtual else AMB

    @cached_property
    def location(self) -> dict | None:
        return next((p["actor"] for p in self.appt.get("participant", [])
                     if (records.ref_text(p.get("actor")) or "").startswith("Location/")), None)


def record(unit: Unit, appt_id: str, marks: list[Mark], topic: dict | None) -> list[dict]:
    """Record `marks` for Appointment/appt_id; returns the Appointment, the session Encounter and the patients'."""
    session = _session(unit, appt_id, topic)
    episodes = check(unit, session, marks)
    existing = _encounters(unit, appt_id)
    states = {subject: _state_of(enc) for subject, enc in existing.items() if subject.startswith("Patient/")}
    states.update((m.patient, m.state) for m in marks)
    # a session of patients in Part 2 treatment is Part 2 data itself (who attends): it takes their labels
    labels = next((records.part2_labels(e) for e in episodes.values() if records.part2_labels(e)), [])
    session_enc = _save_session(unit, session, existing.get("session"), states, labels) if session.group else None
    written = dict(existing, **({"session": session_enc} if session_enc else {}))
    for mark in marks:
        enc = _patient_encounter(session, mark, episodes[mark.patient], session_enc)
        written[mark.patient] = _write(unit, enc, existing.get(mark.patient))
    appt = _update_appointment(unit, session, states, labels)
    return [appt] + [written[key] for key in sorted(written, key=lambda k: (k != "session", k))]


# ------------------------------------------------------------------------------- the session
def _session(unit: Unit, appt_id: str, topic: dict | None) -> Session:
    appt = records.parsed(unit.current("Appointment", appt_id, lock=True))  # one recorder per session at a time
    if appt is None:
        raise NotFound(f"Appointment/{appt_id} is not known")
    group_ref = next((r for r in appt.get("supportingInformation", []) if (records.ref_text(r) or "").startswith("Group/")), None)
    group = records.require(unit, group_ref, "Appointment.supportingInformation") if group_ref else None
    kinds = {code for concept in appt.get("serviceType", []) for system, code in records.codes(concept)
             if system == sessions.SNOMED}
    if group is None and kinds & GROUP_TYPES:
        raise Unprocessable(f"Appointment/{appt_id} is a group session but names no Group in supportingInformation",
                            code="business-rule", expression="Appointment.supportingInformation")
    excused = (CANCELLATION, "pat") in records.codes(appt.get("cancelationReason"))  # every patient excused: correctable
    if appt.get("status") == "entered-in-error" or (appt.get("status") == "cancelled" and not excused):
        raise Unprocessable(f"Appointment/{appt_id} is {appt['status']}: it has no attendance to record", code="business-rule",
                            expression="Appointment.status")
    if not appt.get("start") or not appt.get("end"):
        raise Unprocessable(f"Appointment/{appt_id} has no start and end", code="required", expression="Appointment.start")
    return Session(appt, group, _program(unit, appt, group), dates.parse_range(appt["start"])[0],
                   dates.parse_range(appt["end"])[0], date.fromisoformat(appt["start"][:10]),
                   topic or next(iter(appt.get("reasonCode", [])), None) or PSYCHOTHERAPY)


def _program(unit: Unit, appt: dict, group: dict | None) -> dict | None:
    """The Organization whose session this is: the Group's managing organization or its track's provider, else the
    provider of a HealthcareService or Location taking part (individual and family sessions)."""
    candidates = []
    if group:
        candidates += [group.get("managingEntity")] + records.extension_values(group, "track-service")
    candidates += [p.get("actor") for p in appt.get("participant", [])]
    for ref in candidates:
        rtype = (records.ref_text(ref) or "").split("/")[0]
        if rtype == "Organization":
            return {"reference": records.ref_text(ref)}
        if rtype in ("HealthcareService", "Location"):
            found = records.read(unit, ref) or {}
            org = records.ref_text(found.get("providedBy") or found.get("managingOrganization"))
            if org:
                return {"reference": org}
    return None


# ------------------------------------------------------------------------------- checks (nothing is written before)
def check(unit: Unit, session: Session, marks: list[Mark]) -> dict[str, dict]:
    """The enrollment of each marked patient; one 422 naming every part that cannot be recorded."""
    issues: list[Issue] = []
    issues += _times(unit, session, marks)
    roster = _roster(session)
    found = _enrollments(unit, [m.patient for m in marks if m.patient in roster])
    doubtful: list[tuple[str, object]] = [("", {"reference": m.patient}) for m in marks if m.patient not in found]
    known = set(found) | set(records.read_many(unit, doubtful) if doubtful else ())  # an enrolled patient exists
    for m in marks:
        if m.patient not in known:
            issues.append(_issue(f"{m.patient} is not known on this server", m, "not-found"))
        elif m.patient not in roster:
            issues.append(_issue(f"{m.patient} is not on the roster of this session on {session.day}", m))
    episodes = _episodes(session, [m for m in marks if m.patient in known and m.patient in roster], found, issues)
    _lock_patients(unit, [m.patient for m in marks if m.state in PRESENT])
    issues += _overlaps(unit, session, marks)
    if issues:
        raise Unprocessable(issues[0].diagnostics, issues=issues)
    return episodes


def _issue(text: str, mark: Mark, code: str = "business-rule", part: str = "patient") -> Issue:
    return Issue("error", code, text, f"{mark.where}.part[{part}]")


def _roster(session: Session) -> set[str]:
    if session.group is not None:
        return {text for ref in sessions.roster_on(session.group, session.day) if (text := records.ref_text(ref))}
    return {ref for p in session.appt.get("participant", [])
            if (ref := records.ref_text(p.get("actor")) or "").startswith("Patient/")}


def _times(unit: Unit, session: Session, marks: list[Mark]) -> list[Issue]:
    issues = []
    for m in marks:
        if m.state in PRESENT or m.state == "no-show":
            if session.start > unit.now:
                issues.append(_issue(f"The session starts {session.appt['start']}, in the future: {m.patient} cannot be "
                                     f"marked {m.state} yet", m, part="state"))
                continue
        if m.state in PRESENT:
            start, end = span(session, m)
            if end <= start:
                issues.append(_issue(f"{m.patient}: the end is not after the start", m, part="end"))
            elif end > unit.now:
                issues.append(_issue(f"{m.patient}: the end {m.end or session.appt['end']} is in the future", m, part="end"))
    return issues


def span(session: Session, mark: Mark) -> tuple[datetime, datetime]:
    """The patient's actual [start, end) in naive UTC (the session's times where none was sent)."""
    start = dates.parse_range(mark.start)[0] if mark.start else session.start
    end = dates.parse_range(mark.end)[0] if mark.end else session.end
    return start, end


def _enrollments(unit: Unit, patients: list[str]) -> dict[str, list[dict]]:
    """The planned and active enrollments of these patients, by patient (EpisodeOfCare?patient=…&status=planned,active)."""
    found: dict[str, list[dict]] = {}
    unit.flush()
    for episode in program_data.linked(unit.conn, "EpisodeOfCare", "patient", "Patient", _ids(patients), unit.options.base_url):
        if episode.get("status") in ("planned", "active"):
            found.setdefault(records.ref_text(episode.get("patient")) or "", []).append(episode)
    referral.known_enrollments(unit, [e for found_ in found.values() for e in found_])  # the admission trigger reads them
    return found


def _ids(patients: list[str]) -> list[str]:
    return [p.split("/", 1)[1] for p in patients]


def _episodes(session: Session, marks: list[Mark], found: dict[str, list[dict]], issues: list[Issue]) -> dict[str, dict]:
    """Each patient's planned or active enrollment of this program covering the session day."""
    out = {}
    for m in marks:
        current = [e for e in found.get(m.patient, []) if _covers(e, session.day)]
        ours = [e for e in current if session.program is None
                or records.ref_text(e.get("managingOrganization")) == session.program["reference"]]
        if ours:
            out[m.patient] = ours[0]
        elif current:
            issues.append(_issue(f"{m.patient}'s enrollment is with another program, not "
                                 f"{(session.program or {}).get('reference')}", m))
        else:
            issues.append(_issue(f"{m.patient} has no planned or active enrollment (EpisodeOfCare) on {session.day}", m))
    return out


def _covers(episode: dict, day: date) -> bool:
    """A planned enrollment starts with its first session; an active one covers its period."""
    if episode.get("status") == "planned":
        return True
    period = episode.get("period") or {}
    iso = day.isoformat()
    return (period.get("start") or iso)[:10] <= iso <= (period.get("end") or iso)[:10]


def _lock_patients(unit: Unit, patients: list[str]) -> None:
    """Hold, until commit, each present patient's attendance (PostgreSQL), so that two sessions recorded at once for
    the same patient cannot both pass the overlap check; in one statement, in key order (no deadlock)."""
    if not patients or unit.conn.dialect.name != "postgresql":
        return
    keys = sorted(int.from_bytes(hashlib.blake2b(f"attendance:{p}".encode(), digest_size=8).digest(), "big", signed=True)
                  for p in patients)
    unit.conn.execute(text("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:keys AS bigint[])) AS k ORDER BY k) s"),
                      {"keys": keys})


def _overlaps(unit: Unit, session: Session, marks: list[Mark]) -> list[Issue]:
    """Another attended Encounter of the same patient at the same time (not of this session)."""
    present = [m for m in marks if m.state in PRESENT]
    spans = {m.patient: span(session, m) for m in present}
    if not present or any(end <= start for start, end in spans.values()):
        return []
    low, high = min(s for s, _ in spans.values()), max(e for _, e in spans.values())
    mine = f"Appointment/{session.appt['id']}"
    issues = []
    unit.flush()
    for other in program_data.linked(unit.conn, "Encounter", "patient", "Patient", _ids(list(spans)), unit.options.base_url,
                                        (low, high)):
        who, period = records.ref_text(other.get("subject")), other.get("period") or {}
        if (who not in spans or other.get("status") != "finished" or not period.get("start")
                or mine in {records.ref_text(a) for a in other.get("appointment", [])}):
            continue
        start, end = spans[who]
        o_start = dates.parse_range(period["start"])[0]
        o_end = dates.parse_range(period["end"])[0] if period.get("end") else dates.MAX
        if o_start < end and o_end > start:
            mark = next(m for m in present if m.patient == who)
            issues.append(_issue(f"{who} already attended Encounter/{other['id']} from {period['start']} to "
                                 f"{period.get('end')}, which overlaps this session", mark, part="start"))
    return issues


# ------------------------------------------------------------------------------- writing
def _encounters(unit: Unit, appt_id: str) -> dict[str, dict]:
    """The Encounters of this Appointment: 'session' → the session Encounter, 'Patient/id' → the patient's."""
    out = {}
    for row in unit.find("Encounter", f"appointment=Appointment/{appt_id}", limit=10_000):
        enc = json.loads(row.content)
        subject = records.ref_text(enc.get("subject")) or ""
        out["session" if subject.startswith("Group/") else subject] = enc
    return out


def _state_of(enc: dict) -> str:
    codes = records.extension_codes(enc, "attendance-status")
    if "attended" in codes:
        return "attended"
    if "partial" in codes:
        return "late"
    return "excused" if "excused-absence" in codes else "no-show"


def _write(unit: Unit, enc: dict, existing: dict | None) -> dict:
    """Create or correct an Encounter built here from the stored Appointment, its Group and the validated marks:
    the R4 walk and the profiles judge it, without the fhir.resources parse (validation.validate)."""
    if existing is None:
        return json.loads(interactions.create(unit, enc, built=True).stored.content or "{}")
    enc["id"] = existing["id"]
    return json.loads(records.save(unit, enc, built=True).stored.content or "{}")


def _save_session(unit: Unit, session: Session, existing: dict | None, states: dict[str, str], labels: list[dict]) -> dict:
    appt, group = session.appt, session.group
    assert group is not None
    if any(s in PRESENT for s in states.values()):
        status = "finished"
    else:
        status = "planned" if session.start > unit.now else "cancelled"
    enc = {"resourceType": "Encounter", "meta": _meta("iop-session-encounter", labels),
           "identifier": [{"system": ENCOUNTER_ID, "value": f"SES-{appt['id']}"}], "status": status, "class": session.modality,
           "type": appt.get("serviceType") or [sessions.GROUP_THERAPY], "serviceType": session.topic,
           "subject": {"reference": f"Group/{group['id']}"},
           "participant": [{"type": [sessions.PPRF], "individual": ref} for ref in session.facilitators[:1]]
           + [{"individual": ref} for ref in session.facilitators[1:]],
           "appointment": [{"reference": f"Appointment/{appt['id']}"}],
           "period": {"start": appt["start"], "end": appt["end"]},
           "length": _length(session.start, session.end)}
    _place(enc, session)
    return _write(unit, enc, existing)


def _patient_encounter(session: Session, mark: Mark, episode: dict, session_enc: dict | None) -> dict:
    status, code, display, _ = STATES[mark.state]
    appt = session.appt
    patient_id = mark.patient.split("/", 1)[1]
    meta = records.meta("iop-attendance-encounter", episode)
    meta["profile"].append(US_CORE_ENCOUNTER)
    enc = {"resourceType": "Encounter", "meta": meta,
           "extension": [{"url": f"{records.SD}/attendance-status",
                          "valueCodeableConcept": {"coding": [records.coding(ATTENDANCE_CS, code, display)]}}],
           "identifier": [{"system": ENCOUNTER_ID, "value": f"ATT-{appt['id']}-{patient_id}"}], "status": status,
           "class": session.modality, "type": appt.get("serviceType") or [PSYCHOTHERAPY], "serviceType": session.topic,
           "subject": {"reference": mark.patient}, "episodeOfCare": [{"reference": f"EpisodeOfCare/{episode['id']}"}],
           "participant": [{"type": [sessions.PPRF], "individual": ref} for ref in session.facilitators[:1]],
           "appointment": [{"reference": f"Appointment/{appt['id']}"}]}
    if status == "finished":
        start, end = span(session, mark)
        enc["period"] = {"start": mark.start or appt["start"], "end": mark.end or appt["end"]}
        enc["length"] = _length(start, end)
    else:  # absent: the time the session was planned, no minutes present
        enc["period"] = {"start": appt["start"], "end": appt["end"]}
    _place(enc, session)
    if session_enc is not None:
        enc["partOf"] = {"reference": f"Encounter/{session_enc['id']}"}
    return enc


def _meta(profile_id: str, labels: list[dict]) -> dict:
    return {"profile": [f"{records.SD}/{profile_id}"], **({"security": labels} if labels else {})}


def _place(enc: dict, session: Session) -> None:
    if session.location:
        enc["location"] = [{"location": session.location}]
    if session.program:
        enc["serviceProvider"] = session.program


def _length(start: datetime, end: datetime) -> dict:
    return {"value": round((end - start).total_seconds() / 60), "unit": "min", "system": UCUM, "code": "min"}


def _update_appointment(unit: Unit, session: Session, states: dict[str, str], labels: list[dict]) -> dict:
    appt = json.loads(json.dumps(session.appt))
    if labels:
        meta = appt.setdefault("meta", {})
        have = {(s.get("system"), s.get("code")) for s in meta.get("security", [])}
        meta["security"] = meta.get("security", []) + [x for x in labels if (x["system"], x["code"]) not in have]
    listed = {records.ref_text(p.get("actor")) or "": p for p in appt.get("participant", [])}
    for patient, state in states.items():
        if patient not in listed:  # joined the roster after the session was scheduled
            listed[patient] = {"actor": {"reference": patient}, "required": "required"}
            appt["participant"].insert(0, listed[patient])
        listed[patient]["status"] = STATES[state][3]
    patients = [ref for ref in listed if ref.startswith("Patient/")]
    if any(s in PRESENT for s in states.values()):
        appt["status"] = "fulfilled"
    elif patients and all(p in states for p in patients):
        appt["status"] = "noshow" if any(states[p] == "no-show" for p in patients) else "cancelled"
    if appt["status"] == "cancelled":  # every patient excused
        appt["cancelationReason"] = {"coding": [records.coding(CANCELLATION, "pat", "Patient")]}
    else:
        appt.pop("cancelationReason", None)
    return json.loads(records.save(unit, appt, built=True).stored.content or "{}")  # the stored one, statuses set
