// Sessions and attendance (issue 9, part A): the recurring schedule of a group and the two operations that
// turn it into Appointments and record a whole session's attendance (domain brief sections 3.1 and 3.2).
// R4 Schedule/Slot hold no recurrence rule, so the rule sits on the Group it belongs to, as a Timing.

Extension: SessionSchedule
Id: session-schedule
Title: "Session Schedule"
Description: "A recurring session of a therapy group: the days of the week, the start time and the duration (timing.repeat dayOfWeek, timeOfDay, duration and durationUnit), in the program's time zone (an IANA name such as America/Chicago), with the default facilitator, room, kind and topic of the sessions. Group/$schedule-sessions makes one Appointment per session from it. A group with sessions at different times has one extension per time."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Group"
* extension contains
    timing 1..1 MS and
    timeZone 1..1 MS and
    facilitator 0..1 MS and
    location 0..1 MS and
    sessionType 0..1 MS and
    topic 0..1 MS
* extension[timing] ^short = "Days, start time and duration (repeat.dayOfWeek, repeat.timeOfDay, repeat.duration, repeat.durationUnit min | h)"
* extension[timing].value[x] only Timing
* extension[timing].value[x] 1..1
* extension[timeZone] ^short = "The program's time zone (IANA tz database name, e.g. America/Chicago)"
* extension[timeZone].value[x] only code
* extension[timeZone].value[x] 1..1
* extension[facilitator] ^short = "Who runs the sessions unless $schedule-sessions names someone else"
* extension[facilitator].value[x] only Reference(Practitioner or PractitionerRole)
* extension[facilitator].value[x] 1..1
* extension[location] ^short = "Where the sessions take place"
* extension[location].value[x] only Reference(Location)
* extension[location].value[x] 1..1
* extension[sessionType] ^short = "Kind of session (default: group psychotherapy)"
* extension[sessionType].value[x] only CodeableConcept
* extension[sessionType].value[x] 1..1
* extension[sessionType].value[x] from SessionTypeVS (extensible)
* extension[topic] ^short = "Topic of the sessions (e.g. relapse prevention, CBT skills)"
* extension[topic].value[x] only CodeableConcept
* extension[topic].value[x] 1..1
* extension[topic].value[x] from CarePlanActivityVS (extensible)
* value[x] 0..0


Instance: Group-schedule-sessions
InstanceOf: OperationDefinition
Usage: #definition
Title: "Schedule a group's sessions"
* url = "https://iop.example.org/fhir/OperationDefinition/Group-schedule-sessions"
* name = "GroupScheduleSessions"
* title = "Schedule a group's sessions"
* status = #draft
* kind = #operation
* description = "Makes one iop-session-appointment per session of the Group's recurring schedule (session-schedule extensions: days, start time and duration in the program's time zone) from the start date for the given number of weeks: status booked, the Group in supportingInformation, one participant per patient on the roster that day and the facilitator (type PPRF). Idempotent: each Appointment has the identifier https://iop.example.org/fhir/sid/appointment|<group id>-<yyyymmdd>-<hhmm>, and a session that already has one is returned as it is. Returns the sessions' Appointments in a collection Bundle, in start order."
* code = #schedule-sessions
* resource = #Group
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #start
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #date
* parameter[0].documentation = "First day to schedule (in the program's time zone)"
* parameter[1].name = #weeks
* parameter[1].use = #in
* parameter[1].min = 1
* parameter[1].max = "1"
* parameter[1].type = #integer
* parameter[1].documentation = "Number of weeks to schedule, 1 to 26"
* parameter[2].name = #facilitator
* parameter[2].use = #in
* parameter[2].min = 0
* parameter[2].max = "1"
* parameter[2].type = #Reference
* parameter[2].targetProfile[0] = "http://hl7.org/fhir/StructureDefinition/Practitioner"
* parameter[2].targetProfile[1] = "http://hl7.org/fhir/StructureDefinition/PractitionerRole"
* parameter[2].documentation = "Facilitator of these sessions, instead of the schedule's"
* parameter[3].name = #return
* parameter[3].use = #out
* parameter[3].min = 1
* parameter[3].max = "1"
* parameter[3].type = #Bundle
* parameter[3].documentation = "The Appointments of the sessions (collection Bundle)"


Instance: Appointment-record-attendance
InstanceOf: OperationDefinition
Usage: #definition
Title: "Record a session's attendance"
* url = "https://iop.example.org/fhir/OperationDefinition/Appointment-record-attendance"
* name = "AppointmentRecordAttendance"
* title = "Record a session's attendance"
* status = #draft
* kind = #operation
* description = "Records the attendance of one session in one transaction (domain brief 3.2): the session Encounter of a group session (iop-session-encounter, made once), one iop-attendance-encounter per patient named (partOf the session Encounter, episodeOfCare the patient's enrollment in this program, period the actual times, length the minutes present; attended or late or left-early: finished; excused or no-show: cancelled, attendance-status says which) and the Appointment participants' status (accepted; excused: declined; no-show: needs-action) with the Appointment's status (fulfilled when anyone attended; noshow, or cancelled with reason patient when every patient was absent). Recording the same again changes nothing; a patient sent again with another state corrects that patient's Encounter. A patient who is unknown, not on the group's roster that day (or not a patient of an individual or family session), or without a planned or active enrollment of this program covering the session is a 422 naming that parameter part, and nothing is stored; so are overlapping attendance (another attended session of that patient at the same time), an end before the start, and a session in the future marked attended, late, left early or no-show; a session the program cancelled takes no attendance. Returns the Appointment and the Encounters in a collection Bundle."
* code = #record-attendance
* resource = #Appointment
* system = false
* type = false
* instance = true
* affectsState = true
* parameter[0].name = #attendance
* parameter[0].use = #in
* parameter[0].min = 1
* parameter[0].max = "*"
* parameter[0].documentation = "One per patient"
* parameter[0].part[0].name = #patient
* parameter[0].part[0].use = #in
* parameter[0].part[0].min = 1
* parameter[0].part[0].max = "1"
* parameter[0].part[0].type = #Reference
* parameter[0].part[0].targetProfile = "http://hl7.org/fhir/StructureDefinition/Patient"
* parameter[0].part[0].documentation = "The patient"
* parameter[0].part[1].name = #state
* parameter[0].part[1].use = #in
* parameter[0].part[1].min = 1
* parameter[0].part[1].max = "1"
* parameter[0].part[1].type = #code
* parameter[0].part[1].documentation = "attended | late | left-early | excused | no-show"
* parameter[0].part[2].name = #start
* parameter[0].part[2].use = #in
* parameter[0].part[2].min = 0
* parameter[0].part[2].max = "1"
* parameter[0].part[2].type = #dateTime
* parameter[0].part[2].documentation = "When the patient arrived (default: the session's start; needed for late). Not for excused or no-show."
* parameter[0].part[3].name = #end
* parameter[0].part[3].use = #in
* parameter[0].part[3].min = 0
* parameter[0].part[3].max = "1"
* parameter[0].part[3].type = #dateTime
* parameter[0].part[3].documentation = "When the patient left (default: the session's end; needed for left-early). Not for excused or no-show."
* parameter[1].name = #topic
* parameter[1].use = #in
* parameter[1].min = 0
* parameter[1].max = "1"
* parameter[1].type = #CodeableConcept
* parameter[1].documentation = "Topic of the session (Encounter.serviceType); default: the Appointment's reasonCode, else psychotherapy"
* parameter[2].name = #return
* parameter[2].use = #out
* parameter[2].min = 1
* parameter[2].max = "1"
* parameter[2].type = #Bundle
* parameter[2].documentation = "The Appointment, the session Encounter and the patients' Encounters (collection Bundle)"
