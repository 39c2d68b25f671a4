// Local code systems of the IOP IG. Each exists only because the domain brief has no confirmed code
// for its concepts in SNOMED CT, LOINC, HCPCS or HL7 terminology; every description says so.

RuleSet: LocalCodeSystem
* ^status = #draft
* ^experimental = false
* ^caseSensitive = true
* ^content = #complete
* ^publisher = "IOP FHIR service project (example.org)"

CodeSystem: LevelOfCareCS
Id: level-of-care
Title: "IOP Level of Care"
Description: "Levels and settings of behavioral health care used for the referring level of care, the requested level of care and the level of an enrollment. LOCAL code system: the ASAM Criteria level numbers are not published as a FHIR code system and the domain brief has no confirmed standard codes for them or for the referring settings (inpatient psychiatry, emergency department). Codes follow the ASAM Criteria 3rd edition (2013) numbering."
* insert LocalCodeSystem
* #asam-1 "ASAM Level 1 Outpatient Services" "Outpatient treatment: fewer than 9 hours of services a week for adults, fewer than 6 for adolescents."
* #asam-2.1 "ASAM Level 2.1 Intensive Outpatient Services" "Intensive outpatient treatment: 9 to 19 hours of services a week for adults, 6 to 19 for adolescents."
* #asam-2.5 "ASAM Level 2.5 Partial Hospitalization Services" "Partial hospitalization: 20 or more hours of services a week."
* #asam-3.1 "ASAM Level 3.1 Clinically Managed Low-Intensity Residential Services" "24-hour structured living with at least 5 hours of clinical services a week."
* #asam-3.5 "ASAM Level 3.5 Clinically Managed High-Intensity Residential Services" "24-hour clinically managed residential treatment."
* #asam-3.7 "ASAM Level 3.7 Medically Monitored Intensive Inpatient Services" "24-hour medically monitored inpatient treatment."
* #asam-3.7-wm "ASAM Level 3.7-WM Medically Monitored Inpatient Withdrawal Management" "Medically monitored inpatient withdrawal management (detoxification)."
* #asam-4 "ASAM Level 4 Medically Managed Intensive Inpatient Services" "24-hour medically managed (hospital) inpatient treatment."
* #asam-4-wm "ASAM Level 4-WM Medically Managed Intensive Inpatient Withdrawal Management" "Medically managed (hospital) inpatient withdrawal management."
* #inpatient-psychiatry "Acute inpatient psychiatric hospitalization" "Mental health inpatient unit (no ASAM level)."
* #emergency-department "Emergency department" "Emergency department or psychiatric emergency service."
* #mh-php "Mental health partial hospitalization program" "Partial hospitalization for mental health conditions (20 or more hours a week, no ASAM level)."
* #mh-iop "Mental health intensive outpatient program" "Intensive outpatient treatment for mental health conditions (9 to 19 hours a week for adults, no ASAM level)."
* #mh-outpatient "Mental health outpatient care" "Routine outpatient mental health care (psychotherapy, psychiatry)."

CodeSystem: ScheduleTrackCS
Id: iop-schedule-track
Title: "IOP Schedule Track"
Description: "When and how an IOP track meets. LOCAL code system: the domain brief has no confirmed standard code for program schedule tracks."
* insert LocalCodeSystem
* #day "Day track" "Sessions during working hours, typically mornings."
* #evening "Evening track" "Sessions after working hours, typically 17:00-21:00."
* #hybrid "Hybrid track" "Some sessions in person, some by video."
* #virtual "Virtual track" "All sessions by video (telehealth)."

CodeSystem: SpecializedTrackCS
Id: iop-specialized-track
Title: "IOP Specialized Track"
Description: "Population-specific IOP tracks. LOCAL code system: the domain brief has no confirmed standard code for specialized treatment tracks."
* insert LocalCodeSystem
* #women "Women's track" "Gender-responsive track for women."
* #men "Men's track" "Gender-responsive track for men."
* #lgbtq-plus "LGBTQ+ affirming track" "Track for lesbian, gay, bisexual, transgender, queer and other sexual and gender minority patients."
* #veterans "Veterans track" "Track for military veterans."
* #adolescents "Adolescent track" "Track for adolescents (6 to 19 hours a week at ASAM 2.1)."
* #co-occurring "Co-occurring disorders track" "Integrated track for co-occurring mental health and substance use disorders."
* #general-mh "General mental health track" "Track for adults with mental health conditions, without a population focus."
* #substance-use "Substance use track" "Track for substance use disorders."

CodeSystem: TherapyCS
Id: iop-therapy
Title: "IOP Therapies and Services"
Description: "IOP activities for which the domain brief found no SNOMED CT concept (motivational interviewing, music and adventure therapy, skills groups, case management by domain, mutual-support meetings, coping-skills practice). LOCAL code system; prefer the SNOMED CT codes of the IOP activity value set wherever one exists."
* insert LocalCodeSystem
* #motivational-interviewing "Motivational interviewing" "Motivational interviewing / motivational enhancement (individual or group)."
* #music-therapy "Music therapy" "Music therapy delivered by a credentialed music therapist."
* #adventure-therapy "Adventure therapy" "Experiential, outdoor or adventure-based therapy."
* #skills-group "Skills training group" "Coping, distress tolerance, emotion regulation or interpersonal skills group (non-DBT)."
* #case-management-housing "Case management - housing" "Case management for housing needs."
* #case-management-employment "Case management - employment" "Case management for employment, education or vocational needs."
* #case-management-legal "Case management - legal / probation" "Case management for legal matters, courts, probation or parole."
* #mutual-support-meetings "Mutual-support meeting attendance" "Attendance at mutual-support groups such as AA, NA or SMART Recovery."
* #coping-skills-practice "Coping skills practice" "Use of a planned coping strategy when a trigger or warning sign occurs."

CodeSystem: MeasureCS
Id: iop-measure
Title: "IOP Measures"
Description: "Measures used by IOP goals and observations that have no LOINC code in the domain brief (the brief proposes a local code for weekly attended hours). LOCAL code system."
* insert LocalCodeSystem
* #attended-hours-week "IOP hours attended in the week" "Total hours of IOP services a patient attended in one calendar week (Monday to Sunday), from the per-patient attendance Encounters."
* #days-abstinent "Consecutive days abstinent" "Number of consecutive days without use of the substances the treatment plan targets."
* #mutual-support-meetings-week "Mutual-support meetings per week" "Number of mutual-support meetings (AA, NA, SMART Recovery) attended in a week."
* #coping-strategy-uses-week "Coping strategies used per week" "Number of times in a week the patient used a planned coping strategy in response to a trigger."

CodeSystem: AttendanceCS
Id: iop-attendance
Title: "IOP Session Attendance"
Description: "How a patient attended one scheduled IOP session (domain brief section 3.2). LOCAL code system: the brief has no confirmed standard code that separates an excused absence from a no-show."
* insert LocalCodeSystem
* #attended "Attended" "Attended the whole session."
* #partial "Attended in part" "Arrived late or left early; Encounter.length holds the minutes present."
* #excused-absence "Excused absence" "Absent with notice and an accepted reason."
* #no-show "No-show" "Absent without notice."
* #session-cancelled "Session cancelled by the program" "The program cancelled the session."

CodeSystem: RelapsePreventionCS
Id: iop-relapse-prevention
Title: "IOP Relapse Prevention Plan Components"
Description: "The parts of a structured relapse prevention plan (triggers, warning signs, coping strategies, support network, crisis steps). LOCAL code system: the domain brief has SNOMED CT codes for relapse prevention programs (720176005, 720177001) but none for the components of a plan."
* insert LocalCodeSystem
* #relapse-prevention "Relapse prevention" "A goal or activity of the relapse prevention plan (used as Goal.category)."
* #trigger "Trigger or high-risk situation" "A person, place, feeling or situation that raises the risk of use; the activity names it in detail.reasonCode."
* #warning-sign "Early warning sign" "A thought, feeling or behavior that signals rising relapse risk."
* #coping-strategy "Coping strategy" "What the patient does when a trigger or warning sign occurs."
* #support-network "Support network contact" "A person or group the patient contacts for support; the activity names them in detail.performer."
* #crisis-step "Crisis step" "What to do in a crisis or after a lapse (who to call, where to go)."

CodeSystem: CarePlanCategoryCS
Id: iop-careplan-category
Title: "IOP Care Plan Category"
Description: "Kinds of IOP care plans, used next to the US Core assess-plan category. LOCAL code system: the domain brief proposes these local categories (section 2.3) and has no standard code for them."
* insert LocalCodeSystem
* #iop-treatment-plan "IOP treatment plan" "The individualized written treatment plan of an IOP enrollment."
* #aftercare-plan "Aftercare plan" "The continuing-care plan after IOP discharge."

CodeSystem: ProgramTypeCS
Id: iop-program-type
Title: "IOP Program Type"
Description: "Types of IOP programs (HealthcareService.type). LOCAL code system: the domain brief found no SNOMED CT concept for an intensive outpatient program."
* insert LocalCodeSystem
* #adult-mh-sud-iop "Adult mental health and substance use intensive outpatient program" "Co-occurring adult IOP."
* #adult-mh-iop "Adult mental health intensive outpatient program" "Adult IOP for mental health conditions."
* #adult-sud-iop "Adult substance use intensive outpatient program" "Adult IOP for substance use disorders (ASAM 2.1)."
* #adolescent-iop "Adolescent intensive outpatient program" "IOP for adolescents."

CodeSystem: CssrsRiskCS
Id: iop-cssrs-risk
Title: "IOP C-SSRS Risk Level (local)"
Description: "Moderate and high suicide risk levels for the C-SSRS screener result (LOINC 93374-7). LOCAL code system: the domain brief confirms only the LOINC answer LA9194-7 (Low) for 93374-7; the LOINC answers for moderate and high risk are not confirmed in our sources, so they are local codes until checked against LOINC."
* insert LocalCodeSystem
* #moderate "Moderate risk" "C-SSRS screener: moderate suicide risk."
* #high "High risk" "C-SSRS screener: high suicide risk."

CodeSystem: ReferralStepCS
Id: iop-referral-step
Title: "IOP Referral Step"
Description: "The finer steps of an IOP referral that the referrer sees in Task.businessStatus, next to the BSeR / IHE 360X business status where one exists. LOCAL code system: BSeR's TaskBusinessStatusCS has no code for under review, eligibility checked or admitted, and the domain brief confirms no other standard code for them."
* insert LocalCodeSystem
* #received "Received" "The IOP has received the referral."
* #under-review "Under review" "Intake staff are reviewing the referral."
* #eligibility-checked "Eligibility checked" "The service has checked eligibility and proposed a decision; staff have not yet decided."
* #accepted "Accepted" "The IOP accepted the referral."
* #declined "Declined" "The IOP declined the referral (the reason is in Task.statusReason)."
* #intake-scheduled "Intake scheduled" "An intake appointment is booked."
* #no-show "No-show" "The patient did not come to the intake appointment."
* #admitted "Admitted" "The patient attended a first session; the enrollment is active."
* #completed "Completed" "The patient was discharged from the IOP; outputs carry the discharge summary and aftercare."
* #cancelled "Cancelled" "The referral was cancelled."

CodeSystem: ReferralMeasureCS
Id: iop-referral-measure
Title: "IOP Referral Service-Level Figure"
Description: "The referral service-level figures a program reports per period (MeasureReport.group.code of Task/$referral-metrics and the groups of Measure referral-service-levels). LOCAL code system: the domain brief names no LOINC, SNOMED CT or HL7 code for referral turnaround times or intake attendance rates."
* insert LocalCodeSystem
* #time-to-acknowledge "Time to acknowledge" "Median hours from the referral's receipt (its Task's first version) to the first version whose status left requested (received, accepted, rejected or later)."
* #time-to-decision "Time to decision" "Median hours from the referral's receipt to the first version of its Task with status accepted or rejected."
* #time-to-first-session "Time to first session" "Median hours from the referral's receipt to the first version of its Task with step admitted or status in-progress (the first attended session)."
* #first-appointment-kept "First (intake) appointment kept" "Share (0 to 1) of referrals whose first intake Appointment has an outcome in which the patient came: the Appointment arrived, checked-in or fulfilled, or the referral reached admitted before any no-show."

CodeSystem: EligibilityCS
Id: iop-eligibility
Title: "IOP Eligibility Check"
Description: "What an IOP checks before accepting a referral, used for triage findings sent with a referral (Observation.code, valueBoolean) and for the reasons of a proposed or final decision (Task.statusReason). LOCAL code system: the domain brief has no confirmed SNOMED CT or LOINC code for these intake criteria."
* insert LocalCodeSystem
* #medically-stable "Medically stable" "The patient is medically stable for outpatient care (finding: valueBoolean true)."
* #needs-24h-supervision "Needs 24-hour supervision" "The patient needs 24-hour supervision, so a residential or inpatient level of care (finding: valueBoolean true)."
* #age-fit "Age fits the track" "The patient's age fits the requested track (adolescent track under 18, adult tracks 18 and over)."
* #track-fit "Track and schedule offered" "The program offers the requested specialized track and schedule."
* #insurance-in-network "Insurance in network" "The payer of the referral's Coverage is one the program accepts."
* #seat-available "Seat available" "A seat is free in the requested track and schedule."

CodeSystem: EndpointPayloadCS
Id: iop-endpoint-payload
Title: "IOP Endpoint Payload"
Description: "What this service does with an external FHIR server configured as an Endpoint (Endpoint.payloadType). LOCAL code system: no standard code says \"poll this server for referral Tasks owned by our program\"."
* insert LocalCodeSystem
* #referral-source "Referral source" "A referring server polled for referral Tasks owned by our program (workflow option F; `flask referrals pull`)."
