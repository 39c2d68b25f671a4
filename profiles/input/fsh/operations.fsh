// Operations of the referral workflow (local: FHIR R4 defines no operation for referral triage).

Instance: Task-triage
InstanceOf: OperationDefinition
Usage: #definition
Title: "Triage a referral"
* url = "https://iop.example.org/fhir/OperationDefinition/Task-triage"
* name = "TaskTriage"
* title = "Triage a referral"
* status = #draft
* kind = #operation
* description = "Checks a referral's eligibility for the program (medically stable and not needing 24-hour supervision, age and track fit, insurance in network, a free seat in the requested track and schedule), records on the Task that eligibility was checked (status received, businessStatus eligibility-checked) and returns the proposed decision with one part per check. Staff then decide with $decide."
* code = #triage
* resource = #Task
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #decision
* parameter[0].use = #out
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #code
* parameter[0].documentation = "accept | waitlist | decline | review (a check could not be made from the data sent)"
* parameter[1].name = #check
* parameter[1].use = #out
* parameter[1].min = 1
* parameter[1].max = "*"
* parameter[1].documentation = "One per eligibility check"
* parameter[1].part[0].name = #code
* parameter[1].part[0].use = #out
* parameter[1].part[0].min = 1
* parameter[1].part[0].max = "1"
* parameter[1].part[0].type = #Coding
* parameter[1].part[0].documentation = "The check (iop-eligibility code system)"
* parameter[1].part[1].name = #outcome
* parameter[1].part[1].use = #out
* parameter[1].part[1].min = 1
* parameter[1].part[1].max = "1"
* parameter[1].part[1].type = #code
* parameter[1].part[1].documentation = "pass | fail | unknown"
* parameter[1].part[2].name = #detail
* parameter[1].part[2].use = #out
* parameter[1].part[2].min = 1
* parameter[1].part[2].max = "1"
* parameter[1].part[2].type = #string
* parameter[1].part[2].documentation = "Why, in words"
* parameter[2].name = #track
* parameter[2].use = #out
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #Reference
* parameter[2].documentation = "The HealthcareService (track) that fits the referral"
* parameter[3].name = #task
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #Reference
* parameter[3].documentation = "The referral Task"

Instance: Task-decide
InstanceOf: OperationDefinition
Usage: #definition
Title: "Decide on a referral"
* url = "https://iop.example.org/fhir/OperationDefinition/Task-decide"
* name = "TaskDecide"
* title = "Decide on a referral"
* status = #draft
* kind = #operation
* description = "Records the staff decision on a referral Task, confirming or overriding the proposal of $triage: accepted (with an enrollment, planned when a seat is free or else waitlist, and an intake Appointment when intakeStart is given) or rejected (statusReason with the failed checks and the reason). A Provenance records who decided, when and why. A decline, or a decision against the proposal, needs a reason. Returns the Task."
* code = #decide
* resource = #Task
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #decision
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #code
* parameter[0].documentation = "accept | decline"
* parameter[1].name = #author
* parameter[1].use = #in
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #Reference
* parameter[1].documentation = "The deciding Practitioner or PractitionerRole"
* parameter[2].name = #reason
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #string
* parameter[2].documentation = "Why (required for a decline and for a decision against the proposal)"
* parameter[3].name = #intakeStart
* parameter[3].use = #in
* parameter[3].min = 0
* parameter[3].max = "1"
* parameter[3].type = #dateTime
* parameter[3].documentation = "Start of the intake appointment (with time and zone)"
* parameter[4].name = #intakeMinutes
* parameter[4].use = #in
* parameter[4].min = 0
* parameter[4].max = "1"
* parameter[4].type = #integer
* parameter[4].documentation = "Length of the intake appointment, 15 to 480 minutes (default 60)"
* parameter[5].name = #return
* parameter[5].use = #out
* parameter[5].min = 1
* parameter[5].max = "1"
* parameter[5].type = #Task
* parameter[5].documentation = "The Task as stored"

Instance: Task-referral-metrics
InstanceOf: OperationDefinition
Usage: #definition
Title: "Referral service-level figures"
* url = "https://iop.example.org/fhir/OperationDefinition/Task-referral-metrics"
* name = "TaskReferralMetrics"
* title = "Referral service-level figures"
* status = #draft
* kind = #operation
* description = "Reports a program's referral service levels for a period as a summary MeasureReport of Measure referral-service-levels: median hours to acknowledge, to decide and to the first session, and the share of first (intake) appointments kept, each with its population counts. The referrals counted are the fulfilment Tasks owned by the Organization (or a HealthcareService it provides) whose first version was stored in the period. Read only: GET with the parameters in the query string, or POST a Parameters resource."
* code = #referral-metrics
* resource = #Task
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #owner
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "The program: Organization/[id] (referral Tasks owned by its HealthcareServices are included)"
* parameter[1].name = #period-start
* parameter[1].use = #in
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "First day of the period (YYYY-MM-DD, YYYY-MM or YYYY; UTC days), inclusive"
* parameter[2].name = #period-end
* parameter[2].use = #in
* parameter[2].min = 1
* parameter[2].max = "1"
* parameter[2].type = #date
* parameter[2].documentation = "Last day of the period (YYYY-MM-DD, YYYY-MM or YYYY; UTC days), inclusive; not before period-start"
* parameter[3].name = #return
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #MeasureReport
* parameter[3].documentation = "The summary MeasureReport: one group per figure (iop-referral-measure codes)"
