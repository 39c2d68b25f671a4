// IOP enrollment (EpisodeOfCare). US Core 6.1 does not profile EpisodeOfCare.

Profile: IopEnrollment
Parent: EpisodeOfCare
Id: iop-enrollment
Title: "IOP Enrollment"
Description: "A patient's enrollment in an Intensive Outpatient Program, from waitlist or planned admission to discharge: status, level of care (e.g. ASAM 2.1), the referral it answers, the care manager and team, the period, the target hours of services per week and the schedule track."
* ^status = #draft
* obeys iop-6 and iop-7 and iop-8
* extension ^short = "IOP extensions (sliced by url)"
* extension contains
    LevelOfCare named levelOfCare 1..1 MS and
    TargetHoursPerWeek named targetHoursPerWeek 1..1 MS and
    ScheduleTrack named scheduleTrack 1..1 MS and
    SpecializedTrack named specializedTrack 0..* MS
* extension[levelOfCare] ^short = "Level of care of the enrollment (asam-2.1, mh-iop)"
* insert SliceUrl(extension[levelOfCare], level-of-care)
* extension[targetHoursPerWeek] ^short = "Hours of services per week the plan targets (6-19 at IOP levels: iop-8)"
* insert SliceUrl(extension[targetHoursPerWeek], target-hours-per-week)
* extension[scheduleTrack] ^short = "Assigned schedule track: day | evening | hybrid | virtual"
* insert SliceUrl(extension[scheduleTrack], schedule-track)
* extension[specializedTrack] ^short = "Assigned specialized track(s)"
* insert SliceUrl(extension[specializedTrack], specialized-track)
* identifier MS
* identifier ^short = "Business identifier of the enrollment"
* status from EnrollmentStatusVS (required)
* status MS
* status ^short = "planned | waitlist | active | onhold | finished | cancelled"
* statusHistory MS
* statusHistory ^short = "Past statuses (waitlist, planned, active, onhold) with their periods"
* type MS
* type ^short = "Kind of episode, e.g. episodeofcare-type#da (drug and alcohol rehabilitation)"
* diagnosis MS
* diagnosis ^short = "Diagnoses treated in the IOP"
* patient only Reference(Patient)
* patient MS
* patient ^short = "The enrolled patient"
* managingOrganization 1..1 MS
* managingOrganization ^short = "The IOP organization"
* period 1..1 MS
* period ^short = "Admission to discharge (start required once active: iop-6; end once finished: iop-7)"
* referralRequest MS
* referralRequest only Reference(ServiceRequest)
* referralRequest ^short = "The iop-referral(s) this enrollment answers"
* careManager MS
* careManager only Reference(Practitioner or PractitionerRole)
* careManager ^short = "Primary therapist / care manager (required once active: iop-6)"
* team MS
* team only Reference(CareTeam)
* team ^short = "The IOP care team"

Invariant: iop-6
Description: "An active, on-hold or finished enrollment has a care manager and a start date."
Severity: #error
Expression: "(status = 'active' or status = 'onhold' or status = 'finished') implies (careManager.exists() and period.start.exists())"

Invariant: iop-7
Description: "A finished enrollment has an end date."
Severity: #error
Expression: "status = 'finished' implies period.end.exists()"

Invariant: iop-8
Description: "At an intensive outpatient level of care (asam-2.1, mh-iop) the target is 6 to 19 hours a week (UCUM h; ASAM 2.1: 9-19 adults, 6-19 adolescents)."
Severity: #error
Expression: "extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/level-of-care').valueCodeableConcept.coding.where(system = 'https://iop.example.org/fhir/CodeSystem/level-of-care' and (code = 'asam-2.1' or code = 'mh-iop')).exists() implies extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/target-hours-per-week').valueQuantity.where(system = 'http://unitsofmeasure.org' and code = 'h' and value >= 6 and value <= 19).exists()"
