// IOP treatment plan (CarePlan) and goals (Goal). Rules follow US Core 6.1 CarePlan and Goal
// (mandatory / must-support elements) without depending on the US Core package.

Profile: IopCarePlan
Parent: CarePlan
Id: iop-careplan
Title: "IOP Care Plan"
Description: "The individualized, collaborative IOP treatment plan: US Core assess-plan category plus the IOP treatment plan category, the conditions it addresses, measurable goals (iop-goal), and the activities (individual, group and family therapy, CBT, DBT, motivational interviewing, psychoeducation and skills groups, medication management, peer and mutual support, case management, alternative therapies) each with its schedule in sessions per week. The patient (and family) are contributors. The relapse prevention plan is structured: activities tagged with the relapse-prevention-component extension (triggers, warning signs, coping strategies, support network, crisis steps) and goals of category relapse-prevention."
* ^status = #draft
* obeys iop-9
* extension ^short = "IOP extensions (sliced by url)"
* extension contains TargetHoursPerWeek named targetHoursPerWeek 0..1 MS
* extension[targetHoursPerWeek] ^short = "Planned hours of IOP services per week"
* insert SliceUrl(extension[targetHoursPerWeek], target-hours-per-week)
* text MS
* text ^short = "Narrative summary of the assessment and plan (US Core Must Support)"
* identifier MS
* identifier ^short = "Business identifier of the plan"
* status MS
* status ^short = "draft | active | on-hold | revoked | completed | entered-in-error | unknown"
* intent MS
* intent ^short = "plan (usually)"
* category 2..* MS
* category ^short = "US Core assess-plan and the IOP treatment plan category"
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains
    AssessPlan 1..1 MS and
    IopPlan 1..1 MS
* category[AssessPlan] = $us-core-careplan-category#assess-plan
* category[AssessPlan] ^short = "US Core: Assessment and Plan of Treatment"
* category[IopPlan] = CarePlanCategoryCS#iop-treatment-plan
* category[IopPlan] ^short = "IOP treatment plan"
* title MS
* title ^short = "Human-friendly name of the plan"
* subject only Reference(Patient)
* subject MS
* subject ^short = "The patient"
* period 1..1 MS
* period ^short = "Plan window (start required)"
* period.start 1..1
* period.start ^short = "Start of the plan"
* created MS
* created ^short = "When the plan was first written"
* author MS
* author ^short = "Clinician responsible for the plan"
* contributor 1..* MS
* contributor ^short = "Who shaped the plan: the patient (required: iop-9), family, clinicians"
* careTeam MS
* careTeam ^short = "The IOP care team"
* addresses 1..* MS
* addresses ^short = "Conditions the plan addresses"
* supportingInfo MS
* supportingInfo ^short = "Assessments behind the plan (ASAM, PHQ-9, ...)"
* goal 1..* MS
* goal only Reference(IopGoal)
* goal ^short = "Measurable goals of the plan (iop-goal)"
* activity 1..* MS
* activity ^short = "Therapies, services and relapse prevention steps"
* activity obeys iop-10
* activity.extension ^short = "IOP extensions (sliced by url)"
* activity.extension contains RelapsePreventionComponent named relapsePreventionComponent 0..1 MS
* activity.extension[relapsePreventionComponent] ^short = "Part of the relapse prevention plan: trigger | warning-sign | coping-strategy | support-network | crisis-step"
* insert SliceUrl(activity.extension[relapsePreventionComponent], relapse-prevention-component)
* activity.detail 1..1 MS
* activity.detail ^short = "The activity, described inline"
* activity.detail.kind MS
* activity.detail.kind ^short = "Appointment | ServiceRequest | ... (kind of resource that will fulfil it)"
* activity.detail.code 1..1 MS
* activity.detail.code from CarePlanActivityVS (extensible)
* activity.detail.code ^short = "The therapy or service (SNOMED CT, or local IOP therapy code)"
* activity.detail.reasonCode MS
* activity.detail.reasonCode ^short = "Why: for a relapse prevention activity, the trigger or warning sign it answers"
* activity.detail.goal MS
* activity.detail.goal ^short = "Goals this activity serves"
* activity.detail.status MS
* activity.detail.status ^short = "not-started | scheduled | in-progress | on-hold | completed | cancelled | stopped | unknown | entered-in-error"
* activity.detail.scheduled[x] MS
* activity.detail.scheduled[x] only Timing
* activity.detail.scheduled[x] ^short = "Schedule: sessions per period (Timing.repeat frequency / period / periodUnit), duration"
* activity.detail.performer MS
* activity.detail.performer ^short = "Who does it: clinician, patient, or a support network person"
* activity.detail.description MS
* activity.detail.description ^short = "Details (e.g. the coping strategy in words)"

Invariant: iop-9
Description: "The plan is collaborative: the patient is a contributor."
Severity: #error
Expression: "subject.reference.exists() implies (contributor.reference contains subject.reference)"

Invariant: iop-10
Description: "Every therapy or service activity has a schedule (sessions per period: scheduledTiming.repeat with frequency, period and periodUnit); relapse prevention plan items (with the relapse-prevention-component extension) may have none."
Severity: #error
Expression: "extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/relapse-prevention-component').exists() or (detail.scheduledTiming.repeat.frequency.exists() and detail.scheduledTiming.repeat.period.exists() and detail.scheduledTiming.repeat.periodUnit.exists())"


Profile: IopGoal
Parent: Goal
Id: iop-goal
Title: "IOP Goal"
Description: "A measurable goal of an IOP treatment plan (e.g. PHQ-9 below 10, GAD-7 below 10, 30 days abstinent, three mutual-support meetings a week); relapse prevention goals have category relapse-prevention. Meets the US Core 6.1 Goal mandatory and must-support elements."
* ^status = #draft
* identifier MS
* identifier ^short = "Business identifier of the goal"
* lifecycleStatus MS
* lifecycleStatus ^short = "proposed | planned | accepted | active | on-hold | completed | cancelled | entered-in-error | rejected"
* achievementStatus MS
* achievementStatus ^short = "in-progress | improving | worsening | no-change | achieved | ..."
* category MS
* category from GoalCategoryVS (extensible)
* category ^short = "behavioral | safety | ... | relapse-prevention"
* description MS
* description ^short = "What the goal is (code or text)"
* subject only Reference(Patient)
* subject MS
* subject ^short = "The patient"
* start[x] 1..1 MS
* start[x] only date
* start[x] ^short = "When the goal was set (startDate)"
* target 1..* MS
* target ^short = "Measurable target(s)"
* target.measure 1..1 MS
* target.measure from GoalMeasureVS (extensible)
* target.measure ^short = "What is measured (LOINC instrument total or local IOP measure)"
* target.detail[x] 1..1 MS
* target.detail[x] only Quantity or Range or integer or CodeableConcept
* target.detail[x] ^short = "Target value or range (e.g. PHQ-9 0-9)"
* target.due[x] MS
* target.due[x] ^short = "When the target should be reached"
* expressedBy MS
* expressedBy ^short = "Whose goal it is (the patient, in a collaborative plan)"
* addresses MS
* addresses ^short = "Conditions the goal addresses"
