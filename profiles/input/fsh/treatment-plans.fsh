// Treatment planning (issue 10, care plans): care plan templates per track (PlanDefinition + ActivityDefinition),
// PlanDefinition/$apply, the patient's agreement and plan reviews (Provenance), the review worklist
// (CarePlan/$review-due) and the relapse prevention plan. Design and reasons: docs/careplans.md.

CodeSystem: TreatmentPlanningCS
Id: iop-treatment-planning
Title: "IOP Treatment Planning"
Description: "Codes of IOP treatment planning: the relapse prevention plan (a CarePlan category and the discharge summary section that carries it), and the two acts recorded by Provenance on a care plan (the patient's agreement, a plan review). LOCAL code system: the domain brief has SNOMED CT codes for relapse prevention programs (720176005, 720177001) but none for a relapse prevention plan as a document, nor HL7 codes for these acts."
* insert LocalCodeSystem
* #relapse-prevention-plan "Relapse prevention plan" "The patient's structured relapse prevention plan (triggers, warning signs, coping strategies, support network, crisis contacts); goes home with the patient at discharge."
* #plan-agreement "Agreement to the care plan" "The patient (and family members) agreed to this version of the care plan (Provenance.activity; the signature says who and when)."
* #plan-review "Care plan review" "A member of the care team reviewed the care plan; the reviewed version is the Provenance target."


// ------------------------------------------------------------------ templates
Profile: IopCarePlanTemplate
Parent: PlanDefinition
Id: iop-careplan-template
Title: "IOP Care Plan Template"
Description: "A care plan template for one IOP track: the goals with measurable targets (PHQ-9 below 10, GAD-7 below 10, days abstinent, attendance) and one action per activity, each defined by an iop-activity-template with its frequency. PlanDefinition/$apply turns it into a draft iop-careplan for a patient."
* ^status = #draft
* obeys iop-tp-1 and iop-tp-2
* url 1..1 MS
* url ^short = "Canonical URL that CarePlan.instantiatesCanonical names"
* title 1..1 MS
* status MS
* type 1..1 MS
* type ^short = "clinical-protocol"
* useContext 1..* MS
* useContext ^short = "The track (usage-context-type#program with an iop-specialized-track code)"
* goal 1..* MS
* goal ^short = "Goals of the plan, each with measurable targets"
* goal.category MS
* goal.description MS
* goal.description ^short = "What the goal is (text)"
* goal.target 1..* MS
* goal.target.measure 1..1 MS
* goal.target.measure from GoalMeasureVS (extensible)
* goal.target.detail[x] 1..1 MS
* goal.target.due 1..1 MS
* goal.target.due ^short = "Time from the plan's start to reach the target"
* action 1..* MS
* action.title 1..1 MS
* action.definition[x] 1..1 MS
* action.definition[x] ^short = "Canonical URL of the iop-activity-template"
* action.goalId MS
* action.goalId ^short = "Goals (PlanDefinition.goal.id) the activity serves"
* action.timing[x] MS
* action.timing[x] ^short = "Track-specific frequency (overrides the ActivityDefinition's timingTiming)"

Invariant: iop-tp-1
Description: "Every goal has an id that actions can name (goalId)."
Severity: #error
Expression: "goal.all(id.exists())"

Invariant: iop-tp-2
Description: "Every action names goals of this template only."
Severity: #error
Expression: "action.goalId.all(%resource.goal.id contains $this)"

Profile: IopActivityTemplate
Parent: ActivityDefinition
Id: iop-activity-template
Title: "IOP Activity Template"
Description: "One IOP activity (a therapy, group, medication management, peer support or case management service) as a template: its code (SNOMED CT, or the local iop-therapy code where the brief found none), the kind of request that fulfils it and its frequency (timingTiming: sessions per period)."
* ^status = #draft
* obeys iop-tp-3
* url 1..1 MS
* title 1..1 MS
* status MS
* kind 1..1 MS
* code 1..1 MS
* code from CarePlanActivityVS (extensible)
* timing[x] 1..1 MS
* timing[x] ^short = "Frequency: timingTiming.repeat frequency / period / periodUnit (and duration)"
* participant MS
* description MS

Invariant: iop-tp-3
Description: "The activity has a frequency: timingTiming.repeat with frequency, period and periodUnit."
Severity: #error
Expression: "timing.ofType(Timing).repeat.frequency.exists() and timing.ofType(Timing).repeat.period.exists() and timing.ofType(Timing).repeat.periodUnit.exists()"


// ------------------------------------------------------------------ relapse prevention plan
Profile: IopRelapsePreventionPlan
Parent: CarePlan
Id: iop-relapse-prevention-plan
Title: "IOP Relapse Prevention Plan"
Description: "The patient's relapse prevention plan as structured data, a CarePlan of its own (partOf the IOP treatment plan) because it goes home with the patient and stays active after the treatment plan is completed at discharge. Each activity is one item of the plan, tagged with the relapse-prevention-component extension: a trigger (named in detail.reasonCode), a warning sign, a coping strategy, a support network contact (detail.performer: a RelatedPerson such as a family member or a peer sponsor) or a crisis step (detail.performer: a crisis line Organization such as the 988 Suicide and Crisis Lifeline, or a clinician). An active plan has every kind of item (iop-rp-1). Meets the US Core CarePlan mandatory elements (assess-plan category)."
* ^status = #draft
* obeys iop-9 and iop-rp-1
* text MS
* status MS
* intent MS
* category 2..* MS
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains
    AssessPlan 1..1 MS and
    RelapsePlan 1..1 MS
* category[AssessPlan] = $us-core-careplan-category#assess-plan
* category[RelapsePlan] = TreatmentPlanningCS#relapse-prevention-plan
* title MS
* subject only Reference(Patient)
* subject MS
* period 1..1 MS
* period.start 1..1
* partOf MS
* partOf ^short = "The IOP treatment plan (iop-careplan) it belongs to"
* author MS
* contributor 1..* MS
* contributor ^short = "The patient (required: iop-9), family members, the therapist"
* careTeam MS
* addresses MS
* activity 1..* MS
* activity ^short = "One item of the plan each"
* activity.extension contains RelapsePreventionComponent named relapsePreventionComponent 1..1 MS
* insert SliceUrl(activity.extension[relapsePreventionComponent], relapse-prevention-component)
* activity.detail 1..1 MS
* activity.detail.code 1..1 MS
* activity.detail.code from CarePlanActivityVS (extensible)
* activity.detail.reasonCode MS
* activity.detail.reasonCode ^short = "The trigger or warning sign (text) the item names or answers"
* activity.detail.status MS
* activity.detail.performer MS
* activity.detail.performer ^short = "Support network contact (RelatedPerson), crisis line (Organization), clinician"
* activity.detail.description 1..1 MS
* activity.detail.description ^short = "The item in the patient's words"

Invariant: iop-rp-1
Description: "An active relapse prevention plan names triggers, warning signs, coping strategies, a support network and crisis steps (one item of each kind at least)."
Severity: #error
Expression: "status = 'active' implies (activity.extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').value.ofType(CodeableConcept).coding.code contains 'trigger' and activity.extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').value.ofType(CodeableConcept).coding.code contains 'warning-sign' and activity.extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').value.ofType(CodeableConcept).coding.code contains 'coping-strategy' and activity.extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').value.ofType(CodeableConcept).coding.code contains 'support-network' and activity.extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').value.ofType(CodeableConcept).coding.code contains 'crisis-step')"


// ------------------------------------------------------------------ operations
Instance: PlanDefinition-apply
InstanceOf: OperationDefinition
Usage: #definition
Title: "Apply a care plan template"
* url = "https://iop.example.org/fhir/OperationDefinition/PlanDefinition-apply"
* name = "PlanDefinitionApply"
* title = "Apply a care plan template"
* status = #draft
* kind = #operation
* base = "http://hl7.org/fhir/OperationDefinition/PlanDefinition-apply"
* description = "The R4 PlanDefinition $apply for an IOP care plan template (iop-careplan-template) and one patient: returns a DRAFT CarePlan (status draft, intent plan, iop-careplan) with the template's goals as Goals (iop-goal, lifecycleStatus proposed, targets due from the plan start), one activity per action with its frequency, the patient's active Conditions as addresses, the patient and the patient's RelatedPersons as contributors and the patient's active CareTeam. As in R4 nothing is stored and the Goals are contained; with persist=true (POST only, an addition to the R4 operation) the server stores the Goals and the CarePlan in one transaction and returns the stored CarePlan (201)."
* code = #apply
* resource = #PlanDefinition
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #subject
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "The patient: 'Patient/{id}' (this server applies a template to one patient at a time)"
* parameter[1].name = #practitioner
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #string
* parameter[1].documentation = "The clinician writing the plan: 'Practitioner/{id}' or 'PractitionerRole/{id}' (CarePlan.author and a contributor)"
* parameter[2].name = #encounter
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #string
* parameter[2].documentation = "The encounter of the planning session: 'Encounter/{id}' (CarePlan.encounter)"
* parameter[3].name = #periodStart
* parameter[3].use = #in
* parameter[3].min = 0
* parameter[3].max = "1"
* parameter[3].type = #date
* parameter[3].documentation = "First day of the plan (default: today); goal due dates count from it. Addition to the R4 operation."
* parameter[4].name = #persist
* parameter[4].use = #in
* parameter[4].min = 0
* parameter[4].max = "1"
* parameter[4].type = #boolean
* parameter[4].documentation = "true (POST only): store the Goals and the draft CarePlan and return the stored CarePlan. Addition to the R4 operation."
* parameter[5].name = #return
* parameter[5].use = #out
* parameter[5].min = 1
* parameter[5].max = "1"
* parameter[5].type = #CarePlan
* parameter[5].documentation = "The draft CarePlan"

Instance: CarePlan-review-due
InstanceOf: OperationDefinition
Usage: #definition
Title: "Care plan reviews due"
* url = "https://iop.example.org/fhir/OperationDefinition/CarePlan-review-due"
* name = "CarePlanReviewDue"
* title = "Care plan reviews due"
* status = #draft
* kind = #operation
* description = "The worklist of IOP treatment plans (active iop-careplan) whose review is due on or before a date: a plan is due IOP_CAREPLAN_REVIEW_DAYS (default 30) days after its last review, which is its current version (activation and every review are new versions). Most overdue first."
* code = #review-due
* resource = #CarePlan
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #date
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #date
* parameter[0].documentation = "Reviews due on or before this day (default: today)"
* parameter[1].name = #member
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #string
* parameter[1].documentation = "Only plans whose care team has this member ('Practitioner/{id}' or 'PractitionerRole/{id}')"
* parameter[2].name = #review
* parameter[2].use = #out
* parameter[2].min = 0
* parameter[2].max = "*"
* parameter[2].documentation = "One per plan due"
* parameter[2].part[0].name = #carePlan
* parameter[2].part[0].use = #out
* parameter[2].part[0].min = 1
* parameter[2].part[0].max = "1"
* parameter[2].part[0].type = #Reference
* parameter[2].part[0].documentation = "The plan (its current version)"
* parameter[2].part[1].name = #patient
* parameter[2].part[1].use = #out
* parameter[2].part[1].min = 1
* parameter[2].part[1].max = "1"
* parameter[2].part[1].type = #Reference
* parameter[2].part[1].documentation = "The patient"
* parameter[2].part[2].name = #lastReviewed
* parameter[2].part[2].use = #out
* parameter[2].part[2].min = 1
* parameter[2].part[2].max = "1"
* parameter[2].part[2].type = #instant
* parameter[2].part[2].documentation = "When the current version was written (activation or the last review)"
* parameter[2].part[3].name = #due
* parameter[2].part[3].use = #out
* parameter[2].part[3].min = 1
* parameter[2].part[3].max = "1"
* parameter[2].part[3].type = #date
* parameter[2].part[3].documentation = "Review due date"
* parameter[2].part[4].name = #daysOverdue
* parameter[2].part[4].use = #out
* parameter[2].part[4].min = 1
* parameter[2].part[4].max = "1"
* parameter[2].part[4].type = #integer
* parameter[2].part[4].documentation = "Days past the due date on the worklist date (0 when due that day or later)"
