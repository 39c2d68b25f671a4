"""The modules that register operations (service/ops): one import line each."""
# ruff: noqa: F401
from .. import (
    careplan_reviews,  # CarePlan/$review-due (issue 10)
    census,  # EpisodeOfCare/$census (issue 9)
    certification,  # EpisodeOfCare/$recertification-due (issue 9)
    discharge_summary,  # EpisodeOfCare/$discharge-summary (issue 10)
    intensity,  # EpisodeOfCare/$hours (issue 9)
    medication_due,  # MedicationRequest/$due (issue 10)
    plan_apply,  # PlanDefinition/$apply (issue 10)
    program_outcomes,  # EpisodeOfCare/$program-outcomes (issue 10)
    reconciliation,  # EpisodeOfCare/$reconcile-medications (issue 10)
    sessions_ops,  # Group/$schedule-sessions, Appointment/$record-attendance (issue 9)
    trends,  # EpisodeOfCare/$score-trends (issue 10)
)
