"""The C-SSRS screener (Columbia Suicide Severity Rating Scale, screen version - recent; LOINC panel 93373-9).

It has no numeric total: the service derives the risk level (LOINC 93374-7) from the yes/no answers the way the
Columbia triage does: high for yes to question 4 (intent) or 5 (plan), or to 6 (behavior) within the past 3 months
(question 7); moderate for yes to 3 (method) or to 6 longer ago; otherwise low (LOINC LA9194-7). Moderate and high
are positive screens and raise a safety alert (domain brief 4.4: "C-SSRS risk not low").
"""
from __future__ import annotations

from ..conformance import CANONICAL
from .questionnaire import Option, Result, Rules

LOINC = "http://loinc.org"
RISK = f"{CANONICAL}/CodeSystem/iop-cssrs-risk"
YES = "LA33-6"
METHOD, INTENT, PLAN, BEHAVIOR, RECENT = "93248-3", "93249-1", "93250-9", "93267-3", "93269-9"
LEVELS = {"low": {"system": LOINC, "code": "LA9194-7", "display": "Low"},
          "moderate": {"system": RISK, "code": "moderate", "display": "Moderate risk"},
          "high": {"system": RISK, "code": "high", "display": "High risk"}}


def level(answers: dict[str, Option]) -> str:
    def yes(link: str) -> bool:
        return link in answers and answers[link].code == YES

    if yes(INTENT) or yes(PLAN) or (yes(BEHAVIOR) and yes(RECENT)):
        return "high"
    if yes(METHOD) or yes(BEHAVIOR):
        return "moderate"
    return "low"


def _score(answers: dict[str, Option], sex: str | None) -> Result:
    risk = level(answers)
    coding = LEVELS[risk]
    endorsed = [link for link, option in answers.items() if option.code == YES]
    text = f"C-SSRS screener: {coding['display'].lower()}" + (f" (yes to {', '.join(endorsed)})" if endorsed else " (no item endorsed)")
    alert = f"C-SSRS screener positive: {coding['display'].lower()}" if risk != "low" else None
    return Result(CSSRS.code, CSSRS.profile, {"coding": [coding], "text": coding["display"]}, [{"text": text}], alert)


CSSRS = Rules((LOINC, "93374-7", "Suicide risk level"), "iop-cssrs", _score)
RULES = {"iop-cssrs": CSSRS}
