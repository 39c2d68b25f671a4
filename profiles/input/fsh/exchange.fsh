// Exchange with external FHIR servers (issue 6): an external server is an Endpoint on our server, and these are
// the settings the endpoint registry reads (service/endpoints.py, docs/exchange.md "Endpoints and authentication").
// The token variable extension (endpoint-token-env) is defined with the referral pull's in extensions.fsh.

// Sub-extensions are sliced by url in the base Extension already; the slicing is repeated here (with `ordered`, so
// that SUSHI keeps it in the differential) because the service's profile engine reads differentials only
// (service/conformance/compile.py). Invariants name the value's JSON property (valueString…), as the guide's others do.
RuleSet: SubExtensionsByUrl
* extension ^slicing.discriminator.type = #value
* extension ^slicing.discriminator.path = "url"
* extension ^slicing.rules = #open
* extension ^slicing.ordered = false

Profile: IopExchangeEndpoint
Parent: Endpoint
Id: iop-exchange-endpoint
Title: "IOP Exchange Endpoint"
Description: "An external FHIR R4 server this service exchanges with (a referring hospital's or an aftercare provider's EHR, a sandbox): its base URL, the Organization that runs it, how we authenticate (none, a static bearer token from a named environment variable, or SMART Backend Services), timeouts and a request-rate limit. Secrets are never stored in the resource: it names an environment variable (IOP_SECRET_...) or a key file."
* ^status = #draft
* obeys iop-endpoint-1
* status MS
* connectionType = http://terminology.hl7.org/CodeSystem/endpoint-connection-type#hl7-fhir-rest
* managingOrganization 1..1 MS
* address MS
* address ^short = "The FHIR base URL (https; plain http only to this machine when credentials are sent)"
* extension contains
    EndpointTokenEnv named tokenEnv 0..1 MS and
    EndpointSmartBackend named smartBackend 0..1 MS and
    EndpointTimeout named timeout 0..1 MS and
    EndpointRateLimit named rateLimit 0..1 MS
* insert SliceUrl(extension[tokenEnv], endpoint-token-env)
* insert SliceUrl(extension[smartBackend], endpoint-smart-backend)
* insert SliceUrl(extension[timeout], endpoint-timeout)
* insert SliceUrl(extension[rateLimit], endpoint-rate-limit)

Invariant: iop-endpoint-1
Description: "At most one way to authenticate: a bearer token variable or SMART Backend Services, not both."
Severity: #error
Expression: "extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/endpoint-token-env').empty() or extension.where(url = 'https://iop.example.org/fhir/StructureDefinition/endpoint-smart-backend').empty()"

Extension: EndpointSmartBackend
Id: endpoint-smart-backend
Title: "Endpoint SMART Backend Services"
Description: "How this service gets access tokens for an external FHIR server with SMART Backend Services (client_credentials with a private_key_jwt assertion): our client_id there, its token URL (absent: read from [address]/.well-known/smart-configuration), where our private key is (an IOP_SECRET_... environment variable or an absolute path of a PEM file only the service's user may read; exactly one), the key's kid in the JWKS registered there, the signing algorithm (RS384 or ES384) and the scopes to ask for."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* obeys iop-endpoint-2 and iop-endpoint-7
* insert SubExtensionsByUrl
// Required parts are 0..1 with invariant iop-endpoint-7 rather than 1..1: the Medplum validator checks the
// cardinality of a complex extension's parts against the resource's own extensions when a profile names it.
* extension contains
    clientId 0..1 and
    tokenUrl 0..1 and
    keyEnv 0..1 and
    keyFile 0..1 and
    kid 0..1 and
    alg 0..1 and
    scope 0..1
* extension[clientId].value[x] only string
* extension[clientId] ^short = "Our client_id at the remote's authorization server"
* extension[tokenUrl].value[x] only url
* extension[tokenUrl] ^short = "The token endpoint (absent: discovered)"
* extension[keyEnv].value[x] only string
* extension[keyEnv] ^short = "IOP_SECRET_... variable holding the private key (PEM)"
* extension[keyEnv] obeys iop-endpoint-3
* extension[keyFile].value[x] only string
* extension[keyFile] ^short = "Absolute path of the private key (PEM, mode 600)"
* extension[kid].value[x] only string
* extension[kid] ^short = "The key's kid"
* extension[alg].value[x] only code
* extension[alg] ^short = "RS384 | ES384"
* extension[alg] obeys iop-endpoint-4
* extension[scope].value[x] only string
* extension[scope] ^short = "Scopes to request, e.g. system/Task.cru system/Patient.r"
* value[x] 0..0

Invariant: iop-endpoint-2
Description: "Exactly one of keyEnv and keyFile says where the private key is."
Severity: #error
Expression: "extension.where(url = 'keyEnv').exists() != extension.where(url = 'keyFile').exists()"

Invariant: iop-endpoint-7
Description: "clientId, kid, alg and scope are given."
Severity: #error
Expression: "extension.where(url = 'clientId').exists() and extension.where(url = 'kid').exists() and extension.where(url = 'alg').exists() and extension.where(url = 'scope').exists()"

Invariant: iop-endpoint-3
Description: "Only IOP_SECRET_... variables may be named (an Endpoint cannot make the service send another secret)."
Severity: #error
Expression: "valueString.matches('^IOP_SECRET_[A-Z0-9_]{1,64}$')"

Invariant: iop-endpoint-4
Description: "The signing algorithms SMART Backend Services asks for: RS384 or ES384."
Severity: #error
Expression: "valueCode = 'RS384' or valueCode = 'ES384'"

Extension: EndpointTimeout
Id: endpoint-timeout
Title: "Endpoint Timeouts"
Description: "How long this service waits for an external FHIR server: to connect and to read an answer, in seconds (above 0, at most 300; defaults 3.05 and 30)."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* insert SubExtensionsByUrl
* extension contains
    connect 0..1 and
    read 0..1
* extension[connect].value[x] only decimal
* extension[connect] ^short = "Connect timeout (seconds)"
* extension[connect] obeys iop-endpoint-5
* extension[read].value[x] only decimal
* extension[read] ^short = "Read timeout (seconds)"
* extension[read] obeys iop-endpoint-5
* value[x] 0..0

Invariant: iop-endpoint-5
Description: "A timeout is above 0 and at most 300 seconds."
Severity: #error
Expression: "valueDecimal > 0 and valueDecimal <= 300"

Extension: EndpointRateLimit
Id: endpoint-rate-limit
Title: "Endpoint Rate Limit"
Description: "At most this many requests per second from this service (per process) to an external FHIR server; 0.01 to 1000."
* insert IopExtension
* ^context[0].type = #element
* ^context[0].expression = "Endpoint"
* obeys iop-endpoint-6
* value[x] 1..1
* value[x] only decimal
* value[x] ^short = "Requests per second"

Invariant: iop-endpoint-6
Description: "Between 0.01 and 1000 requests per second."
Severity: #error
Expression: "valueDecimal >= 0.01 and valueDecimal <= 1000"
