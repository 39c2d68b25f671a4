"""Goal achievement follows the measured scores (HL7 goal-achievement codes), never what was typed.

Whenever a measurement is written (an instrument total scored from a response or posted directly, or a local IOP
measure such as days abstinent or weekly attended hours, valueInteger or valueQuantity), the patient's active Goals
whose target.measure is that code get the achievementStatus its two latest values give:
- latest meets the target: `achieved`, or `sustaining` when the score before it met it too;
- otherwise, against the score before: `improving` (closer to the target), `worsening` (further), `no-change`;
  with a single score: `in-progress`.
A Goal written with an achievementStatus that contradicts its scores is rewritten to the scores' status in the same
transaction (the scores win; nothing is refused, so a tailored plan is never blocked); a Goal without scores keeps
what staff set. A Goal gets a new version only when its status moves. docs/outcome-measures.md.
"""
from __future__ import annotations

from .. import dates
from ..interactions import Change, Unit
from . import lookups, records, trigger

ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
DISPLAYS = {"in-progress": "In Progress", "improving": "Improving", "worsening": "Worsening", "no-change": "No Change",
            "achieved": "Achieved", "sustaining": "Sustaining"}
LOINC = "http://loinc.org"
SCORES = ("44261-6", "70274-6", "75626-2", "101698-9")  # the instruments' integer totals (LOINC)
IOP_MEASURE = f"{records.CS}/iop-measure"  # local measures with no LOINC code (days abstinent, attended hours ...)
MEASURES = frozenset({(LOINC, c) for c in SCORES} | {(IOP_MEASURE, c) for c in (
    "days-abstinent", "attended-hours-week", "mutual-support-meetings-week", "coping-strategy-uses-week")})
OPEN = "active,accepted"  # lifecycle states whose achievement still moves
VALID = ("final", "amended", "corrected")
COMPARE = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


@trigger("Observation")
def on_score(unit: Unit, change: Change) -> None:
    obs = records.parsed(change.stored)
    code = measure_code(obs.get("code")) if obs else None
    patient = records.ref_text(obs.get("subject")) if code else None
    if not patient or not patient.startswith("Patient/"):
        return
    stored = lookups.patient_records(unit, patient.split("/", 1)[1])  # one query, shared with the scorer
    goals = [g for g in lookups.current(unit, "Goal", stored["Goal"])  # the unit's own Goals may be anyone's
             if records.ref_text(g.get("subject")) == patient and g.get("lifecycleStatus") in OPEN.split(",") and _target(g, code)]
    if goals:
        scores = _latest(lookups.current(unit, "Observation", stored["Observation"]), patient, code)
        for goal in goals:
            _follow(unit, goal, code, scores)


@trigger("Goal")
def on_goal(unit: Unit, change: Change) -> None:
    if (change.stored.id, change.stored.version) in records.memo(unit).get("goals_followed", set()):
        return  # written by on_score from the scores themselves
    goal = records.parsed(change.stored)
    patient = records.ref_text(goal.get("subject")) if goal else None
    if not patient or goal.get("lifecycleStatus") not in OPEN.split(","):
        return
    for target in goal.get("target", []):
        code = measure_code(target.get("measure"))
        if code:
            _follow(unit, goal, code, latest_scores(unit, patient, code))
            return


def latest_scores(unit: Unit, patient: str, code: tuple[str, str]) -> list[tuple[float, str]]:
    """(score, Observation id) of the patient's two latest valid scores with this code by effective date, latest first
    (a late entry of an older score does not count as the latest)."""
    stored = lookups.patient_records(unit, patient.split("/", 1)[1])["Observation"]
    return _latest(lookups.current(unit, "Observation", stored), patient, code)


def _latest(observations: list[dict], patient: str, code: tuple[str, str]) -> list[tuple[float, str]]:
    scored = [(effective(obs), value, obs["id"]) for obs in observations
              if _is_score(obs, patient, code) and (value := measured(obs)) is not None]
    return [(value, rid) for _, value, rid in sorted(scored, reverse=True)[:2]]


def _is_score(obs: dict, patient: str, code: tuple[str, str]) -> bool:
    return records.ref_text(obs.get("subject")) == patient and measure_code(obs.get("code")) == code and obs.get("status") in VALID


def effective(obs: dict) -> str:
    """When a score was measured, as a sortable UTC instant (effectiveDateTime, else effectivePeriod.start)."""
    when = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or ""
    try:
        return dates.instant(dates.parse_range(when)[0]) if when else ""
    except ValueError:
        return when


def achievement(target: dict, scores: list[tuple[float, str]]) -> str | None:
    """The goal-achievement code two latest scores give for one target (None: no score, or a target we cannot read)."""
    if not scores or _distance(target, scores[0][0]) is None:
        return None
    latest = _distance(target, scores[0][0])
    before = _distance(target, scores[1][0]) if len(scores) > 1 else None
    if latest == 0:
        return "sustaining" if before == 0 else "achieved"
    if before is None:
        return "in-progress"
    return "improving" if latest < before else "worsening" if latest > before else "no-change"


def _follow(unit: Unit, goal: dict, code: tuple[str, str], scores: list[tuple[float, str]]) -> None:
    status = achievement(_target(goal, code), scores)
    if status is None or (ACHIEVEMENT, status) in records.codes(goal.get("achievementStatus")):
        return
    wanted = dict(goal, achievementStatus={"coding": [records.coding(ACHIEVEMENT, status, DISPLAYS[status])]})
    written = records.save(unit, wanted).stored
    records.memo(unit).setdefault("goals_followed", set()).add((written.id, written.version))


def _distance(target: dict, value: float) -> float | None:
    """How far a score is from the target's detail (0: met); None for a detail we cannot compare."""
    if "detailRange" in target:
        low, high = (target["detailRange"].get(k, {}).get("value") for k in ("low", "high"))
        return max(0.0, (low - value) if low is not None else 0.0, (value - high) if high is not None else 0.0)
    quantity = target.get("detailQuantity")
    if isinstance(quantity, dict) and isinstance(quantity.get("value"), (int, float)):
        bound, comparator = float(quantity["value"]), quantity.get("comparator")
        if comparator is None:
            return abs(value - bound)
        return 0.0 if COMPARE[comparator](value, bound) else abs(value - bound) + (1.0 if comparator in ("<", ">") else 0.0)
    if isinstance(target.get("detailInteger"), int):
        return abs(value - target["detailInteger"])
    return None


def measure_code(concept: object) -> tuple[str, str] | None:
    """(system, code) of a measure goals can target, from a CodeableConcept."""
    return next((pair for pair in sorted(records.codes(concept), key=str) if pair in MEASURES), None)


def measured(obs: dict) -> float | None:
    """An Observation's numeric value: valueInteger, or valueQuantity.value (hours, days)."""
    if isinstance(obs.get("valueInteger"), int) and not isinstance(obs.get("valueInteger"), bool):
        return float(obs["valueInteger"])
    value = (obs.get("valueQuantity") or {}).get("value")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _target(goal: dict, code: tuple[str, str]) -> dict | None:
    return next((t for t in goal.get("target", []) if measure_code(t.get("measure")) == code), None)


