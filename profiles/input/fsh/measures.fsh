// Measures the service reports on (local: computed by the server, not by a CQL engine).

Instance: referral-service-levels
InstanceOf: Measure
Usage: #definition
Title: "Referral service levels"
* url = "https://iop.example.org/fhir/Measure/referral-service-levels"
* name = "ReferralServiceLevels"
* title = "Referral service levels"
* status = #draft
* experimental = false
* publisher = "IOP FHIR service project (example.org)"
* description = "How quickly an IOP program answers the referrals it receives, and whether referred patients come to their intake appointment. Computed by the server for one program (the Organization that owns the referral Tasks, and its HealthcareServices) and period with Task/$referral-metrics; no CQL library. The referrals counted are the program's fulfilment Tasks whose first version was stored in the period; every time comes from the versions of the Task (meta.lastUpdated, the server's clock)."
* type = http://terminology.hl7.org/CodeSystem/measure-type#process "Process"
* group[0].code = https://iop.example.org/fhir/CodeSystem/iop-referral-measure#time-to-acknowledge "Time to acknowledge"
* group[0].description = "Continuous variable, median hours (UCUM h), lower is better. Initial population: referrals received in the period. Measure population: those whose Task has left status requested (acknowledged). Observation: hours from the Task's first version to its first acknowledged version."
* group[1].code = https://iop.example.org/fhir/CodeSystem/iop-referral-measure#time-to-decision "Time to decision"
* group[1].description = "Continuous variable, median hours (UCUM h), lower is better. Initial population: referrals received in the period. Measure population: those accepted or rejected. Observation: hours from the Task's first version to its first version with status accepted or rejected."
* group[2].code = https://iop.example.org/fhir/CodeSystem/iop-referral-measure#time-to-first-session "Time to first session"
* group[2].description = "Continuous variable, median hours (UCUM h), lower is better. Initial population: referrals received in the period. Measure population: those admitted. Observation: hours from the Task's first version to its first version with step admitted or status in-progress."
* group[3].code = https://iop.example.org/fhir/CodeSystem/iop-referral-measure#first-appointment-kept "First (intake) appointment kept"
* group[3].description = "Proportion 0 to 1 (UCUM 1), higher is better. Initial population: referrals received in the period. Denominator: those whose first intake Appointment (basedOn the referral, not cancelled) has an outcome: noshow, arrived, checked-in or fulfilled, or failing that the Task's first no-show or admitted step. Numerator: those kept."
