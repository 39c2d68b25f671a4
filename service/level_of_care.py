"""An enrollment's level of care over time (PHP → IOP → OP and back up) and the readmission link, read from the
EpisodeOfCare itself.

The current level is the `level-of-care` extension (iop-enrollment); each change is one `level-of-care-change`
extension (level, date, reason, decidedBy: who decided), kept on the episode like `statusHistory`, so one read shows
the whole history and a version of the episode is the record of each decision (profiles/input/fsh/
program-operations-intensity.fsh). A discharged patient who comes back gets a new episode with `readmission-of`
pointing at the finished one (the fast path: no new referral or triage). Rules checked on every write:
workflows/intensity_rules.py. ASAM levels: domain brief §4.1.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .conformance import CANONICAL

SD = f"{CANONICAL}/StructureDefinition"
LEVEL = f"{SD}/level-of-care"
CHANGE = f"{SD}/level-of-care-change"
READMISSION_OF = f"{SD}/readmission-of"
LEVEL_SYSTEM = f"{CANONICAL}/CodeSystem/level-of-care"

# Where the weekly-hours flags apply: the intensive outpatient levels (ASAM 2.1, 9-19 h adults, 6-19 adolescents).
IOP_LEVELS = frozenset({"asam-2.1", "mh-iop"})


@dataclass(frozen=True)
class Change:
    """One level-of-care decision: the level in force from `on`, why, and who decided."""

    level: str | None
    on: str | None  # FHIR date or dateTime as sent
    reason: dict | None
    decided_by: dict | None


def current_level(episode: dict) -> str | None:
    """The episode's current level code (our level-of-care code system)."""
    for ext in _extensions(episode, LEVEL):
        return _code(ext.get("valueCodeableConcept"))
    return None


def changes(episode: dict) -> list[Change]:
    """The level-of-care-change entries in the order they were written."""
    out = []
    for ext in _extensions(episode, CHANGE):
        parts = {p.get("url"): p for p in ext.get("extension", []) if isinstance(p, dict)}
        out.append(Change(_code((parts.get("level") or {}).get("valueCodeableConcept")),
                          (parts.get("date") or {}).get("valueDateTime") or (parts.get("date") or {}).get("valueDate"),
                          (parts.get("reason") or {}).get("valueCodeableConcept"),
                          (parts.get("decidedBy") or {}).get("valueReference")))
    return out


def level_on(episode: dict, day: date) -> str | None:
    """The level in force on `day`: the last change dated on or before it; before the first change, its level at
    admission (the first change's level when the history starts at admission, else the current level)."""
    history = [c for c in changes(episode) if c.on and c.level]
    if not history:
        return current_level(episode)
    in_force = [c.level for c in history if c.on[:10] <= day.isoformat()]
    return in_force[-1] if in_force else history[0].level


def readmission_of(episode: dict) -> str | None:
    """'EpisodeOfCare/id' of the finished episode this one re-enters after, if any."""
    for ext in _extensions(episode, READMISSION_OF):
        ref = ext.get("valueReference")
        return ref.get("reference") if isinstance(ref, dict) else None
    return None


def is_iop(level: str | None) -> bool:
    return level in IOP_LEVELS


def _extensions(resource: dict, url: str) -> list[dict]:
    return [e for e in resource.get("extension", []) if isinstance(e, dict) and e.get("url") == url]


def _code(concept: object) -> str | None:
    if not isinstance(concept, dict):
        return None
    return next((c.get("code") for c in concept.get("coding", []) if isinstance(c, dict) and c.get("system") == LEVEL_SYSTEM),
                None)
