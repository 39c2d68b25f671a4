// The program directory (issue 9): what a person or a referring hospital needs to find a track that fits.
// Each program site is an Organization + a Location (with position) + one HealthcareService per track;
// open seats are computed from the rosters (Group, linked with track-service), never typed.

Extension: ConditionServed
Id: condition-served
Title: "Condition Served"
Description: "A condition this program track treats (depression, anxiety disorders, PTSD, bipolar disorder, alcohol and drug dependence, eating disorders, dual diagnosis). R4 HealthcareService has no element for it."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Condition treated"
* value[x] from ConditionServedVS (extensible)

Extension: TherapyModality
Id: therapy-modality
Title: "Therapy Modality"
Description: "A therapy this program track offers (CBT, DBT, motivational interviewing, EMDR, art, music and adventure therapy): SNOMED CT where the domain brief confirms a concept, the local iop-therapy codes otherwise."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Therapy offered"
* value[x] from TherapyModalityVS (extensible)

Extension: Accreditation
Id: accreditation
Title: "Accreditation"
Description: "An accreditation the program holds (The Joint Commission, CARF), with its period when known. R4 Organization has no qualification element (added in R5), so an extension carries it."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Organization"
* ^context[1].type = #element
* ^context[1].expression = "HealthcareService"
* value[x] 1..1
* value[x] only CodeableConcept
* value[x] ^short = "Accrediting body"
* value[x] from AccreditationVS (required)

Extension: TrackService
Id: track-service
Title: "Track Service"
Description: "The HealthcareService (program track) whose seats this roster fills. The track's open seats are its seat capacity minus the active members of the active rosters that name it."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Group"
* value[x] 1..1
* value[x] only Reference(HealthcareService)
* value[x] ^short = "The program track"

CodeSystem: ConditionServedCS
Id: iop-condition-served
Title: "IOP Condition Served"
Description: "Conditions an IOP track is designed for, as a directory lists them. LOCAL code system: directory categories, broader than any one diagnosis code (a patient's own diagnoses are coded in SNOMED CT or ICD-10-CM on Condition)."
* insert LocalCodeSystem
* #depression "Depression" "Depressive disorders."
* #anxiety-disorders "Anxiety disorders" "Generalized anxiety, panic and related anxiety disorders."
* #ptsd "PTSD" "Post-traumatic stress disorder and trauma-related disorders."
* #bipolar-disorder "Bipolar disorder" "Bipolar and related disorders."
* #alcohol-drug-dependence "Alcohol and drug dependence" "Alcohol and other substance use disorders."
* #eating-disorders "Eating disorders" "Anorexia nervosa, bulimia nervosa, binge-eating and related disorders."
* #dual-diagnosis "Dual diagnosis" "A mental health disorder together with a substance use disorder."

CodeSystem: AccreditationCS
Id: iop-accreditation
Title: "IOP Accreditation"
Description: "Bodies that accredit behavioral health programs. LOCAL code system: no standard code system for accrediting bodies was found."
* insert LocalCodeSystem
* #joint-commission "The Joint Commission" "Accredited by The Joint Commission (Behavioral Health Care and Human Services)."
* #carf "CARF" "Accredited by CARF International (Commission on Accreditation of Rehabilitation Facilities)."

ValueSet: ConditionServedVS
Id: iop-condition-served
Title: "IOP Condition Served"
Description: "Conditions a directory lists for an IOP track."
* insert IopValueSet
* include codes from system ConditionServedCS

ValueSet: AccreditationVS
Id: iop-accreditation
Title: "IOP Accreditation"
Description: "The Joint Commission and CARF."
* insert IopValueSet
* include codes from system AccreditationCS

ValueSet: TherapyModalityVS
Id: iop-therapy-modality
Title: "IOP Therapy Modality"
Description: "Therapies a directory lists for an IOP track: SNOMED CT codes confirmed by the domain brief (CBT, DBT, EMDR, art therapy) and the local iop-therapy codes (motivational interviewing, music and adventure therapy)."
* insert IopValueSet
* $sct#228557008 "Cognitive and behavioral therapy"
* $sct#405780009 "Dialectical behavior therapy"
* $sct#449030000 "Eye movement desensitization and reprocessing"
* $sct#65153003 "Art therapy"
* TherapyCS#motivational-interviewing "Motivational interviewing"
* TherapyCS#music-therapy "Music therapy"
* TherapyCS#adventure-therapy "Adventure therapy"
