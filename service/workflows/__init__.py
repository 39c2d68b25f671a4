"""Workflows: domain rules that react to the changes of a unit of work, before it commits.

`run(unit)` hands each new Change to the triggers registered for its resource type. A trigger may
write through the normal interactions (validated, stored, and itself a Change), so runs repeat until
no new Change appears, in bounded passes (architecture.md §5: workflow loops). Each trigger must be
idempotent: a resent Bundle or a replayed pull makes no second Task, episode or appointment.
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import Unprocessable
from ..interactions import Change, Unit

Trigger = Callable[[Unit, Change], None]
TRIGGERS: dict[str, list[Trigger]] = {}
MAX_PASSES = 8


def trigger(rtype: str) -> Callable[[Trigger], Trigger]:
    """Register a function run for every Change of `rtype` in a unit."""
    def register(fn: Trigger) -> Trigger:
        TRIGGERS.setdefault(rtype, []).append(fn)
        return fn
    return register


def run(unit: Unit) -> None:
    """Run the triggers for every Change not yet seen, until none is left."""
    done = 0
    for _ in range(MAX_PASSES):
        pending = unit.changes[done:]
        if not pending:
            return
        done = len(unit.changes)
        for change in pending:
            for fn in TRIGGERS.get(change.stored.type, ()):
                fn(unit, change)
    raise Unprocessable(f"Workflows kept changing resources after {MAX_PASSES} passes; nothing was stored", code="business-rule")


# The order of these imports is the order in which triggers of one type run (registration order): keep it.
# ruff: noqa: I001
from . import referral  # noqa: E402,F401  (registers the referral triggers)
from . import medications  # noqa: E402,F401  (MedicationRequest status machine, issue 10)
from . import scoring, goals  # noqa: E402,F401  (outcome measures: scoring, safety alerts, goal achievement; issue 10 part A)
from . import rosters  # noqa: E402,F401  (discharge ends roster membership, issue 9)
from . import intensity_rules  # noqa: E402,F401  (level-of-care history, readmission, certification rules, issue 9 part B)
from . import aftercare  # noqa: E402,F401  (discharge to aftercare and closing the loop, issue 6)
from . import followup  # noqa: E402,F401  (discharge summary, 30/60/90-day follow-ups, alumni group, issue 10)
from . import careplans, case_management  # noqa: E402,F401  (care plan agreement and reviews, case management referrals; issue 10 part B)
