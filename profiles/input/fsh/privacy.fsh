// 42 CFR Part 2 consent (domain brief 5.3). The Part 2 security labels are the value set
// iop-part2-security-labels (valuesets.fsh).

Profile: IopPart2Consent
Parent: Consent
Id: iop-part2-consent
Title: "IOP 42 CFR Part 2 Consent"
Description: "A patient's written consent under 42 CFR Part 2 (2024 final rule) to use or disclose substance use disorder treatment records: scope patient-privacy, category LOINC 59284-0, the policy as a URI to the eCFR text of Part 2, the patient, date and signer, the disclosing organization, and a provision saying who may receive (actor), for what purposes (TREAT / HPAYMT / HOPERAT for the single TPO consent; a specific purpose otherwise), which labeled data (securityLabel 42CFRPart2, SUD ...) and until when (period). Revocation: status inactive."
* ^status = #draft
* identifier MS
* identifier ^short = "Business identifier of the consent"
* status MS
* status ^short = "draft | proposed | active | rejected | inactive | entered-in-error"
* scope MS
* scope = $consentscope#patient-privacy
* scope ^short = "patient-privacy"
* category MS
* category ^short = "LOINC 59284-0 Consent (and others, e.g. v3-ActCode IDSCL)"
* category ^slicing.discriminator.type = #pattern
* category ^slicing.discriminator.path = "$this"
* category ^slicing.rules = #open
* category ^slicing.description = "Slices by category code"
* category contains loincConsent 1..1 MS
* category[loincConsent] = $loinc#59284-0
* category[loincConsent] ^short = "59284-0 Consent"
* patient 1..1 MS
* patient only Reference(Patient)
* patient ^short = "The patient"
* dateTime 1..1 MS
* dateTime ^short = "When the consent was signed"
* performer 1..* MS
* performer only Reference(Patient or RelatedPerson)
* performer ^short = "Who signed: the patient or a legal representative"
* organization 1..* MS
* organization ^short = "The Part 2 program or other holder permitted to disclose"
* source[x] MS
* source[x] ^short = "The signed form (Attachment or DocumentReference)"
* policy 1..* MS
* policy ^short = "The regulation: 42 CFR Part 2"
* policy ^slicing.discriminator.type = #value
* policy ^slicing.discriminator.path = "uri"
* policy ^slicing.rules = #open
* policy ^slicing.description = "Slices by policy URI"
* policy contains part2 1..1 MS
* policy[part2] ^short = "42 CFR Part 2 (eCFR)"
* policy[part2].uri 1..1
* policy[part2].uri = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2" (exactly)
* policy[part2].uri ^short = "https://www.ecfr.gov/current/title-42/chapter-I/subchapter-A/part-2"
* provision 1..1 MS
* provision ^short = "What is permitted or denied"
* provision.type 1..1 MS
* provision.type ^short = "permit | deny"
* provision.period MS
* provision.period ^short = "When the consent expires (if not revoked before)"
* provision.actor 1..* MS
* provision.actor ^short = "Recipient(s) of the disclosure"
* provision.actor.role MS
* provision.actor.role ^short = "e.g. v3-ParticipationType IRCP (information recipient)"
* provision.actor.reference MS
* provision.actor.reference ^short = "The recipient (organization, practitioner, care team)"
* provision.action MS
* provision.action ^short = "disclose | access | use ..."
* provision.securityLabel 1..* MS
* provision.securityLabel from Part2SecurityLabelVS (required)
* provision.securityLabel ^short = "Which labeled data the provision covers"
* provision.securityLabel ^slicing.discriminator.type = #pattern
* provision.securityLabel ^slicing.discriminator.path = "$this"
* provision.securityLabel ^slicing.rules = #open
* provision.securityLabel ^slicing.description = "Slices by label"
* provision.securityLabel contains part2 1..1 MS
* provision.securityLabel[part2] = $v3-ActCode#42CFRPart2
* provision.securityLabel[part2] ^short = "42CFRPart2"
* provision.purpose 1..* MS
* provision.purpose from Part2PurposeOfUseVS (required)
* provision.purpose ^short = "Purpose(s) of use: TREAT | HPAYMT | HOPERAT | ..."
