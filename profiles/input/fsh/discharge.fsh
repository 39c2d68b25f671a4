// Discharge to aftercare: the discharge summary document (Composition, sections by LOINC after the PACIO
// Transitions of Care list, domain brief 1.6) and the DocumentReference that indexes it (US Core 6.1
// DocumentReference mandatory and must-support elements).

Profile: IopDischargeSummary
Parent: Composition
Id: iop-discharge-summary
Title: "IOP Discharge Summary"
Description: "The IOP discharge summary handed to the referrer and the aftercare providers: LOINC 18842-5 Discharge summary, with sections (LOINC, after the PACIO Transitions of Care IG) for the reason for referral (42349-1), problems (11450-4), assessment results (30954-2), medications at discharge (10160-0), the aftercare plan of care (18776-5) and discharge instructions (69730-0). Indexed by an iop-discharge-document."
* ^status = #draft
* identifier MS
* identifier ^short = "Business identifier of the document"
* status MS
* status ^short = "preliminary | final | amended | entered-in-error"
* type = $loinc#18842-5
* type MS
* type ^short = "18842-5 Discharge summary"
* category MS
* category ^short = "e.g. US Core clinical-note"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* encounter MS
* encounter ^short = "Encounter of the discharge (if any)"
* date MS
* date ^short = "When the summary was written"
* author MS
* author only Reference(Practitioner or PractitionerRole or Organization)
* author ^short = "Who wrote it"
* title MS
* title ^short = "Title of the document"
* confidentiality MS
* confidentiality ^short = "R (restricted) for Part 2 records"
* attester MS
* attester ^short = "Who signed it"
* custodian 1..1 MS
* custodian ^short = "The IOP organization keeping it"
* event MS
* event ^short = "The IOP episode summarized"
* event.period MS
* event.period ^short = "Admission to discharge"
* event.detail MS
* event.detail ^short = "The enrollment (EpisodeOfCare)"
* section 3..* MS
* section ^short = "Sections by LOINC code"
* section.title 1..1 MS
* section.title ^short = "Section title (every section)"
* section.code 1..1 MS
* section.code ^short = "Section code (LOINC)"
* section.text 1..1 MS
* section.text ^short = "Section narrative (every section)"
* section ^slicing.discriminator.type = #pattern
* section ^slicing.discriminator.path = "code"
* section ^slicing.rules = #open
* section ^slicing.description = "Slices by section code (LOINC)"
* section contains
    reasonForReferral 1..1 MS and
    problems 0..1 MS and
    results 0..1 MS and
    medications 1..1 MS and
    planOfCare 1..1 MS and
    dischargeInstructions 0..1 MS
* section[reasonForReferral] ^short = "Reason for referral and course in the IOP"
* section[reasonForReferral].code = $loinc#42349-1
* section[reasonForReferral].code ^short = "42349-1 Reason for referral"
* section[reasonForReferral].entry only Reference(ServiceRequest or Condition or EpisodeOfCare)
* section[reasonForReferral].entry ^short = "The referral, the enrollment"
* section[problems] ^short = "Problems treated"
* section[problems].code = $loinc#11450-4
* section[problems].code ^short = "11450-4 Problem list"
* section[problems].entry only Reference(Condition)
* section[problems].entry ^short = "Conditions"
* section[results] ^short = "Assessment results (PHQ-9, GAD-7, ... over time)"
* section[results].code = $loinc#30954-2
* section[results].code ^short = "30954-2 Relevant diagnostic tests/laboratory data"
* section[results].entry only Reference(Observation)
* section[results].entry ^short = "Assessment Observations"
* section[medications] ^short = "Medications at discharge"
* section[medications].code = $loinc#10160-0
* section[medications].code ^short = "10160-0 History of Medication use"
* section[medications].entry only Reference(MedicationRequest or MedicationStatement)
* section[medications].entry ^short = "Medication orders"
* section[planOfCare] ^short = "Aftercare plan: referrals, goals, relapse prevention plan"
* section[planOfCare].code = $loinc#18776-5
* section[planOfCare].code ^short = "18776-5 Plan of care note"
* section[planOfCare].entry only Reference(ServiceRequest or CarePlan or Goal or Appointment)
* section[planOfCare].entry ^short = "Aftercare referrals, care plan, goals"
* section[dischargeInstructions] ^short = "Instructions to the patient"
* section[dischargeInstructions].code = $loinc#69730-0
* section[dischargeInstructions].code ^short = "69730-0 Instructions"


Profile: IopDischargeDocument
Parent: DocumentReference
Id: iop-discharge-document
Title: "IOP Discharge Document"
Description: "The DocumentReference that indexes an IOP discharge summary: type 18842-5, category clinical-note, the rendered summary as an attachment, and context.related pointing at the iop-discharge-summary Composition. Meets the US Core 6.1 DocumentReference mandatory and must-support elements."
* ^status = #draft
* identifier MS
* identifier ^short = "Business identifier of the document"
* status MS
* status ^short = "current | superseded | entered-in-error"
* docStatus MS
* docStatus ^short = "preliminary | final | amended | entered-in-error"
* type 1..1 MS
* type = $loinc#18842-5
* type ^short = "18842-5 Discharge summary"
* category 1..* MS
* category ^short = "clinical-note"
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains uscore 1..1 MS
* category[uscore] = $us-core-documentreference-category#clinical-note
* category[uscore] ^short = "US Core clinical-note"
* subject 1..1 MS
* subject only Reference(Patient)
* subject ^short = "The patient"
* date MS
* date ^short = "When the reference was created"
* author MS
* author ^short = "Who wrote the summary"
* custodian MS
* custodian ^short = "The IOP organization"
* securityLabel MS
* securityLabel ^short = "Document confidentiality (R for Part 2 records)"
* content MS
* content ^short = "The summary as an attachment"
* content.attachment MS
* content.attachment ^short = "The rendered summary (data or url: iop-24)"
* content.attachment obeys iop-24
* content.attachment.contentType 1..1 MS
* content.attachment.contentType ^short = "Mime type"
* content.attachment.data MS
* content.attachment.data ^short = "Inline content"
* content.attachment.url MS
* content.attachment.url ^short = "Where the content is"
* content.format MS
* content.format ^short = "Format of the content"
* context 1..1 MS
* context ^short = "Episode and the Composition"
* context.encounter MS
* context.encounter ^short = "Encounter of the discharge"
* context.period MS
* context.period ^short = "IOP admission to discharge"
* context.related 1..* MS
* context.related only Reference(IopDischargeSummary)
* context.related ^short = "The iop-discharge-summary Composition"

Invariant: iop-24
Description: "The attachment has its content inline (data) or a location (url), as US Core requires."
Severity: #error
Expression: "data.exists() or url.exists()"
