// Measurement-based care: instrument Observations (US Core 6.1 Observation Screening Assessment rules:
// category survey, subject, code; status, effective[x], performer, value[x], derivedFrom, hasMember Must
// Support) and the weekly attended-hours Observation.

// Value-type invariants name the typed element (valueInteger) and also test value.ofType(...): FHIRPath
// engines differ on choice elements (fhirpathpy without a model sees only valueInteger; Medplum resolves
// valueInteger to any value[x]), and this form gives the same verdict in both.

Profile: IopAssessment
Parent: Observation
Id: iop-assessment
Title: "IOP Assessment"
Description: "The result of a standardized IOP instrument (PHQ-9, GAD-7, AUDIT-C, PCL-5, C-SSRS) as an Observation with category survey and the LOINC code of the total score or risk level (domain brief 4.4). The instrument profiles (iop-phq9, iop-gad7, iop-auditc, iop-pcl5, iop-cssrs) fix the code and value type. Meets the US Core 6.1 Observation Screening Assessment mandatory and must-support elements."
* ^status = #draft
* identifier MS
* identifier ^short = "Business identifier of the result"
* basedOn MS
* basedOn ^short = "The care plan (measurement schedule) this result fulfils"
* status MS
* status ^short = "registered | preliminary | final | amended | corrected | cancelled | entered-in-error | unknown"
* category 1..* MS
* category ^short = "survey (and other categories)"
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains survey 1..1 MS
* category[survey] = $observation-category#survey
* category[survey] ^short = "survey"
* code MS
* code from AssessmentCodeVS (required)
* code ^short = "LOINC total score or risk level of the instrument"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* encounter MS
* encounter ^short = "Encounter (session) of the assessment"
* effective[x] 1..1 MS
* effective[x] only dateTime
* effective[x] ^short = "When the instrument was completed"
* performer MS
* performer ^short = "Who answered (patient) or administered it"
* value[x] MS
* value[x] ^short = "Score (integer) or risk level (CodeableConcept)"
* interpretation MS
* interpretation ^short = "Severity band (e.g. moderate depression)"
* derivedFrom MS
* derivedFrom ^short = "The QuestionnaireResponse the score comes from"
* hasMember MS
* hasMember ^short = "Item-level Observations"


Profile: IopPhq9
Parent: IopAssessment
Id: iop-phq9
Title: "IOP PHQ-9 Total Score"
Description: "PHQ-9 depression severity: LOINC 44261-6 total score, an integer 0-27 (iop-18). Panel 44249-1; item 9 (self-harm) 44260-8."
* ^status = #draft
* obeys iop-18
* code = $loinc#44261-6
* code ^short = "44261-6 PHQ-9 total score"
* value[x] only integer
* value[x] ^short = "Total score 0-27"

Invariant: iop-18
Description: "A PHQ-9 total score is an integer (valueInteger) from 0 to 27, or is absent with a dataAbsentReason."
Severity: #error
Expression: "(dataAbsentReason.exists() or (valueInteger.exists() and (value.empty() or value.ofType(integer).exists()))) and (valueInteger.exists() implies (valueInteger >= 0 and valueInteger <= 27))"


Profile: IopGad7
Parent: IopAssessment
Id: iop-gad7
Title: "IOP GAD-7 Total Score"
Description: "GAD-7 anxiety severity: LOINC 70274-6 total score, an integer 0-21 (iop-19). Panel 69737-5."
* ^status = #draft
* obeys iop-19
* code = $loinc#70274-6
* code ^short = "70274-6 GAD-7 total score"
* value[x] only integer
* value[x] ^short = "Total score 0-21"

Invariant: iop-19
Description: "A GAD-7 total score is an integer (valueInteger) from 0 to 21, or is absent with a dataAbsentReason."
Severity: #error
Expression: "(dataAbsentReason.exists() or (valueInteger.exists() and (value.empty() or value.ofType(integer).exists()))) and (valueInteger.exists() implies (valueInteger >= 0 and valueInteger <= 21))"


Profile: IopAuditC
Parent: IopAssessment
Id: iop-auditc
Title: "IOP AUDIT-C Total Score"
Description: "AUDIT-C alcohol use screen: LOINC 75626-2 total score, an integer 0-12 (iop-20). Panel 72109-2."
* ^status = #draft
* obeys iop-20
* code = $loinc#75626-2
* code ^short = "75626-2 AUDIT-C total score"
* value[x] only integer
* value[x] ^short = "Total score 0-12"

Invariant: iop-20
Description: "A AUDIT-C total score is an integer (valueInteger) from 0 to 12, or is absent with a dataAbsentReason."
Severity: #error
Expression: "(dataAbsentReason.exists() or (valueInteger.exists() and (value.empty() or value.ofType(integer).exists()))) and (valueInteger.exists() implies (valueInteger >= 0 and valueInteger <= 12))"


Profile: IopPcl5
Parent: IopAssessment
Id: iop-pcl5
Title: "IOP PCL-5 Score"
Description: "PCL-5 PTSD symptom severity: LOINC 101698-9 score, an integer 0-80 (iop-21). Panel 101697-1."
* ^status = #draft
* obeys iop-21
* code = $loinc#101698-9
* code ^short = "101698-9 PTSD PCL-5 score"
* value[x] only integer
* value[x] ^short = "Total score 0-80"

Invariant: iop-21
Description: "A PCL-5 score is an integer (valueInteger) from 0 to 80, or is absent with a dataAbsentReason."
Severity: #error
Expression: "(dataAbsentReason.exists() or (valueInteger.exists() and (value.empty() or value.ofType(integer).exists()))) and (valueInteger.exists() implies (valueInteger >= 0 and valueInteger <= 80))"


Profile: IopCssrs
Parent: IopAssessment
Id: iop-cssrs
Title: "IOP C-SSRS Suicide Risk Level"
Description: "C-SSRS screener result: LOINC 93374-7 suicide risk level, answered with LOINC LA9194-7 (Low) or a local moderate/high code (iop-cssrs-risk). The C-SSRS has no single numeric total; the screener items (93373-9 panel) may be hasMember Observations."
* ^status = #draft
* obeys iop-23
* code = $loinc#93374-7
* code ^short = "93374-7 Suicide risk level"
* value[x] only CodeableConcept
* value[x] from CssrsRiskLevelVS (required)
* value[x] ^short = "Low | Moderate | High (LOINC answers)"


Invariant: iop-23
Description: "A C-SSRS risk level is coded (valueCodeableConcept), or is absent with a dataAbsentReason."
Severity: #error
Expression: "dataAbsentReason.exists() or (valueCodeableConcept.exists() and (value.empty() or value.ofType(CodeableConcept).exists()))"


Profile: IopAttendedHours
Parent: Observation
Id: iop-attended-hours
Title: "IOP Weekly Attended Hours"
Description: "The hours of IOP services a patient attended in one calendar week (effectivePeriod Monday to Sunday), summed from the per-patient attendance Encounters, in UCUM hours. Used for ASAM 2.1 / Medicare intensity checks (at least 9 hours a week for adults, 6 for adolescents; 20 or more is partial hospitalization territory)."
* ^status = #draft
* obeys iop-22
* identifier MS
* identifier ^short = "Business identifier of the weekly result"
* basedOn MS
* basedOn only Reference(CarePlan or ServiceRequest)
* basedOn ^short = "The treatment plan whose target hours this week is measured against"
* status MS
* status ^short = "preliminary | final | amended | ..."
* category 1..* MS
* category ^short = "therapy"
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains therapy 1..1 MS
* category[therapy] = $observation-category#therapy
* category[therapy] ^short = "therapy (observation-category)"
* code = MeasureCS#attended-hours-week
* code MS
* code ^short = "IOP hours attended in the week (local code)"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* effective[x] 1..1 MS
* effective[x] only Period
* effective[x] ^short = "The week (start Monday, end Sunday)"
* effectivePeriod.start 1..1
* effectivePeriod.start ^short = "First day of the week"
* effectivePeriod.end 1..1
* effectivePeriod.end ^short = "Last day of the week"
* performer MS
* performer ^short = "The IOP organization that computed it"
* value[x] 1..1 MS
* value[x] only Quantity
* value[x] ^short = "Hours attended (UCUM h)"
* valueQuantity.value 1..1
* valueQuantity.value ^short = "Hours"
* valueQuantity.system 1..1
* valueQuantity.system = $ucum
* valueQuantity.system ^short = "UCUM"
* valueQuantity.code 1..1
* valueQuantity.code = #h
* valueQuantity.code ^short = "h"
* note MS
* note ^short = "Absences and their reasons"

Invariant: iop-22
Description: "Weekly attended hours are a quantity (valueQuantity) in UCUM h between 0 and 168."
Severity: #error
Expression: "valueQuantity.where(system = 'http://unitsofmeasure.org' and code = 'h' and value >= 0 and value <= 168).exists()"
