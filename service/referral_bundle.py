"""A remote referral (Task, its ServiceRequest, Patient and supporting resources) as a transaction Bundle for our server.

Each resource becomes a conditional entry, so ingesting the same data twice changes nothing: the
Patient is a conditional create on its identifier (our copy of a known patient is not overwritten),
the others conditional updates on their business identifier, the Task on its address on the remote.
References between them become urn:uuid entries; the remote's reference to our program becomes
ours; any other reference to the remote becomes absolute (it still says where the thing is).
Every copy carries its remote address as an identifier (system <base>/<Type>, value the remote id).
See: https://hl7.org/fhir/R4/http.html#trules and https://hl7.org/fhir/R4/references.html
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from urllib.parse import quote

from . import references
from .definitions import tables

SUPPORTING_TYPES = ("Coverage", "Condition", "DocumentReference", "Consent", "Observation", "MedicationRequest")
MAX_SUPPORTING = 20  # resources read per Task besides its ServiceRequest and Patient
KEEP_META = ("profile", "security", "tag")  # security labels carry 42 CFR Part 2 restrictions: they travel with the data
_REFERENCE = re.compile(r"^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$")

Fetch = Callable[[str, bool], "dict | None"]  # (reference, optional) -> the remote resource, None if absent


class InvalidReferral(ValueError):
    """Remote data that cannot make a referral here (a permanent failure for that Task)."""


def remote_key(reference: object, base: str) -> str | None:
    """"Type/id" for a reference to a resource on the remote (relative, or absolute under its base); else None."""
    if not isinstance(reference, str):
        return None
    if reference.startswith(base + "/"):
        reference = reference[len(base) + 1:]
    m = _REFERENCE.match(reference)
    if not m or m.group(1) not in tables().resource_types:
        return None
    return f"{m.group(1)}/{m.group(2)}"


def referral_bundle(base: str, task: dict, fetch: Fetch, *, program: str, owner_key: str | None) -> dict:
    """The transaction Bundle storing a remote Task (owned by `owner_key` there, `program` here) with what it references."""
    sr = _required(fetch, task, "focus", "ServiceRequest")
    patient = _required(fetch, task, "for", "Patient")
    if remote_key((sr.get("subject") or {}).get("reference"), base) != f"Patient/{patient['id']}":
        raise InvalidReferral("Task.for and its ServiceRequest.subject name different patients")
    found = {f"{r['resourceType']}/{r['id']}": r for r in (task, sr, patient)}  # the Task first
    for ref in _supporting(sr, task, base)[:MAX_SUPPORTING]:
        resource = fetch(ref, True)
        if resource is not None:
            found[f"{resource['resourceType']}/{resource['id']}"] = resource
    targets = {key: f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{base}/{key}')}" for key in found}
    if owner_key:
        targets[owner_key] = program  # the remote's name for our program becomes ours (Task.owner, ServiceRequest.performer)
    entries = [_entry(base, key, resource, targets) for key, resource in found.items()]
    entries[0]["resource"]["owner"] = dict(entries[0]["resource"].get("owner") or {}, reference=program)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _required(fetch: Fetch, task: dict, element: str, rtype: str) -> dict:
    reference = (task.get(element) or {}).get("reference")
    resource = fetch(reference, False) if isinstance(reference, str) else None
    if resource is None or resource.get("resourceType") != rtype:
        raise InvalidReferral(f"Task.{element} must reference a {rtype} on the referring server (got {reference!r})")
    return resource


def _supporting(sr: dict, task: dict, base: str) -> list[str]:
    """References worth reading with the referral: coverage, reasons, supporting information, Task inputs."""
    refs = [r for name in ("insurance", "reasonReference", "supportingInfo") for r in sr.get(name) or []]
    refs += [i.get("valueReference") for i in task.get("input") or [] if isinstance(i, dict)]
    out: list[str] = []
    for ref in refs:
        key = remote_key(ref.get("reference") if isinstance(ref, dict) else None, base)
        if key and key.split("/")[0] in SUPPORTING_TYPES and key not in out:
            out.append(key)
    return out


def _entry(base: str, key: str, resource: dict, targets: dict[str, str]) -> dict:
    body = _local_copy(base, key, resource, targets)
    rtype = resource["resourceType"]
    match = origin(base, key) if rtype == "Task" else _business_identifier(body) or origin(base, key)
    criteria = query_string([("identifier", token(match["system"], match["value"]))])
    request = ({"method": "POST", "url": rtype, "ifNoneExist": criteria} if rtype == "Patient"
               else {"method": "PUT", "url": f"{rtype}?{criteria}"})
    return {"fullUrl": targets[key], "resource": body, "request": request}


def _local_copy(base: str, key: str, resource: dict, targets: dict[str, str]) -> dict:
    """The resource as we store it: no remote id or version; references mapped; its remote address as an identifier."""
    body = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    meta = resource.get("meta")
    kept = {k: v for k, v in meta.items() if k in KEEP_META} if isinstance(meta, dict) else {}
    if kept:
        body["meta"] = kept

    def localise(reference: str) -> str | None:
        target = remote_key(reference, base)
        return None if target is None else targets.get(target, f"{base}/{target}")

    body = references.rewrite(body, localise)
    here = origin(base, key)
    identifiers = body.get("identifier", [])
    if isinstance(identifiers, list):  # anything else is left for our validation to refuse
        body["identifier"] = [i for i in identifiers if not _same_identifier(i, here)] + [here]
    return body


def origin(base: str, key: str) -> dict:
    """Where the resource lives on the remote, as an identifier: system <base>/<Type>, value its id."""
    rtype, rid = key.split("/")
    return {"use": "secondary", "system": f"{base}/{rtype}", "value": rid}


def _business_identifier(body: dict) -> dict | None:
    for ident in body.get("identifier") or []:
        if isinstance(ident, dict) and isinstance(ident.get("system"), str) and isinstance(ident.get("value"), str):
            return ident
    return None


def _same_identifier(a: object, b: dict) -> bool:
    return isinstance(a, dict) and a.get("system") == b["system"] and a.get("value") == b["value"]


# ------------------------------------------------------------------------------- search values
def escape(value: str) -> str:
    """A search value with FHIR's escapes for \\ , | and $ (search.html#escaping)."""
    return re.sub(r"([\\,|$])", r"\\\1", value)


def token(system: str, code: str) -> str:
    """A token search value system|code."""
    return f"{escape(system)}|{escape(code)}"


def query_string(criteria: list[tuple[str, str]]) -> str:
    """Criteria as a percent-encoded query string (conditional URLs in a Bundle, search.find)."""
    return "&".join(f"{name}={quote(value, safe=':/|')}" for name, value in criteria)
