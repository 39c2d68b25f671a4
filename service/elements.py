"""_summary and _elements: subsets of a resource, marked SUBSETTED.

See: https://hl7.org/fhir/R4/search.html#summary and #elements. Only requested subsets parse the
stored JSON; a plain read or search serves the stored bytes. A subset is still a valid resource:
it keeps the mandatory elements, and where it would break one of the resource's invariants, the
smallest of the elements that invariant names come back until it holds.
"""
from __future__ import annotations

import json
from functools import lru_cache

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.models import models

from .definitions import tables

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "As requested, resource is not fully detailed."}
_ALWAYS = ("resourceType", "id", "meta")


def wanted(summary: str | None, elements: list[str] | None) -> bool:
    """Whether a request asks for a subset at all."""
    return bool(elements) or summary in ("true", "text", "data")


def subset(content: str, summary: str | None, elements: list[str] | None) -> str:
    """The JSON text of the requested subset of a stored resource."""
    resource = json.loads(content)
    rtype = resource["resourceType"]
    model = tables().types.get(rtype, {})
    if summary == "data" and not elements:
        keep = set(resource) - {"text"}  # everything but the narrative
    else:
        # Mandatory elements always (search.html#elements); isSummary SHALL cover them but R4 misses some,
        # e.g. Appointment.participant (elementdefinition-definitions.html#ElementDefinition.isSummary).
        keep = _requested(rtype, summary, elements) | set(_ALWAYS) | tables().mandatory_elements.get(rtype, frozenset())
    out = {k: v for k, v in resource.items() if _names(model, k) & keep}
    _meet_invariants(rtype, resource, out, model)
    meta = dict(out.get("meta") or {})
    meta["tag"] = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"] + [SUBSETTED]
    out["meta"] = meta
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _meet_invariants(rtype: str, resource: dict, out: dict, model: dict) -> None:
    """Add back, smallest first, the elements an invariant names until the subset satisfies it again."""
    for _key, expression, named in tables().invariants.get(rtype, ()):
        if _holds(expression, out):
            continue
        missing = [k for k in resource if k not in out and _names(model, k) & set(named)]
        missing.sort(key=lambda k: len(json.dumps(resource[k])))
        for k in missing:
            out[k] = resource[k]
            if _holds(expression, out):
                break


@lru_cache(maxsize=512)
def _compiled(expression: str):
    return fhirpath_compile(expression, models["r4"])


def _holds(expression: str, resource: dict) -> bool:
    try:
        return _compiled(expression)(resource, {"resource": resource}) == [True]
    except Exception:  # an invariant fhirpathpy cannot evaluate is not a reason to send more
        return True


def _requested(rtype: str, summary: str | None, elements: list[str] | None) -> set[str]:
    """The element names asked for: _elements (Type.name or name), else the summary or text set."""
    if elements:
        return {e.split(".")[1] if e.startswith(f"{rtype}.") else e.split(".")[0] for e in elements}
    if summary == "true":
        return set(tables().summary_elements.get(rtype, frozenset()))
    return {"text"}  # _summary=text: text plus the mandatory elements


def _names(model: dict, key: str) -> set[str]:
    """The names a JSON key answers to: `_x` follows `x`; a choice key (valueQuantity) is also `value`."""
    base = key[1:] if key.startswith("_") else key
    el = model.get(base)
    return {base, el.choice_of} if el and el.choice_of else {base}
