"""Medication orders: the MedicationRequest status machine and the schedule a long-acting injection needs.

The R4 MedicationRequest status codes (https://hl7.org/fhir/R4/valueset-medicationrequest-status.html) have no
drawn state machine; the edges below follow their definitions: a draft becomes active or is cancelled; an active
order is put on hold, stopped, completed or cancelled; a held order resumes, is stopped or cancelled; stopped,
completed, cancelled and entered-in-error are final (a stopped medication restarts as a new order); any live
order may be marked entered-in-error. An illegal change is a 422 at MedicationRequest.status naming the allowed
next statuses, like the referral Task's (task_states.py).
"""
from __future__ import annotations

from ..errors import Unprocessable
from ..interactions import Change, Unit
from . import records, trigger

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("active", "cancelled"),
    "active": ("on-hold", "stopped", "completed", "cancelled"),
    "on-hold": ("active", "stopped", "completed", "cancelled"),
    "unknown": ("active", "on-hold", "stopped", "completed", "cancelled"),
    "stopped": (), "completed": (), "cancelled": (), "entered-in-error": (),
}
# Long-acting injectables given by staff on a schedule (domain brief §4.5): their next dose is due every
# dosageInstruction.timing.repeat period (extended-release naltrexone: every 4 weeks; buprenorphine ER: monthly).
INJECTABLES = {"637213": "naltrexone 380 MG Injection",
               "1996184": "buprenorphine 200 MG/ML Prefilled Syringe, 0.5 ML (extended-release injection)",
               "1996192": "buprenorphine 200 MG/ML Prefilled Syringe, 1.5 ML (extended-release injection)"}
LIVE = ("draft", "active", "on-hold", "unknown")


def allowed(status: str) -> tuple[str, ...]:
    """Statuses an order in `status` may move to (entered-in-error from any live status)."""
    nexts = TRANSITIONS.get(status, ())
    return nexts + ("entered-in-error",) if status in LIVE else nexts


def check_transition(before: str, after: str) -> None:
    """422 at MedicationRequest.status naming the allowed next statuses when before → after is not an edge."""
    if before == after or after in allowed(before):
        return
    nexts = ", ".join(allowed(before)) or "none (it is final; write a new order instead)"
    raise Unprocessable(f"A MedicationRequest cannot go from '{before}' to '{after}'; from '{before}' it may go to: {nexts}",
                        code="business-rule", expression="MedicationRequest.status")


def rxnorm_code(order: dict) -> str | None:
    """The order's RxNorm code (RXCUI), if it has one."""
    concept = order.get("medicationCodeableConcept")
    return next((code for system, code in records.codes(concept) if system == RXNORM), None)


def is_injectable(order: dict) -> bool:
    return rxnorm_code(order) in INJECTABLES


def interval_days(order: dict) -> float | None:
    """Days between doses from dosageInstruction[0].timing.repeat (period/periodUnit over frequency), if given."""
    dosage = (order.get("dosageInstruction") or [{}])[0]
    repeat = ((dosage.get("timing") or {}).get("repeat") or {}) if isinstance(dosage, dict) else {}
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    days = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}.get(unit) if isinstance(unit, str) else None
    if not isinstance(period, (int, float)) or period <= 0 or days is None:
        return None
    return period * days / max(repeat.get("frequency") or 1, 1)


@trigger("MedicationRequest")
def on_medication_request(unit: Unit, change: Change) -> None:
    """Legal status changes only; an active long-acting injection has a dosing interval to compute its next dose."""
    order = records.parsed(change.stored)
    if order is None:
        return
    before = records.parsed(change.previous)
    if before is not None and before.get("status") != order.get("status"):
        check_transition(before.get("status", "unknown"), order.get("status", "unknown"))
    if order.get("status") == "active" and is_injectable(order) and interval_days(order) is None:
        raise Unprocessable(f"{INJECTABLES[rxnorm_code(order) or '']} is a scheduled injection: give its interval in "
                            "dosageInstruction[0].timing.repeat (e.g. period 4, periodUnit wk) so the next dose can be due",
                            code="required", expression="MedicationRequest.dosageInstruction[0].timing.repeat")
