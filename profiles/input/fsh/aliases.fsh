// All aliases of the IOP implementation guide (one place; other files only use them).

// External code systems
Alias: $sct = http://snomed.info/sct
Alias: $loinc = http://loinc.org
Alias: $rxnorm = http://www.nlm.nih.gov/research/umls/rxnorm
Alias: $icd10cm = http://hl7.org/fhir/sid/icd-10-cm
Alias: $hcpcs = http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets
Alias: $ucum = http://unitsofmeasure.org

// HL7 terminology (THO) and FHIR core code systems
Alias: $v3-ActCode = http://terminology.hl7.org/CodeSystem/v3-ActCode
Alias: $v3-Confidentiality = http://terminology.hl7.org/CodeSystem/v3-Confidentiality
Alias: $v3-ActReason = http://terminology.hl7.org/CodeSystem/v3-ActReason
Alias: $v3-ParticipationType = http://terminology.hl7.org/CodeSystem/v3-ParticipationType
Alias: $consentscope = http://terminology.hl7.org/CodeSystem/consentscope
Alias: $observation-category = http://terminology.hl7.org/CodeSystem/observation-category
Alias: $medicationrequest-category = http://terminology.hl7.org/CodeSystem/medicationrequest-category
Alias: $goal-category = http://terminology.hl7.org/CodeSystem/goal-category
Alias: $task-code = http://hl7.org/fhir/CodeSystem/task-code
Alias: $task-status = http://hl7.org/fhir/task-status
Alias: $episode-of-care-status = http://hl7.org/fhir/episode-of-care-status

// Code systems of other HL7 implementation guides (used by code only; no package dependency)
Alias: $us-core-careplan-category = http://hl7.org/fhir/us/core/CodeSystem/careplan-category
Alias: $us-core-documentreference-category = http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category
Alias: $bser-business-status = http://hl7.org/fhir/us/bser/CodeSystem/TaskBusinessStatusCS
Alias: $sdohcc-temporary-codes = http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes

// Policy
Alias: $part2-policy = https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2
