"""The CapabilityStatement, generated from what the server really supports (built once per base URL).

See: https://hl7.org/fhir/R4/capabilitystatement.html and http.html#capabilities
"""
from __future__ import annotations

import json
from functools import cache

from . import __version__, conformance, dates, subscription_ops
from .definitions import tables
from .fhir import FHIR_VERSION
from .operations import OPERATIONS

TASK_OPERATIONS = ("triage", "decide", "referral-metrics")  # referral triage (workflows/triage.py), referral_metrics.py

# What every served resource type supports; a literal table read top to bottom.
SUPPORTED_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
_STARTED = dates.instant(dates.utcnow())


@cache
def statement_json(base_url: str) -> str:
    """The CapabilityStatement as JSON text."""
    return json.dumps(statement(base_url), separators=(",", ":"))


def statement(base_url: str) -> dict:
    """The CapabilityStatement of this server at `base_url`."""
    t = tables()
    return {
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
            "operation": [{"name": name, "definition": url} for name, url in OPERATIONS.items() if name not in TASK_OPERATIONS],
        }],
    }


def _declarable() -> frozenset[str]:
    """The types R4 lets a CapabilityStatement name: its required binding to resource-types.

    The served types come from Medplum's R4 definitions, which add SubscriptionStatus (an R4B backport).
    """
    return tables().binding_codes["CapabilityStatement.rest.resource.type"]


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
    entry["operation"] = operations
    if rtype == "Subscription":
        subscription_ops.declare(entry)
    return entry


def _revincludes(target: str) -> list[str]:
    out = []
    for source, params in tables().search_params.items():
        if source not in _declarable():
            continue
        for code, p in params.items():
            if p.type == "reference" and (target in p.target or not p.target):
                out.append(f"{source}:{code}")
    return sorted(out)
