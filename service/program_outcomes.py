"""Program outcome figures of a program over a period, as an R4 MeasureReport: `EpisodeOfCare/$program-outcomes`.

The enrollments counted are the program's (EpisodeOfCare.managingOrganization) that ended in the period: finished
(completed the program) or cancelled after admission, by period.end. Figures (local codes iop-program-outcome-measure,
definitions in the Measure program-outcomes, docs/treatment-medications.md): completion rate, average length of stay,
attendance rate, PHQ-9 and GAD-7 change (last minus first total score within the enrollment), and 30- and 90-day
readmission rates (another enrollment of the patient, at any program here, starting within N days after discharge;
counted once N days have passed or the readmission happened). Computed from stored data on request, with one query
per kind of data for all the enrollments. MeasureReport: https://hl7.org/fhir/R4/measurereport.html
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import Response
from sqlalchemy import Connection

from . import conformance, dates, ops, privacy, search, wire
from .db import get_db
from .errors import BadRequest, Forbidden, NotFound
from .op_input import read
from .program_data import linked
from .workflows import records

DEFINITION = f"{conformance.CANONICAL}/OperationDefinition/EpisodeOfCare-program-outcomes"
MEASURE = f"{conformance.CANONICAL}/Measure/program-outcomes"
FIGURE = f"{records.CS}/iop-program-outcome-measure"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
PHQ9, GAD7 = "44261-6", "70274-6"
MAX = 20000
FINAL = ("final", "amended", "corrected")
NOT_ADMITTED = ("cancelled", "entered-in-error", "waitlist", "planned")


@dataclass
class Stay:
    """One enrollment that ended in the period, with what the figures need."""

    episode: dict
    patient: str
    start: date | None
    end: date
    scores: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # LOINC code -> [(when, score)]
    attended: int = 0
    scheduled: int = 0
    readmitted_after: int | None = None  # days from discharge to the next enrollment's start

    @property
    def finished(self) -> bool:
        return self.episode.get("status") == "finished"


# ------------------------------------------------------------------------------- HTTP
def operation() -> Response:
    """GET EpisodeOfCare/$program-outcomes?owner=Organization/x&period-start=&period-end= (or POST Parameters)."""
    if privacy.is_outside():
        raise Forbidden("$program-outcomes is for the program's staff")
    given = read("$program-outcomes", ("owner", "period-start", "period-end"))
    for name in ("owner", "period-start", "period-end"):
        if given.one(name) is None:
            raise BadRequest(f"Parameter '{name}' is required", code="required", expression=given.where(name))
    owner = given.reference("owner", ("Organization",))
    low, high = given.day("period-start", date.min), given.day("period-end", date.max)
    if high < low:
        raise BadRequest("period-end is before period-start", expression=given.where("period-end"))
    with get_db().read() as conn:
        if search.fetch(conn, [("Organization", owner.split("/", 1)[1])]) == []:
            raise NotFound(f"{owner} is not known", expression=given.where("owner"))
        report = measure_report(conn, wire.base_url(), owner, low, high, dates.utcnow().date())
    return wire.respond(json.dumps(report, ensure_ascii=False, separators=(",", ":")))


# ------------------------------------------------------------------------------- the data
def stays(conn: Connection, base_url: str, owner: str, low: date, high: date) -> list[Stay]:
    rows = search.find(conn, "EpisodeOfCare", f"organization={owner}&status=finished,cancelled", base_url, MAX)
    out = []
    for episode in (json.loads(r.content) for r in rows):
        end = _day((episode.get("period") or {}).get("end"))
        if end is None or not low <= end <= high or not _admitted(episode):
            continue
        out.append(Stay(episode, records.ref_text(episode.get("patient")) or "", _day((episode.get("period") or {}).get("start")), end))
    return sorted(out, key=lambda s: (s.end, s.episode["id"]))


def _admitted(episode: dict) -> bool:
    """Finished, or cancelled after it had been active (a referral withdrawn before admission is no stay)."""
    return episode.get("status") == "finished" or any(h.get("status") == "active" for h in episode.get("statusHistory", []))


def _ids(refs: list[str]) -> list[str]:
    return [r.split("/", 1)[1] for r in refs if "/" in r]


def add_attendance(conn: Connection, found: list[Stay]) -> None:
    by_episode = {f"EpisodeOfCare/{s.episode['id']}": s for s in found}
    for enc in linked(conn, "Encounter", "episode-of-care", "EpisodeOfCare", _ids(list(by_episode))):
        if enc.get("status") not in ("finished", "cancelled") or "session-cancelled" in records.extension_codes(enc, "attendance-status"):
            continue
        for ref in enc.get("episodeOfCare", []):
            stay = by_episode.get(records.ref_text(ref) or "")
            if stay is not None:
                stay.scheduled += 1
                stay.attended += enc.get("status") == "finished"


def add_scores(conn: Connection, found: list[Stay]) -> None:
    """Final PHQ-9 and GAD-7 totals of each patient, kept on the stays whose dates hold them."""
    by_patient: dict[str, list[Stay]] = {}
    for stay in found:
        by_patient.setdefault(stay.patient, []).append(stay)
    for obs in linked(conn, "Observation", "subject", "Patient", _ids(list(by_patient))):
        when, value = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start"), _score(obs)
        code = next((c for s, c in records.codes(obs.get("code")) if s == LOINC and c in (PHQ9, GAD7)), None)
        if not when or value is None or code is None or obs.get("status") not in FINAL:
            continue
        for stay in by_patient.get(records.ref_text(obs.get("subject")) or "", []):
            if stay.start and stay.start <= (_day(when) or date.min) <= stay.end:
                stay.scores.setdefault(code, []).append((when, value))


def add_readmissions(conn: Connection, found: list[Stay]) -> None:
    later: dict[str, list[dict]] = {}
    for episode in linked(conn, "EpisodeOfCare", "patient", "Patient", _ids([s.patient for s in found])):
        later.setdefault(records.ref_text(episode.get("patient")) or "", []).append(episode)
    for stay in found:
        gaps = [(start - stay.end).days for e in later.get(stay.patient, [])
                if e["id"] != stay.episode["id"] and e.get("status") not in NOT_ADMITTED
                and (start := _day((e.get("period") or {}).get("start"))) and start > stay.end]
        stay.readmitted_after = min(gaps) if gaps else None


def _score(obs: dict) -> float | None:
    value = obs.get("valueInteger", (obs.get("valueQuantity") or {}).get("value"))
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _day(text: object) -> date | None:
    return date.fromisoformat(text[:10]) if isinstance(text, str) and len(text) >= 10 else None


# ------------------------------------------------------------------------------- the report
def measure_report(conn: Connection, base_url: str, owner: str, low: date, high: date, today: date) -> dict:
    found = stays(conn, base_url, owner, low, high)
    add_attendance(conn, found)
    add_scores(conn, found)
    add_readmissions(conn, found)
    done = [s for s in found if s.finished]
    groups = [
        share("completion-rate", "Completion rate", len(found), [s.finished for s in found]),
        mean("length-of-stay", "Average length of stay", "d", len(found),
             [float((s.end - s.start).days) for s in done if s.start]),
        attendance_group(found),
        mean("phq9-change", "PHQ-9 change", "{score}", len(found), changes(done, PHQ9)),
        mean("gad7-change", "GAD-7 change", "{score}", len(found), changes(done, GAD7)),
        share("readmission-30d", "30-day readmission rate", len(found), readmitted(done, 30, today)),
        share("readmission-90d", "90-day readmission rate", len(found), readmitted(done, 90, today)),
    ]
    report = {"resourceType": "MeasureReport", "status": "complete", "type": "summary", "measure": MEASURE,
              "date": dates.instant(dates.utcnow()), "reporter": {"reference": owner},
              "period": {"start": low.isoformat(), "end": high.isoformat()}, "group": groups}
    if found:
        report["evaluatedResource"] = [{"reference": f"EpisodeOfCare/{s.episode['id']}"} for s in found]
    return report


def changes(found: list[Stay], code: str) -> list[float]:
    out = []
    for stay in found:
        scores = sorted(stay.scores.get(code, []))
        if len(scores) >= 2:
            out.append(scores[-1][1] - scores[0][1])
    return out


def readmitted(found: list[Stay], days: int, today: date) -> list[bool | None]:
    """Per completed stay: readmitted within `days`, not (the days have passed), or None (too early to tell)."""
    def one(stay: Stay) -> bool | None:
        if stay.readmitted_after is not None and stay.readmitted_after <= days:
            return True
        return False if stay.end + timedelta(days=days) <= today else None
    return [one(s) for s in found]


def attendance_group(found: list[Stay]) -> dict:
    scheduled, attended = sum(s.scheduled for s in found), sum(s.attended for s in found)
    group = {"code": _concept(FIGURE, "attendance-rate", "Attendance rate"),
             "population": [_population("initial-population", "Initial Population", len(found)),
                            _population("denominator", "Denominator", scheduled),
                            _population("numerator", "Numerator", attended)]}
    if scheduled:
        group["measureScore"] = _quantity(attended / scheduled, "1")
    return group


def share(code: str, display: str, total: int, outcomes: list[bool | None]) -> dict:
    known = [o for o in outcomes if o is not None]
    group = {"code": _concept(FIGURE, code, display),
             "population": [_population("initial-population", "Initial Population", total),
                            _population("denominator", "Denominator", len(known)),
                            _population("numerator", "Numerator", sum(known))]}
    if known:
        group["measureScore"] = _quantity(sum(known) / len(known), "1")
    return group


def mean(code: str, display: str, unit: str, total: int, values: list[float]) -> dict:
    group = {"code": _concept(FIGURE, code, display),
             "population": [_population("initial-population", "Initial Population", total),
                            _population("measure-population", "Measure Population", len(values))]}
    if values:
        group["measureScore"] = _quantity(statistics.fmean(values), unit)
    return group


def _quantity(value: float, unit: str) -> dict:
    return {"value": round(value, 4), "unit": unit, "system": UCUM, "code": unit}


def _population(code: str, display: str, count: int) -> dict:
    return {"code": _concept(POPULATION, code, display), "count": count}


def _concept(system: str, code: str, display: str) -> dict:
    return {"coding": [{"system": system, "code": code, "display": display}]}


ops.register(ops.Operation("EpisodeOfCare", "$program-outcomes", DEFINITION, scope=("EpisodeOfCare", "s"), type_level=operation))
