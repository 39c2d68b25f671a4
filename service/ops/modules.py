"""The modules that register operations (service/ops): one import line each."""
# ruff: noqa: F401
from .. import discharge_summary, medication_due, reconciliation  # $due, $reconcile-medications, $discharge-summary (issue 10)
from .. import sessions_ops  # Group/$schedule-sessions, Appointment/$record-attendance (issue 9)
from .. import trends  # EpisodeOfCare/$score-trends (issue 10 part A)
from .. import intensity, census, certification  # EpisodeOfCare/$hours, $census, $recertification-due (issue 9 part B)
from .. import plan_apply  # PlanDefinition/$apply (issue 10 part B)
