"""_summary and _elements: subsets of a resource, marked SUBSETTED.

See: https://hl7.org/fhir/R4/search.html#summary and #elements. Only requested subsets parse the
stored JSON; a plain read or search serves the stored bytes.
"""
from __future__ import annotations

import json

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
    if elements:
        keep = set(_ALWAYS) | {e.split(".")[-1] if e.startswith(f"{rtype}.") else e.split(".")[0] for e in elements}
        keep |= tables().mandatory_elements.get(rtype, frozenset())
    elif summary == "true":
        keep = set(_ALWAYS) | tables().summary_elements.get(rtype, frozenset())
    elif summary == "text":
        keep = set(_ALWAYS) | {"text"} | tables().mandatory_elements.get(rtype, frozenset())
    else:  # data: everything but the narrative
        keep = set(resource) - {"text"}
    model = tables().types.get(rtype, {})
    out = {k: v for k, v in resource.items() if _base(k) in keep or _choice_of(model, _base(k)) in keep}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"] + [SUBSETTED]
    out["meta"] = meta
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _choice_of(model: dict, key: str) -> str | None:
    el = model.get(key)
    return el.choice_of if el else None


def _base(key: str) -> str:
    """The element name of a JSON key (primitive extensions `_x` follow `x`; choice keys are full names)."""
    return key[1:] if key.startswith("_") else key
