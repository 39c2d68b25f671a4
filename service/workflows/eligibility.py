"""Eligibility of a referral for the program, as IOP intake staff check it; the service proposes, staff decide.

Checks (local code system iop-eligibility): medically stable and not needing 24-hour supervision (ASAM:
24-hour supervision means a residential or inpatient level, not 2.1), age fits the track, the program offers
the requested track and schedule, the Coverage's payer is one the track accepts, and a seat is free (open seats from the track's rosters).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .. import seats
from ..interactions import Unit
from . import programs, records

CHECKS = f"{records.CS}/iop-eligibility"
DISPLAY = {"medically-stable": "Medically stable", "needs-24h-supervision": "Needs 24-hour supervision",
           "age-fit": "Age fits the track", "track-fit": "Track and schedule offered",
           "insurance-in-network": "Insurance in network", "seat-available": "Seat available"}


@dataclass
class Check:
    code: str
    outcome: str  # pass | fail | unknown
    detail: str


@dataclass
class Assessment:
    checks: list[Check] = field(default_factory=list)
    service: dict | None = None  # the HealthcareService (track) that fits
    schedule: str | None = None
    adolescent: bool = False

    @property
    def seat_free(self) -> bool:
        return all(c.outcome != "fail" for c in self.checks if c.code == "seat-available")

    @property
    def decision(self) -> str:
        """accept | waitlist | decline | review (a check could not be made from the data sent)."""
        outcomes = {c.code: c.outcome for c in self.checks}
        if "fail" in (v for k, v in outcomes.items() if k != "seat-available"):
            return "decline"
        if "unknown" in outcomes.values():
            return "review"
        return "waitlist" if outcomes.get("seat-available") == "fail" else "accept"

    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.outcome == "fail" and c.code != "seat-available"]


def assess(unit: Unit, task: dict, sr: dict) -> Assessment:
    """Run every check against the referral, its patient, its coverage and the owner program's tracks."""
    schedule = next(iter(records.extension_codes(sr, "schedule-track")), None)
    tracks = records.extension_codes(sr, "specialized-track")
    patient = records.read(unit, sr.get("subject")) or {}
    result = Assessment(schedule=schedule, adolescent="adolescents" in tracks)
    result.checks.append(_clinical(unit, sr))
    result.checks.append(_age(patient, sr, result.adolescent))
    org = programs.organization_of(unit, task.get("owner"))
    fitting = [s for s in programs.services(unit, org) if _offers(s, schedule, tracks)] if org else []
    result.service = fitting[0] if fitting else None
    result.schedule = schedule or (next(iter(records.extension_codes(result.service, "schedule-track")), None)
                                   if result.service else None)
    result.checks.append(_track(fitting, schedule, tracks))
    result.checks.append(_insurance(unit, sr, fitting))
    result.checks.append(_seat(unit, org, result))
    return result


def _offers(service: dict, schedule: str | None, tracks: set[str]) -> bool:
    """The track runs on the requested schedule and offers at least one requested specialized track (best fit)."""
    offered = records.extension_codes(service, "schedule-track")
    specialized = records.extension_codes(service, "specialized-track")
    return (schedule is None or schedule in offered) and (not tracks or bool(tracks & specialized))


def _clinical(unit: Unit, sr: dict) -> Check:
    """Triage findings sent with the referral (Observation, valueBoolean), newest first."""
    findings = _findings(unit, sr)
    if findings.get("needs-24h-supervision") is True:
        return Check("medically-stable", "fail", "The referral says the patient needs 24-hour supervision "
                     "(a residential or inpatient level of care, not an IOP)")
    if findings.get("medically-stable") is False:
        return Check("medically-stable", "fail", "The referral says the patient is not medically stable for outpatient care")
    if findings.get("medically-stable") is True and findings.get("needs-24h-supervision") is False:
        return Check("medically-stable", "pass", "Medically stable; does not need 24-hour supervision")
    return Check("medically-stable", "unknown", "The referral has no triage findings on medical stability and "
                 "24-hour supervision (Observations coded iop-eligibility#medically-stable and #needs-24h-supervision)")


def _findings(unit: Unit, sr: dict) -> dict[str, bool]:
    out: dict[str, bool] = {}
    refs = [r for r in sr.get("supportingInfo", []) + sr.get("reasonReference", [])
            if (records.ref_text(r) or "").startswith("Observation/")]
    for obs in filter(None, (records.read(unit, r) for r in refs)):
        for system, code in records.codes(obs.get("code")):
            if system == CHECKS and isinstance(obs.get("valueBoolean"), bool) and obs.get("status") in ("final", "amended"):
                out.setdefault(code, obs["valueBoolean"])
    return out


def _age(patient: dict, sr: dict, adolescent: bool) -> Check:
    born = patient.get("birthDate")
    start = (sr.get("occurrenceDateTime") or (sr.get("occurrencePeriod") or {}).get("start") or date.today().isoformat())[:10]
    if not isinstance(born, str) or len(born) < 4:
        return Check("age-fit", "unknown", "The patient's birth date is not known")
    age = _years(born, start)
    if adolescent and not 12 <= age <= 17:
        return Check("age-fit", "fail", f"The adolescent track is for ages 12 to 17; the patient will be {age}")
    if not adolescent and age < 18:
        return Check("age-fit", "fail", f"Adult tracks are for ages 18 and over; the patient will be {age}: refer to the adolescent track")
    return Check("age-fit", "pass", f"Age {age} fits the {'adolescent' if adolescent else 'adult'} track")


def _years(born: str, on: str) -> int:
    b, o = (born + "-01-01")[:10], on[:10]
    return int(o[:4]) - int(b[:4]) - ((o[5:10] or "01-01") < (b[5:10] or "01-01"))


def _track(fitting: list[dict], schedule: str | None, tracks: set[str]) -> Check:
    wanted = ", ".join(filter(None, [schedule, *sorted(tracks)])) or "any track"
    if fitting:
        missing = tracks - records.extension_codes(fitting[0], "specialized-track")
        note = f"; not offered: {', '.join(sorted(missing))}" if missing else ""
        return Check("track-fit", "pass", f"Offered: {fitting[0].get('name', 'HealthcareService/' + fitting[0]['id'])} ({wanted}{note})")
    return Check("track-fit", "fail", f"The program offers no active track for: {wanted}")


def _insurance(unit: Unit, sr: dict, fitting: list[dict]) -> Check:
    coverage = next((c for c in (records.read(unit, r) for r in sr.get("insurance", [])) if c), None)
    if coverage is None:
        return Check("insurance-in-network", "unknown", "The referral names no Coverage")
    payers = {records.ref_text(p) for p in coverage.get("payor", [])} - {None}
    accepted = {records.ref_text(v) for s in fitting for v in records.extension_values(s, "accepted-payer")} - {None}
    if not accepted:
        return Check("insurance-in-network", "unknown", "The program's tracks list no accepted payers")
    if payers & accepted:
        return Check("insurance-in-network", "pass", f"Payer {sorted(payers & accepted)[0]} is in network")
    return Check("insurance-in-network", "fail", f"Payer {', '.join(sorted(payers)) or '(none)'} is not in network")


def _seat(unit: Unit, org: dict | None, result: Assessment) -> Check:
    """Open seats of the fitting track, from its rosters (service/seats.py: the directory shows the same figure)."""
    capacity = next(iter(records.extension_values(result.service, "seat-capacity")), None) if result.service else None
    if not isinstance(capacity, int) or org is None:
        return Check("seat-available", "unknown", "The track states no seat capacity")
    unit.flush()  # the rosters this unit wrote count too
    free = seats.open_seats(unit.conn, result.service["id"])
    if free is not None and free > 0:
        return Check("seat-available", "pass", f"{free} of {capacity} seats free")
    return Check("seat-available", "fail", f"All {capacity} seats are taken: the patient would wait for a seat")


def as_parameters(result: Assessment) -> dict:
    """The proposal as a Parameters resource: decision, then one part per check."""
    params = [{"name": "decision", "valueCode": result.decision}]
    for c in result.checks:
        params.append({"name": "check", "part": [
            {"name": "code", "valueCoding": records.coding(CHECKS, c.code, DISPLAY[c.code])},
            {"name": "outcome", "valueCode": c.outcome}, {"name": "detail", "valueString": c.detail}]})
    if result.service:
        params.append({"name": "track", "valueReference": {"reference": f"HealthcareService/{result.service['id']}"}})
    return {"resourceType": "Parameters", "parameter": params}
