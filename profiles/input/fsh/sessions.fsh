// Group and individual sessions (domain brief section 3.1): Group (the roster), Appointment (one per
// session, one participant per patient), a session Encounter (subject the Group, not US Core), and one
// per-patient attendance Encounter partOf the session (US Core 6.1 Encounter mandatory elements).

Profile: IopGroup
Parent: Group
Id: iop-group
Title: "IOP Therapy Group"
Description: "The roster of an IOP therapy group (cohort): the patients who are members, with the period of their membership, the managing organization, and the schedule and specialized track the group belongs to."
* ^status = #draft
* extension ^short = "IOP extensions (sliced by url)"
* extension contains
    ScheduleTrack named scheduleTrack 0..1 MS and
    SpecializedTrack named specializedTrack 0..* MS and
    TrackService named trackService 0..1 MS
* extension[trackService] ^short = "The program track (HealthcareService) whose seats the roster fills"
* insert SliceUrl(extension[trackService], track-service)
* extension[scheduleTrack] ^short = "Schedule track of the group"
* insert SliceUrl(extension[scheduleTrack], schedule-track)
* extension[specializedTrack] ^short = "Specialized track(s) of the group"
* insert SliceUrl(extension[specializedTrack], specialized-track)
* identifier MS
* identifier ^short = "Business identifier of the group"
* active MS
* active ^short = "Whether the group still meets"
* type = #person
* type MS
* type ^short = "person"
* actual = true
* actual MS
* actual ^short = "true: a real roster, not a definition"
* name 1..1 MS
* name ^short = "Name of the group (track and schedule)"
* managingEntity 1..1 MS
* managingEntity only Reference(Organization or Practitioner or PractitionerRole)
* managingEntity ^short = "The IOP (or facilitator) running the group"
* member MS
* member ^short = "Patients on the roster"
* member.entity only Reference(Patient)
* member.entity MS
* member.entity ^short = "The patient"
* member.period MS
* member.period ^short = "Membership period (joined, left)"
* member.inactive MS
* member.inactive ^short = "Member no longer attends"


Profile: IopSessionAppointment
Parent: Appointment
Id: iop-session-appointment
Title: "IOP Session Appointment"
Description: "One scheduled IOP session, group or individual: one participant per patient (group sessions list every roster member; R4 Appointment cannot name a Group), the facilitator(s) as participants with type PPRF, the kind of session, its start, end and duration; a group session names the Group roster in supportingInformation. Excused absence: participant status declined; a no-show of a single-patient appointment: status noshow."
* ^status = #draft
* obeys iop-15 and iop-16
* identifier MS
* identifier ^short = "Business identifier of the session appointment"
* status MS
* status ^short = "proposed | pending | booked | arrived | fulfilled | cancelled | noshow | entered-in-error | checked-in | waitlist"
* cancelationReason MS
* cancelationReason ^short = "Why the session was cancelled"
* serviceCategory MS
* serviceCategory ^short = "Broad category, e.g. service-category#22 Mental Health"
* serviceType 1..* MS
* serviceType from SessionTypeVS (extensible)
* serviceType ^short = "Kind of session: group, individual, family psychotherapy, psychiatric follow-up ..."
* description MS
* description ^short = "Topic of the session"
* supportingInformation MS
* supportingInformation ^short = "The Group roster of a group session"
* start 1..1 MS
* start ^short = "Session start"
* end 1..1 MS
* end ^short = "Session end"
* minutesDuration MS
* minutesDuration ^short = "Planned duration in minutes"
* participant MS
* participant ^short = "One per patient (each actor once: iop-15) and the facilitator(s) (type PPRF: iop-16)"
* participant.type MS
* participant.type ^short = "PPRF for the facilitator"
* participant.actor 1..1 MS
* participant.actor only Reference(Patient or Practitioner or PractitionerRole or RelatedPerson or Location or HealthcareService)
* participant.actor ^short = "Patient, facilitator, family member, room or service"
* participant.status MS
* participant.status ^short = "accepted | declined (excused absence) | tentative | needs-action"

Invariant: iop-15
Description: "Each actor takes part once (one participant per patient)."
Severity: #error
Expression: "participant.actor.reference.isDistinct()"

Invariant: iop-16
Description: "A session has a facilitator: a participant of type PPRF (primary performer)."
Severity: #error
Expression: "participant.where(type.coding.where(system = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType' and code = 'PPRF').exists()).exists()"


Profile: IopSessionEncounter
Parent: Encounter
Id: iop-session-encounter
Title: "IOP Group Session Encounter"
Description: "A group therapy session as delivered: subject the Group roster (base R4 allows a Group subject; US Core Encounter does not, so this Encounter is not US Core), modality (class AMB in person or VR virtual), kind of session (type), topic (serviceType), facilitator (participant PPRF), period and duration (length in minutes). Each attending patient has an iop-attendance-encounter partOf this one."
* ^status = #draft
* obeys iop-17
* identifier MS
* identifier ^short = "Business identifier of the session"
* status MS
* status ^short = "planned | arrived | in-progress | finished | cancelled | ..."
* class from EncounterClassVS (required)
* class MS
* class ^short = "Modality: AMB (in person) | VR (virtual)"
* type 1..* MS
* type from SessionTypeVS (extensible)
* type ^short = "Kind of session (e.g. group psychotherapy)"
* serviceType 1..1 MS
* serviceType from CarePlanActivityVS (extensible)
* serviceType ^short = "Topic of the session (e.g. relapse prevention, CBT skills, DBT skills, psychoeducation)"
* subject 1..1 MS
* subject only Reference(IopGroup)
* subject ^short = "The Group roster"
* participant 1..* MS
* participant ^short = "Facilitator(s) (type PPRF: iop-17) and co-facilitators"
* participant.type MS
* participant.type ^short = "PPRF for the facilitator"
* participant.individual 1..1 MS
* participant.individual only Reference(Practitioner or PractitionerRole)
* participant.individual ^short = "The facilitator"
* appointment MS
* appointment only Reference(Appointment)
* appointment ^short = "The session Appointment"
* period 1..1 MS
* period ^short = "When the session took place"
* length 1..1 MS
* length ^short = "Duration in minutes"
* length.value 1..1
* length.value ^short = "Minutes"
* length.system 1..1
* length.system = $ucum
* length.system ^short = "UCUM"
* length.code 1..1
* length.code = #min
* length.code ^short = "min"
* location MS
* location ^short = "Room, or the virtual meeting place"
* serviceProvider 1..1 MS
* serviceProvider ^short = "The IOP organization"

Invariant: iop-17
Description: "A session Encounter has a facilitator: a participant of type PPRF (primary performer)."
Severity: #error
Expression: "participant.where(type.coding.where(system = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType' and code = 'PPRF').exists()).exists()"


Profile: IopAttendanceEncounter
Parent: Encounter
Id: iop-attendance-encounter
Title: "IOP Attendance Encounter"
Description: "One patient's attendance at one IOP session (group, individual or family): a US Core 6.1 conformant Encounter (type and subject Patient required; identifier, status, class, participant, period, reasonCode, reasonReference, dischargeDisposition, location, serviceProvider Must Support) linked to the enrollment (episodeOfCare), the Appointment and, for group sessions, partOf the session Encounter. Attendance (domain brief 3.2): attended or partial = finished with length = minutes present; excused absence or no-show = cancelled; the attendance-status extension says which."
* ^status = #draft
* obeys iop-11 and iop-12 and iop-13
* extension ^short = "IOP extensions (sliced by url)"
* extension contains AttendanceStatus named attendanceStatus 0..1 MS
* extension[attendanceStatus] ^short = "attended | partial | excused-absence | no-show | session-cancelled (required once finished or cancelled: iop-12)"
* insert SliceUrl(extension[attendanceStatus], attendance-status)
* identifier MS
* identifier ^short = "Business identifier of the attendance record"
* identifier.system 1..1 MS
* identifier.system ^short = "Namespace of the identifier"
* identifier.value 1..1 MS
* identifier.value ^short = "The identifier value"
* status MS
* status ^short = "finished (attended) | cancelled (absent) | planned | ..."
* class from EncounterClassVS (required)
* class MS
* class ^short = "Modality: AMB (in person) | VR (virtual)"
* type 1..* MS
* type from SessionTypeVS (extensible)
* type ^short = "Kind of session (group, individual, family psychotherapy ...)"
* serviceType MS
* serviceType from CarePlanActivityVS (extensible)
* serviceType ^short = "Topic of the session"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* episodeOfCare 1..* MS
* episodeOfCare only Reference(IopEnrollment)
* episodeOfCare ^short = "The IOP enrollment the hours count towards"
* participant MS
* participant ^short = "Clinicians present"
* participant.type MS
* participant.type ^short = "Role of the participant"
* participant.period MS
* participant.period ^short = "When the participant was present"
* participant.individual MS
* participant.individual ^short = "The clinician"
* appointment MS
* appointment only Reference(Appointment)
* appointment ^short = "The session Appointment"
* period MS
* period ^short = "Time of the session (or of the patient's presence)"
* length MS
* length ^short = "Minutes present (required when finished: iop-11)"
* length.system = $ucum
* length.system ^short = "UCUM"
* length.code = #min
* length.code ^short = "min"
* reasonCode MS
* reasonCode ^short = "Reason for the encounter (coded)"
* reasonReference MS
* reasonReference ^short = "Conditions treated"
* hospitalization.dischargeDisposition MS
* hospitalization.dischargeDisposition ^short = "US Core Must Support; not used for sessions"
* location MS
* location ^short = "Where the session took place"
* location.location MS
* location.location ^short = "The Location"
* serviceProvider MS
* serviceProvider ^short = "The IOP organization"
* partOf MS
* partOf only Reference(IopSessionEncounter)
* partOf ^short = "The group session Encounter (required for group sessions: iop-13)"

Invariant: iop-11
Description: "A finished attendance Encounter has the minutes present (length)."
Severity: #error
Expression: "status = 'finished' implies length.value.exists()"

Invariant: iop-12
Description: "A finished or cancelled attendance Encounter says how the patient attended, consistently: attended or partial when finished; excused-absence, no-show or session-cancelled when cancelled."
Severity: #error
Expression: "(status = 'finished' implies extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/attendance-status').valueCodeableConcept.coding.where(system = 'https://iop.example.org/fhir/CodeSystem/iop-attendance' and (code = 'attended' or code = 'partial')).exists()) and (status = 'cancelled' implies extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/attendance-status').valueCodeableConcept.coding.where(system = 'https://iop.example.org/fhir/CodeSystem/iop-attendance' and (code = 'excused-absence' or code = 'no-show' or code = 'session-cancelled')).exists())"

Invariant: iop-13
Description: "Attendance at a group session (type group psychotherapy) is partOf the session Encounter."
Severity: #error
Expression: "type.coding.where(system = 'http://snomed.info/sct' and (code = '76168009' or code = '1555005' or code = '28868002')).exists() implies partOf.exists()"
