// Issue 10, part C: medication reconciliation, the injection and refill worklist, the discharge summary operation,
// aftercare follow-up and the program outcome figures. Docs: docs/treatment-medications.md.

// ------------------------------------------------------------------ medication reconciliation
Profile: IopMedicationReconciliation
Parent: List
Id: iop-medication-reconciliation
Title: "IOP Medication Reconciliation"
Description: "A reconciled medication list of an IOP enrollment, at intake (the referral's medications against what the program prescribes; LOINC 42346-7 Medications on admission) or at discharge (LOINC 75311-1 Discharge medications). One entry per medication with its reconciliation action in entry.flag (continued, changed, stopped, new); a stopped medication's entry is marked deleted, as List mode changes allows. source is who reconciled it and date when. Written by EpisodeOfCare/[id]/$reconcile-medications."
* ^status = #draft
* identifier 1..* MS
* identifier ^short = "The enrollment and phase: https://iop.example.org/fhir/sid/medication-reconciliation|[episode id]-intake or -discharge"
* status MS
* status ^short = "current (retired once reconciled again)"
* mode = #changes
* mode MS
* mode ^short = "changes: a point-in-time list showing what changed"
* code 1..1 MS
* code from MedicationReconciliationListVS (required)
* code ^short = "42346-7 Medications on admission | 75311-1 Discharge medications"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* date 1..1 MS
* date ^short = "When it was reconciled"
* source 1..1 MS
* source only Reference(Practitioner or PractitionerRole)
* source ^short = "Who reconciled it"
* entry MS
* entry ^short = "One per medication"
* entry.flag 1..1 MS
* entry.flag from MedicationReconciliationActionVS (required)
* entry.flag ^short = "continued | changed | stopped | new"
* entry.item only Reference(MedicationRequest or MedicationStatement)
* entry.item ^short = "The medication (the program's order, or the referral's medication)"

CodeSystem: MedicationReconciliationActionCS
Id: iop-medication-reconciliation-action
Title: "IOP Medication Reconciliation Action"
Description: "What reconciliation decided for one medication. LOCAL code system: FHIR's example List item flags (Patient Medicine Change Types) are an Australian code system (urn:oid:1.2.36.1.2001.1001.101.104.16592) under a restrictive copyright, and the domain brief names no US code for these four decisions."
* insert LocalCodeSystem
* #continued "Continued" "The medication goes on unchanged."
* #changed "Changed" "The medication goes on with a changed dose, form or schedule (the entry names the new order)."
* #stopped "Stopped" "The medication is stopped."
* #new "New" "The medication was started by the program (not on the list it is reconciled against)."

ValueSet: MedicationReconciliationActionVS
Id: iop-medication-reconciliation-action
Title: "IOP Medication Reconciliation Action"
Description: "continued | changed | stopped | new (local)."
* insert IopValueSet
* include codes from system MedicationReconciliationActionCS

ValueSet: MedicationReconciliationListVS
Id: iop-medication-reconciliation-list
Title: "IOP Medication Reconciliation List Codes"
Description: "LOINC codes of the reconciled lists (from the C-CDA medication section codes that FHIR's DAF medication list value set lists)."
* insert IopValueSet
* $loinc#42346-7 "Medications on admission (narrative)"
* $loinc#75311-1 "Discharge medications Narrative"

// ------------------------------------------------------------------ aftercare follow-up
Extension: AftercareAlumniGroup
Id: aftercare-alumni-group
Title: "Aftercare Alumni Group Wanted"
Description: "On an enrollment: whether the patient wants to join the program's alumni group at discharge. When true, discharge (the EpisodeOfCare becoming finished) adds the patient to the program's alumni Group."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "EpisodeOfCare"
* value[x] 1..1
* value[x] only boolean
* value[x] ^short = "true: enrol the patient in the alumni group at discharge"

Profile: IopAftercareFollowUp
Parent: Task
Id: iop-aftercare-follow-up
Title: "IOP Aftercare Follow-up"
Description: "A follow-up contact with a discharged patient, made at discharge 30, 60 and 90 days after it (restriction.period: when it is due), owned by the program. Completed, it records its outcome in one output of type iop-aftercare#follow-up-outcome with a code of iop-aftercare-outcome (reached, in treatment, readmitted, not reached)."
* ^status = #draft
* identifier 1..* MS
* identifier ^short = "https://iop.example.org/fhir/sid/aftercare-follow-up|[episode id]-[30|60|90]"
* status MS
* status ^short = "ready | in-progress | on-hold | completed | failed | cancelled | entered-in-error"
* intent = #plan
* code 1..1 MS
* code = AftercareCS#follow-up-contact
* code ^short = "iop-aftercare#follow-up-contact"
* focus 1..1 MS
* focus only Reference(EpisodeOfCare)
* focus ^short = "The enrollment discharged"
* for 1..1 MS
* for only Reference(Patient)
* for ^short = "The patient"
* owner 1..1 MS
* owner ^short = "The program"
* restriction 1..1 MS
* restriction ^short = "When the contact is due"
* restriction.period 1..1 MS
* restriction.period ^short = "Due from start, for 14 days"
* restriction.period.start 1..1 MS
* restriction.period.start ^short = "Due date"
* output MS
* output ^short = "The outcome (type iop-aftercare#follow-up-outcome) once completed"

CodeSystem: AftercareCS
Id: iop-aftercare
Title: "IOP Aftercare"
Description: "Aftercare work of an IOP: the follow-up contacts after discharge, the outcome they record, and the alumni group. LOCAL code system: the domain brief has no standard code for a post-discharge follow-up contact task or a program alumni group."
* insert LocalCodeSystem
* #follow-up-contact "Aftercare follow-up contact" "Contact the discharged patient (Task.code of the 30-, 60- and 90-day follow-ups)."
* #follow-up-outcome "Follow-up outcome" "Task.output.type of the outcome a follow-up contact recorded."
* #alumni-group "Program alumni group" "Group.code of the program's alumni group."

CodeSystem: AftercareOutcomeCS
Id: iop-aftercare-outcome
Title: "IOP Aftercare Follow-up Outcome"
Description: "What a 30/60/90-day follow-up contact found. LOCAL code system: no standard code system in the domain brief covers these outcomes."
* insert LocalCodeSystem
* #reached "Reached" "The patient was reached and is doing without further treatment."
* #in-treatment "In treatment" "The patient was reached and is in aftercare treatment (therapy, psychiatry, peer support or mutual support)."
* #readmitted "Readmitted" "The patient was readmitted to a higher or the same level of care."
* #not-reached "Not reached" "The patient could not be reached."

ValueSet: AftercareOutcomeVS
Id: iop-aftercare-outcome
Title: "IOP Aftercare Follow-up Outcome"
Description: "reached | in-treatment | readmitted | not-reached (local)."
* insert IopValueSet
* include codes from system AftercareOutcomeCS

// ------------------------------------------------------------------ program outcomes
CodeSystem: ProgramOutcomeMeasureCS
Id: iop-program-outcome-measure
Title: "IOP Program Outcome Figures"
Description: "The program outcome figures a program reports per period (MeasureReport.group.code of EpisodeOfCare/$program-outcomes). LOCAL code system: the domain brief names no standard code for these program-level figures."
* insert LocalCodeSystem
* #completion-rate "Completion rate" "Share of the enrollments that ended in the period which were completed (finished) rather than cancelled."
* #length-of-stay "Average length of stay" "Mean days from admission to discharge of the enrollments completed in the period."
* #attendance-rate "Attendance rate" "Share of the scheduled sessions of those enrollments that the patient attended (attended or partial)."
* #phq9-change "PHQ-9 change" "Mean change of the PHQ-9 total score from the first to the last score within the enrollment."
* #gad7-change "GAD-7 change" "Mean change of the GAD-7 total score from the first to the last score within the enrollment."
* #readmission-30d "30-day readmission rate" "Share of completed enrollments followed by a new enrollment of the patient within 30 days of discharge."
* #readmission-90d "90-day readmission rate" "Share of completed enrollments followed by a new enrollment of the patient within 90 days of discharge."

Instance: program-outcomes
InstanceOf: Measure
Usage: #definition
Title: "IOP program outcomes"
* url = "https://iop.example.org/fhir/Measure/program-outcomes"
* name = "ProgramOutcomes"
* title = "IOP program outcomes"
* status = #draft
* experimental = false
* publisher = "IOP FHIR service project (example.org)"
* description = "How a program's enrollments ended, computed by the server for one program (EpisodeOfCare.managingOrganization) and period with EpisodeOfCare/$program-outcomes; no CQL library. The enrollments counted are those that ended in the period: status finished (completed) or cancelled after admission, with period.end in the period."
* type = http://terminology.hl7.org/CodeSystem/measure-type#outcome "Outcome"
* group[0].code = ProgramOutcomeMeasureCS#completion-rate "Completion rate"
* group[0].description = "Proportion 0 to 1 (UCUM 1). Denominator: enrollments admitted and ended in the period (finished or cancelled). Numerator: those finished."
* group[1].code = ProgramOutcomeMeasureCS#length-of-stay "Average length of stay"
* group[1].description = "Continuous variable, mean days (UCUM d). Measure population: finished enrollments ended in the period. Observation: days from period.start to period.end."
* group[2].code = ProgramOutcomeMeasureCS#attendance-rate "Attendance rate"
* group[2].description = "Proportion 0 to 1 (UCUM 1). Denominator: attendance Encounters (episodeOfCare = the enrollment) finished or cancelled, except sessions the program cancelled. Numerator: those attended or partial."
* group[3].code = ProgramOutcomeMeasureCS#phq9-change "PHQ-9 change"
* group[3].description = "Continuous variable, mean points (UCUM {score}), negative is improvement. Measure population: finished enrollments with two or more final PHQ-9 totals (LOINC 44261-6) dated within the enrollment. Observation: last minus first."
* group[4].code = ProgramOutcomeMeasureCS#gad7-change "GAD-7 change"
* group[4].description = "As phq9-change, for the GAD-7 total (LOINC 70274-6)."
* group[5].code = ProgramOutcomeMeasureCS#readmission-30d "30-day readmission rate"
* group[5].description = "Proportion 0 to 1 (UCUM 1), lower is better. Denominator: finished enrollments ended in the period whose 30 days have passed, or that were already followed by a readmission. Numerator: those whose patient has another enrollment starting within 30 days after discharge."
* group[6].code = ProgramOutcomeMeasureCS#readmission-90d "90-day readmission rate"
* group[6].description = "As readmission-30d, over 90 days."

// ------------------------------------------------------------------ operations
Instance: MedicationRequest-due
InstanceOf: OperationDefinition
Usage: #definition
Title: "Injections and refills due"
* url = "https://iop.example.org/fhir/OperationDefinition/MedicationRequest-due"
* name = "MedicationRequestDue"
* title = "Injections and refills due"
* status = #draft
* kind = #operation
* description = "The worklist of the program's active medication orders due within the next days: long-acting injections (extended-release naltrexone, extended-release buprenorphine) one dosing interval after the last completed MedicationAdministration, and refills when the last dispensed supply runs out. Overdue items are included and marked. Computed from stored data on request. Read only: GET with the parameters in the query string, or POST a Parameters resource."
* code = #due
* resource = #MedicationRequest
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #days
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #integer
* parameter[0].documentation = "How many days ahead (0 to 90, default 7)"
* parameter[1].name = #as-of
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "The day the worklist is for (YYYY-MM-DD, default today, UTC)"
* parameter[2].name = #patient
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #string
* parameter[2].documentation = "Only this patient's orders: Patient/[id]"
* parameter[3].name = #asOf
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #date
* parameter[3].documentation = "The day the worklist is for"
* parameter[4].name = #until
* parameter[4].use = #out
* parameter[4].min = 1
* parameter[4].max = "1"
* parameter[4].type = #date
* parameter[4].documentation = "The last day covered"
* parameter[5].name = #due
* parameter[5].use = #out
* parameter[5].min = 0
* parameter[5].max = "*"
* parameter[5].documentation = "One per order due, soonest first; parts medicationRequest (Reference), patient (Reference), kind (code injection | refill), dueDate (date), overdue (boolean), lastGiven or lastFilled (dateTime)"
* parameter[5].part[0].name = #medicationRequest
* parameter[5].part[0].use = #out
* parameter[5].part[0].min = 1
* parameter[5].part[0].max = "1"
* parameter[5].part[0].type = #Reference
* parameter[5].part[0].documentation = "The order"
* parameter[5].part[1].name = #kind
* parameter[5].part[1].use = #out
* parameter[5].part[1].min = 1
* parameter[5].part[1].max = "1"
* parameter[5].part[1].type = #code
* parameter[5].part[1].documentation = "injection | refill"
* parameter[5].part[2].name = #dueDate
* parameter[5].part[2].use = #out
* parameter[5].part[2].min = 1
* parameter[5].part[2].max = "1"
* parameter[5].part[2].type = #date
* parameter[5].part[2].documentation = "When the next dose or refill is due"

Instance: EpisodeOfCare-reconcile-medications
InstanceOf: OperationDefinition
Usage: #definition
Title: "Reconcile an enrollment's medications"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-reconcile-medications"
* name = "EpisodeOfCareReconcileMedications"
* title = "Reconcile an enrollment's medications"
* status = #draft
* kind = #operation
* description = "Records the medication reconciliation of an enrollment at intake (every medication the referral brought, in ServiceRequest.supportingInfo or Task.input, and every active program order must have a decision) or at discharge (every active or on-hold program order must have a decision) as an iop-medication-reconciliation List: one entry per medication with continued, changed, stopped or new, with who reconciled it (source) and when (date). A program order stopped at discharge becomes stopped. Reconciling the same phase again replaces the list (a new version). A medication that is not on this server, not the patient's, or left without a decision is a 422 and nothing is stored."
* code = #reconcile-medications
* resource = #EpisodeOfCare
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #phase
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #code
* parameter[0].documentation = "intake | discharge"
* parameter[1].name = #reconciler
* parameter[1].use = #in
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #Reference
* parameter[1].documentation = "Who reconciled: Practitioner/[id] or PractitionerRole/[id]"
* parameter[2].name = #date
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #dateTime
* parameter[2].documentation = "When (default now)"
* parameter[3].name = #medication
* parameter[3].use = #in
* parameter[3].min = 0
* parameter[3].max = "*"
* parameter[3].documentation = "One decision per medication"
* parameter[3].part[0].name = #item
* parameter[3].part[0].use = #in
* parameter[3].part[0].min = 1
* parameter[3].part[0].max = "1"
* parameter[3].part[0].type = #Reference
* parameter[3].part[0].documentation = "The medication decided on: a MedicationRequest or MedicationStatement of the patient"
* parameter[3].part[1].name = #action
* parameter[3].part[1].use = #in
* parameter[3].part[1].min = 1
* parameter[3].part[1].max = "1"
* parameter[3].part[1].type = #code
* parameter[3].part[1].documentation = "continued | changed | stopped | new (iop-medication-reconciliation-action)"
* parameter[3].part[2].name = #order
* parameter[3].part[2].use = #in
* parameter[3].part[2].min = 0
* parameter[3].part[2].max = "1"
* parameter[3].part[2].type = #Reference
* parameter[3].part[2].documentation = "The program's MedicationRequest that carries a continued or changed medication on (the list entry names it)"
* parameter[3].part[3].name = #note
* parameter[3].part[3].use = #in
* parameter[3].part[3].min = 0
* parameter[3].part[3].max = "1"
* parameter[3].part[3].type = #string
* parameter[3].part[3].documentation = "Why (kept in the narrative)"
* parameter[4].name = #return
* parameter[4].use = #out
* parameter[4].min = 1
* parameter[4].max = "1"
* parameter[4].type = #List
* parameter[4].documentation = "The reconciled list (iop-medication-reconciliation)"

Instance: EpisodeOfCare-discharge-summary
InstanceOf: OperationDefinition
Usage: #definition
Title: "Write an enrollment's discharge summary"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-discharge-summary"
* name = "EpisodeOfCareDischargeSummary"
* title = "Write an enrollment's discharge summary"
* status = #draft
* kind = #operation
* description = "Builds the iop-discharge-summary Composition of an enrollment from what is stored: reason for referral (the referral and its reasons), problems, the latest assessment scores, the medications of the discharge reconciliation, the plan of care (care plan, goals, aftercare referrals, relapse prevention plan) and the support contacts, and stores it (identifier https://iop.example.org/fhir/sid/document|DS-[episode id]; asking again replaces it with a new version). Discharge (the EpisodeOfCare becoming finished) writes it too when none exists. Returns the Composition."
* code = #discharge-summary
* resource = #EpisodeOfCare
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #author
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #Reference
* parameter[0].documentation = "Who writes it: Practitioner/[id] or PractitionerRole/[id] (default: the enrollment's care manager)"
* parameter[1].name = #return
* parameter[1].use = #out
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #Composition
* parameter[1].documentation = "The discharge summary (iop-discharge-summary)"

Instance: EpisodeOfCare-program-outcomes
InstanceOf: OperationDefinition
Usage: #definition
Title: "Program outcome figures"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-program-outcomes"
* name = "EpisodeOfCareProgramOutcomes"
* title = "Program outcome figures"
* status = #draft
* kind = #operation
* description = "Reports a program's outcomes for a period as a summary MeasureReport of Measure program-outcomes: completion rate, average length of stay, attendance rate, PHQ-9 and GAD-7 change, and 30- and 90-day readmission rates, each with its population counts. Read only: GET with the parameters in the query string, or POST a Parameters resource."
* code = #program-outcomes
* resource = #EpisodeOfCare
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #owner
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "The program: Organization/[id] (EpisodeOfCare.managingOrganization)"
* parameter[1].name = #period-start
* parameter[1].use = #in
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "First day of the period (YYYY-MM-DD), inclusive"
* parameter[2].name = #period-end
* parameter[2].use = #in
* parameter[2].min = 1
* parameter[2].max = "1"
* parameter[2].type = #date
* parameter[2].documentation = "Last day of the period (YYYY-MM-DD), inclusive"
* parameter[3].name = #return
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #MeasureReport
* parameter[3].documentation = "The summary MeasureReport: one group per figure (iop-program-outcome-measure codes)"
