// Outcome measures (issue 10, part A): the instruments the service scores, their local code systems, and the
// EpisodeOfCare/$score-trends operation. Rules and choices: docs/outcome-measures.md.
//
// Questionnaires are guide resources (Usage #definition): stored at start-up like our profiles, served read-only at
// https://iop.example.org/fhir/Questionnaire/<id>, and the scorer (service/instruments) reads each answer option's
// score from the ordinalValue extension here, so the form a client renders and the scoring cannot drift apart.
// LOINC codes: domain brief 4.4 (panels, totals, PHQ-9 items); GAD-7 and AUDIT-C item codes and the LOINC answer
// lists (LL358-3 frequency, LL2179-1 / LL2180-9 / LL2181-7 AUDIT-C, LA33-6 / LA32-8 yes-no) as published in LOINC
// forms. PCL-5 items and answers are not confirmed in LOINC in our sources: local codes (PclItemCS, PclAnswerCS).
// AUDIT-C question 1 is 68518-0 (the brief's 68517-2 is the single "X or more drinks" question, not AUDIT-C).

RuleSet: Option(code, display, score)
* item[=].answerOption[+].valueCoding = {code} {display}
* item[=].answerOption[=].valueCoding.extension[0].url = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
* item[=].answerOption[=].valueCoding.extension[0].valueDecimal = {score}

RuleSet: Frequency4
* insert Option($loinc#LA6568-5, "Not at all", 0)
* insert Option($loinc#LA6569-3, "Several days", 1)
* insert Option($loinc#LA6570-1, "More than half the days", 2)
* insert Option($loinc#LA6571-9, "Nearly every day", 3)

RuleSet: AuditFrequency
* insert Option($loinc#LA6270-8, "Never", 0)
* insert Option($loinc#LA18926-8, "Monthly or less", 1)
* insert Option($loinc#LA18927-6, "2-4 times a month", 2)
* insert Option($loinc#LA18928-4, "2-3 times a week", 3)
* insert Option($loinc#LA18929-2, "4 or more times a week", 4)

RuleSet: AuditQuantity
* insert Option($loinc#LA15694-5, "1 or 2", 0)
* insert Option($loinc#LA15695-2, "3 or 4", 1)
* insert Option($loinc#LA18930-0, "5 or 6", 2)
* insert Option($loinc#LA18931-8, "7 to 9", 3)
* insert Option($loinc#LA18932-6, "10 or more", 4)

RuleSet: AuditOccasion
* insert Option($loinc#LA6270-8, "Never", 0)
* insert Option($loinc#LA18933-4, "Less than monthly", 1)
* insert Option($loinc#LA18876-5, "Monthly", 2)
* insert Option($loinc#LA18891-4, "Weekly", 3)
* insert Option($loinc#LA18934-2, "Daily or almost daily", 4)

RuleSet: PclAnswers
* insert Option(PclAnswerCS#not-at-all, "Not at all", 0)
* insert Option(PclAnswerCS#a-little-bit, "A little bit", 1)
* insert Option(PclAnswerCS#moderately, "Moderately", 2)
* insert Option(PclAnswerCS#quite-a-bit, "Quite a bit", 3)
* insert Option(PclAnswerCS#extremely, "Extremely", 4)

RuleSet: YesNo
* item[=].answerOption[+].valueCoding = $loinc#LA33-6 "Yes"
* item[=].answerOption[+].valueCoding = $loinc#LA32-8 "No"

RuleSet: Instrument(id, title)
* url = "https://iop.example.org/fhir/Questionnaire/{id}"
* version = "0.1.0"
* name = "{title}"
* status = #active
* subjectType = #Patient
* publisher = "IOP FHIR service project (example.org)"

Instance: iop-phq9
InstanceOf: Questionnaire
Usage: #definition
Title: "PHQ-9"
* insert Instrument(iop-phq9, PHQ9)
* title = "Patient Health Questionnaire (PHQ-9)"
* description = "Over the last 2 weeks, how often have you been bothered by any of the following problems? Scored by the service into a PHQ-9 total (LOINC 44261-6, 0-27) with its severity band; item 9 (44260-8) above 0 raises a safety alert."
* copyright = "PHQ-9: Copyright Pfizer Inc. No permission required to reproduce, translate, display or distribute."
* code = $loinc#44249-1 "PHQ-9 quick depression assessment panel"
* item[+].linkId = "44250-9"
* item[=].code = $loinc#44250-9 "Little interest or pleasure in doing things"
* item[=].text = "Little interest or pleasure in doing things"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44255-8"
* item[=].code = $loinc#44255-8 "Feeling down, depressed, or hopeless"
* item[=].text = "Feeling down, depressed, or hopeless"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44259-0"
* item[=].code = $loinc#44259-0 "Trouble falling or staying asleep, or sleeping too much"
* item[=].text = "Trouble falling or staying asleep, or sleeping too much"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44254-1"
* item[=].code = $loinc#44254-1 "Feeling tired or having little energy"
* item[=].text = "Feeling tired or having little energy"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44251-7"
* item[=].code = $loinc#44251-7 "Poor appetite or overeating"
* item[=].text = "Poor appetite or overeating"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44258-2"
* item[=].code = $loinc#44258-2 "Feeling bad about yourself - or that you are a failure or have let yourself or your family down"
* item[=].text = "Feeling bad about yourself - or that you are a failure or have let yourself or your family down"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44252-5"
* item[=].code = $loinc#44252-5 "Trouble concentrating on things, such as reading the newspaper or watching television"
* item[=].text = "Trouble concentrating on things, such as reading the newspaper or watching television"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44253-3"
* item[=].code = $loinc#44253-3 "Moving or speaking so slowly that other people could have noticed; or the opposite - being so fidgety or restless that you have been moving around a lot more than usual"
* item[=].text = "Moving or speaking so slowly that other people could have noticed; or the opposite - being so fidgety or restless that you have been moving around a lot more than usual"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "44260-8"
* item[=].code = $loinc#44260-8 "Thoughts that you would be better off dead, or of hurting yourself in some way"
* item[=].text = "Thoughts that you would be better off dead, or of hurting yourself in some way"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4

Instance: iop-gad7
InstanceOf: Questionnaire
Usage: #definition
Title: "GAD-7"
* insert Instrument(iop-gad7, GAD7)
* title = "Generalized Anxiety Disorder 7-item scale (GAD-7)"
* description = "Over the last 2 weeks, how often have you been bothered by the following problems? Scored by the service into a GAD-7 total (LOINC 70274-6, 0-21) with its severity band."
* copyright = "GAD-7: Copyright Pfizer Inc. No permission required to reproduce, translate, display or distribute."
* code = $loinc#69737-5 "Generalized anxiety disorder 7 item (GAD-7)"
* item[+].linkId = "69725-0"
* item[=].code = $loinc#69725-0 "Feeling nervous, anxious, or on edge"
* item[=].text = "Feeling nervous, anxious, or on edge"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "68509-9"
* item[=].code = $loinc#68509-9 "Not being able to stop or control worrying"
* item[=].text = "Not being able to stop or control worrying"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "69733-4"
* item[=].code = $loinc#69733-4 "Worrying too much about different things"
* item[=].text = "Worrying too much about different things"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "69734-2"
* item[=].code = $loinc#69734-2 "Trouble relaxing"
* item[=].text = "Trouble relaxing"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "69735-9"
* item[=].code = $loinc#69735-9 "Being so restless that it is hard to sit still"
* item[=].text = "Being so restless that it is hard to sit still"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "69689-8"
* item[=].code = $loinc#69689-8 "Becoming easily annoyed or irritable"
* item[=].text = "Becoming easily annoyed or irritable"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4
* item[+].linkId = "69736-7"
* item[=].code = $loinc#69736-7 "Feeling afraid, as if something awful might happen"
* item[=].text = "Feeling afraid, as if something awful might happen"
* item[=].type = #choice
* item[=].required = true
* insert Frequency4

Instance: iop-auditc
InstanceOf: Questionnaire
Usage: #definition
Title: "AUDIT-C"
* insert Instrument(iop-auditc, AUDITC)
* title = "Alcohol Use Disorders Identification Test - Consumption (AUDIT-C)"
* description = "Alcohol use in the past year. Scored by the service into an AUDIT-C total (LOINC 75626-2, 0-12); a positive screen is 4 or more for men and 3 or more for women (and for any other or unknown sex)."
* code = $loinc#72109-2 "Alcohol Use Disorder Identification Test - Consumption [AUDIT-C]"
* item[+].linkId = "68518-0"
* item[=].code = $loinc#68518-0 "How often do you have a drink containing alcohol?"
* item[=].text = "How often do you have a drink containing alcohol?"
* item[=].type = #choice
* item[=].required = true
* insert AuditFrequency
* item[+].linkId = "68519-8"
* item[=].code = $loinc#68519-8 "How many standard drinks containing alcohol do you have on a typical day?"
* item[=].text = "How many standard drinks containing alcohol do you have on a typical day?"
* item[=].type = #choice
* item[=].required = true
* insert AuditQuantity
* item[+].linkId = "68520-6"
* item[=].code = $loinc#68520-6 "How often do you have six or more drinks on one occasion?"
* item[=].text = "How often do you have six or more drinks on one occasion?"
* item[=].type = #choice
* item[=].required = true
* insert AuditOccasion

Instance: iop-pcl5
InstanceOf: Questionnaire
Usage: #definition
Title: "PCL-5"
* insert Instrument(iop-pcl5, PCL5)
* title = "PTSD Checklist for DSM-5 (PCL-5)"
* description = "In the past month, how much were you bothered by the following problems? Scored by the service into a PCL-5 score (LOINC 101698-9, 0-80); 33 or more is a positive screen (probable PTSD), the cut-point the National Center for PTSD suggests."
* code = $loinc#101697-1 "PTSD checklist for DSM-5 [PCL-5]"
* item[+].linkId = "pcl5-01"
* item[=].code = PclItemCS#pcl5-01
* item[=].text = "Repeated, disturbing, and unwanted memories of the stressful experience"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-02"
* item[=].code = PclItemCS#pcl5-02
* item[=].text = "Repeated, disturbing dreams of the stressful experience"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-03"
* item[=].code = PclItemCS#pcl5-03
* item[=].text = "Suddenly feeling or acting as if the stressful experience were actually happening again (as if you were actually back there reliving it)"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-04"
* item[=].code = PclItemCS#pcl5-04
* item[=].text = "Feeling very upset when something reminded you of the stressful experience"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-05"
* item[=].code = PclItemCS#pcl5-05
* item[=].text = "Having strong physical reactions when something reminded you of the stressful experience (for example, heart pounding, trouble breathing, sweating)"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-06"
* item[=].code = PclItemCS#pcl5-06
* item[=].text = "Avoiding memories, thoughts, or feelings related to the stressful experience"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-07"
* item[=].code = PclItemCS#pcl5-07
* item[=].text = "Avoiding external reminders of the stressful experience (for example, people, places, conversations, activities, objects, or situations)"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-08"
* item[=].code = PclItemCS#pcl5-08
* item[=].text = "Trouble remembering important parts of the stressful experience"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-09"
* item[=].code = PclItemCS#pcl5-09
* item[=].text = "Having strong negative beliefs about yourself, other people, or the world"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-10"
* item[=].code = PclItemCS#pcl5-10
* item[=].text = "Blaming yourself or someone else for the stressful experience or what happened after it"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-11"
* item[=].code = PclItemCS#pcl5-11
* item[=].text = "Having strong negative feelings such as fear, horror, anger, guilt, or shame"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-12"
* item[=].code = PclItemCS#pcl5-12
* item[=].text = "Loss of interest in activities that you used to enjoy"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-13"
* item[=].code = PclItemCS#pcl5-13
* item[=].text = "Feeling distant or cut off from other people"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-14"
* item[=].code = PclItemCS#pcl5-14
* item[=].text = "Trouble experiencing positive feelings (for example, being unable to feel happiness or have loving feelings for people close to you)"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-15"
* item[=].code = PclItemCS#pcl5-15
* item[=].text = "Irritable behavior, angry outbursts, or acting aggressively"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-16"
* item[=].code = PclItemCS#pcl5-16
* item[=].text = "Taking too many risks or doing things that could cause you harm"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-17"
* item[=].code = PclItemCS#pcl5-17
* item[=].text = "Being \"superalert\" or watchful or on guard"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-18"
* item[=].code = PclItemCS#pcl5-18
* item[=].text = "Feeling jumpy or easily startled"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-19"
* item[=].code = PclItemCS#pcl5-19
* item[=].text = "Having difficulty concentrating"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers
* item[+].linkId = "pcl5-20"
* item[=].code = PclItemCS#pcl5-20
* item[=].text = "Trouble falling or staying asleep"
* item[=].type = #choice
* item[=].required = true
* insert PclAnswers

Instance: iop-cssrs
InstanceOf: Questionnaire
Usage: #definition
Title: "C-SSRS Screener"
* insert Instrument(iop-cssrs, CSSRSScreener)
* title = "Columbia Suicide Severity Rating Scale, screener - recent (C-SSRS)"
* description = "The C-SSRS screen version (since last contact). Questions 3-5 are asked when question 2 is yes; question 7 when question 6 is yes. The service derives the risk level (LOINC 93374-7): high for yes to 4 or 5, or to 6 within the past 3 months; moderate for yes to 3, or to 6 longer ago; otherwise low. Moderate or high raises a safety alert."
* copyright = "C-SSRS: Copyright The Research Foundation for Mental Hygiene, Inc.; used with permission (Kelly Posner, Ph.D.)."
* code = $loinc#93373-9 "Columbia suicide severity rating scale screener - recent [C-SSRS]"
* item[+].linkId = "93246-7"
* item[=].code = $loinc#93246-7 "Have you wished you were dead or wished you could go to sleep and not wake up?"
* item[=].text = "Have you wished you were dead or wished you could go to sleep and not wake up?"
* item[=].type = #choice
* item[=].required = true
* insert YesNo
* item[+].linkId = "93247-5"
* item[=].code = $loinc#93247-5 "Have you actually had any thoughts of killing yourself?"
* item[=].text = "Have you actually had any thoughts of killing yourself?"
* item[=].type = #choice
* item[=].required = true
* insert YesNo
* item[+].linkId = "93248-3"
* item[=].code = $loinc#93248-3 "Have you been thinking about how you might do this?"
* item[=].text = "Have you been thinking about how you might do this?"
* item[=].type = #choice
* item[=].required = true
* item[=].enableWhen[0].question = "93247-5"
* item[=].enableWhen[0].operator = #=
* item[=].enableWhen[0].answerCoding = $loinc#LA33-6 "Yes"
* insert YesNo
* item[+].linkId = "93249-1"
* item[=].code = $loinc#93249-1 "Have you had these thoughts and had some intention of acting on them?"
* item[=].text = "Have you had these thoughts and had some intention of acting on them?"
* item[=].type = #choice
* item[=].required = true
* item[=].enableWhen[0].question = "93247-5"
* item[=].enableWhen[0].operator = #=
* item[=].enableWhen[0].answerCoding = $loinc#LA33-6 "Yes"
* insert YesNo
* item[+].linkId = "93250-9"
* item[=].code = $loinc#93250-9 "Have you started to work out or worked out the details of how to kill yourself? Do you intend to carry out this plan?"
* item[=].text = "Have you started to work out or worked out the details of how to kill yourself? Do you intend to carry out this plan?"
* item[=].type = #choice
* item[=].required = true
* item[=].enableWhen[0].question = "93247-5"
* item[=].enableWhen[0].operator = #=
* item[=].enableWhen[0].answerCoding = $loinc#LA33-6 "Yes"
* insert YesNo
* item[+].linkId = "93267-3"
* item[=].code = $loinc#93267-3 "Have you ever done anything, started to do anything, or prepared to do anything to end your life?"
* item[=].text = "Have you ever done anything, started to do anything, or prepared to do anything to end your life?"
* item[=].type = #choice
* item[=].required = true
* insert YesNo
* item[+].linkId = "93269-9"
* item[=].code = $loinc#93269-9 "Was this within the past 3 months?"
* item[=].text = "Was this within the past 3 months?"
* item[=].type = #choice
* item[=].required = true
* item[=].enableWhen[0].question = "93267-3"
* item[=].enableWhen[0].operator = #=
* item[=].enableWhen[0].answerCoding = $loinc#LA33-6 "Yes"
* insert YesNo

// ------------------------------------------------------------------ local code systems
CodeSystem: PclItemCS
Id: iop-pcl5-item
Title: "IOP PCL-5 Item (local)"
Description: "The 20 items of the PCL-5 (PTSD Checklist for DSM-5, National Center for PTSD). LOCAL code system: the LOINC codes of the PCL-5 items are not confirmed in our sources (only the panel 101697-1 and the score 101698-9 are)."
* insert LocalCodeSystem
* #pcl5-01 "PCL-5 item 1" "In the past month, how much were you bothered by: Repeated, disturbing, and unwanted memories of the stressful experience"
* #pcl5-02 "PCL-5 item 2" "In the past month, how much were you bothered by: Repeated, disturbing dreams of the stressful experience"
* #pcl5-03 "PCL-5 item 3" "In the past month, how much were you bothered by: Suddenly feeling or acting as if the stressful experience were actually happening again (as if you were actually back there reliving it)"
* #pcl5-04 "PCL-5 item 4" "In the past month, how much were you bothered by: Feeling very upset when something reminded you of the stressful experience"
* #pcl5-05 "PCL-5 item 5" "In the past month, how much were you bothered by: Having strong physical reactions when something reminded you of the stressful experience (for example, heart pounding, trouble breathing, sweating)"
* #pcl5-06 "PCL-5 item 6" "In the past month, how much were you bothered by: Avoiding memories, thoughts, or feelings related to the stressful experience"
* #pcl5-07 "PCL-5 item 7" "In the past month, how much were you bothered by: Avoiding external reminders of the stressful experience (for example, people, places, conversations, activities, objects, or situations)"
* #pcl5-08 "PCL-5 item 8" "In the past month, how much were you bothered by: Trouble remembering important parts of the stressful experience"
* #pcl5-09 "PCL-5 item 9" "In the past month, how much were you bothered by: Having strong negative beliefs about yourself, other people, or the world"
* #pcl5-10 "PCL-5 item 10" "In the past month, how much were you bothered by: Blaming yourself or someone else for the stressful experience or what happened after it"
* #pcl5-11 "PCL-5 item 11" "In the past month, how much were you bothered by: Having strong negative feelings such as fear, horror, anger, guilt, or shame"
* #pcl5-12 "PCL-5 item 12" "In the past month, how much were you bothered by: Loss of interest in activities that you used to enjoy"
* #pcl5-13 "PCL-5 item 13" "In the past month, how much were you bothered by: Feeling distant or cut off from other people"
* #pcl5-14 "PCL-5 item 14" "In the past month, how much were you bothered by: Trouble experiencing positive feelings (for example, being unable to feel happiness or have loving feelings for people close to you)"
* #pcl5-15 "PCL-5 item 15" "In the past month, how much were you bothered by: Irritable behavior, angry outbursts, or acting aggressively"
* #pcl5-16 "PCL-5 item 16" "In the past month, how much were you bothered by: Taking too many risks or doing things that could cause you harm"
* #pcl5-17 "PCL-5 item 17" "In the past month, how much were you bothered by: Being \"superalert\" or watchful or on guard"
* #pcl5-18 "PCL-5 item 18" "In the past month, how much were you bothered by: Feeling jumpy or easily startled"
* #pcl5-19 "PCL-5 item 19" "In the past month, how much were you bothered by: Having difficulty concentrating"
* #pcl5-20 "PCL-5 item 20" "In the past month, how much were you bothered by: Trouble falling or staying asleep"

CodeSystem: PclAnswerCS
Id: iop-pcl5-answer
Title: "IOP PCL-5 Answer (local)"
Description: "The five answers of every PCL-5 item, scored 0-4. LOCAL code system: their LOINC answer codes are not confirmed in our sources."
* insert LocalCodeSystem
* #not-at-all "Not at all" "Scored 0."
* #a-little-bit "A little bit" "Scored 1."
* #moderately "Moderately" "Scored 2."
* #quite-a-bit "Quite a bit" "Scored 3."
* #extremely "Extremely" "Scored 4."

CodeSystem: ScoreBandCS
Id: iop-score-band
Title: "IOP Instrument Severity Band (local)"
Description: "The severity band of a PHQ-9 or GAD-7 total (Observation.interpretation next to the score). LOCAL code system: HL7 ObservationInterpretation has no depression or anxiety severity bands and the domain brief confirms no LOINC answer codes for them. PHQ-9: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-27 severe; GAD-7: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe."
* insert LocalCodeSystem
* #minimal "Minimal" "PHQ-9 or GAD-7 total 0-4."
* #mild "Mild" "PHQ-9 or GAD-7 total 5-9."
* #moderate "Moderate" "PHQ-9 or GAD-7 total 10-14."
* #moderately-severe "Moderately severe" "PHQ-9 total 15-19."
* #severe "Severe" "PHQ-9 total 20-27 or GAD-7 total 15-21."

CodeSystem: SafetyAlertCS
Id: iop-safety-alert
Title: "IOP Safety Alert (local)"
Description: "What the service raises when a scored instrument shows suicide risk (PHQ-9 item 9 above 0, or a C-SSRS screener at moderate or high risk): the Task for the care team and the Flag on the patient. LOCAL code system: the domain brief confirms no SNOMED CT or HL7 code for these."
* insert LocalCodeSystem
* #suicide-risk "Suicide risk" "The patient screened positive for suicide risk; see the linked result (Flag.code)."
* #suicide-risk-review "Review suicide risk" "Contact the patient and assess suicide risk now (Task.code)."

// ------------------------------------------------------------------ operation
Instance: EpisodeOfCare-score-trends
InstanceOf: OperationDefinition
Usage: #definition
Title: "Outcome score trends of an episode"
* url = "https://iop.example.org/fhir/OperationDefinition/EpisodeOfCare-score-trends"
* name = "EpisodeOfCareScoreTrends"
* title = "Outcome score trends of an episode"
* status = #draft
* kind = #operation
* description = "The scores of each instrument (PHQ-9, GAD-7, AUDIT-C, PCL-5) over the episode, oldest first, with the first and latest score and the change (latest minus first). An episode's scores are the patient's score Observations that name the episode (the workflow-episodeOfCare extension the scorer writes) or, when they name none, fall in the episode's period. Changes nothing."
* code = #score-trends
* resource = #EpisodeOfCare
* system = false
* type = false
* instance = true
* affectsState = false
* parameter[0].name = #episode
* parameter[0].use = #out
* parameter[0].min = 1
* parameter[0].max = "1"
* parameter[0].type = #Reference
* parameter[0].documentation = "The EpisodeOfCare"
* parameter[1].name = #instrument
* parameter[1].use = #out
* parameter[1].min = 0
* parameter[1].max = "*"
* parameter[1].documentation = "One per instrument with at least one score in the episode"
* parameter[1].part[0].name = #code
* parameter[1].part[0].use = #out
* parameter[1].part[0].min = 1
* parameter[1].part[0].max = "1"
* parameter[1].part[0].type = #Coding
* parameter[1].part[0].documentation = "The LOINC code of the score (44261-6, 70274-6, 75626-2, 101698-9)"
* parameter[1].part[1].name = #point
* parameter[1].part[1].use = #out
* parameter[1].part[1].min = 1
* parameter[1].part[1].max = "*"
* parameter[1].part[1].documentation = "One score, oldest first"
* parameter[1].part[1].part[0].name = #date
* parameter[1].part[1].part[0].use = #out
* parameter[1].part[1].part[0].min = 1
* parameter[1].part[1].part[0].max = "1"
* parameter[1].part[1].part[0].type = #dateTime
* parameter[1].part[1].part[0].documentation = "When the score was measured (effectiveDateTime)"
* parameter[1].part[1].part[1].name = #score
* parameter[1].part[1].part[1].use = #out
* parameter[1].part[1].part[1].min = 1
* parameter[1].part[1].part[1].max = "1"
* parameter[1].part[1].part[1].type = #integer
* parameter[1].part[1].part[1].documentation = "The score"
* parameter[1].part[1].part[2].name = #observation
* parameter[1].part[1].part[2].use = #out
* parameter[1].part[1].part[2].min = 1
* parameter[1].part[1].part[2].max = "1"
* parameter[1].part[1].part[2].type = #Reference
* parameter[1].part[1].part[2].documentation = "The score Observation"
* parameter[1].part[2].name = #first
* parameter[1].part[2].use = #out
* parameter[1].part[2].min = 1
* parameter[1].part[2].max = "1"
* parameter[1].part[2].type = #integer
* parameter[1].part[2].documentation = "The first score in the episode"
* parameter[1].part[3].name = #latest
* parameter[1].part[3].use = #out
* parameter[1].part[3].min = 1
* parameter[1].part[3].max = "1"
* parameter[1].part[3].type = #integer
* parameter[1].part[3].documentation = "The latest score in the episode"
* parameter[1].part[4].name = #change
* parameter[1].part[4].use = #out
* parameter[1].part[4].min = 1
* parameter[1].part[4].max = "1"
* parameter[1].part[4].type = #integer
* parameter[1].part[4].documentation = "latest minus first (negative: fewer symptoms)"
