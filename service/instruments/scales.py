"""Summed scales: PHQ-9, GAD-7, AUDIT-C and PCL-5 (the total is the sum of the items' ordinal values).

Bands and cut-points as the instruments' authors publish them:
- PHQ-9 (Kroenke, Spitzer & Williams 2001): 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe,
  20-27 severe; item 9 (thoughts of death or self-harm) above 0 is a safety alert whatever the total.
- GAD-7 (Spitzer et al. 2006): 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe.
- AUDIT-C (Bush et al. 1998; Bradley et al. 2007): positive at 4 or more for men, 3 or more for women; for any other
  or unknown administrative gender the lower (women's) threshold, so that no positive screen is missed.
- PCL-5 (National Center for PTSD): 0-80, a score of 33 or more is a positive screen (probable PTSD).
"""
from __future__ import annotations

from ..conformance import CANONICAL
from .questionnaire import Option, Result, Rules

LOINC = "http://loinc.org"
BAND = f"{CANONICAL}/CodeSystem/iop-score-band"
V3_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
PHQ9_ITEM9 = "44260-8"

PHQ9_BANDS = ((4, "minimal", "Minimal"), (9, "mild", "Mild"), (14, "moderate", "Moderate"),
              (19, "moderately-severe", "Moderately severe"), (27, "severe", "Severe"))
GAD7_BANDS = ((4, "minimal", "Minimal"), (9, "mild", "Mild"), (14, "moderate", "Moderate"), (21, "severe", "Severe"))
AUDITC_THRESHOLD = {"male": 4}  # everyone else: 3
PCL5_CUT_POINT = 33


def total(answers: dict[str, Option]) -> int:
    return sum(o.score or 0 for o in answers.values())


def band(score: int, bands: tuple, noun: str) -> dict:
    """The severity band of a total as a coded interpretation: 'Moderate depression (10-14)'."""
    low = 0
    for high, code, display in bands:
        if score <= high:
            return {"coding": [{"system": BAND, "code": code, "display": display}],
                    "text": f"{display} {noun} ({low}-{high})"}
        low = high + 1
    raise ValueError(f"score {score} is outside the bands")


def screen(positive: bool, text: str) -> dict:
    code, display = ("POS", "Positive") if positive else ("NEG", "Negative")
    return {"coding": [{"system": V3_INTERPRETATION, "code": code, "display": display}], "text": text}


def _phq9(answers: dict[str, Option], sex: str | None) -> Result:
    score, item9 = total(answers), answers[PHQ9_ITEM9]
    alert = f"PHQ-9 item 9 (thoughts of death or self-harm) answered '{item9.display}'" if (item9.score or 0) > 0 else None
    return Result(PHQ9.code, PHQ9.profile, score, [band(score, PHQ9_BANDS, "depression")], alert)


def _gad7(answers: dict[str, Option], sex: str | None) -> Result:
    score = total(answers)
    return Result(GAD7.code, GAD7.profile, score, [band(score, GAD7_BANDS, "anxiety")])


def _auditc(answers: dict[str, Option], sex: str | None) -> Result:
    score, threshold = total(answers), AUDITC_THRESHOLD.get(sex or "", 3)
    positive = score >= threshold
    who = "men" if threshold == 4 else "women" if sex == "female" else "other or unknown sex (women's threshold)"
    text = f"{'Positive' if positive else 'Negative'} screen (threshold {threshold} for {who})"
    return Result(AUDITC.code, AUDITC.profile, score, [screen(positive, text)])


def _pcl5(answers: dict[str, Option], sex: str | None) -> Result:
    score = total(answers)
    positive = score >= PCL5_CUT_POINT
    text = f"{'Positive' if positive else 'Negative'} screen for probable PTSD (cut-point {PCL5_CUT_POINT})"
    return Result(PCL5.code, PCL5.profile, score, [screen(positive, text)])


PHQ9 = Rules((LOINC, "44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"), "iop-phq9", _phq9)
GAD7 = Rules((LOINC, "70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"), "iop-gad7", _gad7)
AUDITC = Rules((LOINC, "75626-2", "Total score [AUDIT-C]"), "iop-auditc", _auditc, needs_sex=True)
PCL5 = Rules((LOINC, "101698-9", "PTSD PCL-5 score"), "iop-pcl5", _pcl5)
RULES = {"iop-phq9": PHQ9, "iop-gad7": GAD7, "iop-auditc": AUDITC, "iop-pcl5": PCL5}
