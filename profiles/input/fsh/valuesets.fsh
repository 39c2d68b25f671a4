// Value sets of the IOP IG. Every value set is locally expandable: it includes a whole local code
// system, or lists its concepts explicitly (SNOMED CT, LOINC, RxNorm, HCPCS, ICD-10-CM, HL7).

RuleSet: IopValueSet
* ^status = #draft
* ^experimental = false
* ^publisher = "IOP FHIR service project (example.org)"

// ------------------------------------------------------------------ local code systems, whole
ValueSet: LevelOfCareVS
Id: level-of-care
Title: "IOP Level of Care"
Description: "All levels and settings of care of the local level-of-care code system (ASAM Criteria levels and non-ASAM mental health settings)."
* insert IopValueSet
* include codes from system LevelOfCareCS

ValueSet: ScheduleTrackVS
Id: iop-schedule-track
Title: "IOP Schedule Track"
Description: "Day, evening, hybrid and virtual IOP schedule tracks."
* insert IopValueSet
* include codes from system ScheduleTrackCS

ValueSet: SpecializedTrackVS
Id: iop-specialized-track
Title: "IOP Specialized Track"
Description: "IOP tracks: women, men, LGBTQ+, veterans, adolescents, co-occurring disorders, general mental health, substance use."
* insert IopValueSet
* include codes from system SpecializedTrackCS

ValueSet: AttendanceVS
Id: iop-attendance
Title: "IOP Session Attendance"
Description: "How a patient attended a scheduled session."
* insert IopValueSet
* include codes from system AttendanceCS

ValueSet: RelapsePreventionComponentVS
Id: iop-relapse-prevention
Title: "IOP Relapse Prevention Plan Components"
Description: "Components of a structured relapse prevention plan."
* insert IopValueSet
* include codes from system RelapsePreventionCS

ValueSet: CarePlanCategoryVS
Id: iop-careplan-category
Title: "IOP Care Plan Category"
Description: "Local IOP care plan categories."
* insert IopValueSet
* include codes from system CarePlanCategoryCS

ValueSet: ProgramTypeVS
Id: iop-program-type
Title: "IOP Program Type"
Description: "Types of IOP programs."
* insert IopValueSet
* include codes from system ProgramTypeCS

ValueSet: MeasureVS
Id: iop-measure
Title: "IOP Local Measures"
Description: "Local IOP measures (weekly attended hours, days abstinent, mutual-support meetings, coping strategy use)."
* insert IopValueSet
* include codes from system MeasureCS

// ------------------------------------------------------------------ referral
ValueSet: ReferralCodeVS
Id: iop-referral-code
Title: "IOP Referral Code"
Description: "What an inbound IOP referral asks for: SNOMED CT referral procedures and the HCPCS intensive outpatient codes."
* insert IopValueSet
* $sct#306226009 "Referral to mental health counseling service"
* $sct#390866009 "Referral to mental health team"
* $sct#183524004 "Referral to psychiatry service"
* $sct#81294000 "Patient referral for psychotherapy"
* $hcpcs#S9480 "Intensive outpatient psychiatric services, per diem"
* $hcpcs#H0015 "Alcohol and/or drug services; intensive outpatient (treatment program that operates at least 3 hours/day and at least 3 days/week and is based on an individualized treatment plan), including assessment, counseling; crisis intervention, and activity therapies or education"

ValueSet: ReferralCategoryVS
Id: iop-referral-category
Title: "IOP Referral Category"
Description: "ServiceRequest categories for behavioral health referrals (members of the US Core ServiceRequest category value set)."
* insert IopValueSet
* $sct#409063005 "Counselling"
* $sct#410606002 "Social service procedure"
* $sct#386053000 "Evaluation procedure"

ValueSet: ReferralReasonVS
Id: iop-referral-reason
Title: "IOP Referral Reason"
Description: "Typical IOP diagnoses (ICD-10-CM). Bound extensibly: any ICD-10-CM or SNOMED CT diagnosis may be sent."
* insert IopValueSet
* $icd10cm#F10.20 "Alcohol dependence, uncomplicated"
* $icd10cm#F11.20 "Opioid dependence, uncomplicated"
* $icd10cm#F11.11 "Opioid abuse, in remission"
* $icd10cm#F32.1 "Major depressive disorder, single episode, moderate"
* $icd10cm#F32.2 "Major depressive disorder, single episode, severe without psychotic features"
* $icd10cm#F33.1 "Major depressive disorder, recurrent, moderate"
* $icd10cm#F33.2 "Major depressive disorder, recurrent severe without psychotic features"
* $icd10cm#F41.1 "Generalized anxiety disorder"
* $icd10cm#F43.10 "Post-traumatic stress disorder, unspecified"

ValueSet: AftercareReferralCodeVS
Id: iop-aftercare-referral-code
Title: "IOP Aftercare Referral Code"
Description: "Referrals made at IOP discharge to continuing care (SNOMED CT)."
* insert IopValueSet
* $sct#306226009 "Referral to mental health counseling service"
* $sct#183524004 "Referral to psychiatry service"
* $sct#711281004 "Referral to support group"
* $sct#710914003 "Referral to family therapy"
* $sct#81294000 "Patient referral for psychotherapy"
* $sct#390866009 "Referral to mental health team"
* $sct#461481000124109 "Referral to peer support"

ValueSet: ReferralTaskStatusVS
Id: iop-referral-task-status
Title: "IOP Referral Task Status"
Description: "Task statuses of a closed-loop referral: every TaskStatus except ready (Gravity also excludes received; BSeR keeps it, so it is accepted here)."
* insert IopValueSet
* $task-status#draft "Draft"
* $task-status#requested "Requested"
* $task-status#received "Received"
* $task-status#accepted "Accepted"
* $task-status#rejected "Rejected"
* $task-status#cancelled "Cancelled"
* $task-status#in-progress "In Progress"
* $task-status#on-hold "On Hold"
* $task-status#failed "Failed"
* $task-status#completed "Completed"
* $task-status#entered-in-error "Entered in Error"

ValueSet: ReferralBusinessStatusVS
Id: iop-referral-business-status
Title: "IOP Referral Business Status"
Description: "BSeR / IHE 360X referral business statuses (http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS) and the IOP's finer referral steps (local iop-referral-step)."
* insert IopValueSet
* $bser-business-status#2.0 "Service Request Created"
* $bser-business-status#3.0 "Service Request Accepted"
* $bser-business-status#4.0 "Service Request Declined"
* $bser-business-status#5.1.1 "Service Request Event Scheduled"
* $bser-business-status#5.1.2 "Scheduled Service Request Event Unattended"
* $bser-business-status#5.1.3 "Scheduled Service Request Event Cancelled"
* $bser-business-status#5.1.4 "Service Request Event Completed"
* $bser-business-status#5.2 "Service Request Cancellation Requested"
* $bser-business-status#6.0 "Service Request Fulfillment Cancelled"
* $bser-business-status#7.0 "Service Request Fulfillment Completed"
* include codes from system ReferralStepCS

// ------------------------------------------------------------------ enrollment
ValueSet: EnrollmentStatusVS
Id: iop-enrollment-status
Title: "IOP Enrollment Status"
Description: "EpisodeOfCare statuses an IOP enrollment may take (entered-in-error is not used)."
* insert IopValueSet
* $episode-of-care-status#planned "Planned"
* $episode-of-care-status#waitlist "Waitlist"
* $episode-of-care-status#active "Active"
* $episode-of-care-status#onhold "On Hold"
* $episode-of-care-status#finished "Finished"
* $episode-of-care-status#cancelled "Cancelled"

// ------------------------------------------------------------------ care plan and goals
ValueSet: CarePlanActivityVS
Id: iop-careplan-activity
Title: "IOP Care Plan Activity"
Description: "Therapies and services of an IOP treatment plan: SNOMED CT therapy, counseling, education, medication and referral procedures, plus the local IOP therapy codes for activities without a SNOMED CT concept in the domain brief."
* insert IopValueSet
* $sct#18512000 "Individual psychotherapy"
* $sct#76168009 "Group psychotherapy"
* $sct#1555005 "Brief group psychotherapy"
* $sct#108313002 "Family psychotherapy procedure"
* $sct#75516001 "Psychotherapy"
* $sct#228557008 "Cognitive and behavioral therapy"
* $sct#405780009 "Dialectical behavior therapy"
* $sct#449030000 "Eye movement desensitization and reprocessing"
* $sct#443730003 "Interpersonal psychotherapy"
* $sct#65153003 "Art therapy"
* $sct#720176005 "Alcohol relapse prevention program"
* $sct#720177001 "Drug relapse prevention program"
* $sct#313071005 "Counseling for substance abuse"
* $sct#60112009 "Drug addiction counseling"
* $sct#24165007 "Alcoholism counseling"
* $sct#385989002 "Substance use therapy"
* $sct#266707007 "Drug addiction therapy"
* $sct#171047005 "Drugs of addiction education"
* $sct#410224008 "Mental health care education"
* $sct#410233005 "Mental health treatment education"
* $sct#182836005 "Review of medication"
* $sct#88848003 "Psychiatric follow-up"
* $sct#5694008 "Crisis intervention with follow-up"
* $sct#401277000 "Completion of mental health crisis plan"
* $sct#720174008 "Drug harm reduction program"
* $sct#720175009 "Alcohol harm reduction program"
* $sct#310653000 "Drug addiction therapy using methadone"
* $sct#792901003 "Drug addiction therapy using buprenorphine"
* $sct#792902005 "Drug addiction therapy using buprenorphine and naloxone"
* $sct#711281004 "Referral to support group"
* $sct#461481000124109 "Referral to peer support"
* include codes from system TherapyCS

ValueSet: SessionTypeVS
Id: iop-session-type
Title: "IOP Session Type"
Description: "Kinds of IOP sessions (Appointment.serviceType, Encounter.type): SNOMED CT psychotherapy and psychiatric procedures."
* insert IopValueSet
* $sct#76168009 "Group psychotherapy"
* $sct#1555005 "Brief group psychotherapy"
* $sct#28868002 "Interactive group medical psychotherapy"
* $sct#18512000 "Individual psychotherapy"
* $sct#75516001 "Psychotherapy"
* $sct#108313002 "Family psychotherapy procedure"
* $sct#88848003 "Psychiatric follow-up"
* $sct#10197000 "Psychiatric interview and evaluation"
* $sct#165172002 "Diagnostic psychiatric interview"
* $sct#182836005 "Review of medication"
* $sct#5694008 "Crisis intervention with follow-up"

ValueSet: EncounterClassVS
Id: iop-encounter-class
Title: "IOP Session Modality"
Description: "In-person (ambulatory) or virtual IOP sessions."
* insert IopValueSet
* $v3-ActCode#AMB "ambulatory"
* $v3-ActCode#VR "virtual"

ValueSet: GoalCategoryVS
Id: iop-goal-category
Title: "IOP Goal Category"
Description: "HL7 goal categories plus the relapse prevention category."
* insert IopValueSet
* $goal-category#behavioral "Behavioral"
* $goal-category#safety "Safety"
* $goal-category#dietary "Dietary"
* $goal-category#nursing "Nursing"
* $goal-category#physiotherapy "Physiotherapy"
* RelapsePreventionCS#relapse-prevention "Relapse prevention"

ValueSet: GoalMeasureVS
Id: iop-goal-measure
Title: "IOP Goal Measure"
Description: "Measures of IOP goal targets: the LOINC instrument totals of the assessment profiles and the local IOP measures."
* insert IopValueSet
* $loinc#44261-6 "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"
* $loinc#70274-6 "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"
* $loinc#75626-2 "Total score [AUDIT-C]"
* $loinc#101698-9 "PTSD PCL-5 score"
* include codes from system MeasureCS

// ------------------------------------------------------------------ assessments
ValueSet: AssessmentCodeVS
Id: iop-assessment-code
Title: "IOP Assessment Result Code"
Description: "LOINC codes of the scores and risk levels IOP assessments report (domain brief section 4.4)."
* insert IopValueSet
* $loinc#44261-6 "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"
* $loinc#70274-6 "Generalized anxiety disorder 7 item (GAD-7) total score [Reported.PHQ]"
* $loinc#75626-2 "Total score [AUDIT-C]"
* $loinc#101698-9 "PTSD PCL-5 score"
* $loinc#93374-7 "Suicide risk level"

ValueSet: CssrsRiskLevelVS
Id: iop-cssrs-risk-level
Title: "C-SSRS Suicide Risk Level"
Description: "Answers to LOINC 93374-7 Suicide risk level: LOINC LA9194-7 Low (confirmed in the domain brief), and local codes for moderate and high risk until their LOINC answer codes are confirmed."
* insert IopValueSet
* $loinc#LA9194-7 "Low"
* include codes from system CssrsRiskCS

// ------------------------------------------------------------------ medications
ValueSet: MedicationVS
Id: iop-medication
Title: "IOP Medications (RxNorm)"
Description: "RxNorm clinical drugs commonly ordered in IOPs: medications for opioid and alcohol use disorder and psychiatric medications (domain brief section 4.5, from eCQM value sets). Bound extensibly: any RxNorm clinical drug may be ordered."
* insert IopValueSet
* $rxnorm#1010604 "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"
* $rxnorm#1010600 "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film"
* $rxnorm#351267 "buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet"
* $rxnorm#351265 "buprenorphine 8 MG Sublingual Tablet"
* $rxnorm#1996184 "buprenorphine 200 MG/ML Prefilled Syringe, 0.5 ML (extended-release injection)"
* $rxnorm#1996192 "buprenorphine 200 MG/ML Prefilled Syringe, 1.5 ML (extended-release injection)"
* $rxnorm#1797650 "buprenorphine 74.2 MG Drug Implant"
* $rxnorm#1483744 "naltrexone hydrochloride 50 MG Oral Tablet"
* $rxnorm#637213 "naltrexone 380 MG Injection"
* $rxnorm#835726 "acamprosate calcium 333 MG Delayed Release Oral Tablet"
* $rxnorm#197623 "disulfiram 250 MG Oral Tablet"
* $rxnorm#312941 "sertraline 50 MG Oral Tablet"
* $rxnorm#310385 "fluoxetine 20 MG Oral Capsule"
* $rxnorm#349332 "escitalopram 10 MG Oral Tablet"
* $rxnorm#993541 "24 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet"
* $rxnorm#856377 "trazodone hydrochloride 50 MG Oral Tablet"
* $rxnorm#312744 "quetiapine 25 MG Oral Tablet"

ValueSet: AddictionMedicationVS
Id: iop-addiction-medication
Title: "IOP Medications for Addiction Treatment (RxNorm)"
Description: "The RxNorm codes of MedicationVS that are medications for opioid or alcohol use disorder; orders for them carry the 42 CFR Part 2 security labels (invariant iop-14)."
* insert IopValueSet
* $rxnorm#1010604 "buprenorphine 8 MG / naloxone 2 MG Sublingual Film"
* $rxnorm#1010600 "buprenorphine 2 MG / naloxone 0.5 MG Sublingual Film"
* $rxnorm#351267 "buprenorphine 8 MG / naloxone 2 MG Sublingual Tablet"
* $rxnorm#351265 "buprenorphine 8 MG Sublingual Tablet"
* $rxnorm#1996184 "buprenorphine 200 MG/ML Prefilled Syringe, 0.5 ML (extended-release injection)"
* $rxnorm#1996192 "buprenorphine 200 MG/ML Prefilled Syringe, 1.5 ML (extended-release injection)"
* $rxnorm#1797650 "buprenorphine 74.2 MG Drug Implant"
* $rxnorm#1483744 "naltrexone hydrochloride 50 MG Oral Tablet"
* $rxnorm#637213 "naltrexone 380 MG Injection"
* $rxnorm#835726 "acamprosate calcium 333 MG Delayed Release Oral Tablet"
* $rxnorm#197623 "disulfiram 250 MG Oral Tablet"

ValueSet: MedicationRequestCategoryVS
Id: iop-medicationrequest-category
Title: "IOP MedicationRequest Category"
Description: "Where the medication is to be taken (the codes of the US Core MedicationRequest category slice)."
* insert IopValueSet
* $medicationrequest-category#inpatient "Inpatient"
* $medicationrequest-category#outpatient "Outpatient"
* $medicationrequest-category#community "Community"
* $medicationrequest-category#discharge "Discharge"

// ------------------------------------------------------------------ privacy (42 CFR Part 2)
ValueSet: Part2SecurityLabelVS
Id: iop-part2-security-labels
Title: "42 CFR Part 2 Security Labels"
Description: "Security labels for records of substance use disorder treatment under 42 CFR Part 2 (FHIR DS4P; domain brief section 5.2): confidentiality R, the 42CFRPart2 policy, the SUD / mental health sensitivity codes and the redisclosure refrains. A Part 2 record carries meta.security = R + 42CFRPart2 + SUD (or ETH) + NORDSCLCD."
* insert IopValueSet
* $v3-Confidentiality#R "restricted"
* $v3-ActCode#42CFRPart2 "42 CFR Part2"
* $v3-ActCode#SUD "substance use disorder information sensitivity"
* $v3-ActCode#ETH "substance abuse information sensitivity"
* $v3-ActCode#OPIOIDUD "opioid use disorder information sensitivity"
* $v3-ActCode#BH "behavioral health information sensitivity"
* $v3-ActCode#PSY "psychiatry disorder information sensitivity"
* $v3-ActCode#NORDSCLCD "no redisclosure without consent directive"
* $v3-ActCode#NODSCLCD "no disclosure without consent directive"

ValueSet: Part2PurposeOfUseVS
Id: iop-part2-purpose-of-use
Title: "42 CFR Part 2 Consent Purpose of Use"
Description: "Purposes of use a Part 2 consent provision may permit or deny: treatment, payment and health care operations (the single TPO consent) and the non-TPO purposes that need a specific consent."
* insert IopValueSet
* $v3-ActReason#TREAT "treatment"
* $v3-ActReason#ETREAT "Emergency Treatment"
* $v3-ActReason#HPAYMT "healthcare payment"
* $v3-ActReason#HOPERAT "healthcare operations"
* $v3-ActReason#PATRQT "patient requested"
* $v3-ActReason#PUBHLTH "public health"
* $v3-ActReason#HRESCH "healthcare research"
* $v3-ActReason#BTG "break the glass"

ValueSet: EligibilityVS
Id: iop-eligibility
Title: "IOP Eligibility Check"
Description: "All eligibility checks and triage findings of the local iop-eligibility code system."
* insert IopValueSet
* include codes from system EligibilityCS
