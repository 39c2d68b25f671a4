"""Reference rewriting inside a Bundle: every place a reference can appear, typed by the R4 element model.

References (Reference.reference), uri/url/canonical elements and links in narrative are resolved
through a callback. See: https://hl7.org/fhir/R4/bundle.html#references and http.html#trules
"""
from __future__ import annotations

import re
from collections.abc import Callable

from .definitions import tables

Resolver = Callable[[str], "str | None"]


def rewrite(resource: dict, resolve: Resolver) -> dict:
    """A copy of `resource` with references (and uri/canonical values, and narrative links) resolved."""
    out = _rewrite_value(resource, resource["resourceType"], resolve)
    assert isinstance(out, dict)
    return out


def _rewrite_value(value: object, type_name: str, resolve: Resolver) -> object:
    if isinstance(value, list):
        return [_rewrite_value(v, type_name, resolve) for v in value]
    if isinstance(value, str):
        if type_name in ("uri", "url", "canonical", "Reference.reference"):
            return resolve(value) or value
        return value
    if not isinstance(value, dict):
        return value
    if type_name == "Resource":
        type_name = value.get("resourceType", "Resource")
    model = tables().types.get(type_name, {})
    out = {}
    for key, item in value.items():
        el = model.get(key)
        if type_name == "Reference" and key == "reference":
            out[key] = _rewrite_value(item, "Reference.reference", resolve)
        elif type_name == "Narrative" and key == "div" and isinstance(item, str):
            out[key] = _rewrite_narrative(item, resolve)
        else:
            out[key] = _rewrite_value(item, el.type, resolve) if el else item
    return out


def _rewrite_narrative(div: str, resolve: Resolver) -> str:
    def sub(m: re.Match) -> str:
        target = resolve(m.group(2))
        return f'{m.group(1)}"{target}"' if target else m.group(0)
    return re.sub(r'((?:href|src)=)"(urn:uuid:[0-9a-fA-F-]{36})"', sub, div)


def absolute(reference: str, full_url: str | None) -> str | None:
    """A relative Type/id resolved against the base of an absolute fullUrl (bundle.html#references)."""
    if not full_url or not full_url.startswith(("http://", "https://")) or reference.startswith(("http", "urn:", "#")):
        return None
    base = full_url.rsplit("/", 2)[0]
    return f"{base}/{reference}"
