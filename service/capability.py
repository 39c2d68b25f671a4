"""The CapabilityStatement, generated from what the server really supports (built once per base URL).

See: https://hl7.org/fhir/R4/capabilitystatement.html and http.html#capabilities
"""
from __future__ import annotations

import json
from functools import cache

from . import __version__, audit_search, conformance, dates, ops, subscription_ops
from .definitions import tables
from .fhir import FHIR_VERSION
from .operations import OPERATIONS

TASK_OPERATIONS = ("triage", "decide", "referral-metrics")  # referral triage (workflows/triage.py), referral_metrics.py

# What every served resource type supports; a literal table read top to bottom.
SUPPORTED_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
_STARTED = dates.instant(dates.utcnow())


@cache
def statement_json(base_url: str, secured: bool = False) -> str:
    """The CapabilityStatement as JSON text."""
    return json.dumps(statement(base_url, secured), separators=(",", ":"))


def statement(base_url: str, secured: bool = False) -> dict:
    """The CapabilityStatement of this server at `base_url`; `secured`: auth is on (rest.security says how)."""
    t = tables()
    cap = {
        "resourceType": "CapabilityStatement",
        "id": "iop-fhir-server",
        "url": f"{base_url}/metadata",
        "name": "IopFhirServer",
        "title": "IOP FHIR R4 service",
        "status": "active",
        "experimental": False,
        "date": _STARTED,
        "publisher": "IOP FHIR service maintainers",
        "description": "FHIR R4 server for Intensive Outpatient Programs (mental health and substance use treatment).",
        "kind": "instance",
        "software": {"name": "iop-fhir-service", "version": __version__},
        "implementation": {"description": "IOP FHIR R4 service", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "resource": [_resource(rtype) for rtype in sorted(t.resource_types & _declarable())],
            "interaction": [{"code": c} for c in SYSTEM_INTERACTIONS],
            "operation": [{"name": name, "definition": url} for name, url in OPERATIONS.items() if name not in TASK_OPERATIONS]
            + _registered(None),
        }],
    }
    if secured:  # with IOP_AUTH=off nothing is required, and clients such as fhirclient would wait for an authorization
        cap["rest"][0] = {"mode": "server", "security": _security(base_url), **cap["rest"][0]}
    return cap


OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _security(base_url: str) -> dict:
    """SMART Backend Services (https://hl7.org/fhir/smart-app-launch/conformance.html); the oauth-uris
    extension is the pre-discovery way to find the token endpoint that many clients still read."""
    token = base_url.removesuffix("/fhir") + "/auth/token"
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token}]}],
        "cors": False,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}],
                     "text": "SMART Backend Services: client_credentials with a private_key_jwt assertion (RS384, ES384)"}],
        "description": f"Access tokens from {token} (discovery: {base_url}/.well-known/smart-configuration); "
                       "scopes system/<Type|*>.<cruds> are enforced on every interaction.",
    }


def _declarable() -> frozenset[str]:
    """The types R4 lets a CapabilityStatement name: its required binding to resource-types.

    The served types come from Medplum's R4 definitions, which add SubscriptionStatus (an R4B backport).
    """
    return tables().binding_codes["CapabilityStatement.rest.resource.type"]


READ_SIDE = ("read", "vread", "search-type", "history-instance", "history-type")


def _resource(rtype: str) -> dict:
    params = tables().search_params.get(rtype, {})
    entry = {
        "type": rtype,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{rtype}",
        "interaction": [{"code": c} for c in SUPPORTED_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "logical"],
        "searchInclude": sorted(f"{rtype}:{code}" for code, p in params.items() if p.type == "reference"),
        "searchRevInclude": _revincludes(rtype),
        "searchParam": [{"name": code, "definition": p.url, "type": p.type} for code, p in sorted(params.items())],
    }
    if rtype == "AuditEvent":  # the audit trail: recorded by the server, read and searched only (docs/security.md#audit)
        entry["interaction"] = [{"code": c} for c in SUPPORTED_INTERACTIONS if c in READ_SIDE]
        entry.update(updateCreate=False, conditionalCreate=False, conditionalUpdate=False, conditionalDelete="not-supported",
                     searchInclude=[], searchRevInclude=[],  # served from the audit log (service/audit_search.py)
                     searchParam=[s for s in entry["searchParam"] if s["name"] in audit_search.PARAMS])
    profiles = conformance.registry().by_type().get(rtype)
    if profiles:
        entry["supportedProfile"] = sorted(profiles)
    operations = [{"name": "validate", "definition": OPERATIONS["validate"]}]
    if rtype == "Patient":
        operations.append({"name": "everything", "definition": OPERATIONS["everything"]})
    if rtype == "ValueSet":
        operations.append({"name": "expand", "definition": OPERATIONS["expand"]})
    if rtype == "Task":
        operations += [{"name": name, "definition": OPERATIONS[name]} for name in TASK_OPERATIONS]
    entry["operation"] = operations + _registered(rtype)
    if rtype == "Subscription":
        subscription_ops.declare(entry)
    return entry


def _registered(rtype: str | None) -> list[dict]:
    """Operations that feature modules register (service/ops), named without their "$"."""
    return [{"name": op.name.removeprefix("$"), "definition": op.definition} for op in ops.for_type(rtype)]


def _revincludes(target: str) -> list[str]:
    out = []
    for source, params in tables().search_params.items():
        if source not in _declarable():
            continue
        for code, p in params.items():
            if p.type == "reference" and (target in p.target or not p.target) and source != "AuditEvent":  # not from the log
                out.append(f"{source}:{code}")
    return sorted(out)
