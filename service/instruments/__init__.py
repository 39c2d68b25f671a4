"""The outcome instruments the service scores: PHQ-9, GAD-7, AUDIT-C, PCL-5 and the C-SSRS screener.

Each instrument is a Questionnaire of our guide (profiles/input/fsh/treatment-measures.fsh), read here once: its
items, answer options and the score of each option (the R4 `ordinalValue` extension). The per-instrument rules
(bands, cut-points, risk levels, what raises a safety alert) are in `scales` and `cssrs`. docs/outcome-measures.md.
"""
from __future__ import annotations

from functools import cache

from .. import conformance
from .questionnaire import Instrument, Option, Result, answers

__all__ = ["Instrument", "Option", "Result", "answers", "by_canonical", "by_score_code", "instruments"]

QUESTIONNAIRE = f"{conformance.CANONICAL}/Questionnaire"


@cache
def instruments() -> dict[str, Instrument]:
    """Questionnaire canonical URL -> instrument, for every guide Questionnaire that has scoring rules."""
    from . import cssrs, scales

    rules = {**scales.RULES, **cssrs.RULES}
    out = {}
    for resource in conformance.registry().resources:
        if resource["resourceType"] == "Questionnaire" and resource["id"] in rules:
            out[resource["url"]] = Instrument.load(resource, rules[resource["id"]])
    return out


def by_canonical(canonical: object) -> Instrument | None:
    """The instrument a QuestionnaireResponse.questionnaire names (with or without |version), else None."""
    if not isinstance(canonical, str):
        return None
    return instruments().get(canonical.split("|", 1)[0])


def by_score_code(code: str) -> Instrument | None:
    """The instrument whose result has this LOINC code (44261-6, 70274-6, 75626-2, 101698-9, 93374-7)."""
    return next((i for i in instruments().values() if i.rules.code[1] == code), None)
