"""Weekly intensity of an IOP enrollment, computed from its attended Encounters on request: `EpisodeOfCare/[id]/$hours`.

Nothing is stored: every answer sums the per-patient attendance Encounters (iop-attendance-encounter, status
finished) that point at the episode, so a late correction of attendance shows in the next answer. Weeks are ISO
weeks (Monday to Sunday) in the program's time zone (program_data.time_zone). Per week: hours (Encounter.length,
else the period), days attended, sessions by kind, services per day and the Medicare per-diem tiers (days with 3
services and with 4 or more: domain brief §4.2), and flags at the intensive outpatient levels (§4.1): below 9 hours
(6 for a patient under 18 on the week's Monday), above 19 hours (consider partial hospitalization) and fewer than
3 days. Before or after those levels (PHP, OP) the figures are given without flags.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Response

from . import dates, level_of_care, op_input, ops, program_data, wire
from .conformance import CANONICAL
from .db import get_db
from .errors import BadRequest, NotFound

# Encounter.type (SNOMED CT, iop-session-type) → kind of session
KINDS = {"76168009": "group", "1555005": "group", "28868002": "group", "18512000": "individual", "75516001": "individual",
         "108313002": "family", "88848003": "psychiatric", "10197000": "psychiatric", "165172002": "psychiatric"}
KIND_ORDER = ("group", "individual", "family", "psychiatric", "other")
ADULT_MINIMUM, ADOLESCENT_MINIMUM, MAXIMUM, MINIMUM_DAYS = 9, 6, 19, 3
ADULT_AGE = 18
MAX_WEEKS = 106  # two years of weeks per request


@dataclass(frozen=True)
class Visit:
    """One attended service: its local day, minutes present and kind of session."""

    day: date
    minutes: float
    kind: str


@dataclass
class Week:
    """The figures of one ISO week of one episode."""

    monday: date
    minutes: float = 0.0
    per_day: Counter = field(default_factory=Counter)
    minutes_per_day: Counter = field(default_factory=Counter)
    sessions: Counter = field(default_factory=Counter)
    minimum: int = ADULT_MINIMUM
    level: str | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        year, week, _ = self.monday.isocalendar()
        return f"{year}-W{week:02d}"

    @property
    def hours(self) -> float:
        return round(self.minutes / 60, 2)

    @property
    def days(self) -> int:
        return len(self.per_day)

    def tier(self, low: int, high: int | None = None) -> int:
        """Days with at least `low` (and at most `high`) services."""
        return sum(1 for n in self.per_day.values() if n >= low and (high is None or n <= high))


# ------------------------------------------------------------------------------- computing
def weeks(episode: dict, visits: list[Visit], birth: date | None, first: date, last: date) -> list[Week]:
    """One Week per ISO week from first's to last's, with the visits on days first..last and its flags."""
    out: dict[date, Week] = {}
    monday = first - timedelta(days=first.weekday())
    while monday <= last:
        out[monday] = Week(monday)
        monday += timedelta(days=7)
    for v in visits:
        if first <= v.day <= last:
            week = out[v.day - timedelta(days=v.day.weekday())]
            week.minutes += v.minutes
            week.per_day[v.day] += 1
            week.minutes_per_day[v.day] += v.minutes
            week.sessions[v.kind] += 1
    for week in out.values():
        _judge(week, episode, birth, min(week.monday + timedelta(days=6), last))
    return list(out.values())


def _judge(week: Week, episode: dict, birth: date | None, last_day: date) -> None:
    """Minimum for the patient's age on Monday; flags at the IOP level in force on the week's last day."""
    week.minimum = ADOLESCENT_MINIMUM if birth and age(birth, week.monday) < ADULT_AGE else ADULT_MINIMUM
    week.level = level_of_care.level_on(episode, last_day)
    if not level_of_care.is_iop(week.level):
        return
    if week.minutes < week.minimum * 60:
        week.flags.append("below-minimum")
    if week.minutes > MAXIMUM * 60:
        week.flags.append("above-maximum")
    if week.days < MINIMUM_DAYS:
        week.flags.append("fewer-than-3-days")


def age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


# ------------------------------------------------------------------------------- Parameters
def week_parts(week: Week) -> list[dict]:
    """The parts that describe one week (Parameters.parameter.part)."""
    parts: list[dict] = [
        {"name": "week", "valueString": week.label},
        {"name": "start", "valueDate": week.monday.isoformat()},
        {"name": "end", "valueDate": (week.monday + timedelta(days=6)).isoformat()}]
    if week.level:
        parts.append({"name": "levelOfCare", "valueCoding": {"system": level_of_care.LEVEL_SYSTEM, "code": week.level}})
    parts += [
        {"name": "hours", "valueDecimal": week.hours},
        {"name": "minimumHours", "valueDecimal": week.minimum},
        {"name": "daysAttended", "valueInteger": week.days},
        {"name": "sessions", "part": [{"name": k, "valueInteger": week.sessions[k]} for k in KIND_ORDER]},
        *({"name": "day", "part": [{"name": "date", "valueDate": d.isoformat()},
                                   {"name": "services", "valueInteger": week.per_day[d]},
                                   {"name": "hours", "valueDecimal": round(week.minutes_per_day[d] / 60, 2)}]}
          for d in sorted(week.per_day)),
        {"name": "daysWith3Services", "valueInteger": week.tier(3, 3)},
        {"name": "daysWith4OrMoreServices", "valueInteger": week.tier(4)},
        *({"name": "flag", "valueCode": f} for f in week.flags)]
    return parts


# ------------------------------------------------------------------------------- HTTP
PARAMETERS = ("week", "start", "end")


def operation(rid: str) -> Response:
    """GET or POST EpisodeOfCare/[id]/$hours[?week=YYYY-Www | start=&end=]."""
    op_input.staff_only("$hours")
    given = op_input.read("$hours", PARAMETERS)
    with get_db().read() as conn:
        episode = program_data.episode(conn, rid)
        if episode is None:
            raise NotFound(f"EpisodeOfCare/{rid} is not known", code="not-found")
        facts = program_data.facts(conn, [episode])
        tz = facts.zone(episode)
        first, last = period(given, episode, dates.utcnow().astimezone(tz).date())
        visits = facts_visits(conn, [episode], facts, first, last)[rid]
    found = weeks(episode, visits, facts.birth(episode), first, last)
    body = {"resourceType": "Parameters", "parameter": [
        {"name": "episode", "valueReference": {"reference": f"EpisodeOfCare/{rid}"}},
        *([{"name": "patient", "valueReference": {"reference": p}}] if (p := program_data.patient_of(episode)) else []),
        {"name": "timeZone", "valueCode": tz.key},
        *({"name": "week", "part": week_parts(w)} for w in found)]}
    return wire.respond(json.dumps(body, separators=(",", ":")))


def facts_visits(conn, episodes: list[dict], facts: program_data.Facts, first: date, last: date) -> dict[str, list[Visit]]:
    """Each episode's attended visits on local days first..last (one query for all episodes). Sessions are shared by
    a group, so each distinct start and zone is converted to its local day once."""
    low = datetime.combine(first - timedelta(days=1), datetime.min.time())
    high = datetime.combine(last + timedelta(days=2), datetime.min.time())
    found = program_data.attended(conn, [e["id"] for e in episodes], low, high)
    days: dict[tuple[datetime, ZoneInfo], date] = {}
    kinds: dict[frozenset[str], str] = {}
    out = {}
    for e in episodes:
        tz = facts.zone(e)
        out[e["id"]] = [Visit(days.get((enc.start, tz)) or days.setdefault((enc.start, tz), _local_day(enc.start, tz)),
                              enc.minutes, kinds.get(enc.codes) or kinds.setdefault(enc.codes, _kind(enc.codes)))
                        for enc in found.get(e["id"], [])]
    return out


def _local_day(start: datetime, tz: ZoneInfo) -> date:
    return start.replace(tzinfo=UTC).astimezone(tz).date()


def _kind(codes: frozenset[str]) -> str:
    return next((KINDS[c] for c in sorted(codes) if c in KINDS), "other")


def period(given: op_input.Input, episode: dict, today: date) -> tuple[date, date]:
    """The days asked for: one ISO week, or start..end (default: admission to discharge or today)."""
    monday, start, end = given.week("week"), given.day("start"), given.day("end")
    if monday is not None:
        if start or end:
            raise BadRequest("Give either week or start/end, not both", expression=given.where("week"))
        return monday, monday + timedelta(days=6)
    span = (episode.get("period") or {})
    first = start or _date(span.get("start")) or today
    last = end or min(_date(span.get("end")) or today, today)
    blame = given.where("end" if end else "start")
    if last < first:
        raise BadRequest(f"end {last} is before start {first}", expression=blame)
    if (last - first).days > MAX_WEEKS * 7:
        raise BadRequest(f"At most {MAX_WEEKS} weeks per request", expression=blame)
    return first, last


def _date(text: object) -> date | None:
    return date.fromisoformat(text[:10]) if isinstance(text, str) and len(text) >= 10 else None


ops.register(ops.Operation("EpisodeOfCare", "$hours", f"{CANONICAL}/OperationDefinition/EpisodeOfCare-hours",
                           scope=(None, "r"), instance_level=operation, methods=("GET", "POST")))
