"""A group's recurring sessions: the schedule on the Group (session-schedule extension) and the Appointments made from it.

Domain brief §3.1: the roster is a Group, each session an Appointment with one participant per patient (R4
Appointment cannot name a Group) and the facilitator (type PPRF). R4 Schedule/Slot hold no recurrence rule, so the
rule sits on the Group as a Timing (repeat.dayOfWeek, timeOfDay, duration) in the program's IANA time zone. Each
session's Appointment carries the identifier sid/appointment|<group>-<yyyymmdd>-<hhmm>: scheduling again finds it
and makes no second one (profiles/input/fsh/program-operations-sessions.fsh).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .. import interactions
from ..errors import NotFound, Unprocessable
from ..interactions import Unit
from . import records

SCHEDULE = f"{records.SD}/session-schedule"
APPOINTMENT_ID = f"{records.SID}/appointment"
SNOMED = "http://snomed.info/sct"
GROUP_THERAPY = {"coding": [records.coding(SNOMED, "76168009", "Group psychotherapy (regime/therapy)")]}
MENTAL_HEALTH = {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/service-category", "22", "Mental Health")]}
PPRF = {"coding": [records.coding("http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PPRF", "primary performer")]}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
UNIT_MINUTES = {"min": 1, "h": 60}


@dataclass(frozen=True)
class Schedule:
    """One recurring session time of a group (one session-schedule extension)."""

    days: frozenset[int]  # date.weekday() values
    start: time
    minutes: int
    zone: ZoneInfo
    facilitator: dict | None
    location: dict | None
    session_type: dict
    topic: dict | None


def load_group(unit: Unit, group_id: str, *, lock: bool = False) -> dict:
    """The Group (404 when unknown)."""
    stored = unit.current("Group", group_id, lock=lock)
    group = records.parsed(stored)
    if group is None:
        raise NotFound(f"Group/{group_id} is not known")
    return group


def schedules(group: dict) -> list[Schedule]:
    """The group's recurring session times; 422 naming the extension when one cannot be used."""
    found = []
    for i, ext in enumerate(group.get("extension", [])):
        if isinstance(ext, dict) and ext.get("url") == SCHEDULE:
            found.append(_schedule(ext, f"Group.extension[{i}]"))
    if not found:
        raise Unprocessable(f"Group/{group['id']} has no recurring schedule: add a session-schedule extension ({SCHEDULE})",
                            code="business-rule", expression="Group.extension")
    return found


def _schedule(ext: dict, where: str) -> Schedule:
    parts = {p.get("url"): p for p in ext.get("extension", []) if isinstance(p, dict)}
    repeat = ((parts.get("timing") or {}).get("valueTiming") or {}).get("repeat") or {}
    days = repeat.get("dayOfWeek") or []
    times = repeat.get("timeOfDay") or []
    minutes = _minutes(repeat)
    if not days or any(d not in DAYS for d in days) or len(times) != 1 or minutes is None:
        raise Unprocessable("A session-schedule needs timing.repeat with dayOfWeek, one timeOfDay and a duration in min or h",
                            code="business-rule", expression=f"{where}.extension[timing]")
    return Schedule(frozenset(DAYS.index(d) for d in days), time.fromisoformat(times[0]), minutes,
                    _zone((parts.get("timeZone") or {}).get("valueCode"), where),
                    (parts.get("facilitator") or {}).get("valueReference"), (parts.get("location") or {}).get("valueReference"),
                    (parts.get("sessionType") or {}).get("valueCodeableConcept") or GROUP_THERAPY,
                    (parts.get("topic") or {}).get("valueCodeableConcept"))


def _minutes(repeat: dict) -> int | None:
    duration, unit = repeat.get("duration"), repeat.get("durationUnit")
    if not isinstance(duration, (int, float)) or unit not in UNIT_MINUTES or not 0 < duration * UNIT_MINUTES[unit] <= 720:
        return None
    return round(duration * UNIT_MINUTES[unit])


def _zone(name: object, where: str) -> ZoneInfo:
    try:
        if isinstance(name, str) and name:
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    raise Unprocessable(f"The session-schedule's timeZone '{name}' is not an IANA time zone (e.g. America/Chicago)",
                        code="business-rule", expression=f"{where}.extension[timeZone]")


def roster_on(group: dict, day: date) -> list[dict]:
    """The members of the roster on `day`: not marked inactive, and inside member.period."""
    out = []
    iso = day.isoformat()
    for member in group.get("member", []):
        period = member.get("period") or {}
        if member.get("inactive") is True or not records.ref_text(member.get("entity")):
            continue
        if (period.get("start") or iso)[:10] <= iso <= (period.get("end") or iso)[:10]:
            out.append(member["entity"])
    return out


# ------------------------------------------------------------------------------- $schedule-sessions
def schedule_sessions(unit: Unit, group_id: str, first: date, weeks: int, facilitator: dict | None) -> list[dict]:
    """The Appointments of the group's sessions from `first` for `weeks` weeks: those that exist, and new ones."""
    group = load_group(unit, group_id, lock=True)  # one scheduler per group at a time
    if group.get("active") is False:
        raise Unprocessable(f"Group/{group_id} is not active; it has no sessions to schedule", code="business-rule",
                            expression="Group.active")
    plans = schedules(group)
    if facilitator is not None:
        records.require(unit, facilitator, "Parameters.parameter[facilitator].valueReference")
    existing = _existing(unit, group_id)
    out = []
    for day in (first + timedelta(days=n) for n in range(weeks * 7)):
        for plan in sorted((p for p in plans if day.weekday() in p.days), key=lambda p: p.start):
            appt = _appointment(group, plan, day, facilitator or plan.facilitator)
            found = existing.get(appt["identifier"][0]["value"])
            out.append(found or json.loads(interactions.create(unit, appt).stored.content or "{}"))
    return out


def _existing(unit: Unit, group_id: str) -> dict[str, dict]:
    """The group's Appointments made by this operation, by identifier value."""
    rows = unit.find("Appointment", f"supporting-info=Group/{group_id}&identifier={APPOINTMENT_ID}|", limit=100_000)
    out = {}
    for row in rows:
        appt = json.loads(row.content)
        for ident in appt.get("identifier", []):
            if ident.get("system") == APPOINTMENT_ID:
                out[ident.get("value")] = appt
    return out


def _appointment(group: dict, plan: Schedule, day: date, facilitator: dict | None) -> dict:
    if facilitator is None:
        raise Unprocessable("No facilitator: name one in the facilitator parameter or in the group's session-schedule",
                            code="required", expression="Parameters.parameter[facilitator]")
    start = datetime.combine(day, plan.start, plan.zone)
    end = start + timedelta(minutes=plan.minutes)
    name = group.get("name") or f"Group {group['id']}"
    participants = [{"actor": _ref(p), "required": "required", "status": "accepted"} for p in roster_on(group, day)]
    participants.append({"type": [PPRF], "actor": _ref(facilitator), "required": "required", "status": "accepted"})
    if plan.location:
        participants.append({"actor": _ref(plan.location), "required": "information-only", "status": "accepted"})
    appt = {"resourceType": "Appointment", "meta": {"profile": [f"{records.SD}/iop-session-appointment"]},
            "identifier": [{"system": APPOINTMENT_ID, "value": f"{group['id']}-{day:%Y%m%d}-{plan.start:%H%M}"}],
            "status": "booked", "serviceCategory": [MENTAL_HEALTH], "serviceType": [plan.session_type],
            "description": name, "supportingInformation": [{"reference": f"Group/{group['id']}", "display": name}],
            "start": start.isoformat(), "end": end.isoformat(), "minutesDuration": plan.minutes, "participant": participants}
    if plan.topic:
        appt["reasonCode"] = [plan.topic]
    return appt


def _ref(reference: dict) -> dict:
    out = {"reference": records.ref_text(reference) or reference.get("reference")}
    if reference.get("display"):
        out["display"] = reference["display"]
    return out
