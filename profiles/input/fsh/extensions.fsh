// Extensions for what base R4 has no element for.

RuleSet: IopExtension
* ^status = #draft
* ^experimental = false
* ^publisher = "IOP FHIR service project (example.org)"

Extension: ReferringLevelOfCare
Id: referring-level-of-care
Title: "Referring Level of Care"
Description: "The level of care or setting the patient is referred from (e.g. inpatient psychiatry, withdrawal management, residential, partial hospitalization, emergency department)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "ServiceRequest"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Level of care or setting referred from"
* value[x] from LevelOfCareVS (required)

Extension: RequestedLevelOfCare
Id: requested-level-of-care
Title: "Requested Level of Care"
Description: "The level of care the referral asks for (an IOP referral asks for ASAM 2.1 or mental health IOP; an aftercare referral for outpatient care)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "ServiceRequest"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Level of care requested"
* value[x] from LevelOfCareVS (required)

Extension: LevelOfCare
Id: level-of-care
Title: "Level of Care"
Description: "The level of care of an enrollment or program (e.g. ASAM 2.1 Intensive Outpatient Services)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "EpisodeOfCare"
* ^context[1].type = #element
* ^context[1].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Level of care"
* value[x] from LevelOfCareVS (required)

Extension: ScheduleTrack
Id: schedule-track
Title: "Schedule Track"
Description: "The IOP schedule track: requested (ServiceRequest), assigned (EpisodeOfCare, Group) or offered (HealthcareService): day, evening, hybrid or virtual."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "ServiceRequest"
* ^context[1].type = #element
* ^context[1].expression = "EpisodeOfCare"
* ^context[2].type = #element
* ^context[2].expression = "Group"
* ^context[3].type = #element
* ^context[3].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Day | evening | hybrid | virtual"
* value[x] from ScheduleTrackVS (required)

Extension: SpecializedTrack
Id: specialized-track
Title: "Specialized Track"
Description: "A population-specific IOP track requested, assigned or offered (women, men, LGBTQ+, veterans, adolescents, co-occurring disorders)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "ServiceRequest"
* ^context[1].type = #element
* ^context[1].expression = "EpisodeOfCare"
* ^context[2].type = #element
* ^context[2].expression = "Group"
* ^context[3].type = #element
* ^context[3].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Specialized track"
* value[x] from SpecializedTrackVS (required)

Extension: TargetHoursPerWeek
Id: target-hours-per-week
Title: "Target Hours per Week"
Description: "The hours of IOP services a week the treatment plan targets (ASAM 2.1: 9-19 for adults, 6-19 for adolescents; Medicare IOP certification: at least 9), in UCUM hours."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "EpisodeOfCare"
* ^context[1].type = #element
* ^context[1].expression = "CarePlan"
* value[x] 1..1
* value[x] only Quantity
* value[x] ^short = "Hours per week (UCUM h)"
* valueQuantity.value 1..1
* valueQuantity.value ^short = "Number of hours"
* valueQuantity.system 1..1
* valueQuantity.system = $ucum
* valueQuantity.system ^short = "UCUM"
* valueQuantity.code 1..1
* valueQuantity.code = #h
* valueQuantity.code ^short = "h (hour)"
* obeys iop-1

Invariant: iop-1
Description: "Target hours per week are positive."
Severity: #error
Expression: "valueQuantity.value > 0"

Extension: AttendanceStatus
Id: attendance-status
Title: "Attendance Status"
Description: "How the patient attended the scheduled session this per-patient Encounter records (attended, partial, excused absence, no-show, session cancelled)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Encounter"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Attended | partial | excused-absence | no-show | session-cancelled"
* value[x] from AttendanceVS (required)

Extension: RelapsePreventionComponent
Id: relapse-prevention-component
Title: "Relapse Prevention Component"
Description: "Marks a care plan activity as a part of the structured relapse prevention plan and says which part: a trigger (named in detail.reasonCode), a warning sign, a coping strategy, a support network contact (named in detail.performer) or a crisis step."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "CarePlan.activity"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Trigger | warning-sign | coping-strategy | support-network | crisis-step"
* value[x] from RelapsePreventionComponentVS (required)

// Repeats an extension's fixed url on the profile's slice (Slice.url), so validators that match
// extension slices from the profile snapshot alone (e.g. Medplum) can discriminate by url.
RuleSet: SliceUrl(slice, extensionId)
* {slice}.url = "https://iop.example.org/fhir/StructureDefinition/{extensionId}" (exactly)

Extension: AcceptedPayer
Id: accepted-payer
Title: "Accepted Payer"
Description: "A payer (insurer) whose plans this program track accepts as in network; triage compares the referral Coverage's payor against these."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "HealthcareService"
* value[x] 1..1
* value[x] only Reference(Organization)
* value[x] ^short = "The payer organization"

Extension: SeatCapacity
Id: seat-capacity
Title: "Seat Capacity"
Description: "How many patients this program track can enroll at once, shared by the rosters (Group, track-service) of the track. Open seats are computed from those rosters, never typed."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "HealthcareService"
* value[x] 1..1
* value[x] only unsignedInt
* value[x] ^short = "Number of seats"

Extension: ReferralTaskOwner
Id: referral-task-owner
Title: "Referral Task Owner"
Description: "On a referral-source Endpoint: how the remote server names our program as the owner of its referral Tasks, as an absolute reference on the remote (searched as owner=) or an identifier (searched as owner:identifier=)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* value[x] 1..1
* value[x] only Reference(Organization or HealthcareService)
* value[x] ^short = "Our program as the remote names it"

Extension: ReferralProgram
Id: referral-program
Title: "Referral Program"
Description: "On a referral-source Endpoint: the program on this server (Organization or HealthcareService) that pulled referrals are addressed to."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* value[x] 1..1
* value[x] only Reference(Organization or HealthcareService)
* value[x] ^short = "Our program on this server"

Extension: EndpointTokenEnv
Id: endpoint-token-env
Title: "Endpoint Token Variable"
Description: "On an Endpoint: the name of the environment variable (IOP_SECRET_...) that holds the static bearer token for that server. The token itself is never stored in a resource."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* value[x] 1..1
* value[x] only string
* value[x] ^short = "IOP_SECRET_... variable name"
