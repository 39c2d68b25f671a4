// Inbound step-down referral (ServiceRequest + closed-loop Task) and outbound aftercare referral.
// ServiceRequest rules follow US Core 6.1 ServiceRequest (code 1..1; status, intent, category, subject,
// occurrence[x], authoredOn, requester Must Support) without depending on the US Core package.

Profile: IopReferral
Parent: ServiceRequest
Id: iop-referral
Title: "IOP Referral"
Description: "A step-down (or step-up) referral into an Intensive Outpatient Program, sent by a hospital (inpatient psychiatry, withdrawal management, residential, partial hospitalization, emergency department) or another provider. Says who refers and why (ICD-10-CM / SNOMED CT), the referring and the requested level of care (IOP, ASAM 2.1), the preferred schedule and specialized track, the supporting information (discharge summary, assessments, medication list, Part 2 consent), the insurance and the requested start. Meets the US Core 6.1 ServiceRequest mandatory and must-support elements. Fulfilled through an iop-referral-task."
* ^status = #draft
* obeys iop-4 and iop-5
* extension ^short = "IOP extensions (sliced by url)"
* extension contains
    ReferringLevelOfCare named referringLevelOfCare 1..1 MS and
    RequestedLevelOfCare named requestedLevelOfCare 1..1 MS and
    ScheduleTrack named scheduleTrack 0..1 MS and
    SpecializedTrack named specializedTrack 0..* MS
* extension[referringLevelOfCare] ^short = "Level of care or setting the patient is referred from"
* insert SliceUrl(extension[referringLevelOfCare], referring-level-of-care)
* extension[requestedLevelOfCare] ^short = "Level of care requested: asam-2.1 or mh-iop (iop-4)"
* insert SliceUrl(extension[requestedLevelOfCare], requested-level-of-care)
* extension[scheduleTrack] ^short = "Preferred schedule: day | evening | hybrid | virtual"
* insert SliceUrl(extension[scheduleTrack], schedule-track)
* extension[specializedTrack] ^short = "Requested specialized track(s)"
* insert SliceUrl(extension[specializedTrack], specialized-track)
* identifier 1..* MS
* identifier ^short = "Business identifier(s) of the referral (the placer's, used for conditional create)"
* identifier.system 1..1 MS
* identifier.system ^short = "Namespace of the identifier"
* identifier.value 1..1 MS
* identifier.value ^short = "The identifier value"
* status MS
* status ^short = "draft | active | on-hold | revoked | completed | entered-in-error | unknown"
* intent = #order
* intent MS
* intent ^short = "order (a referral is an order)"
* category 1..* MS
* category from ReferralCategoryVS (extensible)
* category ^short = "Counselling | Social service procedure | Evaluation procedure"
* priority MS
* priority ^short = "routine | urgent | asap | stat"
* code 1..1 MS
* code from ReferralCodeVS (extensible)
* code ^short = "What is requested: referral to mental health / psychiatry service, or HCPCS S9480 / H0015"
* subject only Reference(Patient)
* subject MS
* subject ^short = "The patient referred"
* encounter MS
* encounter ^short = "Encounter in which the referral was made (US Core 7.0 Must Support)"
* occurrence[x] 1..1 MS
* occurrence[x] only dateTime or Period
* occurrence[x] ^short = "Requested start (dateTime or Period.start)"
* authoredOn 1..1 MS
* authoredOn ^short = "When the referral was written"
* requester 1..1 MS
* requester only Reference(Practitioner or PractitionerRole or Organization)
* requester ^short = "The referring clinician or organization"
* performer MS
* performer ^short = "The IOP (Organization, HealthcareService, PractitionerRole) asked to perform"
* reasonCode MS
* reasonCode from ReferralReasonVS (extensible)
* reasonCode ^short = "Reason for referral (ICD-10-CM or SNOMED CT diagnosis)"
* reasonReference MS
* reasonReference only Reference(Condition or Observation or DocumentReference)
* reasonReference ^short = "Conditions or assessments that justify the referral"
* insurance MS
* insurance only Reference(Coverage)
* insurance ^short = "Coverage for the IOP services"
* supportingInfo MS
* supportingInfo only Reference(DocumentReference or Observation or QuestionnaireResponse or MedicationRequest or MedicationStatement or List or Consent or Condition or Composition)
* supportingInfo ^short = "Discharge summary (DocumentReference), assessments (Observation, QuestionnaireResponse), medication list (MedicationRequest, MedicationStatement, List), Part 2 Consent"
* note MS
* note ^short = "Comments from the referrer"

Invariant: iop-4
Description: "An IOP referral requests an intensive outpatient level of care (asam-2.1 or mh-iop)."
Severity: #error
Expression: "extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/requested-level-of-care').valueCodeableConcept.coding.where(system = 'https://iop.example.org/fhir/CodeSystem/level-of-care' and (code = 'asam-2.1' or code = 'mh-iop')).exists()"

Invariant: iop-5
Description: "A referral gives a reason: reasonCode or reasonReference."
Severity: #error
Expression: "reasonCode.exists() or reasonReference.exists()"


Profile: IopAftercareReferral
Parent: ServiceRequest
Id: iop-aftercare-referral
Title: "IOP Aftercare Referral"
Description: "A referral made by the IOP at discharge to continuing care: outpatient therapy, psychiatry, family therapy, peer support or mutual-support groups. The IOP is the requester; the referral is fulfilled through an iop-referral-task owned by the aftercare provider, whose outcome is rolled up into the inbound referral Task (closing the loop). Meets the US Core 6.1 ServiceRequest mandatory and must-support elements."
* ^status = #draft
* obeys iop-5
* extension ^short = "IOP extensions (sliced by url)"
* extension contains
    RequestedLevelOfCare named requestedLevelOfCare 0..1 MS and
    ScheduleTrack named scheduleTrack 0..1 MS
* extension[requestedLevelOfCare] ^short = "Level of care requested after the IOP (e.g. asam-1, mh-outpatient)"
* insert SliceUrl(extension[requestedLevelOfCare], requested-level-of-care)
* extension[scheduleTrack] ^short = "Preferred schedule of the aftercare service"
* insert SliceUrl(extension[scheduleTrack], schedule-track)
* identifier 1..* MS
* identifier ^short = "Business identifier of the aftercare referral (the IOP is the placer)"
* identifier.system 1..1 MS
* identifier.system ^short = "Namespace of the identifier"
* identifier.value 1..1 MS
* identifier.value ^short = "The identifier value"
* basedOn MS
* basedOn only Reference(CarePlan or ServiceRequest)
* basedOn ^short = "The IOP treatment plan, or the inbound referral, this aftercare referral continues"
* status MS
* status ^short = "draft | active | on-hold | revoked | completed | entered-in-error | unknown"
* intent = #order
* intent MS
* intent ^short = "order"
* category 1..* MS
* category from ReferralCategoryVS (extensible)
* category ^short = "Counselling | Social service procedure | Evaluation procedure"
* code 1..1 MS
* code from AftercareReferralCodeVS (extensible)
* code ^short = "Kind of aftercare: therapy, psychiatry, family therapy, peer support, support group"
* subject only Reference(Patient)
* subject MS
* subject ^short = "The patient"
* encounter MS
* encounter ^short = "Encounter in which the referral was made (US Core 7.0 Must Support)"
* occurrence[x] MS
* occurrence[x] only dateTime or Period
* occurrence[x] ^short = "When the aftercare should start"
* authoredOn 1..1 MS
* authoredOn ^short = "When the referral was written"
* requester 1..1 MS
* requester only Reference(Practitioner or PractitionerRole or Organization)
* requester ^short = "The IOP clinician or organization referring"
* performer 1..* MS
* performer ^short = "The aftercare provider asked to perform"
* reasonCode MS
* reasonCode from ReferralReasonVS (extensible)
* reasonCode ^short = "Diagnoses that continuing care addresses"
* reasonReference MS
* reasonReference only Reference(Condition or Observation or DocumentReference)
* reasonReference ^short = "Conditions that continuing care addresses"
* insurance MS
* insurance only Reference(Coverage)
* insurance ^short = "Coverage for the aftercare service"
* supportingInfo MS
* supportingInfo only Reference(DocumentReference or Composition or Observation or QuestionnaireResponse or MedicationRequest or List or Consent or CarePlan)
* supportingInfo ^short = "IOP discharge summary, latest assessments, medication list, Part 2 consent"
* note MS
* note ^short = "Comments for the aftercare provider"


Profile: IopReferralTask
Parent: Task
Id: iop-referral-task
Title: "IOP Referral Task"
Description: "The closed-loop fulfilment Task of an IOP referral or aftercare referral, in the shape BSeR (generic ReferralTask) and Gravity (TaskForReferralManagement) agree on: intent order, code fulfill, focus the referral, for the patient, requester and owner, businessStatus with the BSeR / 360X states, statusReason when the Task is rejected, cancelled, on hold or failed, and outputs at completion (Gravity's resulting-activity and additional-content slices)."
* ^status = #draft
* obeys iop-2 and iop-3
* identifier MS
* identifier ^short = "Placer (PLAC) and filler (FILL) Task identifiers"
* status from ReferralTaskStatusVS (required)
* status MS
* status ^short = "draft | requested | received | accepted | rejected | cancelled | in-progress | on-hold | failed | completed | entered-in-error (not ready)"
* statusReason MS
* statusReason ^short = "Why rejected, cancelled, on hold or failed (required then: iop-2)"
* statusReason.text 1..1 MS
* statusReason.text ^short = "The reason in words (BSeR: required when statusReason is sent)"
* businessStatus MS
* businessStatus from ReferralBusinessStatusVS (extensible)
* businessStatus ^short = "BSeR / IHE 360X business status (2.0 created ... 7.0 fulfillment completed)"
* intent = #order
* intent MS
* intent ^short = "order"
* priority MS
* priority ^short = "routine | urgent | asap | stat"
* code 1..1 MS
* code = $task-code#fulfill
* code ^short = "fulfill"
* focus 1..1 MS
* focus only Reference(IopReferral or IopAftercareReferral)
* focus ^short = "The referral (ServiceRequest) to fulfil"
* for 1..1 MS
* for only Reference(Patient)
* for ^short = "The patient"
* authoredOn 1..1 MS
* authoredOn ^short = "When the Task was created"
* lastModified MS
* lastModified ^short = "When the Task last changed"
* requester 1..1 MS
* requester only Reference(Practitioner or PractitionerRole or Organization)
* requester ^short = "Referral initiator"
* owner 1..1 MS
* owner only Reference(Practitioner or PractitionerRole or Organization or CareTeam or HealthcareService)
* owner ^short = "Referral recipient (the IOP, or the aftercare provider)"
* partOf MS
* partOf only Reference(Task)
* partOf ^short = "A parent referral Task (re-tasking, sub-tasks)"
* input MS
* input ^short = "Supporting content sent with the referral (type additional-content)"
* output MS
* output ^short = "Results at completion (required when completed: iop-3)"
* output ^slicing.discriminator.type = #pattern
* output ^slicing.discriminator.path = "type"
* output ^slicing.rules = #open
* output ^slicing.description = "Slices by output type (Gravity SDOHCC temporary codes)"
* output contains
    resultingActivity 0..* MS and
    additionalContent 0..* MS
* output[resultingActivity] ^short = "What was done: the IOP enrollment (EpisodeOfCare), an Encounter or a Procedure"
* output[resultingActivity].type = $sdohcc-temporary-codes#resulting-activity
* output[resultingActivity].type ^short = "resulting-activity"
* output[resultingActivity].value[x] only Reference(EpisodeOfCare or Encounter or Procedure)
* output[resultingActivity].value[x] ^short = "Reference to the resulting activity"
* output[additionalContent] ^short = "Discharge summary, care plan, assessments, aftercare referrals"
* output[additionalContent].type = $sdohcc-temporary-codes#additional-content
* output[additionalContent].type ^short = "additional-content"
* output[additionalContent].value[x] only Reference(DocumentReference or Composition or CarePlan or Observation or ServiceRequest or Goal or Condition or QuestionnaireResponse)
* output[additionalContent].value[x] ^short = "Reference to the content"

Invariant: iop-2
Description: "A rejected, cancelled, on-hold or failed referral Task says why (statusReason)."
Severity: #error
Expression: "(status = 'rejected' or status = 'cancelled' or status = 'on-hold' or status = 'failed') implies statusReason.exists()"

Invariant: iop-3
Description: "A completed referral Task has at least one output."
Severity: #error
Expression: "status = 'completed' implies output.exists()"
