// Medication orders. Rules follow US Core 6.1 MedicationRequest (status, intent, medication[x], subject,
// requester mandatory; category, reported[x], encounter, authoredOn, dosageInstruction, dispenseRequest
// Must Support) without depending on the US Core package.

Profile: IopMedicationRequest
Parent: MedicationRequest
Id: iop-medication-request
Title: "IOP Medication Request"
Description: "A medication order in or for an IOP: medications for addiction treatment (buprenorphine/naloxone, naltrexone oral and extended-release injectable, acamprosate, disulfiram) and psychiatric medications, coded with an RxNorm clinical drug. Orders for medications for addiction treatment carry the 42 CFR Part 2 security labels (iop-14). Meets the US Core 6.1 MedicationRequest mandatory and must-support elements."
* ^status = #draft
* obeys iop-14
* identifier MS
* identifier ^short = "Business identifier of the order"
* status MS
* status ^short = "active | on-hold | cancelled | completed | entered-in-error | stopped | draft | unknown"
* intent MS
* intent ^short = "proposal | plan | order | original-order | reflex-order | filler-order | instance-order | option"
* category MS
* category from MedicationRequestCategoryVS (extensible)
* category ^short = "inpatient | outpatient | community | discharge"
* reported[x] MS
* reported[x] ^short = "Reported rather than primary record"
* medication[x] MS
* medication[x] only CodeableConcept
* medication[x] from MedicationVS (extensible)
* medication[x] ^short = "The medication, RxNorm-coded"
* medicationCodeableConcept.coding 1..* MS
* medicationCodeableConcept.coding ^short = "Codings; one is RxNorm"
* medicationCodeableConcept.coding.system 1..1
* medicationCodeableConcept.coding.system ^short = "Code system of every coding"
* medicationCodeableConcept.coding.code 1..1
* medicationCodeableConcept.coding.code ^short = "Code of every coding"
* medicationCodeableConcept.coding ^slicing.discriminator.type = #pattern
* medicationCodeableConcept.coding ^slicing.discriminator.path = "system"
* medicationCodeableConcept.coding ^slicing.rules = #open
* medicationCodeableConcept.coding ^slicing.description = "Slices by code system"
* medicationCodeableConcept.coding contains rxnorm 1..1 MS
* medicationCodeableConcept.coding[rxnorm] ^short = "The RxNorm clinical drug (RXCUI)"
* medicationCodeableConcept.coding[rxnorm].system = $rxnorm
* medicationCodeableConcept.coding[rxnorm].system ^short = "RxNorm"
* subject only Reference(Patient)
* subject MS
* subject ^short = "The patient"
* encounter MS
* encounter ^short = "Encounter in which the order was written"
* authoredOn 1..1 MS
* authoredOn ^short = "When the order was written"
* requester 1..1 MS
* requester only Reference(Practitioner or PractitionerRole or Organization)
* requester ^short = "The prescriber"
* reasonCode MS
* reasonCode ^short = "Indication (coded)"
* reasonReference MS
* reasonReference ^short = "Indication (Condition)"
* priorPrescription MS
* priorPrescription ^short = "The order this one continues (e.g. the hospital's discharge prescription)"
* dosageInstruction MS
* dosageInstruction ^short = "How to take it"
* dosageInstruction.text MS
* dosageInstruction.text ^short = "Free-text dosage instructions"
* dosageInstruction.timing MS
* dosageInstruction.timing ^short = "When to take it"
* dosageInstruction.doseAndRate.dose[x] MS
* dosageInstruction.doseAndRate.dose[x] ^short = "Amount per dose"
* dispenseRequest MS
* dispenseRequest ^short = "Dispensing"
* dispenseRequest.numberOfRepeatsAllowed MS
* dispenseRequest.numberOfRepeatsAllowed ^short = "Refills"
* dispenseRequest.quantity MS
* dispenseRequest.quantity ^short = "Amount to dispense"

Invariant: iop-14
Description: "An order for a medication for addiction treatment (opioid or alcohol use disorder) carries the 42CFRPart2 security label."
Severity: #error
Expression: "medicationCodeableConcept.coding.where(system = 'http://www.nlm.nih.gov/research/umls/rxnorm' and (code = '1010604' or code = '1010600' or code = '351267' or code = '351265' or code = '1996184' or code = '1996192' or code = '1797650' or code = '1483744' or code = '637213' or code = '835726' or code = '197623')).exists() implies meta.security.where(system = 'http://terminology.hl7.org/CodeSystem/v3-ActCode' and code = '42CFRPart2').exists()"
