"""FHIR Task's state machine for referral Tasks, and the referral steps shown in businessStatus.

Edges follow the R4 Task state machine (https://hl7.org/fhir/R4/task.html#statemachine) as the Gravity
referral IG draws it (domain brief §1.4), keeping BSeR's `received`: requested → received → accepted or
rejected → in-progress → completed, with on-hold, cancelled and failed; entered-in-error from anywhere.
"""
from __future__ import annotations

from ..errors import Unprocessable
from .records import CS, coding

BSER = "http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS"
STEP = f"{CS}/iop-referral-step"

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("requested", "cancelled"),
    "requested": ("received", "accepted", "rejected", "cancelled"),
    "received": ("accepted", "rejected", "cancelled"),
    "accepted": ("in-progress", "on-hold", "completed", "failed", "cancelled"),
    "ready": ("in-progress", "on-hold", "cancelled", "failed"),
    "in-progress": ("on-hold", "completed", "failed", "cancelled"),
    "on-hold": ("in-progress", "completed", "failed", "cancelled"),
    "rejected": (), "cancelled": (), "failed": (), "completed": (), "entered-in-error": (),
}

# step code: (display, BSeR code and display or None)
STEPS: dict[str, tuple[str, tuple[str, str] | None]] = {
    "received": ("Received", ("2.0", "Service Request Created")),
    "under-review": ("Under review", None),
    "eligibility-checked": ("Eligibility checked", None),
    "accepted": ("Accepted", ("3.0", "Service Request Accepted")),
    "declined": ("Declined", ("4.0", "Service Request Declined")),
    "intake-scheduled": ("Intake scheduled", ("5.1.1", "Service Request Event Scheduled")),
    "no-show": ("No-show", ("5.1.2", "Scheduled Service Request Event Unattended")),
    "admitted": ("Admitted", ("5.1.4", "Service Request Event Completed")),
    "completed": ("Completed", ("7.0", "Service Request Fulfillment Completed")),
    "cancelled": ("Cancelled", ("6.0", "Service Request Fulfillment Cancelled")),
}


def allowed(status: str) -> tuple[str, ...]:
    """Statuses a Task in `status` may move to (entered-in-error is always allowed from a live status)."""
    nexts = TRANSITIONS.get(status, ())
    return nexts + ("entered-in-error",) if status != "entered-in-error" else ()


def check_transition(before: str, after: str) -> None:
    """422 naming the allowed next statuses when `before` → `after` is not an edge of the state machine."""
    if before == after or after in allowed(before):
        return
    nexts = ", ".join(allowed(before)) or "none (it is final)"
    raise Unprocessable(f"A referral Task cannot go from '{before}' to '{after}'; from '{before}' it may go to: {nexts}",
                        code="business-rule", expression="Task.status")


def business_status(step: str, text: str | None = None) -> dict:
    """Task.businessStatus for a referral step: our step code plus the BSeR / 360X code where there is one."""
    display, bser = STEPS[step]
    concept: dict = {"coding": [coding(STEP, step, display)]}
    if bser:
        concept["coding"].append(coding(BSER, bser[0], bser[1]))
    concept["text"] = text or display
    return concept


def step_of(task: dict) -> str | None:
    """The referral step a Task's businessStatus records, if any."""
    for c in (task.get("businessStatus") or {}).get("coding", []):
        if isinstance(c, dict) and c.get("system") == STEP:
            return c.get("code")
    return None
