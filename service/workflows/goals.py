"""Goal achievement follows the measured scores (HL7 goal-achievement codes), never what was typed.

Whenever a score Observation is written (scored from a response or posted directly), the patient's active Goals whose
target.measure is that score's LOINC code get the achievementStatus its two latest scores give:
- latest meets the target: `achieved`, or `sustaining` when the score before it met it too;
- otherwise, against the score before: `improving` (closer to the target), `worsening` (further), `no-change`;
  with a single score: `in-progress`.
A Goal written with an achievementStatus that contradicts its scores is rewritten to the scores' status in the same
transaction (the scores win; nothing is refused, so a tailored plan is never blocked); a Goal without scores keeps
what staff set. Goal.outcomeReference points at the latest score. docs/outcome-measures.md.
"""
from __future__ import annotations

import json

from .. import dates
from ..interactions import Change, Unit
from . import records, trigger

ACHIEVEMENT = "http://terminology.hl7.org/CodeSystem/goal-achievement"
DISPLAYS = {"in-progress": "In Progress", "improving": "Improving", "worsening": "Worsening", "no-change": "No Change",
            "achieved": "Achieved", "sustaining": "Sustaining"}
LOINC = "http://loinc.org"
MEASURES = frozenset({"44261-6", "70274-6", "75626-2", "101698-9"})  # integer totals a Goal can target
OPEN = "active,accepted"  # lifecycle states whose achievement still moves
VALID = ("final", "amended", "corrected")
MAX_SCORES = 1000
COMPARE = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}


@trigger("Observation")
def on_score(unit: Unit, change: Change) -> None:
    obs = records.parsed(change.stored)
    code = measure_code(obs.get("code")) if obs else None
    patient = records.ref_text(obs.get("subject")) if code else None
    if not patient or not patient.startswith("Patient/"):
        return
    goals = [g for g in _goals(unit, patient) if _target(g, code)]
    if goals:
        scores = latest_scores(unit, patient, code)
        for goal in goals:
            _follow(unit, goal, code, scores)


@trigger("Goal")
def on_goal(unit: Unit, change: Change) -> None:
    goal = records.parsed(change.stored)
    patient = records.ref_text(goal.get("subject")) if goal else None
    if not patient or goal.get("lifecycleStatus") not in OPEN.split(","):
        return
    for target in goal.get("target", []):
        code = measure_code(target.get("measure"))
        if code:
            _follow(unit, goal, code, latest_scores(unit, patient, code))
            return


def latest_scores(unit: Unit, patient: str, code: str) -> list[tuple[float, str]]:
    """(score, Observation id) of the patient's two latest valid scores with this code by effective date, latest first
    (a late entry of an older score does not count as the latest)."""
    rows = unit.find("Observation", f"patient={patient}&code={LOINC}|{code}&status={','.join(VALID)}", limit=MAX_SCORES)
    scored = [(effective(obs), float(obs["valueInteger"]), row.id) for row in rows
              if isinstance((obs := json.loads(row.content)).get("valueInteger"), int)]
    return [(value, rid) for _, value, rid in sorted(scored, reverse=True)[:2]]


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


def _follow(unit: Unit, goal: dict, code: str, scores: list[tuple[float, str]]) -> None:
    status = achievement(_target(goal, code), scores)
    if status is None:
        return
    wanted = dict(goal, achievementStatus={"coding": [records.coding(ACHIEVEMENT, status, DISPLAYS[status])]},
                  outcomeReference=[{"reference": f"Observation/{scores[0][1]}"}])
    if _essence(wanted) != _essence(goal):
        records.save(unit, wanted)


def _essence(goal: dict) -> tuple:
    codes = sorted(c for _, c in records.codes(goal.get("achievementStatus")))
    return codes, [records.ref_text(r) for r in goal.get("outcomeReference", [])]


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


def measure_code(concept: object) -> str | None:
    return next((code for system, code in records.codes(concept) if system == LOINC and code in MEASURES), None)


def _target(goal: dict, code: str) -> dict | None:
    return next((t for t in goal.get("target", []) if measure_code(t.get("measure")) == code), None)


def _goals(unit: Unit, patient: str) -> list[dict]:
    rows = unit.find("Goal", f"patient={patient}&lifecycle-status={OPEN}", limit=50)
    return [json.loads(row.content) for row in rows]
