"""Small helpers the workflows share: reading referenced resources in a unit, writing them back, codings."""
from __future__ import annotations

import json
import re

from .. import conformance, interactions
from ..errors import Unprocessable
from ..interactions import Unit
from ..repository import Stored

SID = f"{conformance.CANONICAL}/sid"
SD = f"{conformance.CANONICAL}/StructureDefinition"
CS = f"{conformance.CANONICAL}/CodeSystem"
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?$")
PART2_LABELS = {"42CFRPart2", "SUD", "NORDSCLCD", "R"}


def split(reference: object) -> tuple[str, str] | None:
    """(type, id) of a relative literal reference, else None (absolute, contained, logical)."""
    ref = reference.get("reference") if isinstance(reference, dict) else None
    m = _RELATIVE.match(ref) if isinstance(ref, str) else None
    return (m.group(1), m.group(2)) if m else None


def ref_text(reference: object) -> str | None:
    parts = split(reference)
    return f"{parts[0]}/{parts[1]}" if parts else None


def written(unit: Unit) -> dict[str, Stored]:
    """What this unit has written so far, 'Type/id' -> its latest stored version: no query needed.

    Versions are parsed only when a workflow looks at one (a large transaction is not parsed again here)."""
    cache = memo(unit)
    if cache.get("written_upto") != len(unit.changes):
        cache["written"] = {f"{c.stored.type}/{c.stored.id}": c.stored for c in unit.changes}
        cache["written_upto"] = len(unit.changes)
    return cache["written"]


def parsed(stored: Stored | None) -> dict | None:
    """A stored version's resource (None when there is none or it is a deletion)."""
    return None if stored is None or stored.deleted or stored.content is None else json.loads(stored.content)


def created_here(unit: Unit, rtype: str, rid: str) -> bool:
    """Whether Type/id was created in this unit (so nothing written before the unit can point at it)."""
    return any(c.interaction == "create" and c.previous is None and c.stored.type == rtype and c.stored.id == rid
               for c in unit.changes)


def read(unit: Unit, reference: object) -> dict | None:
    """The current content a relative reference points at, as this unit sees it."""
    parts = split(reference)
    own = written(unit)
    if parts and f"{parts[0]}/{parts[1]}" in own:
        return parsed(own[f"{parts[0]}/{parts[1]}"])
    return parsed(unit.current(*parts)) if parts else None


def read_many(unit: Unit, references: list[tuple[str, object]]) -> dict[str, dict]:
    """Current contents of several relative references in one query: 'Type/id' -> resource."""
    from .. import search

    own = written(unit)
    found = {key: content for _, ref in references if (key := ref_text(ref)) in own and (content := parsed(own[key])) is not None}
    wanted = sorted({parts for _, ref in references if (parts := split(ref)) and f"{parts[0]}/{parts[1]}" not in own})
    if wanted:
        unit.flush()
        found.update((f"{row.type}/{row.id}", json.loads(row.content)) for row in search.fetch(unit.conn, wanted))
    return found


def require_all(unit: Unit, references: list[tuple[str, object]]) -> dict[str, dict]:
    """read_many(), where a reference that resolves to nothing is a 422 naming its element."""
    found = read_many(unit, references)
    for where, ref in references:
        text = ref_text(ref)
        if text and text not in found:
            require(unit, ref, where)  # raises with the element's path
    return found


def memo(unit: Unit) -> dict:
    """Facts workflows looked up once in this unit (e.g. which references are programs)."""
    return unit.__dict__.setdefault("_workflow_memo", {})


def require(unit: Unit, reference: object, where: str) -> dict:
    """Like read(), but a reference that resolves to nothing is a 422 naming the element."""
    found = read(unit, reference)
    if found is None:
        text = reference.get("reference") if isinstance(reference, dict) else reference
        raise Unprocessable(f"{where} refers to '{text}', which is not on this server; send it in the same Bundle or first",
                            code="not-found", expression=where)
    return found


def save(unit: Unit, resource: dict, *, built: bool = False) -> interactions.Result:
    """Write a changed resource back through the normal update (validated, versioned, a Change); `built`: see
    interactions.prepare()."""
    return interactions.update(unit, resource["resourceType"], resource["id"], resource, built=built)


def coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def codes(concept: object) -> set[tuple[str, str]]:
    """(system, code) pairs of a CodeableConcept."""
    if not isinstance(concept, dict):
        return set()
    return {(c.get("system"), c.get("code")) for c in concept.get("coding", []) if isinstance(c, dict)}


def extension_values(resource: dict, name: str) -> list:
    """Values of our extension `name` (by its canonical URL) on a resource."""
    url = f"{SD}/{name}"
    out = []
    for ext in resource.get("extension", []):
        if isinstance(ext, dict) and ext.get("url") == url:
            out.extend(v for k, v in ext.items() if k.startswith("value"))
    return out


def extension_codes(resource: dict, name: str) -> set[str]:
    """Codes of our CodeableConcept extension `name` (local code systems)."""
    return {code for value in extension_values(resource, name) for _, code in codes(value)}


def claims(resource: dict, profile_id: str) -> bool:
    profiles = resource.get("meta", {}).get("profile", []) if isinstance(resource.get("meta"), dict) else []
    return f"{SD}/{profile_id}" in profiles


def part2_labels(resource: dict) -> list[dict]:
    """The 42 CFR Part 2 security labels of a source, carried over to what a workflow derives from it."""
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    return [dict(label) for label in meta.get("security", []) if isinstance(label, dict) and label.get("code") in PART2_LABELS]


def meta(profile_id: str, source: dict) -> dict:
    out: dict = {"profile": [f"{SD}/{profile_id}"]}
    labels = part2_labels(source)
    if labels:
        out["security"] = labels
    return out
