// Intensity, level of care and certification (issue 9, part B): the level-of-care history and readmission link on
// the enrollment, the physician (re)certification document, and the three read-only operations $hours, $census
// and $recertification-due (computed on request: service/intensity.py, census.py, certification.py).

Extension: LevelOfCareChange
Id: level-of-care-change
Title: "Level of Care Change"
Description: "One decision on an enrollment's level of care (e.g. PHP to IOP, IOP to OP, or back up): the level in force from the date, the reason and who decided. Repeated in date order, like statusHistory; the last one's level is the enrollment's current level-of-care. A change of level-of-care without a new entry is refused."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "EpisodeOfCare"
* extension contains
    level 1..1 MS and
    date 1..1 MS and
    reason 1..1 MS and
    decidedBy 1..1 MS
* extension[level] ^short = "The level of care from this date"
* extension[level].value[x] only CodeableConcept
* extension[level].value[x] 1..1
* extension[level].value[x] from LevelOfCareVS (required)
* extension[date] ^short = "When the level takes effect"
* extension[date].value[x] only date or dateTime
* extension[date].value[x] 1..1
* extension[reason] ^short = "Why (e.g. stable for two weeks, symptoms returned, admission)"
* extension[reason].value[x] only CodeableConcept
* extension[reason].value[x] 1..1
* extension[decidedBy] ^short = "The clinician who decided"
* extension[decidedBy].value[x] only Reference(Practitioner or PractitionerRole)
* extension[decidedBy].value[x] 1..1
* value[x] 0..0

Extension: ReadmissionOf
Id: readmission-of
Title: "Readmission Of"
Description: "On an enrollment opened for a discharged patient whose symptoms returned (the fast path back into the program, without a new referral): the finished enrollment of the same patient and program it follows. The census counts such enrollments as readmissions."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "EpisodeOfCare"
* value[x] 1..1
* value[x] only Reference(EpisodeOfCare)
* value[x] ^short = "The earlier, finished enrollment"

CodeSystem: CertificationCS
Id: iop-certification
Title: "IOP Physician Certification"
Description: "Kinds of physician certification for intensive outpatient services (Medicare: certification that the patient needs at least 9 hours a week, recertified at least every 60 days; domain brief section 4.2). LOCAL code system: the domain brief has no confirmed LOINC document code for them."
* insert LocalCodeSystem
* #certification "IOP physician certification" "A physician certifies that the patient needs intensive outpatient services of at least 9 hours a week, under an individualized written plan."
* #recertification "IOP physician recertification" "A physician recertifies, no less often than every 60 days, that the patient still needs intensive outpatient services."

ValueSet: CertificationVS
Id: iop-certification
Title: "IOP Physician Certification"
Description: "Kinds of physician certification for intensive outpatient services."
* insert IopValueSet
* include codes from system CertificationCS

Profile: IopCertification
Parent: DocumentReference
Id: iop-certification
Title: "IOP Physician Certification"
Description: "A physician's signed (re)certification that an enrolled patient needs intensive outpatient services (at least 9 hours a week): dated, authenticated by the physician, for the enrollment (context.encounter) and the period it covers (context.period). A Provenance with a signature targets it. Only final, current, authenticated certifications count; the next is due 60 days after the latest (EpisodeOfCare/$recertification-due)."
* ^status = #draft
* status = #current
* status MS
* docStatus 1..1 MS
* docStatus = #final
* type 1..1 MS
* type from CertificationVS (required)
* type ^short = "certification | recertification"
* subject 1..1 MS
* subject only Reference(Patient)
* date 1..1 MS
* date ^short = "When the physician signed"
* author 1..* MS
* author only Reference(Practitioner or PractitionerRole)
* authenticator 1..1 MS
* authenticator only Reference(Practitioner or PractitionerRole)
* authenticator ^short = "The certifying physician"
* content MS
* content.attachment.data MS
* content.attachment ^short = "The signed statement"
* context 1..1 MS
* context.encounter 1..1 MS
* context.encounter only Reference(EpisodeOfCare)
* context.encounter ^short = "The IOP enrollment certified"
* context.period 1..1 MS
* context.period ^short = "The period certified (at most 60 days)"


Instance: EpisodeOfCare-hours
InstanceOf: OperationDefinition
Usage: #definition
Title: "Weekly hours of an enrollment"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-hours"
* name = "EpisodeOfCareHours"
* title = "Weekly hours of an enrollment"
* status = #draft
* kind = #operation
* description = "Computes, from the finished attendance Encounters of the enrollment at the time of the request (nothing stored, so corrections show at once), one part per ISO week (Monday to Sunday in the program's time zone: the HL7 timezone extension on the managing Organization, default America/New_York): hours attended (Encounter.length), days attended, sessions by kind (group, individual, family, psychiatric, other), services and hours per day, the Medicare per-diem tiers (days with 3 services, days with 4 or more) and, at an intensive outpatient level of care (asam-2.1, mh-iop, the level in force on the week's last day), the flags below-minimum (under 9 hours; 6 for a patient under 18 on the week's Monday), above-maximum (over 19 hours: consider partial hospitalization) and fewer-than-3-days. Default period: admission to discharge or today."
* code = #hours
* resource = #EpisodeOfCare
* system = false
* type = false
* instance = true
* affectsState = false
* parameter[0].name = #week
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "One ISO week, YYYY-Www (e.g. 2026-W47); not with start or end"
* parameter[1].name = #start
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "First day (default: admission)"
* parameter[2].name = #end
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #date
* parameter[2].documentation = "Last day (default: discharge or today); at most 106 weeks after start"
* parameter[3].name = #episode
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #Reference
* parameter[3].documentation = "The enrollment"
* parameter[4].name = #timeZone
* parameter[4].use = #out
* parameter[4].min = 1
* parameter[4].max = "1"
* parameter[4].type = #code
* parameter[4].documentation = "The program's time zone the weeks are counted in"
* parameter[5].name = #week
* parameter[5].use = #out
* parameter[5].min = 0
* parameter[5].max = "*"
* parameter[5].documentation = "One per ISO week: parts week (YYYY-Www), start, end, levelOfCare, hours, minimumHours, daysAttended, sessions (group, individual, family, psychiatric, other), day (date, services, hours; one per day attended), daysWith3Services, daysWith4OrMoreServices, flag (below-minimum | above-maximum | fewer-than-3-days)"

Instance: EpisodeOfCare-census
InstanceOf: OperationDefinition
Usage: #definition
Title: "Program census"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-census"
* name = "EpisodeOfCareCensus"
* title = "Program census"
* status = #draft
* kind = #operation
* description = "Every active enrollment, of one program Organization or of all, with the hours, days and flags of the ISO week holding the census date (counted up to that date, computed from the attendance Encounters as $hours does), days since admission, current level of care, the earlier enrollment when it is a readmission, and the next (re)certification due date and its status."
* code = #census
* resource = #EpisodeOfCare
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #organization
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "The program as Organization/[id] (default: all programs)"
* parameter[1].name = #date
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "Census date (default: today in each program's time zone)"
* parameter[2].name = #total
* parameter[2].use = #out
* parameter[2].min = 1
* parameter[2].max = "1"
* parameter[2].type = #integer
* parameter[2].documentation = "Number of active enrollments"
* parameter[3].name = #readmissions
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #integer
* parameter[3].documentation = "How many of them are readmissions (readmission-of)"
* parameter[4].name = #episode
* parameter[4].use = #out
* parameter[4].min = 0
* parameter[4].max = "*"
* parameter[4].documentation = "One per active enrollment: parts episode, patient, organization, levelOfCare, admitted, daysSinceAdmission, readmissionOf, week, weekComplete, hours, minimumHours, daysAttended, flag, nextRecertification, recertificationStatus (current | due | overdue)"

Instance: EpisodeOfCare-recertification-due
InstanceOf: OperationDefinition
Usage: #definition
Title: "Recertifications due"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-recertification-due"
* name = "EpisodeOfCareRecertificationDue"
* title = "Recertifications due"
* status = #draft
* kind = #operation
* description = "The worklist of active enrollments whose physician (re)certification is overdue or due within the next 7 days, earliest first: due 60 days after the latest final, authenticated iop-certification of the enrollment, or on admission when there is none."
* code = #recertification-due
* resource = #EpisodeOfCare
* system = false
* type = true
* instance = false
* affectsState = false
* parameter[0].name = #organization
* parameter[0].use = #in
* parameter[0].min = 0
* parameter[0].max = "1"
* parameter[0].type = #string
* parameter[0].documentation = "The program as Organization/[id] (default: all programs)"
* parameter[1].name = #date
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #date
* parameter[1].documentation = "The day to judge on (default: today in each program's time zone)"
* parameter[2].name = #total
* parameter[2].use = #out
* parameter[2].min = 1
* parameter[2].max = "1"
* parameter[2].type = #integer
* parameter[2].documentation = "Number of enrollments on the worklist"
* parameter[3].name = #recertification
* parameter[3].use = #out
* parameter[3].min = 0
* parameter[3].max = "*"
* parameter[3].documentation = "One per enrollment due: parts episode, patient, organization, lastCertification, due, daysUntilDue (negative when overdue), status (due | overdue)"
