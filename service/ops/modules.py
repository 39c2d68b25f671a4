"""The modules that register operations (service/ops): one import line each."""
# ruff: noqa: F401
from .. import discharge_summary, medication_due, program_outcomes, reconciliation  # issue 10 part C
from .. import sessions_ops  # Group/$schedule-sessions, Appointment/$record-attendance (issue 9)
from .. import trends  # EpisodeOfCare/$score-trends (issue 10 part A)
from .. import intensity, census, certification  # EpisodeOfCare/$hours, $census, $recertification-due (issue 9 part B)
from .. import plan_apply, careplan_reviews  # PlanDefinition/$apply, CarePlan/$review-due (issue 10 part B)
