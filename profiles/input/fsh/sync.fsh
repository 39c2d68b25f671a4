// Sync with partner EHRs (issue 6 part B): what this service pushes to, or pulls from, an external FHIR server
// configured as an Endpoint (service/exchange.py, docs/exchange.md "Outbound sync" and "Inbound pull").

Extension: EndpointSync
Id: endpoint-sync
Title: "Endpoint Sync"
Description: "On an Endpoint of an external FHIR server: resource types this service keeps in step with it. direction push: every change of these types here is sent there (through the outbox: PUT by our id, or with mode identifier PUT Type?identifier=<our base>/<Type>|<our id> so that the remote keeps its own ids); direction pull: `flask sync pull` reads these types there by _lastUpdated and writes them here through the normal write path. One extension per direction; 42 CFR Part 2 labelled data is pushed only under a consent naming the Endpoint's managingOrganization."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* obeys iop-endpoint-sync-1
* extension contains
    direction 1..1 and
    type 1..* and
    mode 0..1
* extension[direction].value[x] only code
* extension[direction] ^short = "push | pull"
* extension[type].value[x] only code
* extension[type] ^short = "A resource type (EpisodeOfCare, CarePlan, MedicationRequest, Task, ...)"
* extension[mode].value[x] only code
* extension[mode] ^short = "push only: id (default) | identifier"
* value[x] 0..0

Invariant: iop-endpoint-sync-1
Description: "direction is push or pull; mode (id or identifier) only with push."
Severity: #error
Expression: "extension.where(url = 'direction').value.ofType(code).matches('^(push|pull)$') and (extension.where(url = 'mode').empty() or (extension.where(url = 'direction').value.ofType(code) = 'push' and extension.where(url = 'mode').value.ofType(code).matches('^(id|identifier)$')))"
